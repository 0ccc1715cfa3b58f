"""Nothing lost, nothing duplicated: concurrent clicks, Slack retries, iMocha and Slack faults, a crash mid-send."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bot.imocha import RetryPolicy
from bot.runtime.clock import system_clock
from store.models import Application, OutboxMessage
from tests.fakes import slack_requests as sr
from tests.wiring.conftest import CHANNEL, MEMBER, RECRUITER, TEAM, Bot
from tests.wiring.helpers import (
    buttons,
    card,
    click,
    complete,
    new_card,
    replies,
    sent_card,
    settle,
    submit_send,
    wait_headline,
)


def _together(n: int, fn: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run `fn` from n threads released at the same moment; every answer is returned."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        r = fn()
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == n
    return answers


def _card_updates_saying(bot: Bot, text: str) -> int:
    return sum(text in json.dumps(c.body.get("blocks")) for c in bot.slack.calls_to("chat.update"))


def _link_dms(bot: Bot, user: str = RECRUITER) -> int:
    return sum("Test link" in json.dumps(m.blocks) for m in bot.slack.dms_to(user))


def _pending_cards(bot: Bot) -> list[str | None]:
    with bot.runtime.session_factory() as session:
        rows = session.scalars(select(OutboxMessage.last_error).where(OutboxMessage.done_at.is_(None), OutboxMessage.kind == "card"))
        return list(rows)


def _quiet(bot: Bot, seconds: float = 0.3) -> None:
    """Give background work a moment, then flush the outbox, so late duplicates would show."""
    time.sleep(seconds)
    bot.runtime.services.outbox.deliver()


def test_twenty_concurrent_send_submits_make_one_invitation_one_sent_card_and_one_dm(bot: Bot) -> None:
    app_id = new_card(bot)
    bot.slack.reset_calls()

    answers = _together(20, lambda: submit_send(bot, app_id))
    assert {r.status_code for r in answers} == {200}
    wait_headline(bot, "Assessment sent")
    settle(bot, lambda: _link_dms(bot) >= 1)
    _quiet(bot)

    assert bot.imocha.state.count("/invite", "POST") == 1
    assert len(bot.imocha.state.invitations()) == 1
    assert _card_updates_saying(bot, "Assessment sent") == 1
    assert _link_dms(bot) == 1
    assert sum("sent Python Developer" in (m.text or "") for m in replies(bot)) == 1
    assert bot.slack.violations == []


def test_concurrent_cancel_clicks_cancel_once_and_concurrent_resend_clicks_reinvite_once(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    bot.imocha.state.reset_calls()

    _together(10, lambda: click(bot, RECRUITER, "cancel_invitation", app_id))
    wait_headline(bot, "Assessment cancelled")
    _quiet(bot)
    assert bot.imocha.state.count("/cancel", "POST") == 1
    assert bot.imocha.state.invitation(inv_id).status == "Cancelled"
    settle(bot, lambda: any("cancelled the invitation" in (m.text or "") for m in replies(bot)))
    assert sum("cancelled the invitation" in (m.text or "") for m in replies(bot)) == 1

    _together(10, lambda: click(bot, RECRUITER, "resend_invitation", app_id))
    wait_headline(bot, "Assessment sent")
    _quiet(bot)
    assert bot.imocha.state.count("/invite", "POST") == 1
    assert len(bot.imocha.state.invitations()) == 1
    assert bot.imocha.state.invitation(inv_id).status == "Pending"
    settle(bot, lambda: any("Assessment resent" in (m.text or "") for m in bot.slack.dms_to(RECRUITER)))
    assert sum("Assessment resent" in (m.text or "") for m in bot.slack.dms_to(RECRUITER)) == 1


def test_concurrent_reattempt_clicks_allow_one_reattempt(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot, share=True)
    complete(bot, inv_id)
    wait_headline(bot, "Assessment needs review")
    bot.imocha.state.reset_calls()

    _together(10, lambda: click(bot, MEMBER, "allow_reattempt", app_id))
    wait_headline(bot, "Assessment sent")
    _quiet(bot)
    assert bot.imocha.state.count("/reattempt", "POST") == 1
    assert len(bot.imocha.state.invitations()) == 2


def test_slack_retries_of_a_request_have_no_second_effect(bot: Bot) -> None:
    app_id = new_card(bot)
    body = sr.view_submission(
        team_id=TEAM,
        user_id=RECRUITER,
        callback_id="imocha_send_confirm",
        values={"test": {"test_select": sr.external("1001", "Python Developer")}},
        private_metadata=json.dumps({"application_id": app_id}),
    )
    assert bot.sender.post(body, content_type=sr.FORM).status_code == 200
    for n in (1, 2, 3):
        r = bot.sender.post(body, content_type=sr.FORM, headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"})
        assert r.status_code == 200
    wait_headline(bot, "Assessment sent")
    settle(bot, lambda: _link_dms(bot) >= 1)

    # a retried click after the send: still one cancel
    message = card(bot)
    click_body = sr.block_action(
        team_id=TEAM,
        user_id=RECRUITER,
        action_id="cancel_invitation",
        value=str(app_id),
        channel_id=CHANNEL,
        message_ts=message.ts,
        response_url=bot.slack.response_url("retry"),
    )
    assert bot.sender.post(click_body, content_type=sr.FORM).status_code == 200
    assert bot.sender.post(click_body, content_type=sr.FORM, headers={"X-Slack-Retry-Num": "1"}).status_code == 200
    wait_headline(bot, "Assessment cancelled")

    # a retried event: one App Home publish
    bot.slack.reset_calls()
    event = sr.event_callback(team_id=TEAM, event=sr.app_home_opened(user_id=RECRUITER), event_id="Ev0001")
    assert bot.sender.post(event, content_type=sr.JSON).status_code == 200
    bot.slack.wait_for_calls("views.publish", 1)
    assert bot.sender.post(event, content_type=sr.JSON, headers={"X-Slack-Retry-Num": "1"}).status_code == 200

    _quiet(bot)
    assert bot.slack.count("views.publish") == 1
    assert bot.imocha.state.count("/invite", "POST") == 1
    assert bot.imocha.state.count("/cancel", "POST") == 1
    assert _link_dms(bot) == 1


def test_imocha_faults_during_invite_show_the_failure_with_retry_and_retry_succeeds_once_they_clear(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the client still makes all its attempts; only the pauses between them go (tested in test_imocha_client)
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rand: 0.0)
    app_id = new_card(bot)

    # a 5xx outlasting the client's own retries: nothing was created
    bot.imocha.state.fail_next("/invite", status=500, count=4)
    assert submit_send(bot, app_id).status_code == 200
    message = wait_headline(bot, "Assessment could not be sent: iMocha had an internal error", timeout=15)
    assert buttons(message) == ["Retry", "Send assessment"]
    assert bot.imocha.state.invitations() == []
    settle(bot, lambda: any("could not be sent" in (m.text or "") for m in bot.slack.dms_to(RECRUITER)))

    # timeouts: iMocha does the work but answers after the bot gave up waiting
    bot.runtime.http.timeout = httpx.Timeout(0.25)
    bot.imocha.state.latency = 0.5
    click(bot, RECRUITER, "retry_send", app_id)
    message = wait_headline(bot, "Assessment could not be sent: iMocha could not be reached", timeout=15)
    assert "Retry" in buttons(message)
    assert len(bot.imocha.state.invitations()) == 1  # it exists at iMocha, unknown to the bot

    # the fault clears: Retry records iMocha's one invitation (invite is idempotent there)
    bot.imocha.state.latency = 0.0
    click(bot, RECRUITER, "retry_send", app_id)
    wait_headline(bot, "Assessment sent")
    assert len(bot.imocha.state.invitations()) == 1
    settle(bot, lambda: _link_dms(bot) == 1)
    _quiet(bot)
    assert _link_dms(bot) == 1


def test_a_slack_429_on_a_card_update_is_retried_after_retry_after_and_lands(bot: Bot) -> None:
    app_id, _inv_id = sent_card(bot)
    bot.slack.reset_calls()
    bot.slack.fail("chat.update", status=429, retry_after=1, count=1)

    click(bot, RECRUITER, "cancel_invitation", app_id)
    bot.slack.wait_for_calls("chat.update", 1)
    assert "Assessment sent" in json.dumps(card(bot).blocks)  # the update was refused
    bot.slack.wait_for(lambda _s: _pending_cards(bot) == ["ratelimited"], message="the refused update was not kept for a retry")
    bot.runtime.services.outbox.deliver()  # too early: Slack said to wait a second
    assert bot.slack.count("chat.update") == 1

    wait_headline(bot, "Assessment cancelled", timeout=5)
    calls = bot.slack.calls_to("chat.update")
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 0.9
    assert bot.slack.violations == []


def _sending_since(bot: Bot, app_id: int, since: datetime) -> None:
    with bot.runtime.session_factory.begin() as session:
        session.execute(
            update(Application).where(Application.id == app_id).values(status="sending", sending_by=RECRUITER, sending_since=since)
        )


def test_a_send_interrupted_between_invite_and_record_is_finished_once(bot: Bot) -> None:
    app_id = new_card(bot)
    # The process died after iMocha created the invitation and before the bot recorded it.
    bot.imocha.invite(email="ada@example.com", name="Ada Lovelace")
    bot.imocha.state.reset_calls()
    _sending_since(bot, app_id, system_clock())
    assert bot.runtime.services.assessments.recover_stuck_sends() == 0  # a send in flight is not a stuck one
    assert bot.imocha.state.count("/invite") == 0
    _sending_since(bot, app_id, system_clock() - timedelta(minutes=10))

    assert bot.runtime.services.assessments.recover_stuck_sends() == 1
    wait_headline(bot, "Assessment sent")
    assert len(bot.imocha.state.invitations()) == 1
    settle(bot, lambda: _link_dms(bot) == 1)

    # a second recovery (another replica, the job's next run) finds nothing to do
    assert bot.runtime.services.assessments.recover_stuck_sends() == 0
    _quiet(bot)
    assert bot.imocha.state.count("/invite", "POST") == 1
    assert len(bot.imocha.state.invitations()) == 1
    assert _link_dms(bot) == 1


def test_interrupted_sends_are_finished_by_their_own_singleton_job(bot: Bot) -> None:
    from bot.runtime.app import build_scheduler
    from bot.runtime.scheduler import RECOVER_SENDS, SINGLETONS

    app_id = new_card(bot)
    bot.imocha.invite(email="ada@example.com", name="Ada Lovelace")
    _sending_since(bot, app_id, system_clock() - timedelta(minutes=10))
    runtime = bot.runtime
    sched = build_scheduler(runtime.settings, runtime.services, runtime.services.poller, runtime.session_factory, system_clock, "replica-a")
    try:
        assert RECOVER_SENDS in SINGLETONS and sched.intervals[RECOVER_SENDS] == 60
        assert sched.run(RECOVER_SENDS) is True
    finally:
        sched.shutdown()
    wait_headline(bot, "Assessment sent")
    assert len(bot.imocha.state.invitations()) == 1
