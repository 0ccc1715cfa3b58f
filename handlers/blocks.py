"""Pure Block Kit builders: cards, notices, DMs, modals and App Home. No I/O."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain import (
    AlreadyDecided,
    ApplicationView,
    AppStatus,
    AuditLine,
    CardAction,
    Decision,
    DomainError,
    ExistingResult,
    InvitationView,
    NoteKind,
    NothingToSend,
    OwnerOnly,
    PlanView,
    allowed_actions,
    normalise_key,
)
from handlers import ids

Block = dict[str, Any]
Message = dict[str, Any]

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

HOME_GROUPS: list[tuple[str, tuple[AppStatus, ...]]] = [
    ("Needs sending", (AppStatus.NEEDS_SENDING, AppStatus.SEND_FAILED, AppStatus.SENDING)),
    ("Needs review", (AppStatus.NEEDS_REVIEW,)),
    ("Sent", (AppStatus.SENT,)),
    ("In progress", (AppStatus.IN_PROGRESS,)),
    ("Expired, cancelled or left", (AppStatus.EXPIRED, AppStatus.CANCELLED, AppStatus.LEFT)),
    ("Reviewed", (AppStatus.REVIEWED,)),
]


# -- text helpers -------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Escape user data for mrkdwn, so `<!channel>` in a candidate's name pings nobody."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": mrkdwn(text), **extra}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t, 2000) for t in texts[:10] if t]}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: dict[str, Any] | None = None, url: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    if url:
        element["url"] = url[:3000]
    return element


def confirm(title: str, text: str, yes: str) -> dict[str, Any]:
    return {"title": plain(title, 100), "text": mrkdwn(text, 300), "confirm": plain(yes, 30), "deny": plain("Not now", 30)}


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


def _date(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{value:%Y-%m-%d %H:%M} UTC>"


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


STATUS_NOTES = {
    "expired": "The invitation expired before the candidate took the test. Use *Resend* for a fresh access window.",
    "cancelled": "The invitation was cancelled.",
    "left": "The candidate left the test unfinished. Use *Allow re-attempt* to give them another try.",
    "in_progress": "The candidate started the test.",
}


class SlackRenderer:
    """The outbox's renderer: which builder makes which message."""

    def card(self, view: ApplicationView) -> Message:
        return build_card(view)

    def render(self, template: str, view: ApplicationView | None, payload: dict[str, Any]) -> Message:
        """A queued Slack write's message: a service's facts (`payload`) worded, with the application's view where needed."""
        facts = _FACT_TEMPLATES.get(template)
        if facts is not None:
            return facts(payload)
        if view is None or template == "notice":
            text = str(payload.get("text", ""))
            return {"text": text, "blocks": [section(text)]}
        if template == "completion":
            return build_completion_notice(view, in_channel=not view.card_in_dm)
        if template == "result":
            return build_result_dm(view)
        if template == "link":
            return build_link_dm(view, action=str(payload.get("action", "sent")), actor=payload.get("actor"))
        if template == "reminder":
            return build_reminder_dm(view, kind=str(payload.get("kind", "untouched")))
        if template == "status":
            text = STATUS_NOTES.get(str(payload.get("status")), f"Status: {payload.get('status')}")
            return {"text": text.replace("*", ""), "blocks": [section(text)]}
        text = str(payload.get("text", ""))  # "note": rows queued before the services sent facts
        return {"text": text, "blocks": [section(text)]}


def _text_message(words: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], Message]:
    def message(payload: dict[str, Any]) -> Message:
        text = words(payload)
        return {"text": text, "blocks": [section(text)]}

    return message


def send_failed_notice(payload: dict[str, Any]) -> str:
    return (
        f":warning: Assessment could not be sent to {esc(str(payload.get('candidate', '')))}: "
        f"{esc(str(payload.get('reason', '')))}. Use *Retry* on the card."
    )


ACTION_WORDS = {"sent": "sent", "resent": "resent", "reattempt": "allowed a re-attempt of"}


