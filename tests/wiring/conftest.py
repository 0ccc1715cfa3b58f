"""The whole bot over real HTTP: signed Slack requests in, a fake Slack Web API and a fake iMocha out."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from bot.runtime.app import Runtime, build_runtime
from bot.runtime.config import Settings, load_settings
from bot.runtime.serving import ServerThread
from tests.fakes import slack_requests as sr
from tests.fakes.imocha import GOOD_KEY, PYTHON_TEST_ID, FakeImocha, ManualClock, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.receiver import EventReceiver, serve_receiver
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode, SocketSender

TEAM = "T0001"
BOT_TOKEN = "xoxb-wiring-token"
SECRET = "wiring-signing-secret"
ATS_SECRET = "ats-webhook-secret"
APP_TOKEN = "xapp-1-A0FAKEAPP-wiring"
ADMIN = "UADMIN"
RECRUITER = "URITA"
MEMBER = "UMEMBER"
OUTSIDER = "UOUTSIDE"
GUEST = "UGUEST"
CHANNEL = "CHIRING"

_fake_slack: FakeSlack | None = None


@pytest.fixture
def slack(request: pytest.FixtureRequest) -> FakeSlack:
    global _fake_slack
    if _fake_slack is None:
        _fake_slack = FakeSlack().start()
        request.config.add_cleanup(_fake_slack.stop)
    fake = _fake_slack
    fake.reset()
    fake.add_team(TEAM, BOT_TOKEN)
    fake.add_user(ADMIN, team_id=TEAM, email="admin@example.com", is_admin=True)
    fake.add_user(RECRUITER, team_id=TEAM, email="rita@example.com")
    fake.add_user(MEMBER, team_id=TEAM, email="mo@example.com")
    fake.add_user(OUTSIDER, team_id=TEAM, email="out@example.com")
    fake.add_user(GUEST, team_id=TEAM, email="guest@example.com", is_restricted=True)
    fake.add_channel(CHANNEL, team_id=TEAM, name="hiring-backend", members=[ADMIN, RECRUITER, MEMBER])
    return fake


@dataclass
class Bot:
    runtime: Runtime
    server: ServerThread
    slack: FakeSlack
    imocha: FakeImocha
    sender: sr.SlackSender | SocketSender  # signed HTTP requests, or Socket Mode envelopes

    @property
    def url(self) -> str:
        return self.server.url

    def command(self, user: str, text: str, **kw: Any) -> httpx.Response:
        return self.sender.command(team_id=TEAM, user_id=user, text=text, response_url=self.slack.response_url(user), **kw)

    def action(self, user: str, action_id: str, value: str, **kw: Any) -> httpx.Response:
        kw.setdefault("response_url", self.slack.response_url(user))
        return self.sender.action(team_id=TEAM, user_id=user, action_id=action_id, value=value, **kw)

    def submit(self, user: str, callback_id: str, values: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return self.sender.submit(team_id=TEAM, user_id=user, callback_id=callback_id, values=values or {}, **kw)

    def ats(self, payload: dict[str, Any], *, secret: str = ATS_SECRET) -> httpx.Response:
        raw = json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return httpx.post(f"{self.url}/webhooks/ats", content=raw, headers={"X-Signature": sig, "Content-Type": "application/json"})


def ats_event(
    app_id: str = "app-42",
    *,
    event_id: str = "evt_01",
    email: str = "ada@example.com",
    job: str = "Backend Engineer",
    stage: str = "iMocha assessment",
    recruiter: str | None = "rita@example.com",
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "application.stage_changed",
        "id": event_id,
        "team_id": TEAM,
        "application": {"id": app_id},
        "candidate": {"id": "cand-7", "name": "Ada Lovelace", "email": email},
        "job": {"id": "job-3", "name": job},
        "stage": {"id": "stage-9", "name": stage},
    }
    if recruiter:
        event["recruiter"] = {"email": recruiter}
    return event


def settings_for(engine: Engine, slack: FakeSlack, imocha: FakeImocha, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        "database_url": str(engine.url.render_as_string(hide_password=False)),
        "imocha_base_url": imocha.url,
        "ats_webhook_secret": ATS_SECRET,
        "encryption_key": Fernet.generate_key().decode(),
        "imocha_poll_seconds": 1,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


RUNTIME_OPTIONS = ("clock", "with_scheduler", "holder_id", "monotonic", "imocha_transport")


def make_bot(engine: Engine, slack: FakeSlack, imocha: FakeImocha, *, socket_mode: FakeSocketMode | None = None, **overrides: Any) -> Bot:
    """A bot on `engine`; RUNTIME_OPTIONS go to build_runtime, the rest to Settings.

    With `socket_mode`, the bot runs as the quick start does (SLACK_APP_TOKEN set, no signing secret):
    it is connected to that server before this returns, and `bot.sender` sends envelopes over it.
    """
    runtime_options = {k: overrides.pop(k) for k in RUNTIME_OPTIONS if k in overrides}
    if socket_mode is not None:
        slack.add_app_token(APP_TOKEN)
        slack.use_socket_mode(socket_mode)
        overrides = {"slack_app_token": APP_TOKEN, "slack_signing_secret": None, **overrides}
    runtime = build_runtime(settings_for(engine, slack, imocha, **overrides), engine=engine, **runtime_options)
    server = ServerThread(runtime.web, lifespan="on").start()
    if socket_mode is None:
        return Bot(runtime, server, slack, imocha, sr.SlackSender(server.url, SECRET))
    assert runtime.socket_link is not None and runtime.socket_link.connect(timeout=5), "the bot did not connect over Socket Mode"
    return Bot(runtime, server, slack, imocha, SocketSender(socket_mode))


@pytest.fixture
def bot(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[Bot]:  # noqa: F811
    b = make_bot(engine, slack, fake_imocha)
    yield b
    b.sender.close()
    b.server.stop()
    b.runtime.close()


def setup_workspace(bot: Bot, *, key: str = GOOD_KEY, channel: str | None = CHANNEL) -> None:
    """Admin runs /imocha setup with a good key (through Slack, as a person would)."""
    r = bot.command(ADMIN, "setup")
    assert r.status_code == 200
    bot.slack.wait_for_calls("views.open", 1)
    view_id = list(bot.slack.views)[-1]
    r = bot.submit(
        ADMIN,
        "imocha_setup",
        view_id=view_id,
        values={
            "api_key": {"api_key_input": sr.plain(key)},
            "default_channel": {"default_channel_input": sr.conversation(channel)},
            "validity_days": {"validity_days_input": sr.number(7)},
            "gem_key": {"gem_key_input": sr.plain(None)},
        },
    )
    assert r.status_code == 200, r.text
    bot.slack.reset_calls()
    bot.slack.wait_for(lambda s: any("connected" in json.dumps(v) for v in s.views.values()))


def create_plan(
    bot: Bot,
    *,
    user: str = RECRUITER,
    job: str = "Backend Engineer",
    channel: str | None = CHANNEL,
    pass_mark: int | None = 60,
    share: bool = False,
) -> httpx.Response:
    return bot.submit(
        user,
        "imocha_plan",
        {
            "job": {"job_input": sr.plain(job)},
            "stage": {"stage_input": sr.plain("iMocha assessment")},
            "test": {"test_select": sr.external(str(PYTHON_TEST_ID), "Python Developer")},
            "channel": {"channel_input": sr.conversation(channel)},
            "pass_mark": {"pass_mark_input": sr.number(pass_mark)},
            "share_scores": {"share_scores_input": sr.checkboxes("share") if share else sr.checkboxes()},
        },
    )


EVENTS_SECRET = "events-secret-123"


@pytest.fixture
def receiver() -> Iterator[EventReceiver]:
    """A local receiver of the bot's outgoing events (tests/fakes/receiver.py)."""
    yield from serve_receiver(EVENTS_SECRET)


@pytest.fixture
def events_world(
    engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    receiver: EventReceiver,
) -> Iterator[tuple[Bot, ManualClock]]:
    """A bot and its iMocha on one manual clock, sending events to `receiver`."""
    clock = ManualClock()
    fake_imocha.reset(clock=clock)
    bot = make_bot(engine, slack, fake_imocha, clock=clock, events_webhook_url=receiver.url, events_webhook_secret=EVENTS_SECRET)
    yield bot, clock
    bot.sender.close()
    bot.server.stop()
    bot.runtime.close()
