"""The Block Kit builders, without Slack: the right buttons per status, score wording, privacy, limits, modal labels."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import ApplicationView, AppStatus, AuditLine, Decision, ExistingResult, InvitationView, PlanView, SectionView
from handlers import blocks as b
from tests.fakes.blockkit import assert_valid_message, assert_valid_view, validate_blocks

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

INVITATION = InvitationView(
    id=7,
    imocha_id=3_100_001,
    test_id=1001,
    test_name="Python Developer",
    test_url="https://test.imocha.io/t/abc",
    status="complete",
    attempt=1,
    candidate_points=42,
    total_points=50,
    percentage=84,
    performance_category="Expert",
    report_url="https://imocha.example/reports/abc.pdf",
    sections=(SectionView("Python basics", 25.2, 30), SectionView("Problem solving", 16.8, 20)),
    valid_until=NOW + timedelta(days=7),
)


def _view(status: AppStatus = AppStatus.NEEDS_SENDING, **changes: Any) -> ApplicationView:
    finished = status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)
    inv = None
    if status not in (AppStatus.NEEDS_SENDING, AppStatus.SENDING, AppStatus.SEND_FAILED):
        inv = INVITATION if finished else replace(INVITATION, status="pending", candidate_points=None, total_points=None, percentage=None)
    base = ApplicationView(
        id=12,
        team_id="T0001",
        status=status,
        candidate_name="Ada Lovelace",
        candidate_email="ada@example.com",
        job_name="Backend Engineer",
        stage_name="iMocha assessment",
        test_id=1001,
        test_name="Python Developer",
        owner_user_id="URITA",
        pass_mark=60,
        invitation=inv,
        status_reason="iMocha had an internal error" if status == AppStatus.SEND_FAILED else None,
        reviewed_by="UMO" if status == AppStatus.REVIEWED else None,
        card_channel_id="CHIRING",
        card_ts="1700000000.000100",
    )
    return replace(base, **changes)


def _buttons(message: dict[str, Any]) -> list[str]:
    return [e["text"]["text"] for blk in message["blocks"] if blk["type"] == "actions" for e in blk["elements"] if e["type"] == "button"]


def _button(message: dict[str, Any], label: str) -> dict[str, Any]:
    return next(
        e for blk in message["blocks"] if blk["type"] == "actions" for e in blk["elements"] if e.get("text", {}).get("text") == label
    )


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


# -- the card, per status (SPEC §3) ---------------------------------------------------------------------

SPEC_TABLE = [
    (AppStatus.NEEDS_SENDING, "Assessment needs sending", ["Send assessment"]),
    (AppStatus.SENDING, "Sending assessment…", []),
    (AppStatus.SEND_FAILED, "Assessment could not be sent: iMocha had an internal error", ["Retry", "Send assessment"]),
    (AppStatus.SENT, "Assessment sent", ["Cancel invitation", "Resend"]),
    (AppStatus.IN_PROGRESS, "Assessment in progress", []),
    (AppStatus.NEEDS_REVIEW, "Assessment needs review", ["Mark reviewed", "Allow re-attempt"]),
    (AppStatus.REVIEWED, "Assessment reviewed by <@UMO>", ["Allow re-attempt"]),
    (AppStatus.EXPIRED, "Assessment expired", ["Resend"]),
    (AppStatus.CANCELLED, "Assessment cancelled", ["Resend"]),
    (AppStatus.LEFT, "Assessment left unfinished", ["Allow re-attempt"]),
]


def test_the_spec_table_covers_every_status() -> None:
    assert {status for status, _, _ in SPEC_TABLE} == set(AppStatus)


@pytest.mark.parametrize(("status", "headline", "expected"), SPEC_TABLE, ids=[s.value for s, _, _ in SPEC_TABLE])
@pytest.mark.parametrize("share", [False, True], ids=["private", "shared"])
@pytest.mark.parametrize("in_dm", [False, True], ids=["channel", "dm"])
def test_every_status_has_its_headline_and_exactly_its_buttons(
    status: AppStatus, headline: str, expected: list[str], share: bool, in_dm: bool
) -> None:
    message = b.build_card(_view(status, share_scores_in_channel=share, card_in_dm=in_dm))
    assert_valid_message(message["text"], message["blocks"])
    assert headline in message["blocks"][0]["text"]["text"]
    assert message["text"].startswith(headline)
    found = _buttons(message)
    assert found[: len(expected)] == expected
    # the extras: the decision (issue 15), then how to see the result: Show score where scores are
    # private, else the report link
    extras = found[len(expected) :]
    if status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED):
        assert extras == ["Advance", "Reject"] + (["Show score"] if not share and not in_dm else ["iMocha report"])
    else:
        assert extras == []
    values = {e["value"] for blk in message["blocks"] if blk["type"] == "actions" for e in blk["elements"]}
    assert values <= {"12"}


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (AppStatus.SENT, "Cancel invitation"),
        (AppStatus.SENT, "Resend"),
        (AppStatus.EXPIRED, "Resend"),
        (AppStatus.CANCELLED, "Resend"),
        (AppStatus.NEEDS_REVIEW, "Allow re-attempt"),
        (AppStatus.REVIEWED, "Allow re-attempt"),
        (AppStatus.LEFT, "Allow re-attempt"),
    ],
)
def test_cancel_resend_and_reattempt_ask_for_confirmation(status: AppStatus, label: str) -> None:
    confirm = _button(b.build_card(_view(status)), label).get("confirm")
    assert confirm is not None
    assert confirm["confirm"]["text"] and confirm["deny"]["text"]


def test_a_card_without_an_email_cannot_be_sent_and_says_why() -> None:
    message = b.build_card(_view(AppStatus.NEEDS_SENDING, candidate_email=None))
    assert _buttons(message) == []
    assert "no email address" in _text(message)


def test_a_reattempt_card_says_which_attempt_it_is() -> None:
    assert "attempt 2" in _text(b.build_card(_view(AppStatus.SENT, attempt=2)))
    assert "attempt" not in _text(b.build_card(_view(AppStatus.SENT, attempt=1)))


def test_the_card_mentions_its_owner_and_shows_the_link_window_while_open() -> None:
    message = b.build_card(_view(AppStatus.SENT))
    assert "<@URITA>" in _text(message)
    assert "Link valid until" in _text(message)


# -- score wording ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "total", "percentage", "expected"),
    [
        (42, 50, 84, "42 / 50 points (84%)"),
        (16.8, 20, 84, "16.8 / 20 points (84%)"),
        (0, 50, 0, "0 / 50 points (0%)"),
        (50, 50, None, "50 / 50 points (100%)"),
        (None, None, 72.5, "72.5%"),
        (None, None, None, None),
    ],
)
def test_the_score_reads_points_of_total_and_percentage(
    points: float | None, total: float | None, percentage: float | None, expected: str | None
) -> None:
    inv = replace(INVITATION, candidate_points=points, total_points=total, percentage=percentage)
    assert b.score_line(inv) == expected


@pytest.mark.parametrize(
    ("percentage", "pass_mark", "expected"), [(84, 60, "Passed"), (60, 60, "Passed"), (40, 60, "Below pass mark (60%)"), (84, None, None)]
)
def test_pass_or_fail_is_against_the_plans_pass_mark(percentage: float, pass_mark: int | None, expected: str | None) -> None:
    view = _view(AppStatus.NEEDS_REVIEW, pass_mark=pass_mark, invitation=replace(INVITATION, percentage=percentage))
    assert b.verdict(view) == expected


def test_a_shared_result_shows_score_verdict_category_sections_and_the_report_link() -> None:
    message = b.build_card(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True))
    text = _text(message)
    for expected in ("42 / 50 points (84%)", "Passed", "Expert", "|iMocha report>", "Python basics", "16.8 / 20", "█"):
        assert expected in text, expected
    assert _button(message, "iMocha report")["url"] == INVITATION.report_url


# -- privacy ---------------------------------------------------------------------------------------------

PRIVATE = ("42 / 50", "84%", "Passed", "Expert", "iMocha report", "abc.pdf", "Python basics")


@pytest.mark.parametrize("status", [AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED])
def test_a_channel_card_with_private_scores_shows_no_result_only_show_score(status: AppStatus) -> None:
    message = b.build_card(_view(status, share_scores_in_channel=False))
    text = _text(message)
    for secret in PRIVATE:
        assert secret not in text, secret
    assert "Show score" in _buttons(message)


def test_the_completion_notice_in_a_channel_keeps_private_scores_private() -> None:
    private = b.build_completion_notice(_view(AppStatus.NEEDS_REVIEW), in_channel=True)
    assert_valid_message(private["text"], private["blocks"])
    assert "Ada Lovelace completed Python Developer, assessment needs review" in private["text"]
    assert not any(secret in _text(private) for secret in PRIVATE)
    assert _buttons(private) == ["Show score"]
    shared = b.build_completion_notice(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True), in_channel=True)
    assert "42 / 50 points (84%)" in _text(shared)


def test_the_owners_dm_a_dm_card_and_the_ephemeral_answer_always_have_the_result() -> None:
    view = _view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=False)
    for message in (
        b.build_result_dm(view),
        b.build_score_ephemeral(view),
        b.build_card(replace(view, card_in_dm=True)),
        b.build_completion_notice(view, in_channel=False),
    ):
        assert_valid_message(message["text"], message["blocks"])
        assert "42 / 50 points (84%)" in _text(message) and "Passed" in _text(message) and "iMocha report" in _text(message)


def test_app_home_shows_scores_only_where_they_are_shared() -> None:
    private = b.home_item(_view(AppStatus.NEEDS_REVIEW))
    assert "42 / 50" not in json.dumps(private)
    assert "42 / 50" in json.dumps(b.home_item(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True)))


# -- escaping --------------------------------------------------------------------------------------------


def test_outside_text_is_escaped_everywhere_so_it_pings_nobody() -> None:
    hostile = "<!channel> & <@UADMIN>"
    view = _view(
        AppStatus.SEND_FAILED, candidate_name=hostile, job_name=hostile, test_name=hostile, status_reason=f"iMocha said: {hostile}"
    )
    done = replace(view, status=AppStatus.NEEDS_REVIEW, invitation=replace(INVITATION, performance_category=hostile), status_reason=None)
    messages = [
        b.build_card(view),
        b.build_card(done),
        b.build_completion_notice(done, in_channel=True),
        b.build_result_dm(done),
        b.build_score_ephemeral(done),
        b.build_link_dm(replace(done, status=AppStatus.SENT), action="sent", actor="URITA"),
        b.build_reminder_dm(replace(done, status=AppStatus.SENT), kind="expiring"),
    ]
    for message in messages:
        text = _text(message)
        assert "<!channel>" not in text and "<@UADMIN>" not in text, text
        assert "&lt;!channel&gt; &amp; &lt;@UADMIN&gt;" in text
    for blocks in (b.home_item(view), b.build_status_report(hostile, [(view, [])])):
        assert "<!channel>" not in json.dumps(blocks)
    assert b.esc("a & <b>") == "a &amp; &lt;b&gt;"


def test_a_reviewed_card_mentions_the_reviewer() -> None:
    message = b.build_card(_view(AppStatus.REVIEWED))
    assert "Assessment reviewed by <@UMO>" in message["blocks"][0]["text"]["text"]


# -- App Home --------------------------------------------------------------------------------------------


def test_app_home_with_two_thousand_applications_stays_within_100_blocks() -> None:
    statuses = list(AppStatus)
    views = [
        _view(
            statuses[i % len(statuses)], id=i, candidate_name=f"Candidate {i}", job_name=f"Job {i % 40}", share_scores_in_channel=i % 2 == 0
        )
        for i in range(2000)
    ]
    jobs: dict[str, list[ApplicationView]] = {}
    for view in views:
        jobs.setdefault(view.job_name, []).append(view)
    grouped = [(name, {s: sum(v.status == s for v in items) for s in statuses}, items) for name, items in jobs.items()]
    home = b.build_home(jobs=grouped, total=2000, shown=2000, page=0, configured=True, is_admin=False)
    assert len(home["blocks"]) <= 100
    assert_valid_view(home)

    paged = b.build_home(jobs=grouped[:2], total=2000, shown=25, page=0, configured=True, is_admin=False)
    assert len(paged["blocks"]) <= 100
    assert_valid_view(paged)
    assert "Show more" in _text(paged) and "25 of 2000" in _text(paged)


def test_an_empty_app_home_explains_what_to_do() -> None:
    home = b.build_home(jobs=[], total=0, shown=0, page=0, configured=False, is_admin=True)
    assert_valid_view(home)
    assert "/imocha setup" in _text(home)


# -- modals (SPEC §8) ------------------------------------------------------------------------------------


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {blk["label"]["text"]: blk for blk in view["blocks"] if blk["type"] == "input"}


def test_the_setup_modal_has_the_spec_labels_and_only_the_key_is_required() -> None:
    view = b.build_setup_modal(has_key=False, default_channel=None, validity_days=7)
    assert_valid_view(view)
    inputs = _inputs(view)
    # The spec's labels, then issue 15's optional Greenhouse Harvest credentials.
    assert list(inputs) == [
        "iMocha API key",
        "Default hiring channel",
        "Invitation valid for (days)",
        "Gem API key",
        "Greenhouse Harvest client ID",
        "Greenhouse Harvest client secret",
    ]
    assert not inputs["iMocha API key"].get("optional")
    assert all(inputs[label].get("optional") for label in list(inputs)[1:])
    assert inputs["Default hiring channel"]["element"]["type"] in ("conversations_select", "channels_select")
    # once a key is stored it is never shown again, and may be left empty
    again = b.build_setup_modal(
        has_key=True, default_channel="CHIRING", validity_days=14, has_gem_key=True, error="iMocha rejected this API key"
    )
    assert_valid_view(again)
    assert _inputs(again)["iMocha API key"]["optional"] is True
    assert "initial_value" not in _inputs(again)["iMocha API key"]["element"]
    assert "iMocha rejected this API key" in _text(again)
    # stored Harvest credentials: the client ID is shown (it is no secret), the secret never is
    harvest = _inputs(b.build_setup_modal(has_key=True, default_channel=None, validity_days=7, has_harvest=True, harvest_client_id="gh-1"))
    assert harvest["Greenhouse Harvest client ID"]["element"]["initial_value"] == "gh-1"
    assert "initial_value" not in harvest["Greenhouse Harvest client secret"]["element"]
    assert "never shown again" in harvest["Greenhouse Harvest client secret"]["hint"]["text"]


def test_the_plan_modal_has_the_spec_labels_and_fields() -> None:
    view = b.build_plan_modal()
    assert_valid_view(view)
    inputs = _inputs(view)
    # The spec's labels, then issue 16's per-plan switch for the weekly digest.
    assert list(inputs) == ["Job", "Stage", "iMocha test", "Hiring channel", "Pass mark (%)", "Share scores in channel", "Weekly digest"]
    assert inputs["iMocha test"]["element"]["type"] == "external_select"
    assert inputs["Hiring channel"]["element"]["type"] in ("conversations_select", "channels_select")
    assert inputs["Share scores in channel"]["element"]["type"] == "checkboxes"
    optional = [label for label, blk in inputs.items() if blk.get("optional")]
    assert optional == ["Hiring channel", "Pass mark (%)", "Share scores in channel", "Weekly digest"]

    plan = PlanView(3, "Backend Engineer", "iMocha assessment", 1001, "Python Developer", "CHIRING", 70, True, "URITA")
    edit = b.build_plan_modal(plan=plan)
    assert_valid_view(edit)
    assert json.loads(edit["private_metadata"]) == {"plan_id": 3}
    fields = _inputs(edit)
    assert fields["iMocha test"]["element"]["initial_option"]["value"] == "1001"
    assert fields["Pass mark (%)"]["element"]["initial_value"] == "70"
    assert fields["Share scores in channel"]["element"]["initial_options"]


def test_the_send_modal_preselects_the_plans_test() -> None:
    view = b.build_send_modal(_view(), [])
    assert_valid_view(view)
    inputs = _inputs(view)
    assert list(inputs) == ["iMocha test"]
    assert inputs["iMocha test"]["element"]["initial_option"]["value"] == "1001"
    assert json.loads(view["private_metadata"]) == {"application_id": 12}


def test_the_send_modal_offers_reuse_or_a_reattempt_when_a_result_exists() -> None:
    existing = [ExistingResult(INVITATION, "Data Engineer", 99)]
    view = b.build_send_modal(_view(), existing)
    assert_valid_view(view)
    use = _inputs(view)["Use"]["element"]
    assert [o["text"]["text"] for o in use["options"]] == ["Reuse this result", "Send a re-attempt"]
    assert use["initial_option"]["value"] == "reuse"
    assert "Data Engineer" in _text(view) and "42 / 50 points (84%)" in _text(view)
    # an unfinished invitation can only be reused (a re-attempt needs a finished one)
    pending = b.build_send_modal(_view(), [ExistingResult(replace(INVITATION, status="pending"), "Data Engineer", 99)])
    assert [o["text"]["text"] for o in _inputs(pending)["Use"]["element"]["options"]] == ["Reuse this result"]


def test_the_manual_send_modal_has_the_spec_labels() -> None:
    view = b.build_manual_send_modal()
    assert_valid_view(view)
    assert list(_inputs(view)) == ["Candidate name", "Candidate email", "Job", "iMocha test"]


# -- everything else is valid Block Kit ------------------------------------------------------------------


def test_every_other_surface_is_valid_block_kit() -> None:
    done = _view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True)
    for message in (
        b.build_link_dm(_view(AppStatus.SENT), action="sent", actor="URITA"),
        b.build_link_dm(_view(AppStatus.SENT, attempt=2), action="reattempt", actor=None),
        b.build_reminder_dm(_view(AppStatus.SENT), kind="untouched"),
        b.build_reminder_dm(_view(AppStatus.SENT), kind="expiring"),
        b.SlackRenderer().render("status", done, {"status": "expired"}),
        b.SlackRenderer().render("note", done, {"text": "<@URITA> cancelled the invitation."}),
    ):
        assert_valid_message(message["text"], message["blocks"])
    assert "Re-attempt allowed (attempt 2)" in _text(b.build_link_dm(_view(AppStatus.SENT, attempt=2), action="reattempt", actor=None))
    plans = [PlanView(i, f"Job {i}", "iMocha assessment", 1001, "Python Developer", None, None, False, "URITA") for i in range(60)]
    assert validate_blocks(b.build_plans_list(plans), surface="message") == []
    assert validate_blocks(b.build_plans_list([]), surface="message") == []
    history = [AuditLine("URITA", "sent", "ok", None, NOW), AuditLine("imocha", "status_needs_review", "ok", None, NOW)]
    report = b.build_status_report("ada@example.com", [(done, history)] * 30)
    assert validate_blocks(report, surface="message") == []
    assert "42 / 50 points (84%)" in json.dumps(report) and "<@URITA> sent" in json.dumps(report)


def test_the_status_history_says_who_allowed_a_re_attempt_and_when() -> None:
    history = [
        AuditLine("URITA", "sent", "ok", None, NOW),
        AuditLine("UMEMBER", "reattempt", "ok", "Python Developer (attempt 2, iMocha invitation 7)", NOW),
        AuditLine("UMEMBER", "re-attempt", "error", "iMocha said no", NOW),
    ]
    report = b.build_status_report("ada@example.com", [(_view(AppStatus.SENT, attempt=2), history)])
    lines = [line for blk in report for line in blk["text"]["text"].splitlines()]
    allowed = [line for line in lines if "allowed a re-attempt" in line]
    assert len(allowed) == 2
    assert allowed[0].startswith("• <!date^") and allowed[0].endswith("<@UMEMBER> allowed a re-attempt")
    assert allowed[1].endswith("<@UMEMBER> allowed a re-attempt (error: iMocha said no)")
    assert not any("reattempt" in line for line in lines)
    assert_valid_view(b.build_message_modal("iMocha setup", "Checking the key…"))


# -- decisions (issue 15) -------------------------------------------------------------------------


@pytest.mark.parametrize(("decision", "headline"), [(Decision.ADVANCE, "Advanced by <@UMO>"), (Decision.REJECT, "Rejected by <@UMO>")])
@pytest.mark.parametrize("undo_open", [True, False])
def test_a_decided_card_names_who_decided_keeps_the_result_and_offers_only_undo(decision: Decision, headline: str, undo_open: bool) -> None:
    view = _view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True, decision=decision, decided_by="UMO", undo_open=undo_open)
    message = b.build_card(view)
    assert_valid_message(message["text"], message["blocks"])
    assert headline in message["blocks"][0]["text"]["text"] and message["text"].startswith(headline)
    assert _buttons(message) == (["Undo"] if undo_open else []) + ["iMocha report"]
    assert "42 / 50 points (84%)" in json.dumps(message["blocks"])
    assert "Suggested" not in json.dumps(message["blocks"])


def test_the_suggested_decision_follows_the_pass_mark_only_where_scores_show() -> None:
    shared = json.dumps(b.build_card(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True))["blocks"])
    assert "Suggested: Advance (pass mark 60%)" in shared
    below = json.dumps(b.build_card(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True, pass_mark=90))["blocks"])
    assert "Suggested: Reject (pass mark 90%)" in below
    private = json.dumps(b.build_card(_view(AppStatus.NEEDS_REVIEW))["blocks"])
    assert "Suggested" not in private  # pass/fail is private in the channel
    no_mark = json.dumps(b.build_card(_view(AppStatus.NEEDS_REVIEW, share_scores_in_channel=True, pass_mark=None))["blocks"])
    assert "Suggested" not in no_mark


def test_the_decision_buttons_ask_for_confirmation() -> None:
    message = b.build_card(_view(AppStatus.NEEDS_REVIEW))
    assert _button(message, "Advance")["confirm"]["confirm"]["text"] == "Advance"
    assert _button(message, "Reject")["confirm"]["confirm"]["text"] == "Reject" and _button(message, "Reject")["style"] == "danger"


def test_the_status_history_says_who_advanced_rejected_or_undid() -> None:
    assert b.history_words("decided", "advance") == "advanced the candidate"
    assert b.history_words("decided", "reject") == "rejected the candidate"
    assert b.history_words("decision_undone", "reject") == "undid the decision to reject"


def test_every_write_back_remedy_is_worded_and_a_reply_fills_in_its_facts() -> None:
    from bot.ats.writeback import Remedy

    assert set(b.WRITEBACK_REMEDIES) == {str(r) for r in Remedy}
    payload = {
        "template": "writeback_failed",
        "target": "Greenhouse",
        "actor": "URITA",
        "action": "undo_advance",
        "candidate": "Ada <Lovelace>",
        "reason": "the application has moved on in Greenhouse since it was advanced",
        "remedy": str(Remedy.MOVE_BACK),
        "stage": "Tech <Screen>",
        "writeback_id": 7,
    }
    message = b.build_writeback_failed(payload)
    assert "Move it back to Tech &lt;Screen&gt; in Greenhouse by hand" in message["blocks"][0]["text"]["text"]
    assert_valid_message(message["text"], message["blocks"])
    scopes = b.writeback_remedy({**payload, "remedy": str(Remedy.HARVEST_SCOPES)})
    assert "and <@URITA> access to this job" in scopes
    # A reply queued by an older version carries its words, not a code.
    assert b.writeback_remedy({"actor": "URITA", "hint": "Press *Retry*."}) == "Press *Retry*."
