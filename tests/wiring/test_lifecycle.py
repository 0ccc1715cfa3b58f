"""After "Assessment sent", through real HTTP: results, privacy, review, expiry, cancel, re-attempt, reuse, status."""

from __future__ import annotations

import json
import time

from bot.sandbox.state import CANCEL_REFUSED
from store.models import Application
from tests.wiring.conftest import CHANNEL, MEMBER, RECRUITER, Bot, create_plan, setup_workspace
from tests.wiring.helpers import (
    buttons,
    card,
    card_json,
    cards,
    click,
    complete,
    headline,
    new_card,
    poll,
    post_callback,
    replies,
    said_to,
    sent_card,
    settle,
    submit_send,
    wait_headline,
)


def _broadcasts(bot: Bot) -> list[str]:
    return [json.dumps(m.blocks) for m in bot.slack.messages(CHANNEL) if m.thread_ts and m.reply_broadcast]


def _result_dms(bot: Bot, user: str = RECRUITER) -> list[str]:
    return [json.dumps(m.blocks) for m in bot.slack.dms_to(user) if "completed" in (m.text or "")]


def _status(bot: Bot, app_id: int) -> str:
    with bot.runtime.session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None
        return app.status


def test_a_completion_found_by_the_poller_shows_the_score_notifies_the_channel_once_and_dms_the_owner(bot: Bot) -> None:
    _app_id, inv_id = sent_card(bot, share=True)

    complete(bot, inv_id, points=42, via="poll")
    message = wait_headline(bot, "Assessment needs review")
    text = card_json(bot)
    assert "42 / 50 points (84%)" in text
    assert "Passed" in text
    assert "iMocha report" in text
    assert buttons(message)[:2] == ["Mark reviewed", "Allow re-attempt"]
    settle(bot, lambda: len(_broadcasts(bot)) == 1 and len(_result_dms(bot)) == 1)
    assert "Ada Lovelace completed Python Developer, assessment needs review" in _broadcasts(bot)[0]
    assert "42 / 50 points (84%)" in _result_dms(bot)[0]

    # the next cycles see nothing new: no second notice, no second DM
    poll(bot)
    bot.runtime.services.outbox.deliver()
    assert len(cards(bot)) == 1
    assert len(_broadcasts(bot)) == 1
    assert len(_result_dms(bot)) == 1
    assert bot.slack.violations == []


def test_with_private_scores_the_channel_sees_no_score_and_show_score_answers_only_the_clicker(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot, share=False)

    r = post_callback(bot, bot.imocha.state.callback_payload(bot.imocha.state.complete(inv_id, points=20)))
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    message = wait_headline(bot, "Assessment needs review")
    settle(bot, lambda: len(_broadcasts(bot)) == 1 and len(_result_dms(bot)) == 1)

    channel_text = json.dumps([m.blocks for m in bot.slack.messages(CHANNEL)])
    for secret in ("20 / 50", "40%", "Below pass mark", "iMocha report", "/report"):
        assert secret not in channel_text, secret
    assert "Show score" in buttons(message)
    assert "Show score" in _broadcasts(bot)[0]
    # the owner's DM has all of it
    dm = _result_dms(bot)[0]
    assert "20 / 50 points (40%)" in dm and "Below pass mark (60%)" in dm and "iMocha report" in dm

    click(bot, MEMBER, "show_score", app_id, rid="score")
    bot.slack.wait_for(lambda s: len(s.responses_to("score")) == 1)
    answer = bot.slack.responses_to("score")[0].body
    assert answer["response_type"] == "ephemeral" and not answer.get("replace_original")
    assert "20 / 50 points (40%)" in json.dumps(answer)
    assert "20 / 50" not in json.dumps([m.blocks for m in bot.slack.messages(CHANNEL)])


def test_mark_reviewed_records_who_and_status_lists_the_history(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot, share=True)
    complete(bot, inv_id)
    wait_headline(bot, "Assessment needs review")

    click(bot, MEMBER, "mark_reviewed", app_id)
    message = wait_headline(bot, "Assessment reviewed by")
    assert f"<@{MEMBER}>" in headline(message)
    assert "Mark reviewed" not in buttons(message)
    assert "Allow re-attempt" in buttons(message)
    settle(bot, lambda: any("marked the assessment reviewed" in (m.text or "") for m in replies(bot)))

    # a second click (another tab) changes nothing and says so privately
    click(bot, MEMBER, "mark_reviewed", app_id, rid="again")
    bot.slack.wait_for(lambda s: any("reviewed already" in t for t in said_to(bot, "again")))
    assert sum("marked the assessment reviewed" in (m.text or "") for m in replies(bot)) == 1

    # /imocha status <email> lists the assessment with its score and who did what

    r = bot.sender.command(
        team_id="T0001",
        user_id=RECRUITER,
        text="status <mailto:ada@example.com|ada@example.com>",
        response_url=bot.slack.response_url("st"),
    )
    assert r.status_code == 200
    bot.slack.wait_for(lambda s: len(s.responses_to("st")) == 1)
    report = said_to(bot, "st")[0]
    for expected in ("Backend Engineer", "Python Developer", "Assessment reviewed", "42 / 50 points (84%)", "Passed"):
        assert expected in report, expected
    assert f"<@{RECRUITER}> sent" in report
    assert f"<@{MEMBER}> reviewed" in report

    bot.sender.command(team_id="T0001", user_id=RECRUITER, text="status nobody@example.com", response_url=bot.slack.response_url("none"))
    bot.slack.wait_for(lambda s: len(s.responses_to("none")) == 1)
    assert "No assessments found" in said_to(bot, "none")[0]
    r = bot.command(RECRUITER, "status not-an-email")
    assert "Usage" in r.text


