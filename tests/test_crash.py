"""SIGKILL the real `imocha-bot run` process mid-send, mid-poll and mid-delivery: after a restart nothing is
lost or doubled, and Slack writes the dead process had claimed go out within seconds.

The bot runs as a subprocess on a SQLite file and on a private PostgreSQL database, against the fake
Slack and a fake iMocha made slow, so the kill lands while the call is in flight.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url, text

from bot.assessments import LOCK_SECONDS
from bot.runtime.app import Runtime, build_runtime
from bot.runtime.clock import system_clock
from bot.runtime.config import load_settings
from store.db import make_engine
from tests.botproc import clean_env as _env
from tests.botproc import spawn_bot
from tests.conftest import PG_URL
from tests.fakes import slack_requests as sr
from tests.fakes.greenhouse import CLIENT_ID, CLIENT_SECRET, FakeHarvest, fake_harvest  # noqa: F401 (fixture)
from tests.fakes.imocha import GOOD_KEY, FakeImocha, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack, Message
from tests.wiring.conftest import ADMIN, CHANNEL, RECRUITER, TEAM, ats_event, create_plan, setup_workspace
from tests.wiring.helpers import app_id_of, click, complete, headline, submit_send
from tests.wiring.test_greenhouse import GH_SECRET, SAMPLE, encode, signature

TOKEN = "xoxb-crash-token"
SECRET = "crash-signing-secret"
ATS_SECRET = "crash-ats-secret"


@dataclass
class ProcBot:
    """The subprocess seen through Slack: what tests.wiring.helpers needs of a `Bot`, minus the runtime."""

    url: str
    slack: FakeSlack
    imocha: FakeImocha
    sender: sr.SlackSender

    def command(self, user: str, text: str, **kw: Any) -> httpx.Response:
        return self.sender.command(team_id=TEAM, user_id=user, text=text, response_url=self.slack.response_url(user), **kw)

    def submit(self, user: str, callback_id: str, values: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return self.sender.submit(team_id=TEAM, user_id=user, callback_id=callback_id, values=values or {}, **kw)

    def action(self, user: str, action_id: str, value: str, **kw: Any) -> httpx.Response:
        return self.sender.action(team_id=TEAM, user_id=user, action_id=action_id, value=value, **kw)

    def ats(self, payload: dict[str, Any]) -> httpx.Response:
        import hashlib
        import hmac

        raw = json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(ATS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return httpx.post(f"{self.url}/webhooks/ats", content=raw, headers={"X-Signature": sig, "Content-Type": "application/json"})


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_team(TEAM, TOKEN)
        fake.add_user(ADMIN, team_id=TEAM, email="admin@example.com", is_admin=True)
        fake.add_user(RECRUITER, team_id=TEAM, email="rita@example.com")
        fake.add_channel(CHANNEL, team_id=TEAM, name="hiring-backend", members=[ADMIN, RECRUITER])
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for the bot's database: a SQLite file, or a private PostgreSQL database (created, upgraded, dropped)."""
    if request.param == "sqlite":
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"}
        return
    name = f"imocha_crash_{os.getpid()}"
    try:
        admin = make_engine(PG_URL, pool_size=1, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable: {exc.__class__.__name__}", pytrace=False)
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc.__class__.__name__}")
    env = {
        "DATABASE_URL": make_url(PG_URL).set(database=name).render_as_string(hide_password=False),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot.runtime.cli", "db", "upgrade"],
            cwd=tmp_path,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        yield env
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_bot(
    tmp_path: Path, slack: FakeSlack, imocha: FakeImocha, database: dict[str, str], extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], ProcBot]:
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "IMOCHA_BASE_URL": imocha.url,
        "IMOCHA_POLL_SECONDS": "1",
        "ATS_WEBHOOK_SECRET": ATS_SECRET,
        "LOG_FORMAT": "json",
        **database,
        **(extra or {}),
    }
    proc, url = spawn_bot(tmp_path, env)
    return proc, ProcBot(url, slack, imocha, sr.SlackSender(url, SECRET))


def sigkill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


