"""How the outbox's queued facts read in Slack: SlackRenderer, the thread notes, a domain error as the
clicker reads it (describe), and a failed write-back's words and remedies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.domain import AlreadyDecided, ApplicationView, Decision, DomainError, NoteKind, NothingToSend, OwnerOnly
from handlers import ids
from handlers.blocks.cards import (
    build_card,
    build_completion_notice,
    build_link_dm,
    build_reminder_dm,
    build_result_dm,
    headline,
)
from handlers.blocks.kit import Message, button, esc, section

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


# -- write-back failures ------------------------------------------------------------------------


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
    """bot/ats/writeback/'s words, escaped, with the person who decided mentioned where they say {actor}."""
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


# Templates worded from the payload's facts alone (no application view needed).
_FACT_TEMPLATES: dict[str, Callable[[dict[str, Any]], Message]] = {
    "event": _text_message(lambda payload: event_note(payload)),
    "send_failed": _text_message(lambda payload: send_failed_notice(payload)),
    "writeback_failed": lambda payload: build_writeback_failed(payload),
    "writeback_retried": _text_message(lambda payload: writeback_retried_note(payload)),
}
