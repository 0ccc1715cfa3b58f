"""The real `imocha-bot run` process: it serves, answers Slack, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.botproc import spawn_bot
from tests.fakes.imocha import FakeImocha, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "xoxb-process-token"
SECRET = "process-secret"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_team("T0001", TOKEN)
        fake.add_user("UADMIN", team_id="T0001", is_admin=True)
        yield fake


def start_bot(tmp_path: Path, slack: FakeSlack, imocha_url: str, **extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "IMOCHA_BASE_URL": imocha_url,
        "IMOCHA_POLL_SECONDS": "1",
        "LOG_FORMAT": "json",
        **extra,
    }
    return spawn_bot(tmp_path, env, stdout=subprocess.PIPE)


def test_the_bot_process_serves_slack_and_stops_cleanly_on_sigterm(tmp_path: Path, slack: FakeSlack, fake_imocha: FakeImocha) -> None:  # noqa: F811
    proc, url = start_bot(tmp_path, slack, fake_imocha.url)
    try:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "db": "ok"}
        with SlackSender(url, SECRET) as sender:
            response = sender.command(team_id="T0001", user_id="UADMIN", text="help")
        assert response.status_code == 200 and "/imocha setup" in response.text
        key_file = tmp_path / "bot.db.key"
        assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "shutting down" in err
    assert "Traceback" not in err
    for line in err.splitlines():
        if line.startswith("{"):
            assert '"request_id"' in line  # LOG_FORMAT=json: one object per line
