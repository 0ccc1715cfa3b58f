"""Advance / Reject from the review card over real HTTP: once, shown, announced, undoable for ten minutes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from sqlalchemy import select

from store.models import Application, AuditEntry
from tests.fakes.imocha import FakeImocha, ManualClock, fake_imocha  # noqa: F401 (fixture)
from tests.fakes.receiver import EventReceiver
from tests.wiring.conftest import ADMIN, GUEST, MEMBER, OUTSIDER, RECRUITER, Bot
from tests.wiring.helpers import buttons, click, complete, headline, replies, said_to, sent_card, settle, wait_headline


def _in_review(bot: Bot, clock: ManualClock, *, share: bool = True) -> int:
    app_id, inv_id = sent_card(bot, share=share)
    clock.advance(minutes=30)
    complete(bot, inv_id)
    message = wait_headline(bot, "Assessment needs review")
    assert buttons(message)[:4] == ["Mark reviewed", "Allow re-attempt", "Advance", "Reject"]
    return app_id


def _until(bot: Bot, clock: ManualClock, predicate: Callable[[], bool]) -> None:
    """Wait for `predicate`, letting paced Slack writes go: the outbox spaces a channel's posts on the
    injected clock, which only the test moves."""

    def moved() -> bool:
        clock.advance(seconds=1)
        bot.runtime.services.outbox.deliver()
        return predicate()

    settle(bot, moved)


def _decision_notes(bot: Bot) -> list[str]:
    return [
        m.text or "" for m in replies(bot) if "after reviewing the assessment" in (m.text or "") or "undid the decision" in (m.text or "")
    ]


def test_advance_is_recorded_once_shown_on_the_card_announced_and_sent_as_an_event(
    events_world: tuple[Bot, ManualClock], receiver: EventReceiver
) -> None:
    bot, clock = events_world
    app_id = _in_review(bot, clock)

    # Two people click at once (and one of them twice): one decision.
    clicks = [
        threading.Thread(target=click, args=(bot, user, "advance_candidate", app_id), kwargs={"rid": f"r{n}"})
        for n, user in enumerate((MEMBER, RECRUITER, MEMBER))
    ]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    message = wait_headline(bot, "Advanced by")
    with bot.runtime.session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None and app.decision == "advance"
        winner = app.decided_by
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "decided")).all()
    assert len(audits) == 1 and audits[0].actor == winner and audits[0].detail == "advance"
    message = wait_headline(bot, "Advanced by")
    assert f"<@{winner}>" in headline(message)
    assert buttons(message)[0] == "Undo" and not {"Advance", "Reject", "Mark reviewed", "Allow re-attempt"} & set(buttons(message))
    assert "42 / 50 points (84%)" in json.dumps(message.blocks)  # score and report kept
    _until(bot, clock, lambda: len(_decision_notes(bot)) == 1)
    assert f"<@{winner}> advanced Ada Lovelace" in _decision_notes(bot)[0]
    losers = [f"r{n}" for n, user in enumerate((MEMBER, RECRUITER, MEMBER))]
    settle(bot, lambda: sum(any(f"Already advanced by <@{winner}>" in t for t in said_to(bot, rid)) for rid in losers) == 2)

    # The decision goes out as an event, after the completion.
    assert bot.runtime.events is not None
    bot.runtime.events.run()
    assert receiver.types()[-2:] == ["assessment.completed", "assessment.decided"]
    assert receiver.accepted()[-1]["decision"] == "advance" and receiver.accepted()[-1]["actor"] == winner

    # Ten minutes later the Undo button has gone from the card by itself.
    clock.advance(minutes=10, seconds=2)
    bot.runtime.services.outbox.deliver()
    settle(bot, lambda: "Undo" not in buttons(wait_headline(bot, "Advanced by")))


def test_reject_can_be_undone_within_ten_minutes_and_not_after(events_world: tuple[Bot, ManualClock]) -> None:
    bot, clock = events_world
    app_id = _in_review(bot, clock, share=False)

    click(bot, RECRUITER, "reject_candidate", app_id)
    message = wait_headline(bot, "Rejected by")
    assert "Show score" in buttons(message) and "42 / 50" not in json.dumps(message.blocks)  # privacy unchanged
    clock.advance(minutes=9)
    click(bot, MEMBER, "undo_decision", app_id)
    message = wait_headline(bot, "Assessment needs review")
    assert "Advance" in buttons(message) and "Reject" in buttons(message)
    _until(bot, clock, lambda: any("undid the decision to reject" in n for n in _decision_notes(bot)))

    click(bot, MEMBER, "advance_candidate", app_id)
    wait_headline(bot, "Advanced by")
    clock.advance(minutes=10, seconds=1)
    click(bot, RECRUITER, "undo_decision", app_id, rid="late")
    settle(bot, lambda: any("can be undone for 10 minutes only" in t for t in said_to(bot, "late")))
    with bot.runtime.session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None and app.decision == "advance"
        actions = [
            a for (a,) in session.execute(select(AuditEntry.action).where(AuditEntry.application_id == app_id).order_by(AuditEntry.id))
        ]
    assert actions[-3:] == ["decided", "decision_undone", "decided"]


def test_only_people_who_can_see_the_card_may_decide(events_world: tuple[Bot, ManualClock]) -> None:
    bot, clock = events_world
    app_id = _in_review(bot, clock)
    click(bot, GUEST, "advance_candidate", app_id, rid="guest")
    settle(bot, lambda: any("guests" in t for t in said_to(bot, "guest")))
    click(bot, OUTSIDER, "reject_candidate", app_id, rid="outsider", channel_id="CELSEWHERE")
    settle(bot, lambda: any("cards you own" in t for t in said_to(bot, "outsider")))
    with bot.runtime.session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None and app.decision is None
    click(bot, ADMIN, "reject_candidate", app_id)
    wait_headline(bot, "Rejected by")


def test_a_decision_needs_a_result_in_review(events_world: tuple[Bot, ManualClock]) -> None:
    bot, _clock = events_world
    app_id, _inv = sent_card(bot)
    click(bot, RECRUITER, "advance_candidate", app_id, rid="early")
    settle(bot, lambda: any("Only a completed assessment in review" in t for t in said_to(bot, "early")))
