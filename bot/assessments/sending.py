"""Sending: invite the candidate once (the database decides), or link a result they already have."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import imocha
from bot.assessments.lifecycle import queue_status_effects
from bot.assessments.reads import AssessmentReads
from bot.assessments.records import (
    LOCK_SECONDS,
    SENDABLE,
    ActionResult,
    failure,
    load_application,
    make_live,
    queue_card,
    queue_note,
    shared_elsewhere,
)
from bot.domain import (
    Actor,
    AppStatus,
    DomainError,
    NoteKind,
    NotFound,
)
from bot.imocha import Status
from bot.runtime import metrics
from bot.slack.outbox import DM, SlackOutbox
from bot.workspace.settings import Workspaces
from store import repos
from store.models import Application, Invitation, Workspace

log = logging.getLogger("bot.assessments")


class Sender:
    """Send, and record what iMocha answered: the invitation made live, the card, the thread reply, the link DMs."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        reads: AssessmentReads,
        workspaces: Workspaces,
        outbox: SlackOutbox,
        clock: Callable[[], datetime],
        callback_url: str | None,
    ):
        self._sf = session_factory
        self._reads = reads
        self._workspaces = workspaces
        self._outbox = outbox
        self._clock = clock
        self._callback_url = callback_url

    def send(
        self,
        team_id: str,
        application_id: int,
        actor: Actor,
        *,
        test_id: int | None = None,
        test_name: str | None = None,
        mode: str = "new",
    ) -> ActionResult:
        """Invite the candidate once, however many times this is called at once (the database decides)."""
        self._reads.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            if not app.candidate.email:
                raise DomainError("This candidate has no email address in the ATS, so iMocha cannot invite them.")
            values: dict[str, object] = {"sending_by": user_id, "sending_since": now, "status_reason": None}
            if test_id is not None and test_id != app.test_id:
                values.update(test_id=test_id, test_name=test_name or str(test_id))
            if not repos.compare_and_set_status(session, app.id, SENDABLE, AppStatus.SENDING.value, **values):
                session.rollback()
                return self._reads.nothing_to_do(team_id, application_id)
            queue_card(session, app, tag="sending")
        self._outbox.deliver(application_id=application_id)
        return self.complete_send(team_id, application_id, user_id, mode=mode)

    def complete_send(self, team_id: str, application_id: int, user_id: str, *, mode: str) -> ActionResult:
        with self._sf() as session:
            app = load_application(session, team_id, application_id)
            email, name, test_id = app.candidate.email or "", app.candidate.name, app.test_id
            ws = session.get(Workspace, app.workspace_id)
            assert ws is not None
            validity = ws.validity_days
        existing = self._reads.existing_results(team_id, application_id) if mode in ("reuse", "reattempt") else []
        try:
            if mode == "reuse" and existing:
                return self._link(team_id, application_id, user_id, existing[0].invitation.id, reused=True)
            client = self._workspaces.imocha(team_id)
            start = self._clock()
            end = start + timedelta(days=validity)
            if mode == "reattempt" and existing:
                result = client.reattempt(
                    existing[0].invitation.imocha_id,
                    start=start,
                    end=end,
                    callback_url=self._callback_url,
                    send_email=True,
                )
                previous = existing[0].invitation
            else:
                result = client.invite(
                    test_id,
                    email=email,
                    name=name,
                    send_email=True,
                    callback_url=self._callback_url,
                    start=start,
                    end=end,
                )
                previous = None
        except imocha.ImochaError as exc:
            return self._send_failed(team_id, application_id, user_id, failure(exc))
        except DomainError as exc:
            return self._send_failed(team_id, application_id, user_id, str(exc))
        return self.record_invitation(
            team_id, application_id, user_id, result, previous_id=previous.id if previous else None, start=start, end=end
        )

    def record_invitation(
        self,
        team_id: str,
        application_id: int,
        user_id: str,
        result: imocha.Invitation,
        *,
        previous_id: int | None,
        start: datetime,
        end: datetime,
        action: str = "sent",
    ) -> ActionResult:
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id, lock=True)
            inv = _stored_invitation(session, app, result, previous_id=previous_id, user_id=user_id, start=start, end=end, now=now)
            shared = shared_elsewhere(session, app.id, inv.id)
            make_live(session, app, inv, user_id, reused=shared, now=now)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action=action,
                application_id=app.id,
                invitation_id=inv.id,
                detail=f"{app.test_name} (attempt {inv.attempt}, iMocha invitation {inv.imocha_id})",
            )
            queue_card(session, app, tag=action)
            queue_note(session, app, NoteKind.INVITED, user_id, action=action, test_name=app.test_name, attempt=inv.attempt)
            if app.status == AppStatus.SENT.value or action != "sent":
                _queue_link_dms(session, app, inv, user_id, action)
            if app.status not in (AppStatus.SENT.value, AppStatus.IN_PROGRESS.value):
                # iMocha handed back a finished attempt (the same email and test): show that result once.
                queue_status_effects(session, app, inv, actor=user_id)
        metrics.INVITATIONS.labels(action=action).inc()  # after the commit: counts invitations recorded, not attempts
        self._outbox.deliver(application_id=application_id)
        view = self._reads.view(team_id, application_id)
        log.info("application %s: %s by %s (iMocha invitation %s)", application_id, action, user_id, result.invitation_id)
        return ActionResult(True, f"Assessment {action}.", view)

    def _link(self, team_id: str, application_id: int, user_id: str, invitation_id: int, *, reused: bool) -> ActionResult:
        now = self._clock()
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id, lock=True)
            inv = session.get(Invitation, invitation_id)
            if inv is None or inv.workspace_id != app.workspace_id:
                raise NotFound("That result no longer exists.")
            make_live(session, app, inv, user_id, reused=reused, now=now)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="reused",
                application_id=app.id,
                invitation_id=inv.id,
                detail=f"iMocha invitation {inv.imocha_id}",
            )
            queue_card(session, app, tag="reused")
            queue_note(session, app, NoteKind.REUSED, user_id, test_name=inv.test_name)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Existing result linked.", self._reads.view(team_id, application_id))

    def _send_failed(self, team_id: str, application_id: int, user_id: str, reason: str) -> ActionResult:
        with self._sf.begin() as session:
            app = load_application(session, team_id, application_id)
            repos.compare_and_set_status(
                session,
                app.id,
                [AppStatus.SENDING.value],
                AppStatus.SEND_FAILED.value,
                status_reason=reason,
                sending_by=None,
                sending_since=None,
            )
            repos.audit(
                session, workspace_id=app.workspace_id, actor=user_id, action="sent", outcome="error", application_id=app.id, detail=reason
            )
            queue_card(session, app, tag="failed")
            SlackOutbox.add(
                session,
                workspace_id=app.workspace_id,
                kind=DM,
                key=f"failed:{app.id}:{uuid.uuid4().hex}",
                application_id=app.id,
                payload={"template": "send_failed", "user": user_id, "candidate": app.candidate.name, "reason": reason},
            )
        self._outbox.deliver(application_id=application_id)
        log.warning("application %s: send failed: %s", application_id, reason)
        return ActionResult(False, f"Assessment could not be sent: {reason}", self._reads.view(team_id, application_id))

    def recover_stuck_sends(self, older_than: timedelta = timedelta(seconds=LOCK_SECONDS)) -> int:
        """Finish sends interrupted by a crash: iMocha's invite is idempotent, so asking again is safe."""
        cutoff = self._clock() - older_than
        with self._sf() as session:
            rows = session.execute(
                select(Application.id, Workspace.team_id, Application.sending_by)
                .join(Workspace, Workspace.id == Application.workspace_id)
                .where(Application.status == AppStatus.SENDING.value, Application.sending_since < cutoff)
                .limit(50)
            ).all()
        for app_id, team_id, actor in rows:
            log.warning("application %s: finishing a send interrupted %s ago", app_id, older_than)
            with self._sf.begin() as session:
                session.execute(update(Application).where(Application.id == app_id).values(sending_since=self._clock()))
            self.complete_send(team_id, app_id, actor or "system", mode="new")
        # Action locks (cancel/resend/re-attempt) left by a crash simply expire: see _lock_for.
        return len(rows)


