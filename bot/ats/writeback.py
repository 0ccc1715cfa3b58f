"""Decisions written back to the ATS: Advance / Reject (and Undo) to Greenhouse through Harvest v3, to Gem as a note.

**The queue.** Recording a decision or its undo (bot/assessments/decisions.py) inserts an `ats_writebacks` row in
the same transaction, when the application came from Greenhouse (and the workspace has Harvest
credentials) or from Gem (and it has a Gem key). So a decision and its write-back are stored together
or not at all: nothing is lost on a crash. Rows are worked right after the decision, by the
`ats.writeback` job every 10 s and by claim recovery. They are claimed like the Slack outbox and the
Gem score notes (bot/runtime/claims.py: renewed while this process works, lapsing 3 s after it dies, when
another process resumes the row), the write starts only while the claim is sure, and every outcome is
recorded by compare-and-set on the claim. An application's rows are written in order: a row waits
while an earlier one of the same application is pending (an undo's reverse waits for its decision).

**No duplicate write.** Greenhouse writes are checked against Greenhouse's own state before they are
made, and the row notes that a write was sent (`payload.posted`) before sending it. An Advance is a
move *from the stage the assessment was in* (the webhook's `current_stage.id`): if the application is
no longer there, the move happened (ours, when the row had sent one: recorded as written; someone
else's: recorded as already done) and is not made again. Greenhouse itself refuses a move whose
`from_stage_id` is stale. A Reject is made only while the application is active, Undo's unreject only
while it is rejected, Undo's move back only while it is where our Advance put it. So a process killed
between Greenhouse's answer and the bookkeeping is resumed without a second write. Gem's notes cannot
be read back: a note row found marked as sent but not recorded (its writer died mid-call, or Gem did
not answer) is not sent again but reported as failed, saying the note may be there already.

**Undo within 10 minutes.** A write that was never tried (still waiting, unclaimed) is cancelled in the
undo's transaction and nothing reaches the ATS. Otherwise the undo queues the reverse: Greenhouse
moves the application back to the assessment stage or unrejects it (each only if our write landed and
nobody moved it since); Gem gets a second note saying the decision was undone.

**Retries and failures.** 429 (after `Retry-After`; the workspace's other rows wait too), 5xx and
connection errors are retried with backoff (30 s doubling, at most 30 min, 8 attempts: about an hour).
Errors asking again cannot fix (401/403/404/422, no Greenhouse user with the clicker's email, a note
that may be written) fail at once. A failed write-back is never silent: one log line, an audit entry,
and a thread reply on the card saying what failed and what to do, with a **Retry** button for the
card's owner and admins, which queues the row again.

What is left: someone changing the application in Greenhouse in the moment between the bot's read and
its write gets Greenhouse's refusal (a stale `from_stage_id`, "already rejected"), which shows as a
failure, never as a double write. A row that had sent its write before a crash counts a move found
on resumption as its own, even in the rare case a person made it meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.ats import gem, greenhouse
from bot.domain import Actor, Conflict, Decision, NotFound, OwnerOnly
from bot.runtime.claims import ClaimKeeper, ClaimTable, claim_holder_id
from bot.slack.access import Access
from bot.slack.outbox import THREAD, SlackOutbox
from bot.workspace.settings import Workspaces
from store import repos
from store.models import Application, AtsWriteback, Invitation, Workspace

log = logging.getLogger("bot.ats.writeback")

GREENHOUSE, GEM = "greenhouse", "gem"
ADVANCE, REJECT, UNDO_ADVANCE, UNDO_REJECT = "advance", "reject", "undo_advance", "undo_reject"
WRITTEN, ALREADY, CANCELLED, NOT_NEEDED, FAILED = "written", "already", "cancelled", "not_needed", "failed"

MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
DEFAULT_RETRY_AFTER = timedelta(seconds=60)
TARGET_NAMES = {GREENHOUSE: "Greenhouse", GEM: "Gem"}
# While a row is claimed its next_attempt_at is the claim's expiry.
CLAIMS = ClaimTable("ats_writebacks", AtsWriteback, AtsWriteback.claimed_by, AtsWriteback.next_attempt_at, AtsWriteback.done_at.is_(None))
NOTE_FOOTER = "Posted by the iMocha Slack bot."
# Where a failure's words name the person who decided: handlers/blocks.py puts their Slack mention there,
# audit entries and logs their user id. Outside text in the words is left as it is; the renderer escapes it.
ACTOR = "{actor}"


class Permanent(Exception):
    """Asking again will not help: the row fails at once, with `reason` and `hint` in the thread reply."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class Later(Exception):
    """A transient failure: try again after `delay` (None: the backoff), counting an attempt."""

    def __init__(self, reason: str, delay: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class _Lost(Exception):
    """This process's claim may have lapsed before the write: leave the row to whoever holds it now."""


# -- queueing (inside the decision's transaction) --------------------------------------------------


def queue_decision(session: Session, app: Application, *, audit_id: int, decision: str, actor: str) -> bool:
    """Queue the decision's write-back when the application's ATS is connected; True when queued."""
    target = _target(session, app)
    if target is None:
        return False
    _insert(session, app, audit_id=audit_id, target=target, action=decision, actor=actor)
    return True


def queue_undo(session: Session, app: Application, *, audit_id: int, previous: str, actor: str, now: datetime) -> str:
    """Cancel the decision's write-back if it was never tried, else queue its reverse.

    Returns "cancelled", "reversed" or "none" (nothing was queued for the decision)."""
    forward = session.scalars(
        select(AtsWriteback)
        .where(AtsWriteback.application_id == app.id, AtsWriteback.action.in_((ADVANCE, REJECT)))
        .order_by(AtsWriteback.id.desc())
        .limit(1)
    ).first()
    if forward is None or forward.action != previous or forward.outcome == CANCELLED:
        return "none"
    cancelled: Any = session.execute(
        update(AtsWriteback)
        .where(
            AtsWriteback.id == forward.id,
            AtsWriteback.done_at.is_(None),
            AtsWriteback.claimed_by.is_(None),
            AtsWriteback.attempts == 0,
        )
        .values(done_at=now, outcome=CANCELLED, last_error="undone before it was written")
        .execution_options(synchronize_session=False)
    )
    if cancelled.rowcount:
        return "cancelled"
    undo = UNDO_ADVANCE if previous == ADVANCE else UNDO_REJECT
    _insert(session, app, audit_id=audit_id, target=forward.target, action=undo, actor=actor, reverses_id=forward.id)
    return "reversed"


def _target(session: Session, app: Application) -> str | None:
    ws = session.get(Workspace, app.workspace_id)
    if ws is None:
        return None
    if app.source == GREENHOUSE and ws.harvest_credentials_enc is not None:
        return GREENHOUSE
    if app.source == GEM and ws.gem_key_enc is not None:
        return GEM
    return None


def _insert(
    session: Session, app: Application, *, audit_id: int, target: str, action: str, actor: str, reverses_id: int | None = None
) -> None:
    repos.insert_ignore(
        session,
        AtsWriteback,
        {
            "workspace_id": app.workspace_id,
            "application_id": app.id,
            "audit_id": audit_id,
            "target": target,
            "action": action,
            "reverses_id": reverses_id,
            "actor": actor,
            "payload": {},
            "attempts": 0,
        },
        ["audit_id"],
    )


# -- the worker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What one claimed row needs, read in the claiming transaction."""

    id: int
    workspace_id: int
    team_id: str
    application_id: int
    target: str
    action: str
    actor: str
    attempts: int
    payload: dict[str, Any]
    external_id: str
    external_stage_id: str | None
    external_candidate_id: str | None
    job_external_id: str
    candidate_name: str
    job_name: str
    stage_name: str
    score: str | None
    forward: dict[str, Any] | None  # the reversed row's action, outcome and payload (undo rows)


@dataclass(frozen=True)
class RetryTarget:
    """The application a failed write-back belongs to (the Retry button's permission check needs its card)."""

    application_id: int
    target: str


class DecisionWriteback:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        harvest_clients: Callable[[greenhouse.HarvestCredentials], greenhouse.HarvestClient],
        gem_clients: Callable[[str], gem.GemClient],
        slack_email: Callable[[str, str], str | None],
        clock: Callable[[], datetime],
        access: Access,
        deliver_slack: Callable[..., object] | None = None,
        gem_author: Callable[[int, gem.GemClient, str, str | None], str | None] | None = None,
        claims: ClaimKeeper | None = None,
        batch: int = 50,
    ):
        self._sf = session_factory
        self._workspaces = workspaces
        self._harvest = harvest_clients
        self._gem = gem_clients
        self._slack_email = slack_email
        self._access = access
        self._clock = clock
        self._deliver_slack = deliver_slack
        self._gem_author = gem_author
        self._claims = claims or ClaimKeeper(session_factory, holder=claim_holder_id(), clock=clock)
        self._batch = batch
        self._not_before: dict[int, datetime] = {}  # per workspace, after a 429

    # -- entry points --------------------------------------------------------------------------------

    def run(self) -> int:
        """The `ats.writeback` job and claim recovery: write every due row; returns how many were written."""
        return self.deliver()

    def deliver(self, *, application_id: int | None = None) -> int:
        """Write the due rows (optionally one application's), each once; never raises.

        A row that finishes lets its application's next row go in the same call (an undo's reverse
        right after its decision), for a few rounds."""
        written = 0
        for _round in range(4):
            finished = 0
            for row_id in self._due(application_id):
                try:
                    outcome = self._one(row_id)
                except Exception:  # one row's surprise must not stop the others; its claim lapses and it comes back
                    log.exception("decision write-back #%s failed unexpectedly; it is tried again", row_id)
                    continue
                finished += outcome is not None
                written += outcome == WRITTEN
            if not finished:
                break
        return written

    def _due(self, application_id: int | None) -> list[int]:
        now = self._clock()
        earlier = aliased(AtsWriteback)
        with self._sf() as session:
            stmt = (
                select(AtsWriteback.id)
                .where(AtsWriteback.done_at.is_(None), AtsWriteback.next_attempt_at <= now, ~self._blocked(earlier))
                .order_by(AtsWriteback.id)
                .limit(self._batch)
            )
            if application_id is not None:
                stmt = stmt.where(AtsWriteback.application_id == application_id)
            return list(session.scalars(stmt))

    def target_of(self, team_id: str, row_id: int) -> RetryTarget:
        with self._sf() as session:
            row = session.get(AtsWriteback, row_id)
            team = session.scalar(select(Workspace.team_id).where(Workspace.id == row.workspace_id)) if row else None
            if row is None or team != team_id:
                raise NotFound("That write-back no longer exists.")
            return RetryTarget(row.application_id, row.target)

    def retry(self, team_id: str, row_id: int, actor: Actor) -> str:
        """Queue a failed write-back again (the Retry button); returns what to tell the clicker. The caller
        then delivers it (or the job does, within seconds). The card's owner answers for the card and
        admins fix what a failure asks for (credentials, scopes): only they may retry."""
        now = self._clock()
        user_id = actor.user_id
        self._access.require_member(team_id, user_id)
        with self._sf.begin() as session:
            row = session.get(AtsWriteback, row_id)
            app = session.get(Application, row.application_id) if row else None
            team = session.scalar(select(Workspace.team_id).where(Workspace.id == row.workspace_id)) if row else None
            if row is None or app is None or team != team_id:
                raise NotFound("That write-back no longer exists.")
            if user_id != app.owner_user_id and not self._access.is_admin(team_id, user_id):
                raise OwnerOnly(app.owner_user_id, "retry writing this decision back")
            name = TARGET_NAMES[row.target]
            if row.outcome != FAILED:
                raise Conflict(f"Nothing to retry: {_state_words(row.outcome, name)}.")
            latest = session.scalar(select(func.max(AtsWriteback.id)).where(AtsWriteback.application_id == app.id))
            if latest != row.id:
                raise Conflict("A later decision or undo replaced this one; there is nothing to retry.")
            if row.action in (ADVANCE, REJECT) and app.decision != row.action:
                raise Conflict("The decision was undone; there is nothing to write back.")
            payload = {**(row.payload or {}), "posted": False, "round": int((row.payload or {}).get("round", 0)) + 1}
            again: Any = session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == row_id, AtsWriteback.outcome == FAILED)
                .values(done_at=None, outcome=None, attempts=0, next_attempt_at=now, last_error=None, claimed_by=None, payload=payload)
                .execution_options(synchronize_session=False)
            )
            if not again.rowcount:
                raise Conflict("Someone pressed Retry a moment ago.")
            repos.audit(session, workspace_id=row.workspace_id, actor=user_id, action="writeback_retry", application_id=app.id, detail=name)
        log.info("decision write-back #%s queued again by %s", row_id, user_id)
        return f"Writing the decision to {name} again."

    # -- one row -------------------------------------------------------------------------------------

    @staticmethod
    def _blocked(earlier: Any) -> Any:
        """An earlier row of the same application is still pending: this one waits (order per application)."""
        return exists().where(
            earlier.application_id == AtsWriteback.application_id, earlier.id < AtsWriteback.id, earlier.done_at.is_(None)
        )

    def _one(self, row_id: int) -> str | None:
        """Claim and work one row; returns its outcome when it finished (written, failed…), else None."""
        since = self._claims.mark()
        claimed_at = self._clock()
        job = self._claim(row_id, claimed_at)
        if job is None or not self._claims.take(CLAIMS, [row_id], since):
            return None
        try:
            return self._work(job)
        finally:
            self._claims.release(CLAIMS, row_id)

    def _claim(self, row_id: int, now: datetime) -> _Job | None:
        earlier = aliased(AtsWriteback)
        with self._sf.begin() as session:
            claimed: Any = session.execute(
                update(AtsWriteback)
                .where(
                    AtsWriteback.id == row_id,
                    AtsWriteback.done_at.is_(None),
                    AtsWriteback.next_attempt_at <= now,
                    ~self._blocked(earlier),
                )
                .values(next_attempt_at=self._claims.expiry(now), claimed_by=self._claims.holder)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                return None  # another run took it, or an earlier row of its application is pending
            row = session.get(AtsWriteback, row_id)
            app = session.get(Application, row.application_id) if row else None
            team = session.scalar(select(Workspace.team_id).where(Workspace.id == row.workspace_id)) if row else None
            if row is None or app is None or team is None:
                return None
            forward = session.get(AtsWriteback, row.reverses_id) if row.reverses_id else None
            inv = session.get(Invitation, app.current_invitation_id) if app.current_invitation_id else None
            return _Job(
                id=row.id,
                workspace_id=row.workspace_id,
                team_id=team,
                application_id=app.id,
                target=row.target,
                action=row.action,
                actor=row.actor,
                attempts=row.attempts,
                payload=dict(row.payload or {}),
                external_id=app.external_id,
                external_stage_id=app.external_stage_id,
                external_candidate_id=app.external_candidate_id,
                job_external_id=app.job.external_id,
                candidate_name=app.candidate.name,
                job_name=app.job.name,
                stage_name=app.stage_name,
                score=_score(inv),
                forward={"action": forward.action, "outcome": forward.outcome, "payload": dict(forward.payload or {})} if forward else None,
            )

    def _work(self, job: _Job) -> str | None:
        now = self._clock()
        wait = self._not_before.get(job.workspace_id)
        if wait is not None and now < wait:
            self._later(job, wait, "waiting for the ATS's rate limit", count=False)
            return None
        name = TARGET_NAMES[job.target]
        try:
            if job.target == GREENHOUSE:
                outcome, learnt = self._greenhouse(job)
            else:
                outcome, learnt = self._gem_note(job)
        except _Lost:
            log.warning("decision write-back #%s left unwritten: this process's claim on it may have lapsed", job.id)
            return None
        except Permanent as exc:
            self._fail(job, exc.reason, exc.hint)
            return FAILED
        except Later as exc:
            attempts = job.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                self._fail(
                    job,
                    f"{name} kept failing ({exc.reason}) through {attempts} attempts",
                    f"Press *Retry* to try again, or make the change in {name} by hand.",
                    attempts=attempts,
                )
                return FAILED
            delay = exc.delay or min(MAX_BACKOFF, BACKOFF * 2 ** (attempts - 1))
            self._later(job, now + delay, exc.reason, attempts=attempts)
            log.warning(
                "decision write-back #%s (%s %s) failed: %s; attempt %d/%d, next in %ds",
                job.id,
                name,
                job.action,
                exc.reason,
                attempts,
                MAX_ATTEMPTS,
                delay.total_seconds(),
            )
            return None
        self._done(job, outcome, learnt)
        return outcome

    # -- Greenhouse ----------------------------------------------------------------------------------

    def _greenhouse(self, job: _Job) -> tuple[str, dict[str, Any]]:
        creds = self._workspaces.harvest_credentials(job.workspace_id)
        if creds is None:
            raise Permanent(
                "the workspace has no Greenhouse Harvest credentials any more",
                "An admin can enter them in `/imocha setup`, then press *Retry*.",
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
            raise self._harvest_failure(job, exc) from exc

    def _acting_user(self, job: _Job, client: greenhouse.HarvestClient) -> greenhouse.HarvestUser:
        try:
            email = self._slack_email(job.team_id, job.actor)
        except Exception as exc:  # Slack being away is transient; the decision stays queued
            raise Later(f"Slack could not say who {ACTOR} is ({exc.__class__.__name__})") from exc
        if not email:
            raise Permanent(
                f"Slack gave no email address for {ACTOR}, so the bot cannot tell which Greenhouse user decided",
                "The app needs the `users:read.email` scope (reinstall it from app_manifest.yaml), then press *Retry*.",
            )
        user = client.find_user(email)
        if user is None:
            raise Permanent(
                f"no active Greenhouse user has the email {email} ({ACTOR}'s Slack email), and the bot does not write as anyone else",
                "Add that address to their Greenhouse user (Configure → Users), or make the change in Greenhouse by hand; then press *Retry*.",
            )
        return user

    def _advance(
        self, job: _Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> tuple[str, dict[str, Any]]:
        stage = job.payload.get("from_stage_id") or job.external_stage_id
        if stage is None:
            # An application that came in before the stage id was kept: the stage it is at now, noted
            # on the row before the move so that a retry moves from the same stage or not at all.
            if app.current_stage_id is None:
                raise Permanent(
                    "Greenhouse did not say which stage the application is at", "Advance it in Greenhouse by hand, or press *Retry*."
                )
            stage = app.current_stage_id
            self._note(job, from_stage_id=stage)
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
                "Unreject it in Greenhouse if the candidate should go on, then press *Retry*.",
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
        self, job: _Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> tuple[str, dict[str, Any]]:
        if app.status == "rejected":
            return (WRITTEN if posted else ALREADY), {}
        if app.status != "active":
            raise Permanent(
                f"the application is {app.status or 'not active'} in Greenhouse, so it was not rejected",
                "Change it in Greenhouse by hand if needed, or press *Retry*.",
            )
        reason = _reason(client.rejection_reasons())
        if reason is None:
            raise Permanent(
                "Greenhouse lists no rejection reasons, and a reason is required", "Reject the application in Greenhouse by hand."
            )
        notes = f"Rejected in Slack after the iMocha assessment{f' ({job.score})' if job.score else ''}. {NOTE_FOOTER}"
        acting = user()
        self._send(job, lambda: client.reject(app.id, rejection_reason_id=reason.id, notes=notes, as_user=acting))
        return WRITTEN, {"rejection_reason_id": reason.id}

    def _undo_advance(
        self,
        job: _Job,
        client: greenhouse.HarvestClient,
        app: greenhouse.HarvestApplication,
        user: Callable[[], int],
        posted: bool,
        forward: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        back, there = forward.get("from_stage_id"), forward.get("to_stage_id")
        if back is None or app.current_stage_id == back:
            return (WRITTEN if posted else NOT_NEEDED), {}  # the advance never landed, or our move back did
        if there is None or app.current_stage_id != there:
            raise Permanent(
                "the application has moved on in Greenhouse since it was advanced, so the bot did not move it back",
                f"Move it back to {job.stage_name} in Greenhouse by hand if it should be there, or press *Retry*.",
            )
        acting = user()
        self._send(job, lambda: client.move(app.id, from_stage_id=there, to_stage_id=back, as_user=acting))
        return WRITTEN, {}

    def _undo_reject(
        self, job: _Job, client: greenhouse.HarvestClient, app: greenhouse.HarvestApplication, user: Callable[[], int], posted: bool
    ) -> tuple[str, dict[str, Any]]:
        if app.status == "active":
            return (WRITTEN if posted else NOT_NEEDED), {}
        if app.status != "rejected":
            raise Permanent(
                f"the application is {app.status or 'not active'} in Greenhouse",
                "Change it in Greenhouse by hand if needed, or press *Retry*.",
            )
        acting = user()
        self._send(job, lambda: client.unreject(app.id, as_user=acting))
        return WRITTEN, {}

    def _send(self, job: _Job, write: Callable[[], None], **payload: Any) -> None:
        """Note that a write is being sent, then send it while the claim is sure. A definite refusal
        takes the note back (nothing was written); a lost answer keeps it for the next try's check."""
        self._note(job, posted=True, **payload)
        if not self._claims.holds(CLAIMS, job.id):
            self._note(job, posted=False)  # recorded only if the row is still ours: nothing was sent
            raise _Lost()
        try:
            write()
        except (greenhouse.HarvestStatusError, greenhouse.HarvestProtocolError):
            self._note(job, posted=False)
            raise
        except greenhouse.HarvestConnectionError as exc:
            if not exc.maybe_sent:
                self._note(job, posted=False)
            raise

    def _harvest_failure(self, job: _Job, exc: greenhouse.HarvestError) -> Exception:
        creds_hint = "An admin can enter working Harvest credentials in `/imocha setup`, then press *Retry*."
        if isinstance(exc, greenhouse.HarvestRateLimitError):
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFAULT_RETRY_AFTER
            self._not_before[job.workspace_id] = self._clock() + wait
            return Later("Greenhouse is rate-limiting the credential (HTTP 429)", wait)
        if isinstance(exc, greenhouse.HarvestServerError | greenhouse.HarvestConnectionError):
            return Later(exc.message)
        if isinstance(exc, greenhouse.HarvestAuthError):
            return Permanent(f"Greenhouse refused the workspace's Harvest credentials ({exc.message})", creds_hint)
        if isinstance(exc, greenhouse.HarvestActingUserError):
            return Permanent(
                f"Greenhouse would not let the bot act as {ACTOR}'s Greenhouse user ({exc.message})",
                "Check that their Greenhouse account is active, then press *Retry*.",
            )
        if isinstance(exc, greenhouse.HarvestForbiddenError):
            return Permanent(
                f"Greenhouse refused ({exc.message}, HTTP 403)",
                "Give the Harvest credential the scopes in the README's “Decisions written back”, and "
                f"{ACTOR} access to this job in Greenhouse, then press *Retry*.",
            )
        if isinstance(exc, greenhouse.HarvestNotFoundError):
            return Permanent(
                f"Greenhouse has no application {job.external_id} (deleted or merged)",
                "Record the decision in Greenhouse by hand, or press *Retry* if the application is back.",
            )
        return Permanent(f"Greenhouse said: {exc.message}", "Make the change in Greenhouse by hand, or fix it there and press *Retry*.")

    # -- Gem -----------------------------------------------------------------------------------------

    def _gem_note(self, job: _Job) -> tuple[str, dict[str, Any]]:
        if job.action in (UNDO_ADVANCE, UNDO_REJECT) and (job.forward or {}).get("outcome") != WRITTEN:
            return NOT_NEEDED, {}  # no note about the decision reached Gem: none is needed about its undo
        if job.payload.get("posted"):
            raise Permanent(
                "the bot was interrupted while writing this note to Gem, so the note may be there already",
                "Look at the candidate's activity feed in Gem and press *Retry* only if the note is missing.",
            )
        key = self._workspaces.gem_key(job.workspace_id)
        if key is None:
            raise Permanent("the workspace has no Gem API key any more", "An admin can paste one in `/imocha setup`, then press *Retry*.")
        if not job.external_candidate_id:
            raise Permanent("the application has no Gem candidate id", "Record the decision in Gem by hand, or press *Retry*.")
        try:
            email = self._slack_email(job.team_id, job.actor)
        except Exception as exc:
            raise Later(f"Slack could not say who {ACTOR} is ({exc.__class__.__name__})") from exc
        client = self._gem(key)
        try:
            author = self._gem_author(job.workspace_id, client, job.job_external_id, email) if self._gem_author else None
            self._note(job, posted=True)
            if not self._claims.holds(CLAIMS, job.id):
                self._note(job, posted=False)  # recorded only if the row is still ours: nothing was sent
                raise _Lost()
            client.add_note(job.external_candidate_id, body=gem_note_body(job, email), user_id=author, visibility="private")
        except gem.GemError as exc:
            raise self._gem_failure(job, exc) from exc
        return WRITTEN, {}

    def _gem_failure(self, job: _Job, exc: gem.GemError) -> Exception:
        sent = isinstance(exc, gem.GemConnectionError) and not isinstance(
            exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
        if not sent:
            self._note(job, posted=False)  # Gem answered, or was never reached: no note was written
        if isinstance(exc, gem.GemRateLimitError):
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFAULT_RETRY_AFTER
            self._not_before[job.workspace_id] = self._clock() + wait
            return Later("Gem is rate-limiting the key (HTTP 429)", wait)
        if isinstance(exc, gem.GemConnectionError | gem.GemServerError):
            return Later(exc.message)
        if isinstance(exc, gem.GemAuthError):
            return Permanent(
                f"Gem refused the workspace's API key (HTTP {exc.status_code})",
                "An admin can paste a working key in `/imocha setup`, then press *Retry*.",
            )
        return Permanent(f"Gem said: {exc.message}", "Add the note in Gem by hand, or press *Retry*.")

    # -- bookkeeping (compare-and-set on the claim) -----------------------------------------------------

    def _mine(self) -> Any:
        return (AtsWriteback.claimed_by == self._claims.holder) & AtsWriteback.done_at.is_(None)

    def _note(self, job: _Job, **values: Any) -> None:
        """Merge `values` into the row's payload (this process holds the row)."""
        job.payload.update(values)
        with self._sf.begin() as session:
            session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == job.id, self._mine())
                .values(payload=dict(job.payload))
                .execution_options(synchronize_session=False)
            )

    def _done(self, job: _Job, outcome: str, learnt: dict[str, Any]) -> None:
        now = self._clock()
        name = TARGET_NAMES[job.target]
        with self._sf.begin() as session:
            recorded: Any = session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == job.id, self._mine())
                .values(
                    done_at=now,
                    outcome=outcome,
                    attempts=job.attempts + 1,
                    claimed_by=None,
                    last_error=None,
                    payload={**job.payload, **learnt},
                )
                .execution_options(synchronize_session=False)
            )
            retried = bool(job.payload.get("round"))
            if recorded.rowcount == 1 and retried:
                self._thread(session, job, "writeback_retried", outcome=outcome, action=job.action)
            if recorded.rowcount == 1 and outcome == WRITTEN:
                repos.audit(
                    session,
                    workspace_id=job.workspace_id,
                    actor="system",
                    action="writeback",
                    application_id=job.application_id,
                    detail=f"{name}: {_ACTION_WORDS[job.action]}",
                )
        if recorded.rowcount != 1:
            log.error("decision write-back #%s was done, but another process had taken it over", job.id)
            return
        log.info("decision write-back #%s: %s %s of application %s %s", job.id, name, job.action, job.external_id, outcome)
        if job.payload.get("round"):
            self._slack(job.application_id)

    def _later(self, job: _Job, when: datetime, reason: str, *, attempts: int | None = None, count: bool = True) -> None:
        values: dict[str, Any] = {"next_attempt_at": when, "last_error": reason.replace(ACTOR, job.actor)[:1000], "claimed_by": None}
        if count and attempts is not None:
            values["attempts"] = attempts
        with self._sf.begin() as session:
            session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == job.id, self._mine())
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def _fail(self, job: _Job, reason: str, hint: str, *, attempts: int | None = None) -> None:
        now = self._clock()
        name = TARGET_NAMES[job.target]
        plain = reason.replace(ACTOR, job.actor)  # for the audit log and the logs; the thread reply names them
        with self._sf.begin() as session:
            recorded: Any = session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == job.id, self._mine())
                .values(
                    done_at=now,
                    outcome=FAILED,
                    attempts=attempts or job.attempts + 1,
                    claimed_by=None,
                    last_error=plain[:1000],
                    payload=dict(job.payload),
                )
                .execution_options(synchronize_session=False)
            )
            if recorded.rowcount != 1:
                return  # taken over meanwhile: its new holder records the outcome
            repos.audit(
                session,
                workspace_id=job.workspace_id,
                actor="system",
                action="writeback",
                outcome="failed",
                application_id=job.application_id,
                detail=f"{name}: {plain}"[:1000],
            )
            self._thread(
                session,
                job,
                "writeback_failed",
                actor=job.actor,
                action=job.action,
                candidate=job.candidate_name,
                reason=reason,
                hint=hint,
                writeback_id=job.id,
            )
        log.error(
            "decision write-back #%s failed: %s %s of application %s (%s): %s", job.id, name, job.action, job.external_id, job.actor, plain
        )
        self._slack(job.application_id)

    def _thread(self, session: Session, job: _Job, template: str, **facts: Any) -> None:
        """A thread reply on the card, as facts (handlers/blocks.py words it): a failure with Retry, or a Retry's end."""
        failed = template == "writeback_failed"
        SlackOutbox.add(
            session,
            workspace_id=job.workspace_id,
            kind=THREAD,
            # One reply per outcome and Retry round: a second recording of the same outcome adds nothing.
            key=f"writeback:{job.id}:{job.payload.get('round', 0)}:{'failed' if failed else 'written'}",
            application_id=job.application_id,
            payload={"template": template, "target": TARGET_NAMES[job.target], **facts},
        )

    def _slack(self, application_id: int) -> None:
        if self._deliver_slack is None:
            return
        try:
            self._deliver_slack(application_id=application_id)
        except Exception as exc:  # the outbox job delivers it later
            log.info("thread reply about a write-back left to the outbox job (%s)", exc.__class__.__name__)


