"""The journey end to end with the bot's and iMocha's clock decades off the wall clock (issue 13; see tests/test_clock.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from store.models import Invitation, OutboxMessage
from tests.conftest import EPOCHS
from tests.fakes.imocha import FakeImocha, ManualClock, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import CHANNEL, RECRUITER, Bot, ats_event, create_plan, make_bot, setup_workspace
from tests.wiring.helpers import app_id_of, card, cards, settle, submit_send, wait_headline


@pytest.fixture(params=["epoch1999", "epoch2099"])
def skewed_bot(
    request: pytest.FixtureRequest,
    engine: Engine,
    slack: FakeSlack,
    fake_imocha: FakeImocha,  # noqa: F811
) -> Iterator[tuple[Bot, ManualClock]]:
    clock = ManualClock(EPOCHS[request.param])
    fake_imocha.reset(clock=clock)  # iMocha's own dates (valid until, attempt times) on the same timeline
    bot = make_bot(engine, slack, fake_imocha, clock=clock)
    yield bot, clock
    bot.sender.close()
    bot.server.stop()
    bot.runtime.close()


def _pending(bot: Bot) -> list[OutboxMessage]:
    with bot.runtime.session_factory() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.done_at.is_(None))))


def _drain(bot: Bot, clock: ManualClock) -> None:
    """Move the frozen clock on, a second at a time, until every queued Slack write has gone."""

    def drained() -> bool:
        clock.advance(seconds=1)
        bot.runtime.services.outbox.deliver()
        return _pending(bot) == []

    settle(bot, drained, message="Slack writes left queued")


def _broadcasts(bot: Bot) -> list[str]:
    return [json.dumps(m.blocks) for m in bot.slack.messages(CHANNEL) if m.thread_ts and m.reply_broadcast]


def _result_dms(bot: Bot) -> list[str]:
    return [json.dumps(m.blocks) for m in bot.slack.dms_to(RECRUITER) if "completed" in (m.text or "")]


def test_the_journey_holds_with_the_clock_decades_off_the_wall_clock(skewed_bot: tuple[Bot, ManualClock]) -> None:
    bot, clock = skewed_bot
    setup_workspace(bot)
    assert create_plan(bot).status_code == 200

    # A refused card post is retried after its backoff, measured on the injected clock.
    bot.slack.fail("chat.postMessage", status=500, count=1)
    assert bot.ats(ats_event("app-42", event_id="evt-clock")).status_code == 202
    settle(bot, lambda: any(row.last_error for row in _pending(bot)), message="the refused card post was not kept")
    [row] = [r for r in _pending(bot) if r.kind == "card"]
    assert clock.now < row.next_attempt_at <= clock.now + timedelta(minutes=5)
    bot.runtime.services.outbox.deliver()
    assert cards(bot) == []  # not due yet in the bot's time
    clock.advance(minutes=5)
    bot.runtime.services.outbox.deliver()
    settle(bot, lambda: len(cards(bot)) == 1)

    # Send: the invitation's times are the injected clock's, and so is its validity window.
    app_id = app_id_of(card(bot))
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    with bot.runtime.session_factory() as session:
        inv = session.scalars(select(Invitation)).one()
        assert inv.sent_at == clock.now and inv.status_changed_at == clock.now
        assert inv.valid_until is not None and timedelta(days=6) < inv.valid_until - clock.now <= timedelta(days=8)

    # The poller finds the completion in iMocha's date window, on the same timeline.
    clock.advance(hours=2)
    [invitation] = bot.imocha.state.invitations()
    bot.imocha.state.complete(invitation.id, points=42)
    clock.advance(seconds=2)
    poller = bot.runtime.services.poller
    assert all(stats.ok for stats in poller.poll_all())
    polled_at = clock.now
    wait_headline(bot, "Assessment needs review")
    _drain(bot, clock)  # the channel pacer spaces writes out on the injected clock, which only the test moves
    assert len(_broadcasts(bot)) == 1 and len(_result_dms(bot)) == 1
    assert "42 / 50 points (84%)" in _result_dms(bot)[0]
    with bot.runtime.session_factory() as session:
        assert session.scalars(select(Invitation)).one().status_changed_at == polled_at
    assert len(cards(bot)) == 1
