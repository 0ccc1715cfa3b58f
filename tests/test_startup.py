"""`imocha-bot run`, `check` and `db upgrade` as real processes: every start-up failure is one line that names
the setting to fix (never a traceback), and a normal start says in a few lines what runs where."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url, text

from store.db import make_engine, upgrade
from tests.botproc import clean_env, spawn_bot
from tests.conftest import PG_URL, migrations_head
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode

ROOT = Path(__file__).resolve().parents[1]
TOKEN, APP_TOKEN, SECRET = "xoxb-startup", "xapp-startup", "startup-secret"
CLOSED = "http://127.0.0.1:9/api/"  # the discard port: nothing listens on loopback
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) ")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    env: dict[str, str]
    expect: str  # how the one line starts (after "imocha-bot: " on stderr; after "FAIL " on stdout for check)
    words: str  # what the line must also say
    prepare: Callable[[Path], None] | None = None
    report: bool = False  # `check` reports on stdout, one FAIL line per failed check
    files_after: tuple[str, ...] | None = None  # what the working directory holds afterwards, when it matters


@dataclass
class Outcome:
    cwd: Path
    result: subprocess.CompletedProcess[str]


def _http(slack_api_url: str, **env: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack_api_url, **env}


def _socket(slack_api_url: str, **env: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": slack_api_url, **env}


def _file_in_the_way(cwd: Path) -> None:
    (cwd / "file").write_text("a file where the database's directory should be\n")


def _key_file_is_a_directory(cwd: Path) -> None:
    (cwd / "imocha-bot.db.key").mkdir()


def _migrated(cwd: Path) -> None:
    engine = make_engine(f"sqlite:///{cwd / 'imocha-bot.db'}")
    upgrade(engine)
    engine.dispose()


RUN = ("run", "--host", "127.0.0.1", "--port", "0")


def _cases(ok: str, ws_closed: str, hanging_port: int) -> dict[str, Case]:
    """The cases, given the fake Slack's API URL, one whose Socket Mode address is a closed port, and a port that never answers."""
    pg_key = Fernet.generate_key().decode()
    return {
        # -- Slack, HTTP mode
        "http-slack-port-closed": Case(RUN, _http(CLOSED), "SLACK_API_URL", "cannot be reached (connection refused)", files_after=()),
        "http-slack-dns": Case(RUN, _http("http://nonexistent.invalid/api/"), "SLACK_API_URL", "its host name does not resolve"),
        "http-slack-tls": Case(RUN, _http(ok.replace("http://", "https://")), "SLACK_API_URL", "the TLS handshake failed"),
        "http-slack-timeout": Case(RUN, _http(f"http://127.0.0.1:{hanging_port}/api/"), "SLACK_API_URL", "no answer within 10 s"),
        "http-not-slack": Case(RUN, _http(ok.replace("/api/", "/nope/")), "SLACK_API_URL", "answered HTTP 404, not like Slack's Web API"),
        "http-bot-token-refused": Case(RUN, {**_http(ok), "SLACK_BOT_TOKEN": "xoxb-wrong"}, "SLACK_BOT_TOKEN", "refused by Slack"),
        "http-on-every-interface-without-signing-secret": Case(
            ("run", "--host", "0.0.0.0", "--port", "0"),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": ok},
            "SLACK_SIGNING_SECRET",
            "HTTP mode needs it",  # refused, whatever the address: no unsigned HTTP mode to warn about
            files_after=(),
        ),
        "oauth-slack-port-closed": Case(
            RUN,
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": CLOSED},
            "SLACK_API_URL",
            "cannot be reached (connection refused)",
        ),
        "run-host-not-local": Case(
            ("run", "--host", "192.0.2.1", "--port", "0"), _http(ok), "--host 192.0.2.1", "not an address of this machine"
        ),
        # -- Slack, Socket Mode
        "socket-slack-port-closed": Case(RUN, _socket(CLOSED), "SLACK_API_URL", "cannot be reached (connection refused)"),
        "socket-app-token-refused": Case(
            RUN, {**_socket(ok), "SLACK_APP_TOKEN": "xapp-wrong"}, "SLACK_APP_TOKEN", "was refused by Slack (invalid_auth)"
        ),
        "socket-websocket-refused": Case(RUN, _socket(ok), "SLACK_APP_TOKEN", "the Socket Mode WebSocket could not be opened within 10 s"),
        "socket-websocket-port-closed": Case(RUN, _socket(ws_closed), "SLACK_APP_TOKEN", "the Socket Mode WebSocket could not be opened"),
        # -- the database
        "run-postgres-port-closed": Case(
            RUN,
            _http(ok, DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/none", ENCRYPTION_KEY=pg_key),
            "DATABASE_URL",
            "the database does not answer",
        ),
        "run-unknown-driver": Case(RUN, _http(ok, DATABASE_URL="postgresql+nosuch://x/y"), "DATABASE_URL", "cannot be used"),
        "run-driver-not-installed": Case(RUN, _http(ok, DATABASE_URL="postgresql+pg8000://x/y"), "DATABASE_URL", "driver is not installed"),
        "run-sqlite-under-a-file": Case(
            RUN, _http(ok, DATABASE_URL="sqlite:///file/bot.db"), "DATABASE_URL", "cannot be opened or written", _file_in_the_way
        ),
        "run-sqlite-unwritable-directory": Case(
            RUN, _http(ok, DATABASE_URL="sqlite:////proc/imocha-bot-test.db"), "DATABASE_URL", "may write to it"
        ),
        "run-key-file-unusable": Case(RUN, _http(ok), "ENCRYPTION_KEY", "imocha-bot.db.key cannot be used", _key_file_is_a_directory),
        "upgrade-sqlite-under-a-file": Case(
            ("db", "upgrade"), {"DATABASE_URL": "sqlite:///file/bot.db"}, "DATABASE_URL", "cannot be opened", _file_in_the_way
        ),
        # -- check: one FAIL line per failed check, each naming its setting
        "check-slack-port-closed": Case(("check",), _http(CLOSED), "Slack: SLACK_API_URL", "connection refused", report=True),
        "check-no-database-file": Case(("check",), _http(ok), "Database: DATABASE_URL", "does not exist yet", report=True, files_after=()),
        "check-unknown-driver": Case(
            ("check",), _http(ok, DATABASE_URL="postgresql+nosuch://x/y"), "Database: DATABASE_URL", "cannot be used", report=True
        ),
        "check-malformed-encryption-key": Case(
            ("check",),
            _http(ok, ENCRYPTION_KEY="short"),
            "Encryption key: ENCRYPTION_KEY",
            "not a valid Fernet key",
            _migrated,
            report=True,
            files_after=("imocha-bot.db",),  # no -wal, -shm or key file left behind
        ),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case's process, started together (each takes a second or two, the timeout case ten)."""
    with FakeSlack() as slack, FakeSlack() as ws_closed, socket.create_server(("127.0.0.1", 0)) as hanging:
        # `hanging` listens but never accepts: the kernel completes the TCP handshake and nothing answers.
        for fake in (slack, ws_closed):
            fake.add_team("T0001", TOKEN)
            fake.add_app_token(APP_TOKEN)
        ws_closed.socket_mode_url = "ws://127.0.0.1:9/link/"
        cases = _cases(slack.api_url, ws_closed.api_url, hanging.getsockname()[1])

        cwds = {name: tmp_path_factory.mktemp(name) for name in cases}  # here: mktemp is not thread-safe

        def run(name: str) -> Outcome:
            case, cwd = cases[name], cwds[name]
            if case.prepare:
                case.prepare(cwd)
            result = subprocess.run(
                [sys.executable, "-m", "bot.runtime.cli", *case.args],
                capture_output=True,
                text=True,
                env=clean_env(case.env),
                cwd=cwd,
                timeout=60,
            )
            return Outcome(cwd, result)

        with ThreadPoolExecutor(max_workers=6) as pool:
            # The slow one first, so that it overlaps the rest.
            names = sorted(cases, key=lambda name: "timeout" not in name)
            yield dict(zip(names, pool.map(run, names), strict=True))


CASES = _cases("http://fake/api/", "http://fake-closed/api/", 0)  # names, and what each line must say


@pytest.mark.parametrize("name", list(CASES))
def test_a_start_up_failure_is_one_line_naming_the_setting_and_what_to_do(name: str, outcomes: dict[str, Outcome]) -> None:
    if name == "run-sqlite-unwritable-directory" and not Path("/proc/self").exists():
        pytest.skip("needs Linux's /proc, a directory nobody may create files in")
    case = CASES[name]
    outcome = outcomes[name]
    result = outcome.result
    everything = result.stdout + result.stderr
    assert result.returncode != 0, everything
    assert "Traceback" not in everything
    assert "Failed to send a request" not in everything  # slack_sdk's own ERROR lines stay quiet
    if case.report:
        out = result.stdout.splitlines()
        fails = [line for line in out if line.startswith("FAIL ")]
        assert any(line.startswith(f"FAIL {case.expect}") and case.words in line for line in fails), result.stdout
        assert out[-1] == f"{len(fails)} check(s) failed"
        assert not [line for line in result.stderr.splitlines() if line.strip()], result.stderr
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[-1].startswith(f"imocha-bot: {case.expect}"), result.stderr
        assert case.words in lines[-1], lines[-1]
        assert all(LOG_LINE.match(line) for line in lines[:-1]), result.stderr  # the rest: a key-file notice at most
    if case.files_after is not None:
        assert tuple(sorted(p.name for p in outcome.cwd.iterdir())) == case.files_after


def test_check_after_db_upgrade_passes_notes_the_key_to_come_and_leaves_only_the_database(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        slack.add_team("T0001", TOKEN)
        env = clean_env(_http(slack.api_url))
        upgrade_ = subprocess.run(
            [sys.executable, "-m", "bot.runtime.cli", "db", "upgrade"], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        check = subprocess.run([sys.executable, "-m", "bot.runtime.cli", "check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert upgrade_.returncode == 0 and upgrade_.stdout == f"database schema at revision {migrations_head()} (upgraded from empty)\n", (
        upgrade_
    )
    assert upgrade_.stderr == ""  # no Alembic lines
    assert check.returncode == 0, check.stdout
    assert "note No encryption key yet: `imocha-bot run` creates one" in check.stdout
    assert check.stdout.splitlines()[-1] == "all checks passed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imocha-bot.db"]


# -- a normal start ---------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def _start_lines(err: str) -> list[str]:
    lines = err.splitlines()
    return lines[: next(i for i, line in enumerate(lines) if "shutting down" in line)]


def test_a_normal_start_in_http_mode_says_where_it_listens_its_mode_database_and_scheduler(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        slack.add_team("T0001", TOKEN)
        env = _http(slack.api_url, DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", ATS_WEBHOOK_SECRET="s")
        proc, url = spawn_bot(tmp_path, env)
        err = _stop(proc)
    lines = _start_lines(err)
    text_ = "\n".join(lines)
    assert len(lines) <= 6, text_
    assert "Traceback" not in err and "alembic" not in text_
    assert "`token` will be unused" not in err  # SLACK_BOT_TOKEN is in the environment: Bolt no longer warns
    assert re.search(r"Slack: bot \S+ in workspace .* \(T0001\); HTTP mode \(Slack sends requests to POST /slack/events\)", text_)
    assert f"database sqlite:///{tmp_path / 'bot.db'}: schema at revision {migrations_head()} (upgraded from empty)" in text_
    assert "scheduler started (imocha.poll every 120s" in text_
    listening = next(line for line in lines if "listening on" in line)
    assert f"listening on {url}: POST /slack/events, /webhooks/ats, /webhooks/greenhouse off (set GREENHOUSE_WEBHOOK_SECRET)" in listening


def test_a_normal_start_in_oauth_mode_checks_that_slack_answers_and_offers_the_install_route(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = {
            "SLACK_CLIENT_ID": "1.2",
            "SLACK_CLIENT_SECRET": "client-secret",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        }
        proc, url = spawn_bot(tmp_path, env)
        err = _stop(proc)
        assert slack.count("api.test") == 1
        api_url = slack.api_url
    text_ = "\n".join(_start_lines(err))
    assert f"Slack: Web API at {api_url} answers; OAuth mode: tokens come from installations; HTTP mode" in text_
    assert f"listening on {url}: POST /slack/events, GET /slack/install, /webhooks/ats off" in text_


@pytest.fixture
def postgres_with_password() -> Iterator[dict[str, str]]:
    """A private, upgraded PostgreSQL database, reached with a URL that carries a password (trust auth ignores it)."""
    name = f"imocha_startup_{os.getpid()}"
    try:
        admin = make_engine(PG_URL, pool_size=1, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable: {exc.__class__.__name__}", pytrace=False)
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc.__class__.__name__}")
    url = make_url(PG_URL).set(database=name, password="pw-never-logged")
    try:
        engine = make_engine(url.render_as_string(hide_password=False))
        upgrade(engine)
        engine.dispose()
        yield {"DATABASE_URL": url.render_as_string(hide_password=False), "ENCRYPTION_KEY": Fernet.generate_key().decode()}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_normal_start_in_socket_mode_connects_and_never_shows_the_database_password(
    tmp_path: Path, postgres_with_password: dict[str, str]
) -> None:
    with FakeSlack() as slack, FakeSocketMode() as websocket:
        slack.add_team("T0001", TOKEN)
        slack.add_app_token(APP_TOKEN)
        slack.use_socket_mode(websocket)
        proc, url = spawn_bot(tmp_path, _socket(slack.api_url, **postgres_with_password))
        assert len(websocket.connections) == 1
        err = _stop(proc)
    lines = _start_lines(err)
    text_ = "\n".join(lines)
    assert len(lines) <= 5, text_
    assert "pw-never-logged" not in err
    assert "Socket Mode (Slack requests arrive over the WebSocket)" in text_
    assert re.search(
        r"database postgresql\+psycopg://postgres:\*\*\*@127\.0\.0\.1:5432/imocha_startup_\d+: schema at revision " + migrations_head(),
        text_,
    )
    assert f"listening on {url}: /webhooks/ats off (set ATS_WEBHOOK_SECRET)" in text_
    assert "alembic" not in text_ and "`token` will be unused" not in err
