"""Decisions written to Greenhouse through Harvest v3 (bot/ats/writeback/ tells the whole story).

Owns one claimed row's Greenhouse write: the Advance, Reject and the two Undo reverses, each checked
against the application's state in Greenhouse before it is made and made as the clicker's Greenhouse
user; noting on the row that a write is being sent (`payload.posted`) before sending it; and the
mapping of Harvest's errors to `Permanent` (fail now, with a hint) or `Later` (retry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.ats import greenhouse
from bot.ats.writeback.job import (
    ACTOR,
    ADVANCE,
    ALREADY,
    CANCELLED,
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
from bot.workspace.settings import Workspaces

log = logging.getLogger("bot.ats.writeback")

Outcome = tuple[str, dict[str, Any]]  # the row's outcome and what to keep in its payload


class GreenhouseWriter:
    """Writes one claimed row's decision, or its undo, to Greenhouse; returns the outcome or raises Permanent / Later / Lost."""

    def __init__(
        self,
        *,
        workspaces: Workspaces,
        harvest_clients: Callable[[greenhouse.HarvestCredentials], greenhouse.HarvestClient],
        slack_email: Callable[[str, str], str | None],
        rows: WritebackRows,
        limits: RateLimits,
    ):
        self._workspaces = workspaces
        self._harvest = harvest_clients
        self._slack_email = slack_email
        self._rows = rows
        self._limits = limits

    def write(self, job: Job) -> Outcome:
        creds = self._workspaces.harvest_credentials(job.workspace_id)
        if creds is None:
            raise Permanent(
                "the workspace has no Greenhouse Harvest credentials any more",
                Remedy.HARVEST_MISSING,
            )
        forward = job.forward or {}
        if job.action in (UNDO_ADVANCE, UNDO_REJECT) and forward.get("outcome") in (ALREADY, CANCELLED, NOT_NEEDED):
            return NOT_NEEDED, {}  # the decision never reached Greenhouse through this bot: nothing to take back
        client = self._harvest(creds)
        try:
            app = client.application(job.external_id)
            posted = bool(job.payload.get("posted"))

            def user() -> int:  # asked only when a write is due: nothing to write needs no Greenhouse user
                return self._acting_user(job, client).id

            if job.action == ADVANCE:
                return self._advance(job, client, app, user, posted)
            if job.action == REJECT:
                return self._reject(job, client, app, user, posted)
            if job.action == UNDO_ADVANCE:
                return self._undo_advance(job, client, app, user, posted, forward.get("payload") or {})
            return self._undo_reject(job, client, app, user, posted)
        except greenhouse.HarvestError as exc:
            raise self._failure(job, exc) from exc

    def _acting_user(self, job: Job, client: greenhouse.HarvestClient) -> greenhouse.HarvestUser:
        email = actor_email(self._slack_email, job)
        if not email:
            raise Permanent(
                f"Slack gave no email address for {ACTOR}, so the bot cannot tell which Greenhouse user decided",
                Remedy.EMAIL_SCOPE,
            )
        user = client.find_user(email)
        if user is None:
            raise Permanent(
                f"no active Greenhouse user has the email {email} ({ACTOR}'s Slack email), and the bot does not write as anyone else",
                Remedy.GREENHOUSE_USER,
            )
        return user

    # -- the four writes -------------------------------------------------------------------------------

    def _advance(
        self, job: Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> Outcome:
        stage = job.payload.get("from_stage_id") or job.external_stage_id
        if stage is None:
            # An application that came in before the stage id was kept: the stage it is at now, noted
            # on the row before the move so that a retry moves from the same stage or not at all.
            if app.current_stage_id is None:
                raise Permanent("Greenhouse did not say which stage the application is at", Remedy.ADVANCE_BY_HAND)
            stage = app.current_stage_id
            self._rows.note(job, from_stage_id=stage)
        from_stage = greenhouse.gh_id(stage, "stage")
        if app.current_stage_id != from_stage:
            # Moved on already: by our own move (the row had sent one), or by someone in Greenhouse.
            outcome = WRITTEN if posted else ALREADY
            if outcome == ALREADY:
                log.info("decision write-back #%s: application %s already left stage %s in Greenhouse", job.id, app.id, from_stage)
            return outcome, {"from_stage_id": from_stage, "to_stage_id": app.current_stage_id}
        if app.status != "active":
            raise Permanent(
                f"the application is {app.status or 'not active'} in Greenhouse, so it was not advanced",
                Remedy.UNREJECT,
            )
        acting = user()
        self._send(job, lambda: client.move(app.id, from_stage_id=from_stage, as_user=acting), from_stage_id=from_stage)
        to_stage = None
        try:
            to_stage = client.application(app.id).current_stage_id
        except greenhouse.HarvestError as exc:  # written; only the undo would need to know where to
            log.info("decision write-back #%s: advanced, but the new stage could not be read (%s)", job.id, exc.message)
        return WRITTEN, {"from_stage_id": from_stage, "to_stage_id": to_stage}

    def _reject(
        self, job: Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> Outcome:
        if app.status == "rejected":
            return (WRITTEN if posted else ALREADY), {}
        if app.status != "active":
            raise Permanent(
                f"the application is {app.status or 'not active'} in Greenhouse, so it was not rejected",
                Remedy.CHANGE_BY_HAND,
            )
        reason = _reason(client.rejection_reasons())
        if reason is None:
            raise Permanent("Greenhouse lists no rejection reasons, and a reason is required", Remedy.REJECT_BY_HAND)
        notes = f"Rejected in Slack after the iMocha assessment{f' ({job.score})' if job.score else ''}. {NOTE_FOOTER}"
        acting = user()
        self._send(job, lambda: client.reject(app.id, rejection_reason_id=reason.id, notes=notes, as_user=acting))
        return WRITTEN, {"rejection_reason_id": reason.id}

    def _undo_advance(
        self,
        job: Job,
        client: greenhouse.HarvestClient,
        app: greenhouse.HarvestApplication,
        user: Callable[[], int],
        posted: bool,
        forward: dict[str, Any],
    ) -> Outcome:
        back, there = forward.get("from_stage_id"), forward.get("to_stage_id")
        if back is None or app.current_stage_id == back:
            return (WRITTEN if posted else NOT_NEEDED), {}  # the advance never landed, or our move back did
        if there is None or app.current_stage_id != there:
            raise Permanent(
                "the application has moved on in Greenhouse since it was advanced, so the bot did not move it back",
                Remedy.MOVE_BACK,
            )
        acting = user()
        self._send(job, lambda: client.move(app.id, from_stage_id=there, to_stage_id=back, as_user=acting))
        return WRITTEN, {}

    def _undo_reject(
        self, job: Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> Outcome:
        if app.status == "active":
            return (WRITTEN if posted else NOT_NEEDED), {}
        if app.status != "rejected":
            raise Permanent(
                f"the application is {app.status or 'not active'} in Greenhouse",
                Remedy.CHANGE_BY_HAND,
            )
        acting = user()
        self._send(job, lambda: client.unreject(app.id, as_user=acting))
        return WRITTEN, {}

    # -- sending and failing ---------------------------------------------------------------------------

    def _send(self, job: Job, write: Callable[[], None], **payload: Any) -> None:
        """Note that a write is being sent, then send it while the claim is sure. A definite refusal
        takes the note back (nothing was written); a lost answer keeps it for the next try's check."""
        self._rows.start_write(job, **payload)
        try:
            write()
        except (greenhouse.HarvestStatusError, greenhouse.HarvestProtocolError):
            self._rows.note(job, posted=False)
            raise
        except greenhouse.HarvestConnectionError as exc:
            if not exc.maybe_sent:
                self._rows.note(job, posted=False)
            raise

    def _failure(self, job: Job, exc: greenhouse.HarvestError) -> Exception:
        if isinstance(exc, greenhouse.HarvestRateLimitError):
            wait = self._limits.pause(job.target, job.workspace_id, exc.retry_after)
            return Later("Greenhouse is rate-limiting the credential (HTTP 429)", wait)
        if isinstance(exc, greenhouse.HarvestServerError | greenhouse.HarvestConnectionError):
            return Later(exc.message)
        return _refusal(job, exc)


def _refusal(job: Job, exc: greenhouse.HarvestError) -> Permanent:
    """What a Harvest error asking again cannot fix tells the thread, and what to do about it."""
    if isinstance(exc, greenhouse.HarvestAuthError):
        return Permanent(
            f"Greenhouse refused the workspace's Harvest credentials ({exc.message})",
            Remedy.HARVEST_REFUSED,
        )
    if isinstance(exc, greenhouse.HarvestActingUserError):
        return Permanent(
            f"Greenhouse would not let the bot act as {ACTOR}'s Greenhouse user ({exc.message})",
            Remedy.GREENHOUSE_ACCOUNT,
        )
    if isinstance(exc, greenhouse.HarvestForbiddenError):
        return Permanent(
            f"Greenhouse refused ({exc.message}, HTTP 403)",
            Remedy.HARVEST_SCOPES,
        )
    if isinstance(exc, greenhouse.HarvestNotFoundError):
        return Permanent(
            f"Greenhouse has no application {job.external_id} (deleted or merged)",
            Remedy.APPLICATION_GONE,
        )
    return Permanent(f"Greenhouse said: {exc.message}", Remedy.GREENHOUSE_BY_HAND)


def _reason(reasons: list[greenhouse.RejectionReason]) -> greenhouse.RejectionReason | None:
    """The rejection reason a Reject from Slack records: ours ("We rejected them"), about skills if there is one."""
    ours = [r for r in reasons if (r.type or "").strip().lower() == "we rejected them"]
    skills = [r for r in ours if "skill" in r.name.lower() or "qualif" in r.name.lower()]
    found = skills or ours or reasons
    return found[0] if found else None
