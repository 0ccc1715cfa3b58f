"""Decisions written to Gem as a note on the candidate (bot/ats/writeback/ tells the whole story).

Owns one claimed row's Gem note: the note's words (`gem_note_body`: what was decided in Slack, by whom,
and what to do in Gem, whose API cannot move stages, or that the decision was undone), sending it at most
once (a note marked as sent is never sent again: Gem's notes cannot be read back), and the mapping of
Gem's errors to `Permanent` (fail now, with a hint) or `Later` (retry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bot.ats import gem
from bot.ats.writeback.job import (
    ADVANCE,
    NOT_NEEDED,
    NOTE_FOOTER,
    REJECT,
    UNDO_ADVANCE,
    UNDO_REJECT,
    WRITTEN,
    Job,
    Later,
    Permanent,
    RateLimits,
    Remedy,
    actor_email,
)
from bot.ats.writeback.rows import WritebackRows
from bot.domain import Decision
from bot.workspace.settings import Workspaces


class GemWriter:
    """Writes one claimed row's decision, or its undo, to Gem as a note; returns the outcome or raises Permanent / Later / Lost."""

    def __init__(
        self,
        *,
        workspaces: Workspaces,
        gem_clients: Callable[[str], gem.GemClient],
        slack_email: Callable[[str, str], str | None],
        gem_author: Callable[[int, gem.GemClient, str, str | None], str | None] | None,
        rows: WritebackRows,
        limits: RateLimits,
    ):
        self._workspaces = workspaces
        self._gem = gem_clients
        self._slack_email = slack_email
        self._gem_author = gem_author
        self._rows = rows
        self._limits = limits

    def write(self, job: Job) -> tuple[str, dict[str, Any]]:
        if job.action in (UNDO_ADVANCE, UNDO_REJECT) and (job.forward or {}).get("outcome") != WRITTEN:
            return NOT_NEEDED, {}  # no note about the decision reached Gem: none is needed about its undo
        if job.payload.get("posted"):
            raise Permanent(
                "the bot was interrupted while writing this note to Gem, so the note may be there already",
                Remedy.CHECK_GEM_FEED,
            )
        key = self._workspaces.gem_key(job.workspace_id)
        if key is None:
            raise Permanent("the workspace has no Gem API key any more", Remedy.GEM_KEY_MISSING)
        if not job.external_candidate_id:
            raise Permanent("the application has no Gem candidate id", Remedy.GEM_DECISION_BY_HAND)
        email = actor_email(self._slack_email, job)
        client = self._gem(key)
        try:
            author = self._gem_author(job.workspace_id, client, job.job_external_id, email) if self._gem_author else None
            self._rows.start_write(job)
            client.add_note(job.external_candidate_id, body=gem_note_body(job, email), user_id=author, visibility="private")
        except gem.GemError as exc:
            raise self._failure(job, exc) from exc
        return WRITTEN, {}

    def _failure(self, job: Job, exc: gem.GemError) -> Exception:
        sent = isinstance(exc, gem.GemConnectionError) and not isinstance(
            exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
        if not sent:
            self._rows.note(job, posted=False)  # Gem answered, or was never reached: no note was written
        if isinstance(exc, gem.GemRateLimitError):
            wait = self._limits.pause(job.target, job.workspace_id, exc.retry_after)
            return Later("Gem is rate-limiting the key (HTTP 429)", wait)
        if isinstance(exc, gem.GemConnectionError | gem.GemServerError):
            return Later(exc.message)
        if isinstance(exc, gem.GemAuthError):
            return Permanent(
                f"Gem refused the workspace's API key (HTTP {exc.status_code})",
                Remedy.GEM_KEY_REFUSED,
            )
        return Permanent(f"Gem said: {exc.message}", Remedy.GEM_NOTE_BY_HAND)


def gem_note_body(job: Job, email: str | None) -> str:
    """The note for the candidate's Gem activity feed: what was decided in Slack, by whom, and what to do in Gem."""
    who = f" by {email}" if email else ""
    if job.action in (ADVANCE, REJECT):
        decision = Decision(job.action)
        lines = [
            f"{decision.past.capitalize()} in Slack{who} after the iMocha assessment{f' ({job.score})' if job.score else ''}.",
            f"Job: {job.job_name}, stage {job.stage_name}.",
            "Gem's API cannot move stages: "
            + ("move the application to the next stage in Gem." if decision is Decision.ADVANCE else "reject the application in Gem."),
        ]
    else:
        taken = "advance" if job.action == UNDO_ADVANCE else "reject"
        lines = [f"The decision to {taken} this candidate was undone in Slack{who}; the earlier note no longer stands."]
    lines.append(NOTE_FOOTER)
    return "\n".join(lines)[: gem.NOTE_MAX_CHARS]
