"""`imocha-bot check`: a readable report of Slack auth, database, migrations and each workspace's iMocha and Gem keys.

A check only looks: it creates no SQLite file and no key file, and writes nothing to the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.runtime.config import ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.workspace.crypto import SecretBox
    from bot.workspace.settings import Workspaces

Line = Callable[[bool, str, str], None]


def run_check(settings: Settings) -> int:

    from bot.runtime.preflight import check_slack, open_database, show_database

    failures = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")

    if settings.slack_bot_token or settings.oauth_enabled:
        try:
            line(True, "Slack", check_slack(settings))
        except ConfigError as exc:
            line(False, "Slack", str(exc))
    else:
        line(False, "Slack", "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from your Slack app")
    try:
        engine = open_database(settings, must_exist=True)
    except ConfigError as exc:
        line(False, "Database", str(exc))
    else:
        line(True, "Database", show_database(engine))
        try:
            _check_schema_and_keys(settings, engine, line)
        finally:
            engine.dispose()  # closes the SQLite file, so that its -wal and -shm files go with it
    print("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1


def _check_schema_and_keys(settings: Settings, engine: Engine, line: Line) -> None:
    from bot.workspace.crypto import load_secret_box
    from store.db import current_revision, head_revision

    current, head = current_revision(engine), head_revision(engine)
    line(
        current == head,
        "Migrations",
        f"at {current or 'none'}, latest {head}" + ("" if current == head else " — run `imocha-bot db upgrade`"),
    )
    if current != head:
        return
    try:
        box = load_secret_box(settings, create=False)
    except ConfigError as exc:
        if _first_run(settings, engine):
            print("note No encryption key yet: `imocha-bot run` creates one beside the database (or set ENCRYPTION_KEY)")
        else:
            line(False, "Encryption key", str(exc))
        return
    _check_workspace_keys(settings, engine, box, line)


def _first_run(settings: Settings, engine: Engine) -> bool:
    """SQLite without ENCRYPTION_KEY, no key file and no secret stored yet: `run` will make the key."""
    from sqlalchemy import func, or_, select

    from bot.workspace.crypto import key_file_for
    from store.models import Workspace

    key_file = key_file_for(settings.database_url)
    if settings.encryption_key is not None or key_file is None or key_file.exists() or settings.oauth_enabled:
        return False
    with engine.connect() as conn:
        stored = conn.scalar(
            select(func.count())
            .select_from(Workspace)
            .where(or_(Workspace.imocha_key_enc.is_not(None), Workspace.gem_key_enc.is_not(None)))
        )
    return not stored


def _check_workspace_keys(settings: Settings, engine: Engine, box: SecretBox, line: Line) -> None:
    from bot.ats.gem import GemClient, GemClients
    from bot.ats.greenhouse import HarvestClients
    from bot.imocha import ImochaClient
    from bot.runtime.clock import system_clock
    from bot.workspace.settings import Workspaces
    from store.db import make_session_factory

    http = ImochaClient.build_http(settings.imocha_base_url)
    gem_http = GemClient.build_http(settings.gem_base_url)
    gem_secret = settings.gem_application_secret.get_secret_value() if settings.gem_application_secret else None
    harvest, harvest_https = HarvestClients.build(settings.greenhouse_harvest_url, settings.greenhouse_auth_url, clock=system_clock)
    workspaces = Workspaces(
        session_factory=make_session_factory(engine, system_clock),
        box=box,
        imocha_factory=lambda key: ImochaClient(http, key),
        gem_factory=GemClients(gem_http, application_secret=gem_secret),
        harvest_factory=harvest,
        clock=system_clock,
    )
    try:
        active = workspaces.active_workspaces()
        if not active:
            print("note No workspace has an iMocha key yet: run /imocha setup in Slack")
        for ws_id, team in active:
            _check_workspace(workspaces, settings, ws_id, team, line)
    finally:
        http.close()
        gem_http.close()
        for client in harvest_https:
            client.close()


def _check_workspace(workspaces: Workspaces, settings: Settings, ws_id: int, team: str, line: Line) -> None:
    """One line per key the workspace has: iMocha's always, Gem's and Greenhouse's when stored."""
    from bot import imocha
    from bot.ats.gem import GemAuthError, GemError
    from bot.ats.greenhouse import HarvestAuthError, HarvestError

    def imocha_ok() -> str:
        # Straight to iMocha rather than through the shared test-list cache, which may answer
        # from the database (the key unchecked) and writes to it.
        return f"accepted; {len(workspaces.imocha(team).list_tests())} tests"

    def gem_ok() -> str | None:
        key = workspaces.gem_key(ws_id)
        if not key:
            return None
        workspaces.check_gem_key(key)
        return f"accepted at {settings.gem_base_url}"

    def harvest_ok() -> str | None:
        credentials = workspaces.harvest_credentials(ws_id)
        if not credentials:
            return None
        workspaces.check_harvest(credentials)
        return f"accepted at {settings.greenhouse_auth_url}"

    _key_line(
        line,
        f"iMocha key for {team}",
        imocha_ok,
        (imocha.AuthError, "rejected by iMocha: run /imocha setup again"),
        (imocha.ImochaError, lambda exc: f"iMocha unreachable at IMOCHA_BASE_URL ({exc.__class__.__name__})"),
    )
    _key_line(
        line,
        f"Gem ATS key for {team}",
        gem_ok,
        (GemAuthError, "rejected by Gem: run /imocha setup again"),
        (GemError, lambda exc: f"Gem unreachable ({exc.__class__.__name__})"),
    )
    _key_line(
        line,
        f"Greenhouse Harvest credentials for {team}",
        harvest_ok,
        (HarvestAuthError, "rejected by Greenhouse: run /imocha setup again"),
        (HarvestError, lambda exc: f"refused or unreachable: {exc.message}"),
    )


def _key_line(
    line: Line,
    name: str,
    check: Callable[[], str | None],
    refused: tuple[type[Exception], str],
    failed: tuple[type[Exception], Callable[[Any], str]],
) -> None:
    """Run one live key check and print its line: ok, the key unreadable, refused, or the vendor away."""
    from bot.workspace.crypto import SecretDecryptionError

    try:
        ok = check()
    except SecretDecryptionError as exc:
        line(False, name, str(exc))
    except refused[0]:
        line(False, name, refused[1])
    except failed[0] as exc:
        line(False, name, failed[1](exc))
    else:
        if ok is not None:
            line(True, name, ok)