def event_note(payload: dict[str, Any]) -> str:
    """A thread reply for a service's NoteKind payload: who did what, outside text escaped."""
    actor = f"<@{payload.get('actor')}>"
    kind = NoteKind(str(payload.get("event")))
    if kind is NoteKind.INVITED:
        attempt = int(payload.get("attempt") or 1)
        words = ACTION_WORDS.get(str(payload.get("action")), str(payload.get("action")))
        return f"{actor} {words} {esc(str(payload.get('test_name', '')))}" + (f" (attempt {attempt})" if attempt > 1 else "") + "."
    if kind is NoteKind.REUSED:
        return f"{actor} reused the candidate's existing {esc(str(payload.get('test_name', '')))} result."
    if kind is NoteKind.CANCELLED:
        return f"{actor} cancelled the invitation."
    if kind is NoteKind.REVIEWED:
        return f"{actor} marked the assessment reviewed."
    if kind is NoteKind.ACTION_FAILED:
        return f"{actor} tried: {payload.get('action')}, but {esc(str(payload.get('reason', '')))}."
    decision = Decision(str(payload.get("decision")))
    candidate = esc(str(payload.get("candidate", "")))
    if kind is NoteKind.DECIDED:
        return f"{actor} {decision.past} {candidate} after reviewing the assessment."
    return f"{actor} undid the decision to {decision.value} {candidate}."


def describe(exc: DomainError) -> str:
    """A domain error as the clicker reads it."""
    if isinstance(exc, AlreadyDecided):
        return f"Already {exc.decision.past} by <@{exc.by}>."
    if isinstance(exc, NothingToSend):
        return f"Nothing to send: {headline(exc.view)}."
    if isinstance(exc, OwnerOnly):
        return f"Only {f'<@{exc.owner}>' if exc.owner else 'the card’s owner'} or a workspace admin can {exc.what}."
    return str(exc)


WRITEBACK_WORDS = {
    "advance": "advanced",
    "reject": "rejected",
    "undo_advance": "undid the decision to advance",
    "undo_reject": "undid the decision to reject",
}


# What to do about a failed write-back, by the remedy bot/ats/writeback names ({actor}, {stage}, {target} filled in).
WRITEBACK_REMEDIES: dict[str, str] = {
    "check_gem_feed": "Look at the candidate's activity feed in Gem and press *Retry* only if the note is missing.",
    "gem_key_missing": "An admin can paste one in `/imocha setup`, then press *Retry*.",
    "gem_decision_by_hand": "Record the decision in Gem by hand, or press *Retry*.",
    "gem_key_refused": "An admin can paste a working key in `/imocha setup`, then press *Retry*.",
    "gem_note_by_hand": "Add the note in Gem by hand, or press *Retry*.",
    "harvest_missing": "An admin can enter them in `/imocha setup`, then press *Retry*.",
    "email_scope": "The app needs the `users:read.email` scope (reinstall it from app_manifest.yaml), then press *Retry*.",
    "greenhouse_user": "Add that address to their Greenhouse user (Configure → Users), or make the change in Greenhouse by hand; then press *Retry*.",
    "advance_by_hand": "Advance it in Greenhouse by hand, or press *Retry*.",
    "unreject": "Unreject it in Greenhouse if the candidate should go on, then press *Retry*.",
    "change_by_hand": "Change it in Greenhouse by hand if needed, or press *Retry*.",
    "reject_by_hand": "Reject the application in Greenhouse by hand.",
    "move_back": "Move it back to {stage} in Greenhouse by hand if it should be there, or press *Retry*.",
    "harvest_refused": "An admin can enter working Harvest credentials in `/imocha setup`, then press *Retry*.",
    "greenhouse_account": "Check that their Greenhouse account is active, then press *Retry*.",
    "harvest_scopes": "Give the Harvest credential the scopes in the README's “Decisions written back”, and {actor} access to this job in Greenhouse, then press *Retry*.",
    "application_gone": "Record the decision in Greenhouse by hand, or press *Retry* if the application is back.",
    "greenhouse_by_hand": "Make the change in Greenhouse by hand, or fix it there and press *Retry*.",
    "kept_failing": "Press *Retry* to try again, or make the change in {target} by hand.",
}


