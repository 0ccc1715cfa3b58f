"""Signed outgoing events over real HTTP: order, signatures, retries, refusals, the 24-hour limit and replay."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.runtime.cli import main
from bot.runtime.config import ConfigError, load_settings
from store.models import EventDelivery
from tests.fakes.imocha import FakeImocha, ManualClock, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.receiver import EventReceiver
from tests.wiring.conftest import EVENTS_SECRET, Bot
from tests.wiring.helpers import new_card, post_callback, settle, submit_send, wait_headline


def _events(bot: Bot) -> Any:
    assert bot.runtime.events is not None
    return bot.runtime.events


def _sent_and_completed(bot: Bot, clock: ManualClock) -> int:
    """Card, Send, then the candidate completes (42 / 50) and the callback tells the bot."""
    app_id = new_card(bot)
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    clock.advance(minutes=30)
    [invitation] = bot.imocha.state.invitations()
    finished = bot.imocha.state.complete(invitation.id, points=42)
    assert post_callback(bot, bot.imocha.state.callback_payload(finished)).status_code == 200
    settle(bot, lambda: [d.event_type for d in _deliveries(bot)] == ["assessment.sent", "assessment.completed"])
    return app_id


def _deliveries(bot: Bot) -> list[EventDelivery]:
    _events(bot).record_new()
    with bot.runtime.session_factory() as session:
        return list(session.scalars(select(EventDelivery).order_by(EventDelivery.audit_id)))


def test_each_change_is_one_signed_event_in_order_with_the_score_on_completion(
    events_world: tuple[Bot, ManualClock], receiver: EventReceiver
) -> None:
    bot, clock = events_world
    _sent_and_completed(bot, clock)

    assert _events(bot).run() == 2
    assert receiver.types() == ["assessment.sent", "assessment.completed"]
    assert all(r.signature_ok for r in receiver.received)
    sent, completed = receiver.accepted()
    assert sent["id"] != completed["id"] and all(e["id"].startswith("evt_") for e in (sent, completed))
    assert receiver.received[0].headers["x-event-id"] == sent["id"] and receiver.received[0].headers["x-event-type"] == "assessment.sent"
    assert sent["application"] == {"id": "app-42", "source": "ats", "stage": "iMocha assessment"}
    assert sent["candidate"] == {"id": "cand-7", "name": "Ada Lovelace", "email": "ada@example.com"}
    assert sent["job"] == {"id": "job-3", "name": "Backend Engineer"}
    assert sent["assessment"]["test_name"] == "Python Developer" and sent["assessment"]["attempt"] == 1
    assert sent["occurred_at"].endswith("Z") and sent["team_id"] == "T0001"
    result = completed["result"]
    assert (result["points"], result["total_points"], result["percentage"], result["pass_mark"], result["passed"]) == (42, 50, 84, 60, True)
    assert result["report_url"] and completed["actor"] == "imocha"

    # Nothing is sent twice by the next cycles.
    clock.advance(minutes=5)
    assert _events(bot).run() == 0
    assert len(receiver.received) == 2


def test_a_failing_receiver_is_retried_with_backoff_and_later_events_of_that_application_wait(
    events_world: tuple[Bot, ManualClock], receiver: EventReceiver
) -> None:
    bot, clock = events_world
    receiver.answer(500)
    receiver.answer(429, Retry_After="30")
    _sent_and_completed(bot, clock)

    assert _events(bot).run() == 0  # the 500: "sent" waits 5 s, and "completed" waits behind it
    assert [r.status for r in receiver.received] == [500]
    clock.advance(seconds=4)
    assert _events(bot).run() == 0 and len(receiver.received) == 1  # not due yet
    clock.advance(seconds=1)
    assert _events(bot).run() == 0  # the 429, which asks for 30 s
    clock.advance(seconds=29)
    assert _events(bot).run() == 0 and len(receiver.received) == 2
    clock.advance(seconds=1)
    assert _events(bot).run() == 2
    assert receiver.types() == ["assessment.sent", "assessment.completed"]
    assert [r.event["id"] for r in receiver.received[:3]] == [receiver.accepted()[0]["id"]] * 3  # one id, three tries


def test_a_receiver_that_refuses_an_event_is_not_asked_again_and_the_next_event_goes(
    events_world: tuple[Bot, ManualClock], receiver: EventReceiver
) -> None:
    bot, clock = events_world
    receiver.answer(400)
    _sent_and_completed(bot, clock)

    assert _events(bot).run() == 1
    assert [(r.event["type"], r.status) for r in receiver.received] == [("assessment.sent", 400), ("assessment.completed", 200)]
    refused = next(d for d in _deliveries(bot) if d.event_type == "assessment.sent")
    assert refused.done_at is not None and "refused" in (refused.last_error or "")
    clock.advance(hours=1)
    assert _events(bot).run() == 0 and len(receiver.received) == 2


def test_events_are_given_up_24_hours_after_the_change(events_world: tuple[Bot, ManualClock], receiver: EventReceiver) -> None:
    bot, clock = events_world
    receiver.answer(503, times=100)
    _sent_and_completed(bot, clock)
    for _ in range(40):
        _events(bot).run()
        clock.advance(hours=1)
    deliveries = _deliveries(bot)
    assert all(d.done_at is not None and "gave up after 24 hours" in (d.last_error or "") for d in deliveries)
    tries = len(receiver.received)
    assert 10 < tries < 60  # backoff: 5 s doubling to an hour, not once a cycle
    clock.advance(hours=2)
    _events(bot).run()
    assert len(receiver.received) == tries


def test_replay_sends_the_same_events_again_from_the_command_line(
    events_world: tuple[Bot, ManualClock],
    receiver: EventReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot, clock = events_world
    _sent_and_completed(bot, clock)
    assert _events(bot).run() == 2
    first = receiver.accepted()

    settings = bot.runtime.settings
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EVENTS_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("EVENTS_WEBHOOK_SECRET", EVENTS_SECRET)
    since = (clock.now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    # The CLI sets up logging for a process: its handler on this test's captured stderr would outlive
    # the test, and later tests in this worker would log into a closed file. Put the root logger back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["events", "replay", "--since", since]) == 0
        assert "replayed 2 events" in capsys.readouterr().out
        assert receiver.accepted()[2:] == first  # the same ids and bodies, in the same order

        with pytest.raises(SystemExit):  # argparse refuses a time that is not ISO 8601
            main(["events", "replay", "--since", "yesterday"])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_the_events_url_needs_its_secret() -> None:
    with pytest.raises(ConfigError, match="EVENTS_WEBHOOK_SECRET is required with EVENTS_WEBHOOK_URL"):
        load_settings(_env_file=None, events_webhook_url="https://hooks.example.com/imocha")
    with pytest.raises(ConfigError, match="EVENTS_WEBHOOK_URL"):
        load_settings(_env_file=None, events_webhook_url="ftp://example.com", events_webhook_secret="x")
