"""The quick start's path: Slack over Socket Mode (a real WebSocket on loopback), the webhooks over HTTP.

The fake Web API's `apps.connections.open` hands the bot the fake Socket Mode server's URL; every
Slack request of the journey is an envelope that must be acknowledged with its envelope_id within
3 s, while `/webhooks/ats`, `/webhooks/imocha` and `/healthz` are served over HTTP by the same process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import Engine

from tests.fakes import slack_requests as sr
from tests.fakes.imocha import FakeImocha, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode, SocketSender, form_fields, interactive_payload
from tests.wiring.conftest import ADMIN, CHANNEL, RECRUITER, TEAM, Bot, ats_event, create_plan, make_bot
from tests.wiring.helpers import app_id_of, buttons, card, card_json, click, complete, settle, submit_send, wait_headline


class HeldImocha(httpx.BaseTransport):
    """The bot's transport to the fake iMocha; inside `held()` every request waits until the block ends.

    An ack that arrives while iMocha is held was sent before any iMocha call answered: the listener
    made none before its ack. `arrived` counts the requests that reached iMocha (held or not).
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.arrived = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.arrived += 1
        assert self._open.wait(15), "iMocha was held for too long"
        return self._inner.handle_request(request)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def wait_arrived(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.arrived < count:
            assert time.monotonic() < deadline, f"iMocha got {self.arrived} requests, expected {count}"
            time.sleep(0.01)

    def close(self) -> None:
        self._inner.close()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def socket_server() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as server:
        yield server


@contextmanager
def socket_bot(engine: Engine, slack: FakeSlack, imocha: FakeImocha, server: FakeSocketMode, **overrides: object) -> Iterator[Bot]:
    bot = make_bot(engine, slack, imocha, socket_mode=server, **overrides)
    try:
        yield bot
    finally:
        bot.server.stop()
        bot.runtime.close()


def _sender(bot: Bot) -> SocketSender:
    assert isinstance(bot.sender, SocketSender)
    return bot.sender


def test_the_whole_journey_over_socket_mode_acks_first_and_keeps_the_webhooks_on_http(
    engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
) -> None:
    imocha = HeldImocha()
    with socket_bot(engine, slack, fake_imocha, socket_server, imocha_transport=imocha) as bot:
        sender = _sender(bot)
        assert slack.count("apps.connections.open") == 1
        # the token that opened the link was the app-level one
        assert slack.calls_to("apps.connections.open")[0].token == "xapp-1-A0FAKEAPP-wiring"
        # Slack requests never come over HTTP in this mode; health says the link is up
        assert httpx.post(f"{bot.url}/slack/events", content=b"{}").status_code == 404
        assert httpx.get(f"{bot.url}/healthz").json() == {"status": "ok", "db": "ok", "socket_mode": "connected"}

        # /imocha setup: a slash_commands envelope; the modal opens
        r = bot.command(ADMIN, "setup")
        assert r.status_code == 200 and sender.last is not None and sender.last.type == "slash_commands"
        slack.wait_for_calls("views.open", 1)
        view_id = list(slack.views)[-1]
        values = {
            "api_key": {"api_key_input": sr.plain("sandbox-test-key")},
            "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
            "validity_days": {"validity_days_input": sr.number(7)},
            "gem_key": {"gem_key_input": sr.plain(None)},
        }
        # the key check is an iMocha call: held, and the view_submission is acked all the same, then checked
        before = imocha.arrived
        with imocha.held():
            r = bot.submit(ADMIN, "imocha_setup", values, view_id=view_id)
            assert r.json()["response_action"] == "update" and "Checking the key" in r.text
            imocha.wait_arrived(before + 1)
        slack.wait_for(lambda s: "iMocha is connected" in json.dumps(s.views[view_id]))

        # /imocha plan: the modal, an options load (block_suggestion) answered with the tests, a
        # submission with errors answered with them, then a good one
        assert bot.command(RECRUITER, "plan").status_code == 200
        slack.wait_for(lambda s: any(v.get("callback_id") == "imocha_plan" for v in s.views.values()))
        deadline = time.monotonic() + 5
        while True:
            r = sender.suggest(team_id=TEAM, user_id=RECRUITER, action_id="test_select", block_id="test", value="pyth")
            options = r.json()["options"]
            if options[0]["value"] != "loading" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [o["text"]["text"] for o in options] == ["Python Developer"]
        r = bot.submit(RECRUITER, "imocha_plan", {"job": {"job_input": sr.plain("Backend Engineer")}})
        assert r.json() == {
            "response_action": "errors",
            "errors": {"stage": "Enter the stage name, e.g. iMocha assessment.", "test": "Pick an iMocha test."},
        }
        r = create_plan(bot)
        assert "Plan saved" in r.text, r.text

        # the ATS event arrives over HTTP: one card with Send
        r = bot.ats(ats_event())
        assert r.status_code == 202
        message = wait_headline(bot, "Assessment needs sending")
        assert buttons(message) == ["Send assessment"]
        app_id = app_id_of(message)

        # Send (block_actions) → the confirm modal → confirm (view_submission), with iMocha held: acked first
        click(bot, RECRUITER, "send_assessment", app_id)
        slack.wait_for(lambda s: any(v.get("callback_id") == "imocha_send_confirm" for v in s.views.values()))
        assert "Python Developer" in json.dumps(next(v for v in slack.views.values() if v.get("callback_id") == "imocha_send_confirm"))
        before = imocha.arrived
        with imocha.held():
            assert submit_send(bot, app_id).status_code == 200
            imocha.wait_arrived(before + 1)
        wait_headline(bot, "Assessment sent")
        invitations = fake_imocha.state.invitations()
        assert len(invitations) == 1
        url = invitations[0].test_url(fake_imocha.url)
        slack.wait_for(lambda s: any("Test link" in json.dumps(m.blocks) for m in s.dms_to(RECRUITER)))
        if url:
            assert any(url in json.dumps(m.blocks) for m in slack.dms_to(RECRUITER))

        # App Home (events_api) is published
        r = sender.event(team_id=TEAM, event=sr.app_home_opened(user_id=RECRUITER))
        assert r.status_code == 200 and sender.last is not None and sender.last.type == "events_api"
        slack.wait_for(lambda s: s.published_home(RECRUITER) is not None)

        # the candidate finishes; iMocha's callback arrives over HTTP; the card asks for a review
        complete(bot, invitations[0].id, points=42)
        message = wait_headline(bot, "Assessment needs review")
        assert "Mark reviewed" in buttons(message)
        click(bot, RECRUITER, "mark_reviewed", app_id)
        message = wait_headline(bot, "Assessment reviewed by")
        assert f"<@{RECRUITER}>" in card_json(bot)

        assert fake_imocha.state.count("/invite", "POST") == 1
        assert len([m for m in slack.messages(CHANNEL) if m.thread_ts is None]) == 1
        assert socket_server.problems == []
        assert socket_server.unacked() == []
        kinds = {(d.type, d.envelope["payload"].get("type")) for d in socket_server.deliveries}
        assert kinds >= {
            ("slash_commands", None),
            ("interactive", "view_submission"),
            ("interactive", "block_actions"),
            ("interactive", "block_suggestion"),
            ("events_api", "event_callback"),
        }
        assert slack.violations == []
        assert card(bot).ts == message.ts


def _setup_command(bot: Bot) -> dict[str, object]:
    return form_fields(sr.slash_command(team_id=TEAM, user_id=ADMIN, text="setup", response_url=bot.slack.response_url(ADMIN)))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_dropped_socket_is_replaced_and_redelivered_envelopes_take_effect_once(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
    reset: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.slack.socket_mode")
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server) as bot:
        # 1. an envelope lost on the way (the socket dropped first): Slack's re-delivery is handled
        lost = socket_server.deliver("slash_commands", _setup_command(bot), lose=True)
        started = time.monotonic()
        socket_server.drop(reset=reset)
        socket_server.wait_connected(2)
        reconnected = time.monotonic() - started
        assert reconnected < 2, reconnected
        assert slack.count("apps.connections.open") == 2
        socket_server.redeliver(lost).wait_ack()
        slack.wait_for_calls("views.open", 1)

        # 2. an envelope handled whose ack was lost: the re-delivery (same envelope_id) is answered, not run
        socket_server.deafen()
        first = socket_server.deliver("slash_commands", _setup_command(bot))
        bot.slack.wait_for(lambda s: s.count("views.open") == 2 and any(a.lost for a in socket_server.acks_for(first.envelope_id)))
        # an event, too: Slack retries it with a new envelope_id, the same event_id and retry_attempt 1
        event = json.loads(sr.event_callback(team_id=TEAM, event=sr.app_home_opened(user_id=RECRUITER)))
        first_event = socket_server.deliver("events_api", event)
        bot.slack.wait_for(lambda s: s.count("views.publish") == 1 and any(a.lost for a in socket_server.acks_for(first_event.envelope_id)))
        socket_server.drop(reset=reset)
        socket_server.wait_connected(3)
        again = socket_server.redeliver(first)
        assert again.envelope_id == first.envelope_id
        assert again.wait_ack().payload is None
        retried = socket_server.redeliver(first_event, new_envelope_id=True, retry_attempt=1, retry_reason="timeout")
        assert retried.envelope["retry_attempt"] == 1 and retried.envelope_id != first_event.envelope_id
        retried.wait_ack()

        time.sleep(0.3)  # time enough for a second effect to show, if there were one
        assert slack.count("views.open") == 2
        assert slack.count("views.publish") == 1
        answered_again = [r.getMessage() for r in caplog.records if "answered with the first ack" in r.getMessage()]
        assert len(answered_again) == 2, answered_again  # both re-deliveries took the path that runs nothing
        assert socket_server.problems == []
        assert bot.runtime.socket_link is not None and bot.runtime.socket_link.status().state == "connected"


def test_a_refresh_request_moves_to_a_new_connection_without_losing_an_envelope(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
) -> None:
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server) as bot:
        old = socket_server.wait_connected(1)
        # an envelope in flight on the old connection when Slack asks for a refresh is still answered
        in_flight = socket_server.deliver("slash_commands", _setup_command(bot), connection=old)
        socket_server.disconnect("refresh_requested", connection=old, close_after=0.3)
        new = socket_server.wait_connected(2)
        assert new.number == 2 and slack.count("apps.connections.open") == 2
        in_flight.wait_ack()
        r = bot.command(ADMIN, "help")
        assert "/imocha setup" in r.text
        assert _sender(bot).last is not None and _sender(bot).last.acks[0].connection == 2
        socket_server.wait_connected(2)
        time.sleep(0.45)  # Slack closes the old connection; the new one stays
        assert [c.number for c in socket_server.live] == [2]
        assert bot.runtime.socket_link is not None and bot.runtime.socket_link.status().state == "connected"
        assert socket_server.problems == [] and socket_server.unacked() == []