def _with_actor(words: str, actor: str) -> str:
    """bot/ats/writeback.py's words, escaped, with the person who decided mentioned where they say {actor}."""
    return esc(words).replace("{actor}", f"<@{actor}>")


def writeback_retried_note(payload: dict[str, Any]) -> str:
    """The thread reply that closes a Retry: written, or there was nothing left to write."""
    target, outcome = esc(str(payload.get("target", "the ATS"))), payload.get("outcome")
    if outcome == "written":
        return f":white_check_mark: Written back to {target} after the retry: {WRITEBACK_WORDS.get(str(payload.get('action')), 'done')}."
    if outcome == "already":
        return f":white_check_mark: Nothing to write after the retry: {target} already shows it."
    return f":white_check_mark: Nothing to write after the retry: {target} has nothing to take back."


def writeback_remedy(payload: dict[str, Any]) -> str:
    """What to do, as mrkdwn; a reply queued before remedies were codes carries its words as `hint`."""
    words = WRITEBACK_REMEDIES.get(str(payload.get("remedy")))
    if words is None:
        return _with_actor(str(payload.get("hint", "")), str(payload.get("actor", "")))
    facts = {"{stage}": esc(str(payload.get("stage") or "the stage it was at")), "{target}": esc(str(payload.get("target", "the ATS")))}
    for slot, value in facts.items():
        words = words.replace(slot, value)
    return words.replace("{actor}", f"<@{payload.get('actor', '')}>")


def build_writeback_failed(payload: dict[str, Any]) -> Message:
    """The thread reply saying a decision did not reach the ATS: what failed, what to do, and Retry."""
    writeback_id = int(payload.get("writeback_id") or 0)
    actor = str(payload.get("actor", ""))
    what = WRITEBACK_WORDS.get(str(payload.get("action")), str(payload.get("action")))
    text = (
        f":warning: *{esc(str(payload.get('target', 'The ATS')))} was not updated.* The bot could not write back that <@{actor}> {what} "
        f"{esc(str(payload.get('candidate', '')))}: {_with_actor(str(payload.get('reason', '')), actor)}.\n"
        f"{writeback_remedy(payload)}"
    )
    return {
        "text": text.replace("*", ""),
        "blocks": [
            section(text),
            {
                "type": "actions",
                "block_id": f"writeback_{writeback_id}",
                "elements": [button("Retry", ids.WRITEBACK_RETRY, str(writeback_id), style="primary")],
            },
        ],
    }


# -- modals -------------------------------------------------------------------------------------


def _modal(callback_id: str, title: str, blocks: list[Block], *, submit: str | None = "Save", metadata: str = "") -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, 24),
        "close": plain("Cancel" if submit else "Close", 24),
        "blocks": blocks,
        "private_metadata": metadata[:3000],
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view


def text_input(
    block_id: str,
    action_id: str,
    label: str,
    *,
    optional: bool = False,
    initial: str | None = None,
    placeholder: str | None = None,
    hint: str | None = None,
    max_length: int = 200,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000), "optional": optional, "element": element}
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def test_select(*, initial: tuple[int, str] | None = None, label: str = "iMocha test") -> Block:
    element: dict[str, Any] = {
        "type": "external_select",
        "action_id": ids.TEST_INPUT,
        "placeholder": plain("Search your iMocha tests", 150),
        "min_query_length": 0,
    }
    if initial:
        element["initial_option"] = {"text": plain(clip(initial[1], 75), 75), "value": str(initial[0])}
    return {"type": "input", "block_id": ids.TEST_BLOCK, "label": plain(label), "element": element}


def channel_select(block_id: str, action_id: str, label: str, *, initial: str | None) -> Block:
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": action_id,
        "placeholder": plain("Pick a channel", 150),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if initial:
        element["initial_conversation"] = initial
    return {"type": "input", "block_id": block_id, "label": plain(label), "optional": True, "element": element}


