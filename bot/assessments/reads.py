"""Reading assessments: an application as a view, for whoever may see it, and the candidate's other results."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments.records import ActionResult, load_application, status_words
from bot.domain import (
    Actor,
    ApplicationView,
    AuditLine,
    CardAction,
    DomainError,
    ExistingResult,
    NothingToSend,
    statuses_allowing,
)
from bot.slack.access import Access
from bot.views import application_views, invitation_view
from store import repos
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job

log = logging.getLogger("bot.assessments")


class AssessmentReads:
    """Views of applications; `view_for` and `prepare_send` check that the actor may see the card."""

    def __init__(self, *, session_factory: sessionmaker[Session], access: Access, clock: Callable[[], datetime]):
        self._sf = session_factory
        self._access = access
        self._clock = clock

    def view(self, team_id: str, application_id: int) -> ApplicationView:
        with self._sf() as session:
            app = load_application(session, team_id, application_id)
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
            app = load_application(session, team_id, application_id)
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

    def nothing_to_do(self, team_id: str, application_id: int) -> ActionResult:
        """The answer to a command that lost its race: the assessment as it stands now."""
        view = self.view(team_id, application_id)
        return ActionResult(False, f"Nothing to do: the assessment is {status_words(view.status)} already.", view)
