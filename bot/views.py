"""Turn stored rows into the plain ApplicationView values the Slack layer renders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.domain import UNDO_DECISION, ApplicationView, AppStatus, Decision, InvitationView, SectionView
from store.models import Application, ApplicationInvitation, Invitation, Job, SlackCard, Workspace


def invitation_view(inv: Invitation) -> InvitationView:
    sections = tuple(
        SectionView(name=str(s.get("name", "")), score=float(s.get("score") or 0), max_score=float(s.get("max") or 0))
        for s in (inv.sections or [])
        if isinstance(s, dict)
    )
    return InvitationView(
        id=inv.id,
        imocha_id=inv.imocha_id,
        test_id=inv.test_id,
        test_name=inv.test_name,
        test_url=inv.test_url,
        status=inv.status,
        attempt=inv.attempt,
        candidate_points=inv.candidate_points,
        total_points=inv.total_points,
        percentage=inv.percentage,
        performance_category=inv.performance_category,
        report_url=inv.report_url,
        sections=sections,
        valid_until=inv.valid_until,
        sent_by=inv.sent_by,
        sent_at=inv.sent_at,
        finished_at=inv.finished_at,
    )


def application_views(session: Session, applications: Sequence[Application], *, now: datetime | None = None) -> list[ApplicationView]:
    """Views for many applications with a fixed number of queries (no per-row loops); `now` tells
    whether a decision can still be undone."""
    if not applications:
        return []
    ids = [app.id for app in applications]
    cards = {card.application_id: card for card in session.scalars(select(SlackCard).where(SlackCard.application_id.in_(ids)))}
    teams = dict(
        session.execute(select(Workspace.id, Workspace.team_id).where(Workspace.id.in_({app.workspace_id for app in applications}))).all()
    )
    reused_from = _reused_from(session, ids)
    views = []
    for app in applications:
        card = cards.get(app.id)
        inv = app.current_invitation
        views.append(
            ApplicationView(
                id=app.id,
                team_id=teams[app.workspace_id],
                status=AppStatus(app.status),
                candidate_name=app.candidate.name,
                candidate_email=app.candidate.email,
                job_name=app.job.name,
                stage_name=app.stage_name,
                test_id=app.test_id,
                test_name=app.test_name,
                owner_user_id=app.owner_user_id,
                attempt=app.attempt,
                status_reason=app.status_reason,
                pass_mark=app.pass_mark,
                share_scores_in_channel=app.share_scores_in_channel,
                reviewed_by=app.reviewed_by,
                reviewed_at=app.reviewed_at,
                invitation=invitation_view(inv) if inv is not None else None,
                reused_from=reused_from.get(app.id),
                card_channel_id=card.channel_id if card else None,
                card_ts=card.ts if card else None,
                card_in_dm=card.in_dm if card else False,
                updated_at=app.updated_at,
                decision=Decision(app.decision) if app.decision else None,
                decided_by=app.decided_by,
                decided_at=app.decided_at,
                undo_open=bool(app.decided_at and now is not None and now < app.decided_at + UNDO_DECISION),
            )
        )
    return views


def _reused_from(session: Session, ids: list[int]) -> dict[int, str]:
    """Which other application's job a shared (reused) invitation came from, per application id."""
    reused = {
        link.application_id: link.invitation_id
        for link in session.scalars(
            select(ApplicationInvitation).where(
                ApplicationInvitation.application_id.in_(ids),
                ApplicationInvitation.live.is_(True),
                ApplicationInvitation.reused.is_(True),
            )
        )
    }
    reused_from: dict[int, str] = {}
    if reused:
        rows = session.execute(
            select(ApplicationInvitation.invitation_id, Job.name, ApplicationInvitation.application_id)
            .join(Application, Application.id == ApplicationInvitation.application_id)
            .join(Job, Job.id == Application.job_id)
            .where(
                ApplicationInvitation.invitation_id.in_(set(reused.values())),
                ApplicationInvitation.reused.is_(False),
            )
        )
        origin = {inv_id: job_name for inv_id, job_name, _app_id in rows}
        reused_from = {app_id: origin[inv_id] for app_id, inv_id in reused.items() if inv_id in origin}
    return reused_from


def application_view(session: Session, application_id: int, *, now: datetime | None = None) -> ApplicationView | None:
    app = session.get(Application, application_id)
    if app is None:
        return None
    return application_views(session, [app], now=now)[0]


def load_applications(session: Session, ids: Iterable[int]) -> list[Application]:
    wanted = list(ids)
    if not wanted:
        return []
    return list(session.scalars(select(Application).where(Application.id.in_(wanted))).unique())