def build_setup_modal(
    *,
    has_key: bool,
    default_channel: str | None,
    validity_days: int,
    has_gem_key: bool = False,
    has_harvest: bool = False,
    harvest_client_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    key_hint = (
        "A key is set and is never shown again. Leave this empty to keep it, or paste a new key to replace it."
        if has_key
        else "From iMocha: Settings → Integrations → API key. It is checked live and stored encrypted."
    )
    blocks: list[Block] = []
    if error:
        blocks.append(section(f":warning: *{esc(error)}*"))
    blocks += [
        text_input(ids.KEY_BLOCK, ids.KEY_INPUT, "iMocha API key", optional=has_key, hint=key_hint, max_length=300),
        channel_select(ids.DEFAULT_CHANNEL_BLOCK, ids.DEFAULT_CHANNEL_INPUT, "Default hiring channel", initial=default_channel),
        {
            "type": "input",
            "block_id": ids.VALIDITY_BLOCK,
            "label": plain("Invitation valid for (days)"),
            "optional": True,
            "element": whole_number(ids.VALIDITY_INPUT, 1, 90, initial=validity_days),
        },
        *_vendor_inputs(has_gem_key=has_gem_key, has_harvest=has_harvest, harvest_client_id=harvest_client_id),
    ]
    return _modal(ids.SETUP_VIEW, "iMocha setup", blocks)


def whole_number(action_id: str, low: int, high: int, *, initial: int | None = None) -> dict[str, Any]:
    """A `number_input` element for a whole number from `low` to `high`."""
    element: dict[str, Any] = {
        "type": "number_input",
        "action_id": action_id,
        "is_decimal_allowed": False,
        "min_value": str(low),
        "max_value": str(high),
    }
    if initial is not None:
        element["initial_value"] = str(initial)
    return element


def _vendor_inputs(*, has_gem_key: bool, has_harvest: bool, harvest_client_id: str | None) -> list[Block]:
    """The setup modal's optional ATS credentials: Gem's key and Greenhouse's Harvest V3 client."""
    return [
        text_input(
            ids.GEM_KEY_BLOCK,
            ids.GEM_KEY_INPUT,
            "Gem API key",
            optional=True,
            max_length=300,
            hint=("A Gem key is set; paste a new one to replace it." if has_gem_key else "Optional, for Gem ATS intake."),
        ),
        text_input(
            ids.HARVEST_ID_BLOCK,
            ids.HARVEST_ID_INPUT,
            "Greenhouse Harvest client ID",
            optional=True,
            initial=harvest_client_id,
            max_length=200,
            hint=(
                "Optional: Advance and Reject are then written back to Greenhouse, as the person who clicks. "
                "In Greenhouse: Configure → Dev Center → API Credentials → Harvest V3 (OAuth)."
            ),
        ),
        text_input(
            ids.HARVEST_SECRET_BLOCK,
            ids.HARVEST_SECRET_INPUT,
            "Greenhouse Harvest client secret",
            optional=True,
            max_length=300,
            hint=(
                "A secret is set and is never shown again. Leave this empty to keep it, or paste a new one with its client ID."
                if has_harvest
                else "The secret of that Harvest V3 credential. It is checked live and stored encrypted."
            ),
        ),
    ]


def build_message_modal(title: str, text: str) -> dict[str, Any]:
    return _modal(ids.INFO_VIEW, title, [section(text)], submit=None)


def build_plan_modal(*, plan: PlanView | None = None) -> dict[str, Any]:
    share_option = {"text": plain("Show scores, pass/fail and the report in the channel"), "value": "share"}
    share: dict[str, Any] = {"type": "checkboxes", "action_id": ids.SHARE_INPUT, "options": [share_option]}
    if plan and plan.share_scores_in_channel:
        share["initial_options"] = [share_option]
    # Ticked means off, so that a plan saved without this field keeps its digest.
    digest_off = {"text": plain("No weekly digest for this plan"), "value": "off"}
    digest: dict[str, Any] = {"type": "checkboxes", "action_id": ids.DIGEST_INPUT, "options": [digest_off]}
    if plan and not plan.weekly_digest:
        digest["initial_options"] = [digest_off]
    pass_mark = whole_number(ids.PASS_MARK_INPUT, 0, 100, initial=plan.pass_mark if plan else None)
    blocks: list[Block] = [
        text_input(
            ids.JOB_BLOCK,
            ids.JOB_INPUT,
            "Job",
            initial=plan.job_label if plan else None,
            placeholder="Job name or ATS job id",
            hint="Matched case-insensitively against the ATS job id or name.",
        ),
        text_input(ids.STAGE_BLOCK, ids.STAGE_INPUT, "Stage", initial=plan.stage_label if plan else "iMocha assessment"),
        test_select(initial=(plan.test_id, plan.test_name) if plan else None),
        channel_select(ids.CHANNEL_BLOCK, ids.CHANNEL_INPUT, "Hiring channel", initial=plan.channel_id if plan else None),
        {"type": "input", "block_id": ids.PASS_MARK_BLOCK, "label": plain("Pass mark (%)"), "optional": True, "element": pass_mark},
        {
            "type": "input",
            "block_id": ids.SHARE_BLOCK,
            "label": plain("Share scores in channel"),
            "optional": True,
            "element": share,
            "hint": plain("Off: the channel hears that the test is complete, with a Show score button that answers privately."),
        },
        {
            "type": "input",
            "block_id": ids.DIGEST_BLOCK,
            "label": plain("Weekly digest"),
            "optional": True,
            "element": digest,
            "hint": plain("Every Monday 09:00 the channel gets last week's figures and a chart (no scores unless shared)."),
        },
    ]
    return _modal(
        ids.PLAN_VIEW,
        "Edit interview plan" if plan else "New interview plan",
        blocks,
        metadata=json.dumps({"plan_id": plan.id}) if plan else "",
    )


# Two blocks a plan, plus a heading and a "more" line, within a message's 50 blocks.
PLANS_SHOWN = 24


def build_plans_list(plans: Sequence[PlanView]) -> list[Block]:
    blocks: list[Block] = [section("*Interview plans*" if plans else "No interview plans yet. Create one with `/imocha plan`.")]
    for plan in plans[:PLANS_SHOWN]:
        details = [f"*{esc(plan.job_label)}* · {esc(plan.stage_label)} → {esc(plan.test_name)}"]
        extras = [
            f"<#{plan.channel_id}>" if plan.channel_id else "default channel",
            f"pass mark {plan.pass_mark}%" if plan.pass_mark is not None else "no pass mark",
            "scores shared" if plan.share_scores_in_channel else "scores private",
            "weekly digest" if plan.weekly_digest else "no digest",
            f"by <@{plan.created_by}>",
        ]
        details.append(" · ".join(extras))
        blocks.append(
            section(
                "\n".join(details),
                accessory={
                    "type": "overflow",
                    "action_id": f"{ids.PLAN_EDIT}_menu",
                    "options": [
                        {"text": plain("Edit", 75), "value": f"edit:{plan.id}"},
                        {"text": plain("Remove", 75), "value": f"remove:{plan.id}"},
                    ],
                },
            )
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"plan_{plan.id}",
                "elements": [
                    button("Edit", ids.PLAN_EDIT, str(plan.id)),
                    button(
                        "Remove",
                        ids.PLAN_REMOVE,
                        str(plan.id),
                        style="danger",
                        confirm=confirm(
                            "Remove this plan?",
                            f"New candidates reaching *{esc(plan.stage_label)}* for *{esc(plan.job_label)}* will no longer get a card.",
                            "Remove",
                        ),
                    ),
                ],
            }
        )
    if len(plans) > PLANS_SHOWN:
        blocks.append(context(f"…and {len(plans) - PLANS_SHOWN} more."))
    return blocks


