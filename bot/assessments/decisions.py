"""Advance / Reject from the review card: recorded once, shown on the card, undoable for ten minutes.

A decision is a compare-and-set on the application row (only while it has none, and only for a result
that is in review), so double clicks, two people at once and Slack retries record one decision; the
second clicker is told who decided first. Undo is the reverse compare-and-set, only within
UNDO_DECISION of the decision. Each decision and undo writes an audit entry (so it reaches
/imocha status and the outgoing events as `assessment.decided`), updates the card in place and adds
one thread reply naming the actor. A card refresh is queued for the end of the undo window so the
Undo button goes away by itself. Where the application's ATS is connected (Greenhouse, Gem), the same
transaction queues the decision's write-back, or an undo's cancellation or reverse (bot/ats/writeback/).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments import ActionResult, Assessments, load_application, queue_note
from bot.ats.writeback import DecisionWriteback, queue_decision, queue_undo
from bot.domain import DECIDABLE, UNDO_DECISION, Actor, AlreadyDecided, Conflict, Decision, NoteKind
from bot.slack.outbox import CARD, SlackOutbox
from store import repos
from store.models import Application, OutboxMessage

log = logging.getLogger("bot.assessments.decisions")


class Decisions:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        assessments: Assessments,
        outbox: SlackOutbox,
        clock: Callable[[], datetime],
        writeback: DecisionWriteback | None = None,
    ):
        self._sf = session_factory
        self._assessments = assessments
        self._outbox = outbox
        self._clock = clock
        self._writeback = writeback

    def advance(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.decide(team_id, application_id, actor, Decision.ADVANCE)

    def reject(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.decide(team_id, application_id, actor, Decision.REJECT)

    def decide(self, team_id: str, application_id: int, actor: Actor, decision: Decision) -> ActionResult:
        self._assessments.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            result: Any = session.execute(
                update(Application)
                .where(
                    Application.id == app.id,
                    Application.decision.is_(None),
                    Application.status.in_([status.value for status in DECIDABLE]),
                )
                .values(decision=decision.value, decided_by=user_id, decided_at=now)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:
                session.rollback()
                return self._refused(team_id, application_id)
            entry = repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="decided",
                application_id=app.id,
                invitation_id=app.current_invitation_id,
                detail=decision.value,
            )
            session.flush()
            queue_decision(session, app, audit_id=entry.id, decision=decision.value, actor=user_id)
            self._card(session, app, tag=f"decided-{decision.value}")
            self._card(session, app, tag="undo-closed", due=now + UNDO_DECISION + timedelta(seconds=1))
            queue_note(session, app, NoteKind.DECIDED, user_id, decision=decision.value, candidate=app.candidate.name)
        log.info("application %s: %s by %s", application_id, decision.past, user_id)
        self._outbox.deliver(application_id=application_id)
        self._write_back(application_id)
        return ActionResult(True, f"{decision.past.capitalize()}.", self._assessments.view(team_id, application_id))

    def undo(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        self._assessments.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            previous = app.decision
            if previous is None:
                raise Conflict("There is no decision to undo.")
            if app.decided_at is None or now >= app.decided_at + UNDO_DECISION:
                raise Conflict(f"A decision can be undone for {int(UNDO_DECISION.total_seconds() // 60)} minutes only; this one stands.")
            result: Any = session.execute(
                update(Application)
                .where(Application.id == app.id, Application.decision == previous, Application.decided_at == app.decided_at)
                .values(decision=None, decided_by=None, decided_at=None)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:
                session.rollback()
                raise Conflict("Someone changed the decision a moment ago; look at the card again.")
            entry = repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="decision_undone",
                application_id=app.id,
                invitation_id=app.current_invitation_id,
                detail=previous,
            )
            session.flush()
            queue_undo(session, app, audit_id=entry.id, previous=previous, actor=user_id, now=now)
            self._card(session, app, tag="undone")
            queue_note(session, app, NoteKind.DECISION_UNDONE, user_id, decision=previous, candidate=app.candidate.name)
        log.info("application %s: decision %s undone by %s", application_id, previous, user_id)
        self._outbox.deliver(application_id=application_id)
        self._write_back(application_id)
        return ActionResult(True, "Decision undone.", self._assessments.view(team_id, application_id))

    def _write_back(self, application_id: int) -> None:
        """Write the decision to the ATS now (after the card): the queue's job retries whatever fails."""
        if self._writeback is not None:
            self._writeback.deliver(application_id=application_id)

    def _refused(self, team_id: str, application_id: int) -> ActionResult:
        view = self._assessments.view(team_id, application_id)
        if view.decision is not None and view.decided_by:
            raise AlreadyDecided(view.decision, view.decided_by)
        raise Conflict("Only a completed assessment in review can be advanced or rejected.")

    @staticmethod
    def _card(session: Session, app: Application, *, tag: str, due: datetime | None = None) -> None:
        row = SlackOutbox.row(
            workspace_id=app.workspace_id, kind=CARD, key=f"card:{app.id}:{tag}:{uuid.uuid4().hex}", application_id=app.id
        )
        if due is not None:
            row["next_attempt_at"] = due
        repos.insert_ignore(session, OutboxMessage, row, ["dedupe_key"])
