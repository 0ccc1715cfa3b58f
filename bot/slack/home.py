"""The App Home queue: a user's applications per job, newest first, paginated to stay within Slack's limits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import desc, or_, select
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import ApplicationView, AppStatus
from bot.slack.access import Access
from bot.views import application_views
from store import repos
from store.models import Application, Job, SlackCard

PAGE_SIZE = 25


@dataclass(frozen=True)
class HomeData:
    jobs: list[tuple[str, dict[AppStatus, int], list[ApplicationView]]]
    total: int
    shown: int
    page: int


class HomeQueue:
    def __init__(self, *, session_factory: sessionmaker[Session], access: Access):
        self._sf = session_factory
        self._access = access

    def for_user(self, team_id: str, user_id: str, *, page: int = 0, channels: frozenset[str] | None = None) -> HomeData:
        """Applications the user owns or whose card channel they are in; counts cover them all."""
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                return HomeData([], 0, 0, page)
            card_channels = set(
                session.scalars(
                    select(SlackCard.channel_id)
                    .join(Application, Application.id == SlackCard.application_id)
                    .where(Application.workspace_id == ws.id, SlackCard.in_dm.is_(False))
                    .distinct()
                )
            )
            visible = {
                c
                for c in card_channels
                if (channels is not None and c in channels) or (channels is None and self._access.can_see_channel(team_id, user_id, c))
            }
            where = [Application.workspace_id == ws.id]
            cond = Application.owner_user_id == user_id
            if visible:
                cond = or_(cond, (SlackCard.channel_id.in_(visible)) & SlackCard.in_dm.is_(False))
            base = (
                select(Application.id, Application.status, Job.name)
                .join(Job, Job.id == Application.job_id)
                .outerjoin(SlackCard, SlackCard.application_id == Application.id)
                .where(*where, cond)
            )
            rows = session.execute(base.order_by(desc(Application.updated_at), desc(Application.id))).all()
            total = len(rows)
            counts: dict[str, Counter[AppStatus]] = {}
            for _id, status, job in rows:
                counts.setdefault(job, Counter())[AppStatus(status)] += 1
            limit = PAGE_SIZE * (page + 1)
            page_ids = [r[0] for r in rows[:limit]]
            apps = list(session.scalars(select(Application).where(Application.id.in_(page_ids))).unique())
            order = {app_id: i for i, app_id in enumerate(page_ids)}
            apps.sort(key=lambda a: order[a.id])
            views = application_views(session, apps)
        by_job: dict[str, list[ApplicationView]] = {}
        for view in views:
            by_job.setdefault(view.job_name, []).append(view)
        jobs = [(job, dict(counts[job]), by_job.get(job, [])) for job in sorted(counts, key=lambda j: -len(by_job.get(j, [])))]
        return HomeData(jobs, total, len(views), page)
