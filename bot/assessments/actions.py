"""Acting on a sent invitation: cancel, resend, allow a re-attempt, mark reviewed; one action at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import imocha
from bot.assessments.reads import AssessmentReads
from bot.assessments.records import (
    LOCK_SECONDS,
    RESEND_GRACE_SECONDS,
    ActionResult,
    failure,
    load_application,
    queue_card,
    queue_note,
    status_words,
)
from bot.assessments.sending import Sender
from bot.domain import (
    Actor,
    AppStatus,
    CardAction,
    Conflict,
    NoteKind,
    NotFound,
    statuses_allowing,
)
from bot.imocha import Status
from bot.slack.outbox import SlackOutbox
from bot.workspace.settings import Workspaces
from store import repos
from store.models import Application, Invitation, Workspace

log = logging.getLogger("bot.assessments")


class InvitationActions:
    """Cancel, Resend, Allow re-attempt and Mark reviewed, each behind the application's action lock."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        reads: AssessmentReads,
        sender: Sender,
        workspaces: Workspaces,
        outbox: SlackOutbox,
        clock: Callable[[], datetime],
        callback_url: str | None,
    ):
        self._sf = session_factory
        self._reads = reads
        self._sender = sender
        self._workspaces = workspaces
        self._outbox = outbox
        self._clock = clock
        self._callback_url = callback_url

    def cancel(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.CANCEL)
        try:
            self._workspaces.imocha(team_id).cancel(inv.imocha_id)
        except imocha.ImochaError as exc:
            return self._action_failed(team_id, application_id, user_id, "cancelled", failure(exc))
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id, lock=True)
            stored = session.get(Invitation, inv.id)
            assert stored is not None
            stored.status = Status.CANCELLED.value
            stored.status_changed_at = now
            app.status = AppStatus.CANCELLED.value
            app.status_changed_at = now
            app.sending_by = app.sending_since = None
            repos.audit(
                session, workspace_id=app.workspace_id, actor=user_id, action="cancelled", application_id=app.id, invitation_id=inv.id
            )
            queue_card(session, app, tag="cancelled")
            queue_note(session, app, NoteKind.CANCELLED, user_id)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Invitation cancelled.", self._reads.view(team_id, application_id))

    def resend(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.RESEND)
        recent = self._clock() - timedelta(seconds=RESEND_GRACE_SECONDS)
        if inv.status == Status.PENDING.value and inv.valid_from is not None and inv.valid_from > recent:
            # A double click, or a second tab: the click before this one has just opened a fresh window.
            self._unlock(team_id, application_id)
            raise Conflict("Nothing to resend: the invitation was sent with a fresh access window moments ago.")
        with self._sf() as session:
            app = load_application(session, team_id, application_id)
            ws = session.get(Workspace, app.workspace_id)
            assert ws is not None
            validity, email, name = ws.validity_days, app.candidate.email or inv.candidate_email, app.candidate.name
        start = self._clock()
        end = start + timedelta(days=validity)
        try:
            result = self._workspaces.imocha(team_id).invite(
                inv.test_id, email=email, name=name, send_email=True, callback_url=self._callback_url, start=start, end=end
            )
        except imocha.ImochaError as exc:
            return self._action_failed(team_id, application_id, user_id, "resent", failure(exc))
        return self._sender.record_invitation(
            team_id, application_id, user_id, result, previous_id=None, start=start, end=end, action="resent"
        )

    def reattempt(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.REATTEMPT)
        with self._sf() as session:
            app = load_application(session, team_id, application_id)
            ws = session.get(Workspace, app.workspace_id)
            assert ws is not None
            validity = ws.validity_days
        start = self._clock()
        end = start + timedelta(days=validity)
        try:
            result = self._workspaces.imocha(team_id).reattempt(
                inv.imocha_id, start=start, end=end, callback_url=self._callback_url, send_email=True
            )
        except imocha.ImochaError as exc:
            return self._action_failed(team_id, application_id, user_id, "re-attempt allowed", failure(exc))
        return self._sender.record_invitation(
            team_id, application_id, user_id, result, previous_id=inv.id, start=start, end=end, action="reattempt"
        )

    def mark_reviewed(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        self._reads.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            if app.decision is not None or not repos.compare_and_set_status(
                session,
                app.id,
                [status.value for status in statuses_allowing(CardAction.MARK_REVIEWED)],
                AppStatus.REVIEWED.value,
                reviewed_by=user_id,
                reviewed_at=now,
                status_changed_at=now,
            ):
                session.rollback()
                return self._reads.nothing_to_do(team_id, application_id)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="reviewed",
                application_id=app.id,
                invitation_id=app.current_invitation_id,
            )
            queue_card(session, app, tag="reviewed")
            queue_note(session, app, NoteKind.REVIEWED, user_id)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Marked reviewed.", self._reads.view(team_id, application_id))

    def _lock_for(self, team_id: str, application_id: int, actor: Actor, action: CardAction) -> Invitation:
        """Take the application's action lock (one Cancel/Resend/Re-attempt at a time) or raise Conflict.

        `actor` must be allowed to act on the card, and the application's status must admit `action`."""
        self._reads.view_for(team_id, application_id, actor)
        allowed = [status.value for status in statuses_allowing(action)]
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            result = session.execute(
                update(Application)
                .where(
                    Application.id == app.id,
                    Application.status.in_(allowed),
                    Application.decision.is_(None),
                    (Application.sending_since.is_(None)) | (Application.sending_since < now - timedelta(seconds=LOCK_SECONDS)),
                )
                .values(sending_by=user_id, sending_since=now)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                session.rollback()
                view = self._reads.view(team_id, application_id)
                raise Conflict(
                    f"Nothing to {action.value.replace('reattempt', 're-attempt')} here: the assessment is {status_words(view.status)} now."
                )
            # Re-read after winning the lock: the rows loaded before it may predate the action that
            # held the lock a moment ago (PostgreSQL's READ COMMITTED), e.g. a Resend that just ran.
            session.expire_all()
            current = session.scalar(select(Application.current_invitation_id).where(Application.id == application_id))
            inv = session.get(Invitation, current, populate_existing=True) if current else None
            if inv is None:
                raise NotFound("This application has no iMocha invitation yet.")
            session.expunge(inv)
            return inv

    def _unlock(self, team_id: str, application_id: int) -> None:
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            app.sending_by = app.sending_since = None

    def _action_failed(self, team_id: str, application_id: int, user_id: str, action: str, reason: str) -> ActionResult:
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            app.sending_by = app.sending_since = None
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action=action.split()[0],
                outcome="error",
                application_id=app.id,
                detail=reason,
            )
            queue_note(session, app, NoteKind.ACTION_FAILED, user_id, action=action, reason=reason)
        self._outbox.deliver(application_id=application_id)
        log.warning("application %s: %s failed: %s", application_id, action, reason)
        return ActionResult(False, f"Not {action}: {reason}.", self._reads.view(team_id, application_id))