def build_send_modal(view: ApplicationView, existing: Sequence[ExistingResult]) -> dict[str, Any]:
    blocks: list[Block] = [
        section(
            f"Send *{esc(view.test_name)}* to *{esc(view.candidate_name)}* ({esc(view.candidate_email or 'no email')}) for *{esc(view.job_name)}*?\n"
            "iMocha emails the candidate the link, and you get it by DM too."
        ),
        test_select(initial=(view.test_id, view.test_name)),
    ]
    if existing:
        first = existing[0]
        inv = first.invitation
        status = inv.status.replace("_", " ")
        score = score_line(inv)
        blocks.append(
            section(
                f":information_source: {esc(view.candidate_name)} already has *{esc(inv.test_name)}* from the *{esc(first.job_name)}* application: "
                f"{status}" + (f", {score}" if score else "") + "."
            )
        )
        options = [{"text": plain("Reuse this result"), "value": ids.USE_REUSE}]
        if inv.status in ("complete", "test_left", "terminated"):
            options.append({"text": plain("Send a re-attempt"), "value": ids.USE_REATTEMPT})
        blocks.append(
            {
                "type": "input",
                "block_id": ids.USE_BLOCK,
                "label": plain("Use"),
                "element": {"type": "radio_buttons", "action_id": ids.USE_INPUT, "options": options, "initial_option": options[0]},
            }
        )
    return _modal(ids.SEND_VIEW, "Send assessment", blocks, submit="Send", metadata=json.dumps({"application_id": view.id}))