def test_healthz_reports_the_link_and_answers_503_after_30_seconds_down(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
) -> None:
    clock = FakeMonotonic()
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server, monotonic=clock) as bot:
        health = f"{bot.url}/healthz"
        assert httpx.get(health).json() == {"status": "ok", "db": "ok", "socket_mode": "connected"}

        socket_server.accepting = False
        socket_server.drop()
        settle(bot, lambda: httpx.get(health).json()["socket_mode"] == "reconnecting", 5)
        r = httpx.get(health)
        assert r.status_code == 200 and r.json()["status"] == "ok"  # down for less than 30 s
        clock.now += 29
        assert httpx.get(health).status_code == 200
        clock.now += 2
        r = httpx.get(health)
        assert r.status_code == 503, r.text
        assert r.json() == {"status": "error", "db": "ok", "socket_mode": "reconnecting", "socket_mode_down_seconds": 31.0}

        # it keeps trying while the server refuses (a second reconnect attempt starts), then reconnects
        settle(bot, lambda: slack.count("apps.connections.open") >= 3, 12)
        socket_server.accepting = True
        socket_server.wait_connected(2, timeout=12)
        settle(bot, lambda: httpx.get(health).status_code == 200, 5)
        assert httpx.get(health).json() == {"status": "ok", "db": "ok", "socket_mode": "connected"}


