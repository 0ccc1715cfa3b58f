"""What recruiters do to an assessment: send, reuse, resend, cancel, allow a re-attempt, mark reviewed.

Every command takes the `Actor` and decides here who may act (bot/access.py: the owner, an admin, or a
full member who can see the card), so a Slack button, a Workflow Builder step and any later caller meet
the same rule. Which action a status admits comes from bot.domain.allowed_actions, the one state
machine the card's buttons are drawn from too. Results and thread replies are facts (ActionResult,
NoteKind payloads); handlers/ words them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import imocha, metrics
from bot.access import Access
from bot.domain import (
    Actor,
    ApplicationView,
    AppStatus,
    AuditLine,
    CardAction,
    Conflict,
    DomainError,
    ExistingResult,
    NoteKind,
    NotFound,
    NothingToSend,
    statuses_allowing,
)
from bot.imocha import Status
from bot.lifecycle import APP_STATUS, queue_status_effects
from bot.outbox import CARD, DM, THREAD, SlackOutbox
from bot.views import application_view, application_views, invitation_view
from bot.workspaces import Workspaces
from store import repos
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, Workspace

log = logging.getLogger("bot.assessments")

SENDABLE = tuple(status.value for status in statuses_allowing(CardAction.SEND))
LOCK_SECONDS = 120
RESEND_GRACE_SECONDS = 60  # a Resend this soon after the last (re)send is a duplicate click


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    view: ApplicationView | None = None


def failure(exc: imocha.ImochaError) -> str:
    """Count an iMocha failure met by a recruiter's action, by kind, and word it for them."""
    metrics.IMOCHA_ERRORS.labels(kind=type(exc).__name__).inc()
    return friendly(exc)


def friendly(exc: imocha.ImochaError) -> str:
    """An iMocha failure as a sentence a recruiter can act on (never the key, never a stack)."""
    if isinstance(exc, imocha.AuthError):
        return "iMocha rejected the workspace's API key (an admin can replace it with /imocha setup)"
    if isinstance(exc, imocha.RateLimitError):
        return "iMocha is rate limiting us; try again in a minute"
    if isinstance(exc, imocha.ImochaConnectionError):
        return "iMocha could not be reached"
    if isinstance(exc, imocha.ServerError):
        return "iMocha had an internal error"
    if isinstance(exc, imocha.NotFoundError):
        return "iMocha does not know this test or invitation"
    if isinstance(exc, imocha.ImochaStatusError):
        return f"iMocha said: {exc.message}"[:300]
    return "iMocha answered in a way the bot did not understand"