# -- pure helpers ------------------------------------------------------------------------------------

_ACTION_WORDS = {
    ADVANCE: "advanced",
    REJECT: "rejected",
    UNDO_ADVANCE: "undid the decision to advance",
    UNDO_REJECT: "undid the decision to reject",
}


def _state_words(outcome: str | None, name: str) -> str:
    return {
        WRITTEN: f"it was written to {name}",
        ALREADY: f"{name} already showed it",
        CANCELLED: "the decision was undone before it was written",
        NOT_NEEDED: "there was nothing to take back",
        None: "it is being written now",
    }.get(outcome, "it is not failed")


def _reason(reasons: list[greenhouse.RejectionReason]) -> greenhouse.RejectionReason | None:
    """The rejection reason a Reject from Slack records: ours ("We rejected them"), about skills if there is one."""
    ours = [r for r in reasons if (r.type or "").strip().lower() == "we rejected them"]
    skills = [r for r in ours if "skill" in r.name.lower() or "qualif" in r.name.lower()]
    found = skills or ours or reasons
    return found[0] if found else None


def _score(inv: Invitation | None) -> str | None:
    if inv is None or inv.percentage is None:
        return None
    name = f"{inv.test_name}: " if inv.test_name else ""
    if inv.candidate_points is not None and inv.total_points:
        return f"{name}{_number(inv.candidate_points)} / {_number(inv.total_points)} points, {_number(inv.percentage)}%"
    return f"{name}{_number(inv.percentage)}%"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def gem_note_body(job: _Job, email: str | None) -> str:
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


__all__ = ["CLAIMS", "DecisionWriteback", "Later", "Permanent", "gem_note_body", "queue_decision", "queue_undo"]