def build_manual_send_modal() -> dict[str, Any]:
    blocks: list[Block] = [
        text_input(ids.NAME_BLOCK, ids.NAME_INPUT, "Candidate name", max_length=200),
        text_input(ids.EMAIL_BLOCK, ids.EMAIL_INPUT, "Candidate email", max_length=320, placeholder="name@example.com"),
        text_input(ids.JOB_BLOCK, ids.JOB_INPUT, "Job", max_length=200),
        test_select(),
    ]
    return _modal(ids.MANUAL_SEND_VIEW, "Send an assessment", blocks, submit="Next")


# -- commands -----------------------------------------------------------------------------------

HELP = (
    "*iMocha assessments* — commands:\n"
    "• `/imocha setup` — connect iMocha (admins)\n"
    "• `/imocha plan` — bind a job's stage to an iMocha test and a hiring channel\n"
    "• `/imocha plans` — list, edit or remove plans\n"
    "• `/imocha send` — send an assessment to a candidate by hand\n"
    "• `/imocha status <email>` — a candidate's assessments and their history\n"
    "• `/imocha resync` — replay missed iMocha callbacks and poll now (admins)\n"
    "• `/imocha digest` — post this week's digest with its chart to each plan's channel (admins)\n"
    "• `/imocha help` — this list\n"
    "Open the app's *Home* tab for the queue."
)


# Audit actions whose stored name does not read as a verb phrase after the actor. A failed re-attempt
# is stored as "re-attempt" (bot/assessments.py's _action_failed).
_HISTORY_WORDS = {
    "reattempt": "allowed a re-attempt",
    "re-attempt": "allowed a re-attempt",
    "writeback": "wrote the decision back to the ATS",
    "writeback_retry": "retried writing the decision back to the ATS",
}


def history_words(action: str, detail: str | None = None) -> str:
    """What an audit action reads as in a history line: "<actor> allowed a re-attempt"."""
    if action == "decided" and detail in set(Decision):
        return f"{Decision(detail).past} the candidate"
    if action == "decision_undone" and detail in set(Decision):
        return f"undid the decision to {detail}"
    return _HISTORY_WORDS.get(action) or action.replace("_", " ")


