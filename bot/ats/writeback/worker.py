"""The decision write-back's worker: queueing rows with a decision or an undo, working them in order
per application, and the Retry command (the package docstring, bot/ats/writeback/, tells the whole story)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.ats import gem, greenhouse
from bot.ats.writeback.gem import GemWriter
from bot.ats.writeback.greenhouse import GreenhouseWriter
from bot.ats.writeback.job import (
    ADVANCE,
    ALREADY,
    CANCELLED,
    CLAIMS,
    FAILED,
    GEM,
    GREENHOUSE,
    MAX_ATTEMPTS,
    NOT_NEEDED,
    REJECT,
    SCHEDULE,
    TARGET_NAMES,
    UNDO_ADVANCE,
    UNDO_REJECT,
    WRITTEN,
    Job,
    Later,
    Lost,
    Permanent,
    RateLimits,
    Remedy,
)
from bot.ats.writeback.rows import WritebackRows
from bot.domain import Actor, Conflict, NotFound, OwnerOnly
from bot.runtime.claims import ClaimKeeper, claim_holder_id
from bot.slack.access import Access
from bot.vendors.pacing import Holds
from bot.workspace.settings import Workspaces
from store import repos
from store.models import Application, AtsWriteback, Workspace

log = logging.getLogger("bot.ats.writeback")


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
class RetryTarget:
    """The application a failed write-back belongs to (the Retry button's permission check needs its card)."""

    application_id: int
    target: str


class DecisionWriteback:
    """Works the queued rows (claim, write to Greenhouse or Gem, record the outcome) and retries failed ones."""

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
        gem_holds: Holds | None = None,
    ):
        self._sf = session_factory
        self._access = access
        self._clock = clock
        self._claims = claims or ClaimKeeper(session_factory, holder=claim_holder_id(), clock=clock)
        self._limits = RateLimits(clock, gem_holds=gem_holds)  # per ATS and workspace, after a 429
        self._rows = WritebackRows(
            session_factory=session_factory, claims=self._claims, clock=clock, deliver_slack=deliver_slack, batch=batch
        )
        self._writers: dict[str, GreenhouseWriter | GemWriter] = {
            GREENHOUSE: GreenhouseWriter(
                workspaces=workspaces, harvest_clients=harvest_clients, slack_email=slack_email, rows=self._rows, limits=self._limits
            ),
            GEM: GemWriter(
                workspaces=workspaces,
                gem_clients=gem_clients,
                slack_email=slack_email,
                gem_author=gem_author,
                rows=self._rows,
                limits=self._limits,
            ),
        }

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
            for row_id in self._rows.due(application_id):
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

    def _one(self, row_id: int) -> str | None:
        """Claim and work one row; returns its outcome when it finished (written, failed…), else None."""
        since = self._claims.mark()
        claimed_at = self._clock()
        job = self._rows.claim(row_id, claimed_at)
        if job is None or not self._claims.take(CLAIMS, [row_id], since):
            return None
        try:
            return self._work(job)
        finally:
            self._claims.release(CLAIMS, row_id)

    def _work(self, job: Job) -> str | None:
        now = self._clock()
        held_until = self._limits.until(job.target, job.workspace_id)  # None once the hold has passed
        if held_until is not None:
            self._rows.later(job, held_until, "waiting for the ATS's rate limit", count=False)
            return None
        try:
            outcome, learnt = self._writers[job.target].write(job)
        except Lost:
            log.warning("decision write-back #%s left unwritten: this process's claim on it may have lapsed", job.id)
            return None
        except Permanent as exc:
            self._rows.fail(job, exc.reason, exc.remedy)
            return FAILED
        except Later as exc:
            return self._again(job, exc, now)
        self._rows.done(job, outcome, learnt)
        return outcome

    def _again(self, job: Job, exc: Later, now: datetime) -> str | None:
        """A transient failure: try the row again after the backoff, or fail it after MAX_ATTEMPTS."""
        name = TARGET_NAMES[job.target]
        attempts = job.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self._rows.fail(
                job,
                f"{name} kept failing ({exc.reason}) through {attempts} attempts",
                Remedy.KEPT_FAILING,
                attempts=attempts,
            )
            return FAILED
        delay = exc.delay or timedelta(seconds=SCHEDULE.after(attempts))
        self._rows.later(job, now + delay, exc.reason, attempts=attempts)
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


def _state_words(outcome: str | None, name: str) -> str:
    return {
        WRITTEN: f"it was written to {name}",
        ALREADY: f"{name} already showed it",
        CANCELLED: "the decision was undone before it was written",
        NOT_NEEDED: "there was nothing to take back",
        None: "it is being written now",
    }.get(outcome, "it is not failed")
