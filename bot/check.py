"""`imocha-bot check`: a readable report of Slack auth, database, migrations and each workspace's iMocha and Gem keys."""

from __future__ import annotations

from bot.config import Settings


def run_check(settings: Settings) -> int:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from sqlalchemy.exc import SQLAlchemyError

    from bot import imocha
    from bot.clock import system_clock
    from bot.crypto import SecretDecryptionError, load_secret_box
    from bot.gem import GemAuthError, GemClient, GemClients, GemError
    from bot.imocha import ImochaClient
    from bot.workspaces import Workspaces
    from store.db import current_revision, head_revision, make_engine, make_session_factory, ping

    failures = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")

    if settings.slack_bot_token:
        try:
            auth = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url).auth_test()
            line(True, "Slack", f"bot {auth.get('user')} in workspace {auth.get('team')} ({auth.get('team_id')})")
        except SlackApiError as exc:
            line(False, "Slack", f"SLACK_BOT_TOKEN refused: {exc.response.get('error')}")
        except Exception as exc:
            line(False, "Slack", f"unreachable at {settings.slack_api_url} ({exc.__class__.__name__})")
    elif settings.oauth_enabled:
        line(True, "Slack", "OAuth mode: tokens come from installations")
    else:
        line(False, "Slack", "SLACK_BOT_TOKEN is not set")
    engine = make_engine(settings.database_url)
    try:
        ping(engine)
        line(True, "Database", engine.url.render_as_string(hide_password=True))
    except SQLAlchemyError as exc:
        line(False, "Database", f"does not answer ({exc.__class__.__name__})")
        return 1
    current, head = current_revision(engine), head_revision(engine)
    line(
        current == head,
        "Migrations",
        f"at {current or 'none'}, latest {head}" + ("" if current == head else " — run `imocha-bot db upgrade`"),
    )
    if current != head:
        return 1
    try:
        box = load_secret_box(settings, create=False)
    except Exception as exc:
        line(False, "Encryption key", str(exc))
        return 1
    http = ImochaClient.build_http(settings.imocha_base_url)
    gem_http = GemClient.build_http(settings.gem_base_url)
    gem_secret = settings.gem_application_secret.get_secret_value() if settings.gem_application_secret else None
    workspaces = Workspaces(
        session_factory=make_session_factory(engine, system_clock),
        box=box,
        imocha_factory=lambda key: ImochaClient(http, key),
        gem_factory=GemClients(gem_http, application_secret=gem_secret),
        clock=system_clock,
    )
    active = workspaces.active_workspaces()
    if not active:
        print("note No workspace has an iMocha key yet: run /imocha setup in Slack")
    for ws_id, team in active:
        try:
            count = workspaces.tests(team).__len__()
            line(True, f"iMocha key for {team}", f"accepted; {count} tests")
        except SecretDecryptionError as exc:
            line(False, f"iMocha key for {team}", str(exc))
        except imocha.AuthError:
            line(False, f"iMocha key for {team}", "rejected by iMocha: run /imocha setup again")
        except imocha.ImochaError as exc:
            line(False, f"iMocha key for {team}", f"iMocha unreachable ({exc.__class__.__name__})")
        try:
            gem_key = workspaces.gem_key(ws_id)
            if gem_key:
                workspaces.check_gem_key(gem_key)
                line(True, f"Gem ATS key for {team}", f"accepted at {settings.gem_base_url}")
        except SecretDecryptionError as exc:
            line(False, f"Gem ATS key for {team}", str(exc))
        except GemAuthError:
            line(False, f"Gem ATS key for {team}", "rejected by Gem: run /imocha setup again")
        except GemError as exc:
            line(False, f"Gem ATS key for {team}", f"Gem unreachable ({exc.__class__.__name__})")
    http.close()
    gem_http.close()
    print("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1
