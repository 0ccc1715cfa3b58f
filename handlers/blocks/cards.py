"""The card and what is said about one application: its headline, score, verdict and buttons, and the
notices and DMs made from it (completion notice, result DM, score ephemeral, link DM, reminder DM)."""

from __future__ import annotations

from typing import Any

from bot.domain import ApplicationView, AppStatus, CardAction, Decision, InvitationView, allowed_actions
from handlers import ids
from handlers.blocks.kit import Block, Message, _date, button, clip, confirm, context, esc, section

HEADLINES = {
    AppStatus.NEEDS_SENDING: "Assessment needs sending",
    AppStatus.SENDING: "Sending assessment…",
    AppStatus.SEND_FAILED: "Assessment could not be sent",
    AppStatus.SENT: "Assessment sent",
    AppStatus.IN_PROGRESS: "Assessment in progress",
    AppStatus.NEEDS_REVIEW: "Assessment needs review",
    AppStatus.REVIEWED: "Assessment reviewed",
    AppStatus.EXPIRED: "Assessment expired",
    AppStatus.CANCELLED: "Assessment cancelled",
    AppStatus.LEFT: "Assessment left unfinished",
}

DECISION_EMOJI = {Decision.ADVANCE: ":white_check_mark:", Decision.REJECT: ":no_entry_sign:"}

EMOJI = {
    AppStatus.NEEDS_SENDING: ":envelope:",
    AppStatus.SENDING: ":hourglass_flowing_sand:",
    AppStatus.SEND_FAILED: ":warning:",
    AppStatus.SENT: ":outbox_tray:",
    AppStatus.IN_PROGRESS: ":pencil2:",
    AppStatus.NEEDS_REVIEW: ":clipboard:",
    AppStatus.REVIEWED: ":white_check_mark:",
    AppStatus.EXPIRED: ":alarm_clock:",
    AppStatus.CANCELLED: ":no_entry_sign:",
    AppStatus.LEFT: ":door:",
}


def headline(view: ApplicationView) -> str:
    """The status headline as mrkdwn: the reviewer stays a mention, the failure reason is escaped."""
    if view.decision is not None:
        return f"{view.decision.past.capitalize()} by <@{esc(view.decided_by)}>" if view.decided_by else view.decision.past.capitalize()
    if view.status == AppStatus.SEND_FAILED:
        return f"Assessment could not be sent: {esc(view.status_reason or 'unknown error')}"
    if view.status == AppStatus.REVIEWED:
        return f"Assessment reviewed by <@{esc(view.reviewed_by)}>" if view.reviewed_by else "Assessment reviewed"
    return HEADLINES[view.status]


def score_line(inv: InvitationView) -> str | None:
    if inv.candidate_points is None or inv.total_points is None:
        if inv.percentage is None:
            return None
        return f"{_num(inv.percentage)}%"
    pct = inv.percentage if inv.percentage is not None else (100 * inv.candidate_points / inv.total_points if inv.total_points else 0)
    return f"{_num(inv.candidate_points)} / {_num(inv.total_points)} points ({_num(pct)}%)"


def verdict(view: ApplicationView) -> str | None:
    passed = view.passed
    if passed is None:
        return None
    return "Passed" if passed else f"Below pass mark ({view.pass_mark}%)"


def bar(score: float, maximum: float, width: int = 10) -> str:
    filled = 0 if maximum <= 0 else max(0, min(width, round(width * score / maximum)))
    return "█" * filled + "░" * (width - filled)


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


# -- the card -----------------------------------------------------------------------------------


