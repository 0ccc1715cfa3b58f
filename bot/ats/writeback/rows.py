"""The `ats_writebacks` table as the write-back worker keeps it (bot/ats/writeback/ tells the whole story).

Owns the bookkeeping over the claimed rows: which rows are due (an application's rows in order), claiming
one and reading what its write needs (`Job`), noting on the row that a write is being sent, and recording
its outcome — done, later, failed — by compare-and-set on this process's claim, with the audit entry and
the thread reply on the card (queued in the Slack outbox, delivered right after when it can be).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.ats.writeback.job import (
    ACTOR,
    ADVANCE,
    CLAIMS,
    FAILED,
    REJECT,
    TARGET_NAMES,
    UNDO_ADVANCE,
    UNDO_REJECT,
    WRITTEN,
    Job,
    Lost,
    Remedy,
)
from bot.runtime.claims import ClaimKeeper
from bot.slack.outbox import THREAD, SlackOutbox
from store import repos
from store.models import Application, AtsWriteback, Invitation, Workspace

log = logging.getLogger("bot.ats.writeback")

_ACTION_WORDS = {
    ADVANCE: "advanced",
    REJECT: "rejected",
    UNDO_ADVANCE: "undid the decision to advance",
    UNDO_REJECT: "undid the decision to reject",
}


class WritebackRows:
    """Claims, notes and outcomes of `ats_writebacks` rows, each recorded only while this process holds the row."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        claims: ClaimKeeper,
        clock: Callable[[], datetime],
        deliver_slack: Callable[..., object] | None,
        batch: int,
    ):
        self._sf = session_factory
        self._claims = claims
        self._clock = clock
        self._deliver_slack = deliver_slack
        self._batch = batch

    # -- finding and claiming --------------------------------------------------------------------------

    def due(self, application_id: int | None) -> list[int]:
        now = self._clock()
        earlier = aliased(AtsWriteback)
        with self._sf() as session:
            stmt = (
                select(AtsWriteback.id)
                .where(AtsWriteback.done_at.is_(None), AtsWriteback.next_attempt_at <= now, ~_blocked(earlier))
                .order_by(AtsWriteback.id)
                .limit(self._batch)
            )
            if application_id is not None:
                stmt = stmt.where(AtsWriteback.application_id == application_id)
            return list(session.scalars(stmt))

    def claim(self, row_id: int, now: datetime) -> Job | None:
        earlier = aliased(AtsWriteback)
        with self._sf.begin() as session:
            claimed: Any = session.execute(
                update(AtsWriteback)
                .where(
                    AtsWriteback.id == row_id,
                    AtsWriteback.done_at.is_(None),
                    AtsWriteback.next_attempt_at <= now,
                    ~_blocked(earlier),
                )
                .values(next_attempt_at=self._claims.expiry(now), claimed_by=self._claims.holder)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                return None  # another run took it, or an earlier row of its application is pending
            return _read_job(session, row_id)

    # -- while writing ---------------------------------------------------------------------------------

    def start_write(self, job: Job, **payload: Any) -> None:
        """Note that a write is being sent; raises Lost (nothing sent) unless the claim is still sure."""
        self.note(job, posted=True, **payload)
        if not self._claims.holds(CLAIMS, job.id):
            self.note(job, posted=False)  # recorded only if the row is still ours: nothing was sent
            raise Lost()

    def note(self, job: Job, **values: Any) -> None:
        """Merge `values` into the row's payload (this process holds the row)."""
        job.payload.update(values)
        with self._sf.begin() as session:
            session.execute(
                update(AtsWriteback)
                .where(AtsWriteback.id == job.id, self._mine())
                .values(payload=dict(job.payload))
                .execution_options(synchronize_session=False)
            )

    # -- outcomes (compare-and-set on the claim) -------------------------------------------------------

    def _mine(self) -> Any:
        return (AtsWriteback.claimed_by == self._claims.holder) & AtsWriteback.done_at.is_(None)

    def _record(self, session: Session, job: Job, **values: Any) -> bool:
        """Write an outcome and let the claim go, only while this process holds it; whether it did."""
        recorded: Any = session.execute(
            update(AtsWriteback)
            .where(AtsWriteback.id == job.id, self._mine())
            .values(claimed_by=None, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(recorded.rowcount == 1)

    def done(self, job: Job, outcome: str, learnt: dict[str, Any]) -> None:
        now = self._clock()
        name = TARGET_NAMES[job.target]
        with self._sf.begin() as session:
            recorded = self._record(
                session, job, done_at=now, outcome=outcome, attempts=job.attempts + 1, last_error=None, payload={**job.payload, **learnt}
            )
            retried = bool(job.payload.get("round"))
            if recorded and retried:
                self._thread(session, job, "writeback_retried", outcome=outcome, action=job.action)
            if recorded and outcome == WRITTEN:
                repos.audit(
                    session,
                    workspace_id=job.workspace_id,
                    actor="system",
                    action="writeback",
                    application_id=job.application_id,
                    detail=f"{name}: {_ACTION_WORDS[job.action]}",
                )
        if not recorded:
            log.error("decision write-back #%s was done, but another process had taken it over", job.id)
            return
        log.info("decision write-back #%s: %s %s of application %s %s", job.id, name, job.action, job.external_id, outcome)
        if job.payload.get("round"):
            self._slack(job.application_id)

    def later(self, job: Job, when: datetime, reason: str, *, attempts: int | None = None, count: bool = True) -> None:
        values: dict[str, Any] = {"next_attempt_at": when, "last_error": reason.replace(ACTOR, job.actor)[:1000]}
        if count and attempts is not None:
            values["attempts"] = attempts
        with self._sf.begin() as session:
            self._record(session, job, **values)

    def fail(self, job: Job, reason: str, remedy: Remedy, *, attempts: int | None = None) -> None:
        now = self._clock()
        name = TARGET_NAMES[job.target]
        plain = reason.replace(ACTOR, job.actor)  # for the audit log and the logs; the thread reply names them
        with self._sf.begin() as session:
            recorded = self._record(
                session,
                job,
                done_at=now,
                outcome=FAILED,
                attempts=attempts or job.attempts + 1,
                last_error=plain[:1000],
                payload=dict(job.payload),
            )
            if not recorded:
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
                remedy=str(remedy),
                stage=job.stage_name,
                writeback_id=job.id,
            )
        log.error(
            "decision write-back #%s failed: %s %s of application %s (%s): %s", job.id, name, job.action, job.external_id, job.actor, plain
        )
        self._slack(job.application_id)

    # -- the card's thread -----------------------------------------------------------------------------

    def _thread(self, session: Session, job: Job, template: str, **facts: Any) -> None:
        """A thread reply on the card, as facts (handlers/blocks/replies.py words it): a failure with Retry, or a Retry's end."""
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


def _blocked(earlier: Any) -> Any:
    """An earlier row of the same application is still pending: this one waits (order per application)."""
    return exists().where(earlier.application_id == AtsWriteback.application_id, earlier.id < AtsWriteback.id, earlier.done_at.is_(None))


def _read_job(session: Session, row_id: int) -> Job | None:
    """What the claimed row's write needs, read in the claiming transaction (None: the row or its application is gone)."""
    row = session.get(AtsWriteback, row_id)
    app = session.get(Application, row.application_id) if row else None
    team = session.scalar(select(Workspace.team_id).where(Workspace.id == row.workspace_id)) if row else None
    if row is None or app is None or team is None:
        return None
    forward = session.get(AtsWriteback, row.reverses_id) if row.reverses_id else None
    inv = session.get(Invitation, app.current_invitation_id) if app.current_invitation_id else None
    return Job(
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


def _score(inv: Invitation | None) -> str | None:
    if inv is None or inv.percentage is None:
        return None
    name = f"{inv.test_name}: " if inv.test_name else ""
    if inv.candidate_points is not None and inv.total_points:
        return f"{name}{_number(inv.candidate_points)} / {_number(inv.total_points)} points, {_number(inv.percentage)}%"
    return f"{name}{_number(inv.percentage)}%"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