class Assessments:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        outbox: SlackOutbox,
        clock: Callable[[], datetime],
        callback_url: str | None,
        access: Access,
    ):
        self._sf = session_factory
        self._access = access
        self._workspaces = workspaces
        self._outbox = outbox
        self._clock = clock
        self._callback_url = callback_url

    # -- reading --------------------------------------------------------------------------------

    def view(self, team_id: str, application_id: int) -> ApplicationView:
        with self._sf() as session:
            app = self._app(session, team_id, application_id)
            return application_views(session, [app], now=self._clock())[0]

    def view_for(self, team_id: str, application_id: int, actor: Actor) -> ApplicationView:
        """The application as `actor` may see it: NotAllowed unless they may act on its card."""
        view = self.view(team_id, application_id)
        self._access.require_card_access(team_id, actor.user_id, view, channel_id=actor.channel_id)
        return view

    def prepare_send(self, team_id: str, application_id: int, actor: Actor) -> tuple[ApplicationView, list[ExistingResult]]:
        """What the send modal shows: the application and the candidate's results for the same test elsewhere."""
        view = self.view_for(team_id, application_id, actor)
        if view.status not in statuses_allowing(CardAction.SEND):
            raise NothingToSend(view)
        if not view.candidate_email:
            raise DomainError("This candidate has no email address in the ATS, so the assessment can't be sent.")
        return view, self.existing_results(team_id, application_id)

    def existing_results(self, team_id: str, application_id: int) -> list[ExistingResult]:
        """Invitations for the same candidate and test reached through the candidate's other applications."""
        with self._sf() as session:
            app = self._app(session, team_id, application_id)
            if not app.candidate.email:
                return []
            rows = session.execute(
                select(Invitation, Job.name, Application.id)
                .join(ApplicationInvitation, ApplicationInvitation.invitation_id == Invitation.id)
                .join(Application, Application.id == ApplicationInvitation.application_id)
                .join(Job, Job.id == Application.job_id)
                .where(
                    Invitation.workspace_id == app.workspace_id,
                    Invitation.candidate_email == app.candidate.email,
                    Invitation.test_id == app.test_id,
                    Application.id != app.id,
                    ApplicationInvitation.live.is_(True),
                    ApplicationInvitation.reused.is_(False),
                )
                .order_by(Invitation.id.desc())
            )
            seen: set[int] = set()
            results = []
            for inv, job_name, other_id in rows:
                if inv.id not in seen:
                    seen.add(inv.id)
                    results.append(ExistingResult(invitation_view(inv), job_name, other_id))
            return results

    def status_for_email(self, team_id: str, email: str, actor: Actor) -> list[tuple[ApplicationView, list[AuditLine]]]:
        """`/imocha status`: every application for the email, with its history (full members only)."""
        self._access.require_member(team_id, actor.user_id)
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                return []
            apps = list(
                session.scalars(
                    select(Application)
                    .join(Candidate, Candidate.id == Application.candidate_id)
                    .where(Application.workspace_id == ws.id, Candidate.email == email.strip().lower())
                    .order_by(Application.created_at.desc())
                ).unique()
            )
            views = application_views(session, apps)
            history: dict[int, list[AuditLine]] = {}
            for entry in repos.audit_for_applications(session, [a.id for a in apps]):
                assert entry.application_id is not None
                history.setdefault(entry.application_id, []).append(
                    AuditLine(entry.actor, entry.action, entry.outcome, entry.detail, entry.created_at)
                )
            return [(view, history.get(view.id, [])) for view in views]

    # -- send -----------------------------------------------------------------------------------

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
        self.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id)
            if not app.candidate.email:
                raise DomainError("This candidate has no email address in the ATS, so iMocha cannot invite them.")
            values: dict[str, object] = {"sending_by": user_id, "sending_since": now, "status_reason": None}
            if test_id is not None and test_id != app.test_id:
                values.update(test_id=test_id, test_name=test_name or str(test_id))
            if not repos.compare_and_set_status(session, app.id, SENDABLE, AppStatus.SENDING.value, **values):
                session.rollback()
                return self._already(team_id, application_id)
            self._card(session, app, tag="sending")
        self._outbox.deliver(application_id=application_id)
        return self._complete_send(team_id, application_id, user_id, mode=mode)

    def _complete_send(self, team_id: str, application_id: int, user_id: str, *, mode: str) -> ActionResult:
        with self._sf() as session:
            app = self._app(session, team_id, application_id)
            email, name, test_id = app.candidate.email or "", app.candidate.name, app.test_id
            ws = session.get(Workspace, app.workspace_id)
            assert ws is not None
            validity = ws.validity_days
        existing = self.existing_results(team_id, application_id) if mode in ("reuse", "reattempt") else []
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
        return self._record_invitation(
            team_id, application_id, user_id, result, previous_id=previous.id if previous else None, start=start, end=end
        )

    def _record_invitation(
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
            app = self._app(session, team_id, application_id, lock=True)
            existed = repos.invitations_by_imocha_ids(session, app.workspace_id, [result.invitation_id], lock=True)
            if existed:
                inv = existed[0]
                if inv.status in (Status.EXPIRED.value, Status.CANCELLED.value, Status.PENDING.value):
                    inv.status = Status.PENDING.value  # iMocha re-opened it with the new window
                    inv.status_changed_at = now
                    inv.valid_from, inv.valid_until = start, end
                inv.test_url = result.test_url or inv.test_url
            else:
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
            shared = self._shared_elsewhere(session, app.id, inv.id)
            self._make_live(session, app, inv, user_id, reused=shared, now=now)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action=action,
                application_id=app.id,
                invitation_id=inv.id,
                detail=f"{app.test_name} (attempt {inv.attempt}, iMocha invitation {inv.imocha_id})",
            )
            self._card(session, app, tag=action)
            self._note(session, app, NoteKind.INVITED, user_id, action=action, test_name=app.test_name, attempt=inv.attempt)
            if app.status == AppStatus.SENT.value or action != "sent":
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
            if app.status not in (AppStatus.SENT.value, AppStatus.IN_PROGRESS.value):
                # iMocha handed back a finished attempt (the same email and test): show that result once.
                queue_status_effects(session, app, inv, actor=user_id)
        metrics.INVITATIONS.labels(action=action).inc()  # after the commit: counts invitations recorded, not attempts
        self._outbox.deliver(application_id=application_id)
        view = self.view(team_id, application_id)
        log.info("application %s: %s by %s (iMocha invitation %s)", application_id, action, user_id, result.invitation_id)
        return ActionResult(True, f"Assessment {action}.", view)

    def _link(self, team_id: str, application_id: int, user_id: str, invitation_id: int, *, reused: bool) -> ActionResult:
        now = self._clock()
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id, lock=True)
            inv = session.get(Invitation, invitation_id)
            if inv is None or inv.workspace_id != app.workspace_id:
                raise NotFound("That result no longer exists.")
            self._make_live(session, app, inv, user_id, reused=reused, now=now)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="reused",
                application_id=app.id,
                invitation_id=inv.id,
                detail=f"iMocha invitation {inv.imocha_id}",
            )
            self._card(session, app, tag="reused")
            self._note(session, app, NoteKind.REUSED, user_id, test_name=inv.test_name)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Existing result linked.", self.view(team_id, application_id))

    def _send_failed(self, team_id: str, application_id: int, user_id: str, reason: str) -> ActionResult:
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id)
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
            self._card(session, app, tag="failed")
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
        return ActionResult(False, f"Assessment could not be sent: {reason}", self.view(team_id, application_id))

    # -- other actions --------------------------------------------------------------------------

    def cancel(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.CANCEL)
        try:
            self._workspaces.imocha(team_id).cancel(inv.imocha_id)
        except imocha.ImochaError as exc:
            return self._action_failed(team_id, application_id, user_id, "cancelled", failure(exc))
        now = self._clock()
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id, lock=True)
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
            self._card(session, app, tag="cancelled")
            self._note(session, app, NoteKind.CANCELLED, user_id)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Invitation cancelled.", self.view(team_id, application_id))

    def resend(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.RESEND)
        recent = self._clock() - timedelta(seconds=RESEND_GRACE_SECONDS)
        if inv.status == Status.PENDING.value and inv.valid_from is not None and inv.valid_from > recent:
            # A double click, or a second tab: the click before this one has just opened a fresh window.
            self._unlock(team_id, application_id)
            raise Conflict("Nothing to resend: the invitation was sent with a fresh access window moments ago.")
        with self._sf() as session:
            app = self._app(session, team_id, application_id)
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
        return self._record_invitation(team_id, application_id, user_id, result, previous_id=None, start=start, end=end, action="resent")

    def reattempt(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        user_id = actor.user_id
        inv = self._lock_for(team_id, application_id, actor, CardAction.REATTEMPT)
        with self._sf() as session:
            app = self._app(session, team_id, application_id)
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
        return self._record_invitation(
            team_id, application_id, user_id, result, previous_id=inv.id, start=start, end=end, action="reattempt"
        )

    def mark_reviewed(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        self.view_for(team_id, application_id, actor)
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id)
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
                return self._already(team_id, application_id)
            repos.audit(
                session,
                workspace_id=app.workspace_id,
                actor=user_id,
                action="reviewed",
                application_id=app.id,
                invitation_id=app.current_invitation_id,
            )
            self._card(session, app, tag="reviewed")
            self._note(session, app, NoteKind.REVIEWED, user_id)
        self._outbox.deliver(application_id=application_id)
        return ActionResult(True, "Marked reviewed.", self.view(team_id, application_id))

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
            self._complete_send(team_id, app_id, actor or "system", mode="new")
        # Action locks (cancel/resend/re-attempt) left by a crash simply expire: see _lock_for.
        return len(rows)

    # -- helpers --------------------------------------------------------------------------------

    def _lock_for(self, team_id: str, application_id: int, actor: Actor, action: CardAction) -> Invitation:
        """Take the application's action lock (one Cancel/Resend/Re-attempt at a time) or raise Conflict.

        `actor` must be allowed to act on the card, and the application's status must admit `action`."""
        self.view_for(team_id, application_id, actor)
        allowed = [status.value for status in statuses_allowing(action)]
        user_id = actor.user_id
        now = self._clock()
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id)
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
                view = self.view(team_id, application_id)
                raise Conflict(
                    f"Nothing to {action.value.replace('reattempt', 're-attempt')} here: the assessment is {_status_words(view.status)} now."
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
            app = self._app(session, team_id, application_id)
            app.sending_by = app.sending_since = None

    def _action_failed(self, team_id: str, application_id: int, user_id: str, action: str, reason: str) -> ActionResult:
        with self._sf.begin() as session:
            app = self._app(session, team_id, application_id)
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
            self._note(session, app, NoteKind.ACTION_FAILED, user_id, action=action, reason=reason)
        self._outbox.deliver(application_id=application_id)
        log.warning("application %s: %s failed: %s", application_id, action, reason)
        return ActionResult(False, f"Not {action}: {reason}.", self.view(team_id, application_id))

    def _already(self, team_id: str, application_id: int) -> ActionResult:
        view = self.view(team_id, application_id)
        return ActionResult(False, f"Nothing to do: the assessment is {_status_words(view.status)} already.", view)

    @staticmethod
    def _shared_elsewhere(session: Session, application_id: int, invitation_id: int) -> bool:
        return (
            session.scalar(
                select(ApplicationInvitation.id)
                .where(
                    ApplicationInvitation.invitation_id == invitation_id,
                    ApplicationInvitation.application_id != application_id,
                    ApplicationInvitation.live.is_(True),
                )
                .limit(1)
            )
            is not None
        )

    @staticmethod
    def _make_live(session: Session, app: Application, inv: Invitation, user_id: str, *, reused: bool, now: datetime) -> None:
        """Make `inv` the application's one live invitation and take its status; releases the action lock."""
        session.execute(
            update(ApplicationInvitation)
            .where(ApplicationInvitation.application_id == app.id, ApplicationInvitation.invitation_id != inv.id)
            .values(live=False)
            .execution_options(synchronize_session=False)
        )
        session.flush()
        if not repos.insert_ignore(
            session,
            ApplicationInvitation,
            {
                "application_id": app.id,
                "invitation_id": inv.id,
                "test_id": inv.test_id,
                "live": True,
                "reused": reused,
                "linked_by": user_id,
            },
            ["application_id", "invitation_id"],
        ):
            session.execute(
                update(ApplicationInvitation)
                .where(ApplicationInvitation.application_id == app.id, ApplicationInvitation.invitation_id == inv.id)
                .values(live=True)
                .execution_options(synchronize_session=False)
            )
        app.current_invitation_id = inv.id
        app.attempt = inv.attempt
        app.status = APP_STATUS.get(Status(inv.status), AppStatus.SENT).value
        app.status_changed_at = now
        app.sending_by = app.sending_since = None

    @staticmethod
    def _card(session: Session, app: Application, *, tag: str) -> None:
        SlackOutbox.add(
            session, workspace_id=app.workspace_id, kind=CARD, key=f"card:{app.id}:{tag}:{uuid.uuid4().hex}", application_id=app.id
        )

    @staticmethod
    def _note(session: Session, app: Application, kind: NoteKind, actor: str, **facts: object) -> None:
        """Queue a thread reply on the card: what happened and who did it (handlers/blocks.py words it)."""
        SlackOutbox.add(
            session,
            workspace_id=app.workspace_id,
            kind=THREAD,
            key=f"note:{app.id}:{uuid.uuid4().hex}",
            application_id=app.id,
            payload={"template": "event", "event": kind.value, "actor": actor, **facts},
        )

    @staticmethod
    def _app(session: Session, team_id: str, application_id: int, *, lock: bool = False) -> Application:
        ws = repos.workspace_by_team(session, team_id)
        app = repos.application(session, ws.id, application_id, lock=lock) if ws else None
        if app is None:
            raise NotFound("That application no longer exists in this workspace.")
        return app


def _status_words(status: AppStatus) -> str:
    return {
        AppStatus.NEEDS_SENDING: "waiting to be sent",
        AppStatus.SENDING: "being sent",
        AppStatus.SEND_FAILED: "not sent (the last try failed)",
        AppStatus.SENT: "sent",
        AppStatus.IN_PROGRESS: "in progress",
        AppStatus.NEEDS_REVIEW: "completed and waiting for review",
        AppStatus.REVIEWED: "reviewed",
        AppStatus.EXPIRED: "expired",
        AppStatus.CANCELLED: "cancelled",
        AppStatus.LEFT: "left unfinished",
    }[status]


__all__ = ["ActionResult", "Assessments", "application_view", "friendly"]