def build_status_report(email: str, rows: Sequence[tuple[ApplicationView, Sequence[AuditLine]]]) -> list[Block]:
    if not rows:
        return [section(f"No assessments found for {esc(email)}.")]
    blocks: list[Block] = [section(f"*Assessments for {esc(email)}*")]
    for view, history in rows[:15]:
        lines = [f"*{esc(view.job_name)}* · {esc(view.test_name)} · {headline(view)}"]
        if view.invitation:
            score = score_line(view.invitation)
            if score and view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED):
                lines.append(f"Score: {score}" + (f" · {verdict(view)}" if verdict(view) else ""))
        for entry in list(history)[-8:]:
            who = f"<@{entry.actor}>" if entry.actor[:1] in ("U", "W") else entry.actor
            outcome = "" if entry.outcome == "ok" else f" ({entry.outcome}: {esc(entry.detail or '')})"
            lines.append(f"• {_date(entry.at)} {who} {history_words(entry.action, entry.detail)}{outcome}")
        blocks.append(section("\n".join(lines)))
    return blocks[:50]


# -- App Home -----------------------------------------------------------------------------------


def home_item(view: ApplicationView) -> list[Block]:
    text = f"*{esc(view.candidate_name)}* · {esc(view.test_name)} · {headline(view)}"
    if (
        view.invitation
        and view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)
        and (view.share_scores_in_channel or view.card_in_dm)
    ):
        score = score_line(view.invitation)
        if score:
            text += f"\n{score}" + (f" · {verdict(view)}" if verdict(view) else "")
    blocks: list[Block] = [section(text)]
    actions = card_actions(view, in_channel=True)
    if actions:
        blocks.append({"type": "actions", "block_id": f"home_{view.id}", "elements": actions[:5]})
    return blocks


def build_home(
    *,
    jobs: Sequence[tuple[str, dict[AppStatus, int], Sequence[ApplicationView]]],
    total: int,
    shown: int,
    page: int,
    configured: bool,
    is_admin: bool,
    week: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """App Home: the queue per job, grouped by status with counts; within Slack's 100-block limit.

    `week` maps a job's normalised name to its line of this week's digest figures (no extra block)."""
    blocks: list[Block] = [
        {"type": "header", "text": plain("iMocha assessments", 150)},
        {
            "type": "actions",
            "block_id": "home_top",
            "elements": [button("Refresh", ids.HOME_REFRESH, "0"), button("New plan", ids.PLAN_NEW, "0")],
        },
    ]
    if not configured:
        blocks.append(
            section(
                ":gear: iMocha is not connected yet."
                + (" Run `/imocha setup` to paste the API key." if is_admin else " Ask a Slack admin to run `/imocha setup`.")
            )
        )
    if not jobs:
        blocks.append(section("Nothing in your queue. Cards appear here when candidates reach a planned stage, or after `/imocha send`."))
    budget = 92
    for job_name, counts, items in jobs:
        if len(blocks) >= budget:
            break
        summary = " · ".join(
            f"{label}: {sum(counts.get(s, 0) for s in statuses)}"
            for label, statuses in HOME_GROUPS
            if sum(counts.get(s, 0) for s in statuses)
        )
        blocks.append({"type": "divider"})
        figures = (week or {}).get(normalise_key(job_name))
        blocks.append(section(f"*{esc(job_name)}*\n{summary}" + (f"\n_{esc(figures)}_" if figures else "")))
        for label, statuses in HOME_GROUPS:
            group = [v for v in items if v.status in statuses]
            if not group or len(blocks) >= budget:
                continue
            blocks.append(context(f"*{label}*"))
            for view in group:
                if len(blocks) + 2 > budget:
                    break
                blocks.extend(home_item(view))
    if shown < total:
        blocks.append({"type": "divider"})
        blocks.append(context(f"Showing the newest {shown} of {total} applications."))
        blocks.append({"type": "actions", "block_id": "home_more", "elements": [button("Show more", ids.HOME_MORE, str(page + 1))]})
    return {"type": "home", "blocks": blocks[:100]}


# Templates worded from the payload's facts alone (no application view needed).
_FACT_TEMPLATES: dict[str, Callable[[dict[str, Any]], Message]] = {
    "event": _text_message(lambda payload: event_note(payload)),
    "send_failed": _text_message(lambda payload: send_failed_notice(payload)),
    "writeback_failed": lambda payload: build_writeback_failed(payload),
    "writeback_retried": _text_message(lambda payload: writeback_retried_note(payload)),
}