def sigterm(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def in_process_runtime(tmp_path: Path, slack: FakeSlack, imocha: FakeImocha, database: dict[str, str], *, ahead: float = 0) -> Runtime:
    """A replica in this process on the bot's database (its jobs run by hand), its clock `ahead` seconds on."""
    settings = load_settings(
        _env_file=None,
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        imocha_base_url=imocha.url,
        database_url=database["DATABASE_URL"],
        encryption_key=database.get("ENCRYPTION_KEY"),
        imocha_poll_seconds=1,
    )
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a SQLite database's key file sits next to it; relative paths resolve like the subprocess's
    try:
        return build_runtime(settings, clock=lambda: system_clock() + timedelta(seconds=ahead))
    finally:
        os.chdir(cwd)


def poll_once(runtime: Runtime) -> None:
    """One poll cycle, once the second turned (iMocha's windows take whole seconds), then deliver."""
    time.sleep(1.02 - time.time() % 1)
    stats = runtime.services.poller.poll_all()
    assert all(s.ok for s in stats), stats
    runtime.services.outbox.deliver()


def cards(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.thread_ts is None]


def thread_texts(slack: FakeSlack) -> list[str]:
    found = cards(slack)
    return [m.text or "" for m in slack.thread(CHANNEL, found[0].ts)] if found else []


def link_dms(slack: FakeSlack) -> int:
    return sum("Test link" in json.dumps(m.blocks) for m in slack.dms_to(RECRUITER))


def assert_nothing_posted_twice(slack: FakeSlack) -> None:
    for channel in (CHANNEL, "D" + RECRUITER):
        seen = [(m.thread_ts, m.text, json.dumps(m.blocks)) for m in slack.messages(channel)]
        assert len(seen) == len(set(seen)), f"a message was posted twice in {channel}: {[m.text for m in slack.messages(channel)]}"


def wait(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def test_sigkill_mid_send_and_mid_poll_loses_and_doubles_nothing(
    tmp_path: Path,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    database: dict[str, str],
) -> None:
    imocha = fake_imocha.state
    proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
    try:
        setup_workspace(bot)  # type: ignore[arg-type]
        assert create_plan(bot).status_code == 200  # type: ignore[arg-type]
        assert bot.ats(ats_event("app-42", event_id="evt-crash")).status_code == 202
        wait(lambda: len(cards(slack)) == 1, 10, "the card was not posted")
        app_id = app_id_of(cards(slack)[0])

        # 1. SIGKILL while iMocha's invite is in flight
        imocha.latency = 1.5
        assert submit_send(bot, app_id).status_code == 200  # type: ignore[arg-type]
        wait(lambda: imocha.count("/invite", "POST") >= 1, 10, "the bot never called invite")
        time.sleep(0.2)
    finally:
        sigkill(proc)
        bot.sender.close()
    imocha.latency = 0.0
    time.sleep(1.6)  # the fake finishes the orphaned request (iMocha did the work; the bot never heard)
    assert "Assessment sent" not in headline(cards(slack)[0])
    assert link_dms(slack) == 0

    # restart on the same database; the recovery job (run here in-process, as if LOCK_SECONDS had passed) finishes the send
    proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
    runtime = in_process_runtime(tmp_path, slack, fake_imocha, database, ahead=LOCK_SECONDS + 5)
    try:
        runtime.services.assessments.recover_stuck_sends()
        runtime.services.assessments.recover_stuck_sends()  # a second run (another replica) finds nothing
        deadline = time.monotonic() + 10
        while not ("Assessment sent" in headline(cards(slack)[0]) and link_dms(slack) == 1):
            assert time.monotonic() < deadline, [headline(c) for c in cards(slack)]
            runtime.services.outbox.deliver()
            time.sleep(0.1)
        time.sleep(1.0)
        runtime.services.outbox.deliver()
    finally:
        runtime.close()
    assert len(imocha.invitations()) == 1
    assert len(cards(slack)) == 1
    assert "Assessment sent" in headline(cards(slack)[0])
    assert sum("Assessment sent" in json.dumps(c.body.get("blocks")) for c in slack.calls_to("chat.update")) == 1
    assert link_dms(slack) == 1
    assert sum("sent Python Developer" in t for t in thread_texts(slack)) == 1

    # 2. SIGKILL mid poll cycle: the candidate finished; the bot is killed while it reads the report
    try:
        inv_id = imocha.invitations()[0].id
        imocha.reset_calls()
        imocha.latency = 0.4
        imocha.complete(inv_id, points=42)
        wait(lambda: imocha.count("/reports/") >= 1, 15, "the poll never read the report")
        time.sleep(0.1)
    finally:
        sigkill(proc)
        bot.sender.close()
    imocha.latency = 0.0
    time.sleep(0.5)
    assert "needs review" not in headline(cards(slack)[0])

    # restart; the dead process's poll lease keeps the new one's scheduler off the poll for a while,
    # so a replica in this process polls (the restarted process delivers the outbox alongside it)
    proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
    runtime = in_process_runtime(tmp_path, slack, fake_imocha, database)
    try:
        poll_once(runtime)
        wait(lambda: any("completed" in t for t in thread_texts(slack)), 10, "the completion was never posted")
        wait(lambda: "needs review" in headline(cards(slack)[0]), 10, "the card never said needs review")
        poll_once(runtime)  # a second cycle over the overlapping window: nothing new
        time.sleep(1.0)
        runtime.services.outbox.deliver()
    finally:
        runtime.close()
        err = sigterm(proc)
        bot.sender.close()
    assert "Traceback" not in err
    assert sum("completed" in t for t in thread_texts(slack)) == 1
    assert len(cards(slack)) == 1
    assert len(imocha.invitations()) == 1
    assert_nothing_posted_twice(slack)
    assert slack.violations == []


RECOVERY_SECONDS = 5.0  # issue 14: work a dead process claimed is resumed within this


def result_dms(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.dms_to(RECRUITER) if "completed" in (m.text or "")]


def hold_result_dms(slack: FakeSlack) -> None:
    """Hold the owner's result DM in the fake, so the bot is killed while that claimed write waits."""

    def result_dm(method: str, body: dict[str, Any]) -> bool:
        return method == "chat.postMessage" and "completed" in str(body.get("text")) and str(body.get("channel"))[:1] == "D"

    slack.hold(result_dm)


def kill_after_the_announcement(proc: subprocess.Popen[str], slack: FakeSlack, card_index: int, database_url: str) -> float:
    """SIGKILL once the completion is announced in the card's thread (and recorded as delivered) and the
    owner's DM is in flight; the DM never reaches Slack. Returns the moment of the kill (time.monotonic).

    The channel's lane and the owner's DM lane run in parallel, so "announced in Slack" alone could land
    the kill between Slack's answer and the outbox row's commit: a crash there is at-least-once (the
    reply is sent again), which is not the case this test is about."""

    engine = make_engine(database_url)

    def announced() -> bool:
        found = cards(slack)
        if not (len(found) > card_index and any("completed" in (m.text or "") for m in slack.thread(CHANNEL, found[card_index].ts))):
            return False
        with engine.connect() as conn:
            return not conn.execute(text("SELECT 1 FROM slack_outbox WHERE lane = :c AND done_at IS NULL"), {"c": CHANNEL}).first()

    try:
        wait(lambda: announced() and slack.holding >= 1, 15, "the completion was not announced, or the owner's DM never started")
    finally:
        engine.dispose()
    sigkill(proc)
    killed = time.monotonic()
    slack.release()  # the held DM's client is gone: the fake drops it
    wait(lambda: slack.holding == 0, 5, "the held DM was not dropped")
    assert len(result_dms(slack)) == card_index  # only the earlier applications' DMs
    return killed


def test_after_a_sigkill_past_the_announcement_the_owners_dm_arrives_within_seconds_once(
    tmp_path: Path,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    database: dict[str, str],
) -> None:
    """Issue 14: the dead process's claim on the owner's DM lapses in seconds, and a surviving replica
    (first) or the restarted process (then) delivers it, once."""
    imocha = fake_imocha.state
    proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
    delays: dict[str, float] = {}
    try:
        setup_workspace(bot)  # type: ignore[arg-type]
        assert create_plan(bot).status_code == 200  # type: ignore[arg-type]
        assert bot.ats(ats_event("app-42", event_id="evt-42")).status_code == 202
        wait(lambda: len(cards(slack)) == 1, 10, "the card was not posted")
        assert submit_send(bot, app_id_of(cards(slack)[0])).status_code == 200  # type: ignore[arg-type]
        wait(lambda: link_dms(slack) == 1 and bool(thread_texts(slack)), 10, "the link DM was not sent")

        # 1. a surviving replica: one in this process, watching for lapsed claims as a served bot does
        replica = in_process_runtime(tmp_path, slack, fake_imocha, database)
        assert replica.claims is not None
        replica.claims.start()
        try:
            hold_result_dms(slack)
            complete(bot, imocha.invitations()[0].id)  # type: ignore[arg-type]  # the callback: the killed process claims the writes
            killed = kill_after_the_announcement(proc, slack, 0, database["DATABASE_URL"])
            wait(lambda: len(result_dms(slack)) == 1, 15, "the surviving replica never sent the owner's DM")
            delays["replica, from the kill"] = time.monotonic() - killed
        finally:
            replica.close()
            bot.sender.close()

        # 2. a restart: another application completes, and the process is killed at the same point
        proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
        assert bot.ats(ats_event("app-43", event_id="evt-43", email="bob@example.com")).status_code == 202
        wait(lambda: len(cards(slack)) == 2, 10, "the second card was not posted")
        assert submit_send(bot, app_id_of(cards(slack)[1])).status_code == 200  # type: ignore[arg-type]
        wait(lambda: link_dms(slack) == 2 and len(imocha.invitations()) == 2, 10, "the second link DM was not sent")
        hold_result_dms(slack)
        complete(bot, imocha.invitations()[1].id)  # type: ignore[arg-type]
        killed = kill_after_the_announcement(proc, slack, 1, database["DATABASE_URL"])
        bot.sender.close()
        restarted = time.monotonic()
        proc, bot = start_bot(tmp_path, slack, fake_imocha, database)
        healthy = time.monotonic()
        wait(lambda: len(result_dms(slack)) == 2, 15, "the restarted process never sent the owner's DM")
        delivered = time.monotonic()
        delays["restart, from the spawn"] = delivered - restarted
        delays["restart, from healthy"] = delivered - healthy
        delays["restart, from the kill"] = delivered - killed
        time.sleep(1.0)  # anything else would show up now
    finally:
        if proc.poll() is None:
            err = sigterm(proc)
            assert "Traceback" not in err
        bot.sender.close()
    print(f"\nrecovery delays ({database['DATABASE_URL'].split(':')[0]}): " + ", ".join(f"{k} {v:.2f}s" for k, v in delays.items()))
    assert delays["replica, from the kill"] < RECOVERY_SECONDS, delays
    # from healthy, not from the spawn: a new process's start-up on a loaded CI machine is not the bot's recovery
    assert delays["restart, from healthy"] < RECOVERY_SECONDS, delays
    assert len(result_dms(slack)) == 2
    for index in (0, 1):
        texts = [m.text or "" for m in slack.thread(CHANNEL, cards(slack)[index].ts)]
        assert sum("completed" in t for t in texts) == 1, texts
    assert len(cards(slack)) == 2
    assert_nothing_posted_twice(slack)
    assert slack.violations == []


def writebacks(database: dict[str, str]) -> list[tuple[str, str | None, bool]]:
    """(action, outcome, sent) of each decision write-back, read from the bot's database."""
    engine = make_engine(database["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT action, outcome, payload FROM ats_writebacks ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(action, outcome, bool((json.loads(p) if isinstance(p, str) else p or {}).get("posted"))) for action, outcome, p in rows]


def test_sigkill_between_a_decision_and_its_greenhouse_write_writes_it_once_after_the_restart(
    tmp_path: Path,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    fake_harvest: FakeHarvest,  # noqa: F811
    database: dict[str, str],
) -> None:
    """Killed while reading Greenhouse before the move (1), and while the move back of an Undo is in flight
    and lands in Greenhouse (2): after each restart the write is made once, never twice."""
    gh = fake_harvest.state
    gh.add_user("Rita Recruiter", "rita@example.com")
    job = gh.add_job("Backend Engineer", ["Application Review", "iMocha assessment", "Onsite"])
    gh_app = gh.add_application(job, "iMocha assessment")
    extra = {
        "GREENHOUSE_WEBHOOK_SECRET": GH_SECRET,
        "GREENHOUSE_HARVEST_URL": fake_harvest.url,
        "GREENHOUSE_AUTH_URL": fake_harvest.url,
    }
    move = f"/v3/applications/{gh_app}/move"
    proc, bot = start_bot(tmp_path, slack, fake_imocha, database, extra)
    try:
        assert bot.command(ADMIN, "setup").status_code == 200
        slack.wait_for_calls("views.open", 1)
        view_id = list(slack.views)[-1]
        fields = {
            "api_key": {"api_key_input": sr.plain(GOOD_KEY)},
            "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
            "validity_days": {"validity_days_input": sr.number(7)},
            "harvest_client_id": {"harvest_client_id_input": sr.plain(CLIENT_ID)},
            "harvest_client_secret": {"harvest_client_secret_input": sr.plain(CLIENT_SECRET)},
        }
        assert bot.submit(ADMIN, "imocha_setup", fields, view_id=view_id).status_code == 200
        slack.wait_for(lambda s: "Greenhouse is connected" in json.dumps(s.views[view_id]))
        assert create_plan(bot).status_code == 200  # type: ignore[arg-type]
        event = copy.deepcopy(SAMPLE)
        application = event["payload"]["application"]
        application["id"], application["jobs"][0]["name"] = gh_app, "Backend Engineer"
        application["current_stage"].update(id=job["stage_ids"]["iMocha assessment"], name="iMocha assessment")
        raw = encode(event)
        r = httpx.post(f"{bot.url}/webhooks/greenhouse", content=raw, headers={"Signature": signature(raw)})
        assert r.status_code == 200, r.text
        wait(lambda: len(cards(slack)) == 1, 10, "the card was not posted")
        app_id = app_id_of(cards(slack)[0])
        assert submit_send(bot, app_id).status_code == 200  # type: ignore[arg-type]
        wait(lambda: len(fake_imocha.state.invitations()) == 1, 10, "the bot never invited")
        complete(bot, fake_imocha.state.invitations()[0].id)  # type: ignore[arg-type]
        wait(lambda: "needs review" in headline(cards(slack)[0]), 10, "the card never said needs review")

        # 1. Advance; killed while the bot reads the application from Greenhouse, before any write
        gh.latency["/v3/applications"] = 0.8
        click(bot, RECRUITER, "advance_candidate", app_id)  # type: ignore[arg-type]
        wait(lambda: gh.count("GET", "/v3/applications") >= 1, 10, "the bot never read the application from Greenhouse")
    finally:
        sigkill(proc)
        bot.sender.close()
    gh.latency.clear()
    assert gh.writes == [] and writebacks(database) == [("advance", None, False)]

    proc, bot = start_bot(tmp_path, slack, fake_imocha, database, extra)
    try:
        wait(lambda: writebacks(database) == [("advance", "written", True)], 15, f"never written: {writebacks(database)}")
        assert [w[0] for w in gh.writes] == ["move"] and gh.stage_name(gh_app) == "Onsite"

        # 2. Undo; killed while its move back is in flight: Greenhouse makes it, the bot never hears
        gh.latency[move] = 0.8
        wait(lambda: "Undo" in json.dumps(cards(slack)[0].blocks), 10, "the card never offered Undo")
        click(bot, RECRUITER, "undo_decision", app_id)  # type: ignore[arg-type]
        wait(lambda: gh.count("POST", move) == 2, 10, "the move back was never sent")
    finally:
        sigkill(proc)
        bot.sender.close()
    wait(lambda: gh.stage_name(gh_app) == "iMocha assessment", 5, "the fake never finished the orphaned move")
    gh.latency.clear()
    assert writebacks(database)[-1] == ("undo_advance", None, True)

    proc, bot = start_bot(tmp_path, slack, fake_imocha, database, extra)
    try:
        wait(lambda: writebacks(database)[-1] == ("undo_advance", "written", True), 15, f"never recorded: {writebacks(database)}")
        time.sleep(0.5)  # a second write would show up now
    finally:
        err = sigterm(proc)
        bot.sender.close()
    assert "Traceback" not in err
    assert gh.count("POST", move) == 2 and [w[0] for w in gh.writes] == ["move", "move"]
    assert gh.stage_name(gh_app) == "iMocha assessment"
    assert slack.violations == []