def card_actions(view: ApplicationView, *, in_channel: bool) -> list[dict[str, Any]]:
    """The card's buttons: the actions bot.domain.allowed_actions gives its status, then the result links."""
    value = str(view.id)
    name = esc(view.candidate_name)
    test = esc(view.test_name)
    resend_confirm = confirm("Resend the invitation?", f"iMocha emails {name} again with a fresh access window.", "Resend")
    reattempt_confirm = confirm("Allow a re-attempt?", f"{name} gets a new link for another attempt of *{test}*.", "Allow re-attempt")
    allowed = allowed_actions(view.status, has_email=bool(view.candidate_email), decision=view.decision, undo_open=view.undo_open)
    buttons: list[dict[str, Any]] = []
    for action in allowed:
        if action is CardAction.UNDO:
            buttons.append(button("Undo", ids.UNDO_DECISION, value))
        elif action is CardAction.SEND:
            primary = CardAction.RETRY not in allowed
            buttons.append(button("Send assessment", ids.SEND, value, style="primary" if primary else None))
        elif action is CardAction.RETRY:
            buttons.append(button("Retry", ids.RETRY, value, style="primary"))
        elif action is CardAction.CANCEL:
            cancel_confirm = confirm("Cancel invitation?", f"{name} will no longer be able to take *{test}*.", "Cancel invitation")
            buttons.append(button("Cancel invitation", ids.CANCEL, value, style="danger", confirm=cancel_confirm))
        elif action is CardAction.RESEND:
            primary = view.status in (AppStatus.EXPIRED, AppStatus.CANCELLED)
            buttons.append(button("Resend", ids.RESEND, value, style="primary" if primary else None, confirm=resend_confirm))
        elif action is CardAction.MARK_REVIEWED:
            buttons.append(button("Mark reviewed", ids.REVIEWED, value, style="primary"))
        elif action is CardAction.REATTEMPT:
            buttons.append(button("Allow re-attempt", ids.REATTEMPT, value, confirm=reattempt_confirm))
        elif action is CardAction.ADVANCE:
            advance_confirm = confirm("Advance the candidate?", f"{name} moves on; the hiring channel hears who decided.", "Advance")
            buttons.append(button("Advance", ids.ADVANCE, value, confirm=advance_confirm))
        elif action is CardAction.REJECT:
            reject_confirm = confirm("Reject the candidate?", f"{name} is rejected; the hiring channel hears who decided.", "Reject")
            buttons.append(button("Reject", ids.REJECT, value, style="danger", confirm=reject_confirm))
    inv = view.invitation
    finished = view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)
    if finished and inv is not None:
        if in_channel and not view.share_scores_in_channel:
            buttons.append(button("Show score", ids.SHOW_SCORE, value))
        elif inv.report_url:
            buttons.append(button("iMocha report", ids.REPORT_LINK, value, url=inv.report_url))
    return buttons


def result_blocks(view: ApplicationView) -> list[Block]:
    inv = view.invitation
    if inv is None:
        return []
    lines = []
    score = score_line(inv)
    if score:
        lines.append(f"*Score:* {score}")
    verdict_text = verdict(view)
    if verdict_text:
        lines.append(f"*Result:* {verdict_text}")
    if inv.performance_category:
        lines.append(f"*Performance:* {esc(inv.performance_category)}")
    if inv.report_url:
        lines.append(f"<{inv.report_url}|iMocha report>")
    blocks: list[Block] = [section("\n".join(lines))] if lines else []
    if inv.sections:
        rows = [
            f"`{bar(sec.score, sec.max_score)}` {esc(sec.name)}: {_num(sec.score)} / {_num(sec.max_score)}" for sec in inv.sections[:12]
        ]
        blocks.append(section("\n".join(rows)))
    return blocks


def build_card(view: ApplicationView) -> Message:
    """The application's card: headline, who and what, result when allowed, and the status's buttons."""
    in_channel = not view.card_in_dm
    title = headline(view)
    facts = [
        f"*Candidate:* {esc(view.candidate_name)}" + (f" ({esc(view.candidate_email)})" if view.candidate_email else ""),
        f"*Job:* {esc(view.job_name)}",
        f"*Stage:* {esc(view.stage_name)}",
        f"*Test:* {esc(view.test_name)}" + (f" · attempt {view.attempt}" if view.attempt > 1 else ""),
    ]
    if view.owner_user_id:
        facts.append(f"*Owner:* <@{view.owner_user_id}>")
    blocks: list[Block] = [
        section(f"{DECISION_EMOJI[view.decision] if view.decision else EMOJI[view.status]} *{title}*"),
        section("\n".join(facts)),
    ]
    finished = view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)
    if finished:
        if in_channel and not view.share_scores_in_channel:
            blocks.append(
                context(
                    "Completed, assessment needs review. Scores are private here: use *Show score*."
                    if view.status == AppStatus.NEEDS_REVIEW
                    else "Scores are private here: use *Show score*."
                )
            )
        else:
            blocks.extend(result_blocks(view))
            if view.decision is None and view.passed is not None:
                blocks.append(context(f"Suggested: {'Advance' if view.passed else 'Reject'} (pass mark {view.pass_mark}%)"))
    notes = []
    if not view.candidate_email:
        notes.append(":warning: The ATS has no email address for this candidate, so the assessment can't be sent. Add one in the ATS.")
    if view.reused_from:
        notes.append(f"Result shared with the *{esc(view.reused_from)}* application (one iMocha attempt).")
    inv = view.invitation
    if inv is not None and view.status in (AppStatus.SENT, AppStatus.IN_PROGRESS) and inv.valid_until:
        notes.append(f"Link valid until {_date(inv.valid_until)}")
    if view.status == AppStatus.LEFT:
        notes.append("The candidate left the test before finishing.")
    if notes:
        blocks.append(context(*notes))
    actions = card_actions(view, in_channel=in_channel)
    if actions:
        blocks.append({"type": "actions", "block_id": f"card_{view.id}", "elements": actions})
    text = f"{title}: {esc(view.candidate_name)} · {esc(view.job_name)} · {esc(view.test_name)}"
    return {"text": clip(text, 3000), "blocks": blocks}


