"""docs/webhooks.md's `curl` block, run by a shell as written (but for BOT) against a real `imocha-bot run`."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import Actor
from bot.runtime.clock import system_clock
from bot.slack.access import Access
from bot.workspace.plans import PlanInput, Plans
from store.db import make_engine, make_session_factory
from tests.botproc import spawn_bot
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "webhooks.md"
TOKEN, SECRET = "xoxb-webhooks-doc", "webhooks-doc-signing-secret"
DOCUMENTED_BOT = "BOT=http://127.0.0.1:3000"


def documented_snippet() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```$", DOC.read_text(), re.DOTALL | re.MULTILINE)
    [snippet] = [block for block in blocks if "openssl dgst -sha256 -hmac" in block]
    return snippet


def documented_secret() -> str:
    match = re.search(r"^ATS_WEBHOOK_SECRET=(\S+)$", documented_snippet(), re.MULTILINE)
    assert match, "the snippet sets ATS_WEBHOOK_SECRET on a line of its own"
    return match.group(1)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with FakeSlack() as slack:
        slack.add_team("T0001", TOKEN)
        slack.add_user("UADMIN", team_id="T0001", is_admin=True)
        env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "ATS_WEBHOOK_SECRET": documented_secret(),
        }
        proc, url = spawn_bot(tmp_path, env)
        try:
            yield url, tmp_path / "bot.db"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def run_snippet(url: str) -> dict[str, object]:
    snippet = documented_snippet()
    assert DOCUMENTED_BOT in snippet.splitlines()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet.replace(DOCUMENTED_BOT, f"BOT={url}")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="needs openssl and curl")
def test_the_documented_curl_is_signed_by_openssl_and_accepted_once_a_plan_matches(bot: tuple[str, Path]) -> None:
    url, db = bot
    assert run_snippet(url) == {"status": "ignored", "reason": "no plan for job “Backend Engineer” at stage “iMocha assessment”"}

    engine = make_engine(f"sqlite:///{db}")
    plan = PlanInput("Backend Engineer", "iMocha assessment", 1134601, "Python Developer", None, None, False)
    admin = Access(gateway=None, admin_ids=frozenset({"UADMIN"}))  # type: ignore[arg-type]  # IMOCHA_ADMINS: no Slack call
    Plans(session_factory=make_session_factory(engine, system_clock), access=admin).save("T0001", Actor("UADMIN"), plan)
    engine.dispose()

    assert run_snippet(url) == {"status": "accepted", "application": "app-42"}
    assert run_snippet(url) == {"status": "accepted", "application": "app-42"}  # the same event again: still one card


def test_the_documented_secret_is_the_one_in_the_readme_quick_start() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\s*ATS_WEBHOOK_SECRET={re.escape(documented_secret())}\b", readme, re.MULTILINE)