def test_an_expired_invitation_is_reported_and_resend_reopens_it_with_one_invite(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    bot.imocha.state.expire(inv_id)
    poll(bot)
    message = wait_headline(bot, "Assessment expired")
    assert buttons(message) == ["Resend"]
    settle(bot, lambda: any("expired" in (m.text or "") for m in replies(bot)))

    bot.imocha.state.reset_calls()
    bot.slack.reset_calls()
    click(bot, RECRUITER, "resend_invitation", app_id)
    message = wait_headline(bot, "Assessment sent")
    assert buttons(message) == ["Cancel invitation", "Resend"]
    assert bot.imocha.state.count("/invite", "POST") == 1
    assert bot.imocha.state.invitation(inv_id).status == "Pending"
    assert len(bot.imocha.state.invitations()) == 1
    settle(bot, lambda: any("Assessment resent" in (m.text or "") for m in bot.slack.dms_to(RECRUITER)))
    settle(bot, lambda: any("resent" in (m.text or "") for m in replies(bot)))


def test_cancel_while_pending_cancels_at_imocha_and_on_the_card(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    click(bot, RECRUITER, "cancel_invitation", app_id)
    message = wait_headline(bot, "Assessment cancelled")
    assert buttons(message) == ["Resend"]
    assert bot.imocha.state.invitation(inv_id).status == "Cancelled"
    assert bot.imocha.state.count("/cancel", "POST") == 1
    settle(bot, lambda: any("cancelled the invitation" in (m.text or "") for m in replies(bot)))


def test_cancel_after_the_candidate_started_shows_imochas_reason(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    bot.imocha.state.start(inv_id)  # the bot has not polled yet: the card still offers Cancel

    click(bot, RECRUITER, "cancel_invitation", app_id, rid="cancel")
    bot.slack.wait_for(lambda s: len(s.responses_to("cancel")) >= 1, message="nobody told the clicker")
    told = " ".join(said_to(bot, "cancel"))
    assert CANCEL_REFUSED in told
    assert bot.imocha.state.invitation(inv_id).status == "In Progress"
    assert _status(bot, app_id) == "sent"
    assert "Assessment cancelled" not in card_json(bot)


def test_a_started_test_shows_in_progress_and_a_test_left_unfinished_offers_a_reattempt(bot: Bot) -> None:
    _app_id, inv_id = sent_card(bot)
    bot.imocha.state.start(inv_id)
    bot.runtime.services.poller.sweep()
    message = wait_headline(bot, "Assessment in progress")
    assert buttons(message) == []

    bot.imocha.state.leave(inv_id)
    poll(bot)
    message = wait_headline(bot, "Assessment left unfinished")
    assert buttons(message) == ["Allow re-attempt"]


def test_allow_reattempt_after_completion_sends_a_new_link_and_says_attempt_2(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot, share=True)
    complete(bot, inv_id, points=10)
    wait_headline(bot, "Assessment needs review")

    bot.imocha.state.reset_calls()
    click(bot, RECRUITER, "allow_reattempt", app_id)
    message = wait_headline(bot, "Assessment sent")
    assert "attempt 2" in card_json(bot)
    assert buttons(message) == ["Cancel invitation", "Resend"]
    assert bot.imocha.state.count("/reattempt", "POST") == 1
    invitations = bot.imocha.state.invitations()
    assert len(invitations) == 2 and invitations[1].attempt == 2
    new_url = invitations[1].test_url(bot.imocha.url)
    settle(bot, lambda: any(new_url in json.dumps(m.blocks) for m in bot.slack.dms_to(RECRUITER)))
    link_dm = next(m for m in bot.slack.dms_to(RECRUITER) if new_url in json.dumps(m.blocks))
    assert "Re-attempt allowed (attempt 2)" in json.dumps(link_dm.blocks)

    # /imocha status lists the re-attempt like the other lines: when, who, "allowed a re-attempt"
    bot.sender.command(team_id="T0001", user_id=RECRUITER, text="status ada@example.com", response_url=bot.slack.response_url("st"))
    bot.slack.wait_for(lambda s: len(s.responses_to("st")) == 1)
    blocks = bot.slack.responses_to("st")[0].body["blocks"]
    history = [line for blk in blocks for line in blk["text"]["text"].splitlines() if line.startswith("• ")]
    assert any(line.endswith(f"<@{RECRUITER}> sent") for line in history), history
    allowed = [line for line in history if "allowed a re-attempt" in line]
    assert len(allowed) == 1 and allowed[0].startswith("• <!date^"), history
    assert allowed[0].endswith(f"<@{RECRUITER}> allowed a re-attempt"), history

    # the second attempt's result replaces the first on the card
    complete(bot, invitations[1].id, points=45)
    wait_headline(bot, "Assessment needs review")
    assert "45 / 50 points (90%)" in card_json(bot)


def test_a_result_from_another_application_is_reused_without_a_new_invitation(bot: Bot) -> None:
    setup_workspace(bot)
    assert create_plan(bot, job="Backend Engineer", share=True).status_code == 200
    assert create_plan(bot, job="Data Engineer", share=True).status_code == 200
    first = new_card(bot, app="app-42", plan=False, job="Backend Engineer")
    second = new_card(bot, app="app-43", plan=False, job="Data Engineer")
    assert submit_send(bot, first).status_code == 200
    wait_headline(bot, "Assessment sent", index=0)
    (inv,) = bot.imocha.state.invitations()
    complete(bot, inv.id, points=42)
    wait_headline(bot, "Assessment needs review", index=0)
    settle(bot, lambda: len(_broadcasts(bot)) == 1)

    bot.slack.reset_calls()
    bot.imocha.state.reset_calls()
    click(bot, RECRUITER, "send_assessment", second, index=1)
    bot.slack.wait_for(lambda s: s.count("views.open") == 1)
    modal = json.dumps(bot.slack.calls_to("views.open")[0].body["view"])
    assert "Reuse this result" in modal and "Send a re-attempt" in modal
    assert "Backend Engineer" in modal and "42 / 50 points (84%)" in modal

    assert submit_send(bot, second, use="reuse").status_code == 200
    message = wait_headline(bot, "Assessment needs review", index=1)
    assert "42 / 50 points (84%)" in json.dumps(message.blocks)
    assert "Backend Engineer" in json.dumps(message.blocks)  # says where the result came from
    assert bot.imocha.state.count("/invite") == 0
    assert bot.imocha.state.count("/reattempt") == 0
    assert len(bot.imocha.state.invitations()) == 1
    # reusing is not a second completion: a note in the card's thread, no new broadcast
    settle(bot, lambda: any("reused" in (m.text or "") for m in replies(bot, index=1)))
    bot.runtime.services.outbox.deliver()
    assert len(_broadcasts(bot)) == 1


def test_a_forged_callback_changes_nothing_unknown_ids_are_ignored_and_junk_gets_400(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    payload = bot.imocha.state.callback_payload(bot.imocha.state.invitation(inv_id))
    payload.update(Status="Complete", CandidateScore=50, TotalScore=50, PerformanceCategory="Expert", ReportPDFUrl="https://evil.example/x")
    bot.imocha.state.reset_calls()
    before = len(bot.slack.messages(CHANNEL))

    r = post_callback(bot, payload)
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    while bot.imocha.state.count(f"/reports/{inv_id}") < 1:  # the bot re-reads the report before trusting anything
        assert time.monotonic() < deadline, "the callback was not checked against iMocha"
        time.sleep(0.02)
    time.sleep(0.2)
    bot.runtime.services.outbox.deliver()
    assert _status(bot, app_id) == "sent"
    assert "Assessment sent" in headline(card(bot))
    assert len(bot.slack.messages(CHANNEL)) == before
    assert "evil.example" not in json.dumps([m.blocks for m in bot.slack.messages(CHANNEL)])

    # unknown invitations are answered 200 and ignored; junk is refused
    unknown = {"TestInvitationId": 99_999_999, "Status": "Complete", "CandidateEmailId": "x@example.com"}
    assert post_callback(bot, unknown).status_code == 200
    assert post_callback(bot, {"TestInvitationId": "42", "Status": "Pending"}).status_code == 200
    for junk in (b"not json", b"[1, 2]", b"{}", json.dumps({"TestInvitationId": "abc"}).encode(), b"\xff\xfe"):
        r = post_callback(bot, junk)
        assert r.status_code == 400, (junk, r.status_code, r.text)
        assert r.json()["fields"] == ["body"]
    time.sleep(0.2)
    assert bot.imocha.state.count("/reports") == 1  # unknown ids cost no iMocha call
