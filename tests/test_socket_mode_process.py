"""The real `imocha-bot run` in Socket Mode: it answers over the WebSocket, and when Slack ends the link
for good (Socket Mode disabled, the app-level token refused) it stops with one clear line and a
non-zero exit instead of retrying in silence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.botproc import clean_env, spawn_bot
from tests.fakes.imocha import FakeImocha, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode, SocketSender

TOKEN = "xoxb-socket-process"
APP_TOKEN = "xapp-1-A0FAKEAPP-process"


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    with FakeSlack() as fake, FakeSocketMode() as server:
        fake.add_team("T0001", TOKEN)
        fake.add_user("UADMIN", team_id="T0001", is_admin=True)
        fake.add_app_token(APP_TOKEN)
        fake.use_socket_mode(server)
        yield fake, server


def _env(tmp_path: Path, slack: FakeSlack, imocha_url: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "IMOCHA_BASE_URL": imocha_url,
        "IMOCHA_POLL_SECONDS": "60",
        "LOG_FORMAT": "json",
    }


def _stopped(proc: subprocess.Popen[str]) -> tuple[int, str, list[dict[str, Any]]]:
    """Wait for the bot to exit on its own; its exit code, stderr, and the ERROR lines in it."""
    try:
        _out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"the bot kept running:\n{err[-2000:]}") from None
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return proc.returncode, err, [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]


def test_run_answers_over_socket_mode_and_exits_non_zero_in_one_line_when_slack_disables_the_link(
    tmp_path: Path,
    slack: tuple[FakeSlack, FakeSocketMode],
    fake_imocha: FakeImocha,  # noqa: F811
) -> None:
    fake, server = slack
    proc, url = spawn_bot(tmp_path, _env(tmp_path, fake, fake_imocha.url), stdout=subprocess.PIPE)
    try:
        server.wait_connected()
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "db": "ok", "socket_mode": "connected"}
        answer = SocketSender(server).command(team_id="T0001", user_id="UADMIN", text="help")
        assert "/imocha setup" in answer.text
        server.disconnect("link_disabled")
    finally:
        code, err, errors = _stopped(proc)
    assert code == 1, err
    assert len(errors) == 1, errors
    assert "link_disabled" in errors[0]["message"] and "SLACK_APP_TOKEN" in errors[0]["message"]
    assert "Traceback" not in err
    assert fake.count("apps.connections.open") == 1


def test_an_app_token_revoked_while_running_stops_run_in_one_line_at_the_next_reconnect(
    tmp_path: Path,
    slack: tuple[FakeSlack, FakeSocketMode],
    fake_imocha: FakeImocha,  # noqa: F811
) -> None:
    fake, server = slack
    proc, _url = spawn_bot(tmp_path, _env(tmp_path, fake, fake_imocha.url), stdout=subprocess.PIPE)
    try:
        server.wait_connected()
        fake.fail("apps.connections.open", status=200, error="invalid_auth", count=100)
        server.drop()
    finally:
        code, err, errors = _stopped(proc)
    assert code == 1, err
    assert len(errors) == 1, errors
    assert errors[0]["message"].startswith("SLACK_APP_TOKEN was refused by Slack (invalid_auth)")
    assert "Traceback" not in err


def test_an_app_token_refused_at_start_up_is_one_line(
    tmp_path: Path,
    slack: tuple[FakeSlack, FakeSocketMode],
    fake_imocha: FakeImocha,  # noqa: F811
) -> None:
    fake, _server = slack
    fake.fail("apps.connections.open", status=200, error="not_authed", count=100)
    result = subprocess.run(
        [sys.executable, "-m", "bot.runtime.cli", "run", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=clean_env(_env(tmp_path, fake, fake_imocha.url)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("imocha-bot: SLACK_APP_TOKEN was refused by Slack (not_authed)"), result.stderr
    assert "Traceback" not in result.stderr