# -- notices and DMs ----------------------------------------------------------------------------


def build_completion_notice(view: ApplicationView, *, in_channel: bool) -> Message:
    """The one channel message a completion makes (a broadcast thread reply)."""
    text = f"{esc(view.candidate_name)} completed {esc(view.test_name)}, assessment needs review"
    blocks: list[Block] = [section(f":tada: {text}")]
    if not in_channel or view.share_scores_in_channel:
        blocks.extend(result_blocks(view))
    else:
        blocks.append(
            {"type": "actions", "block_id": f"notice_{view.id}", "elements": [button("Show score", ids.SHOW_SCORE, str(view.id))]}
        )
    return {"text": text, "blocks": blocks}


def build_result_dm(view: ApplicationView) -> Message:
    blocks = [section(f":clipboard: *{esc(view.candidate_name)}* completed *{esc(view.test_name)}* for {esc(view.job_name)}.")]
    blocks.extend(result_blocks(view))
    if view.status == AppStatus.LEFT:
        blocks.append(context("The candidate left the test before finishing."))
    return {"text": f"{esc(view.candidate_name)} completed {esc(view.test_name)}", "blocks": blocks}


def build_score_ephemeral(view: ApplicationView) -> Message:
    blocks = [section(f"*{esc(view.candidate_name)}* · {esc(view.test_name)}")]
    blocks.extend(result_blocks(view) or [section("No score yet.")])
    return {"text": f"Score for {esc(view.candidate_name)}", "blocks": blocks}


def build_link_dm(view: ApplicationView, *, action: str, actor: str | None) -> Message:
    inv = view.invitation
    url = inv.test_url if inv else ""
    verb = {"sent": "Assessment sent", "resent": "Assessment resent", "reattempt": f"Re-attempt allowed (attempt {view.attempt})"}.get(
        action, "Assessment sent"
    )
    who = f" by <@{actor}>" if actor else ""
    lines = [
        f":outbox_tray: *{verb}*{who}: *{esc(view.test_name)}* for *{esc(view.candidate_name)}* ({esc(view.candidate_email or '')}), {esc(view.job_name)}.",
        f"Test link: <{url}|{esc(clip(url, 200))}>",
        "iMocha emailed it to the candidate. Gem also shows the link so it can be sent another way.",
    ]
    if inv and inv.valid_until:
        lines.append(f"Valid until {_date(inv.valid_until)}.")
    return {"text": f"{verb}: {esc(view.candidate_name)}, test link {url}", "blocks": [section("\n".join(lines))]}


def build_reminder_dm(view: ApplicationView, *, kind: str) -> Message:
    if kind == "expiring":
        text = (
            f":alarm_clock: *{esc(view.candidate_name)}*'s {esc(view.test_name)} link expires within 24 hours and the test is not started."
        )
    else:
        text = f":wave: *{esc(view.candidate_name)}* has not started {esc(view.test_name)} ({esc(view.job_name)}) yet."
    blocks: list[Block] = [
        section(text),
        {
            "type": "actions",
            "block_id": f"reminder_{view.id}",
            "elements": [
                button(
                    "Resend",
                    ids.RESEND,
                    str(view.id),
                    confirm=confirm("Resend the invitation?", "iMocha emails the candidate again with a fresh access window.", "Resend"),
                )
            ],
        },
    ]
    return {"text": text.replace("*", ""), "blocks": blocks}