def _stored_invitation(
    session: Session,
    app: Application,
    result: imocha.Invitation,
    *,
    previous_id: int | None,
    user_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Invitation:
    """The invitation iMocha answered with: the stored one it re-opened, or a new row (the next attempt of `previous_id`)."""
    existed = repos.invitations_by_imocha_ids(session, app.workspace_id, [result.invitation_id], lock=True)
    if existed:
        inv = existed[0]
        if inv.status in (Status.EXPIRED.value, Status.CANCELLED.value, Status.PENDING.value):
            inv.status = Status.PENDING.value  # iMocha re-opened it with the new window
            inv.status_changed_at = now
            inv.valid_from, inv.valid_until = start, end
        inv.test_url = result.test_url or inv.test_url
        return inv
    prev = session.get(Invitation, previous_id) if previous_id else None
    inv = Invitation(
        workspace_id=app.workspace_id,
        imocha_id=result.invitation_id,
        test_id=app.test_id,
        test_name=app.test_name,
        candidate_email=app.candidate.email or "",
        candidate_name=app.candidate.name,
        test_url=result.test_url,
        status=Status.PENDING.value,
        attempt=(prev.attempt + 1) if prev else 1,
        previous_id=previous_id,
        valid_from=start,
        valid_until=end,
        sent_by=user_id,
        sent_at=now,
        status_changed_at=now,
    )
    session.add(inv)
    session.flush()
    return inv


def _queue_link_dms(session: Session, app: Application, inv: Invitation, user_id: str, action: str) -> None:
    """The test link, DMed to the clicker and to the card's owner (once when they are the same person)."""
    for target in dict.fromkeys([user_id, app.owner_user_id]):
        if target:
            SlackOutbox.add(
                session,
                workspace_id=app.workspace_id,
                kind=DM,
                key=f"link:{app.id}:{inv.id}:{target}:{uuid.uuid4().hex}",
                application_id=app.id,
                payload={"template": "link", "user": target, "actor": user_id, "action": action},
            )