def test_link_disabled_stops_the_link_for_good_and_health_says_so_at_once(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
) -> None:
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server) as bot:
        link = bot.runtime.socket_link
        assert link is not None
        heard: list[str] = []
        link.stop_listeners.append(heard.append)
        socket_server.disconnect("link_disabled")
        settle(bot, lambda: bool(heard), 5)
        assert "link_disabled" in heard[0]
        r = httpx.get(f"{bot.url}/healthz")
        assert r.status_code == 503 and r.json()["socket_mode"] == "stopped"
        socket_server.drop()
        time.sleep(0.3)
        assert slack.count("apps.connections.open") == 1  # no reconnecting
        assert socket_server.accepted == 1


def test_closing_acks_the_envelopes_in_hand_and_leaves_new_ones_for_slack_to_deliver_again(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
) -> None:
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server) as bot:
        link = bot.runtime.socket_link
        assert link is not None
        slack.latency = 0.5  # the setup submission asks Slack whether the user is an admin before its ack
        values = {"api_key": {"api_key_input": sr.plain("sandbox-test-key")}, "validity_days": {"validity_days_input": sr.number(7)}}
        body = sr.view_submission(team_id=TEAM, user_id=ADMIN, callback_id="imocha_setup", values=values)
        in_hand = socket_server.deliver("interactive", interactive_payload(body))
        slack.wait_for(lambda s: s.count("users.info") >= 1)
        closing = threading.Thread(target=link.close)
        closing.start()
        time.sleep(0.1)
        late = socket_server.deliver("slash_commands", _setup_command(bot))
        assert "Checking the key" in json.dumps(in_hand.wait_ack().payload)
        closing.join(5)
        assert not late.acked.is_set()
        socket_server.wait_disconnected()


def test_apps_connections_open_failing_for_a_while_is_retried_with_backoff_until_the_link_is_up(
    sqlite_engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
    socket_server: FakeSocketMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.fail("apps.connections.open", status=200, error="fatal_error", count=2)  # Slack's own trouble, not the token's
    started = time.monotonic()
    with socket_bot(sqlite_engine, slack, fake_imocha, socket_server) as bot:  # connect() waits for the link
        assert 0.4 < time.monotonic() - started < 5
        assert slack.count("apps.connections.open") == 3
        assert bot.runtime.socket_link is not None and bot.runtime.socket_link.status().state == "connected"
        warnings = [r.getMessage() for r in caplog.records if r.name == "bot.slack.socket_mode" and r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "fatal_error" in warnings[0]  # one line for the outage, not one per attempt
