"""Posting the digest: once per plan and week, claimed so one replica uploads it, retried when Slack fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.digest.figures import DigestStats, due_week, this_monday, week_bounds, weekly_figures, zone
from bot.domain import Actor, NotAllowed, NotFound
from bot.slack.access import Access
from bot.slack.gateway import SlackGateway, SlackUnavailable
from store import repos
from store.models import Plan, WeeklyDigest, Workspace

log = logging.getLogger("bot.digest")

CLAIM = timedelta(minutes=5)  # a replica that dies mid-upload frees its claim after this
RETRY_AFTER = timedelta(minutes=15)
MAX_ATTEMPTS = 8


class DigestRenderer(Protocol):
    """Turns a week's figures into a message and a PNG; implemented by handlers.digest."""

    def text(self, stats: DigestStats) -> str: ...

    def alt_text(self, stats: DigestStats) -> str: ...

    def chart(self, stats: DigestStats) -> bytes: ...


class Digests:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: SlackGateway,
        renderer: DigestRenderer,
        clock: Callable[[], datetime],
        access: Access | None = None,
    ):
        self._sf = session_factory
        self._gateway = gateway
        self._access = access  # who may post on demand; without it nobody may (the weekly job needs none)
        self._renderer = renderer
        self._clock = clock

    # -- the weekly job ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Post every digest that is due and not yet sent; returns how many were posted. Safe to run often:
        the unique (plan, week) row lets one replica, one run, post each digest once."""
        now = self._clock()
        with self._sf() as session:
            workspaces = list(session.execute(select(Workspace.id, Workspace.team_id, Workspace.timezone).where(Workspace.active)))
        posted = 0
        for workspace_id, team_id, tz_name in workspaces:
            tz = zone(tz_name)
            monday = due_week(now, tz)
            if monday is None:
                continue
            week = monday.isoformat()
            with self._sf() as session:
                done = select(WeeklyDigest.plan_id).where(
                    WeeklyDigest.workspace_id == workspace_id,
                    WeeklyDigest.week == week,
                    or_(
                        WeeklyDigest.done_at.is_not(None),
                        WeeklyDigest.claimed_until > now,
                        WeeklyDigest.attempts >= MAX_ATTEMPTS,
                    ),
                )
                plans = list(
                    session.scalars(
                        select(Plan).where(Plan.workspace_id == workspace_id, Plan.weekly_digest.is_(True), Plan.id.not_in(done))
                    )
                )
                if not plans:
                    continue
                start, end = week_bounds(monday, tz)
                figures = weekly_figures(session, plans, start, end, now, monday, tz_name or "UTC", partial=False)
            for plan in plans:
                stats = figures[plan.id]
                if not stats.active:
                    self._mark_empty(workspace_id, plan.id, week, now)
                    continue
                if not self._claim(workspace_id, plan.id, week, now):
                    continue
                posted += self._post(team_id, plan, stats, week=week)
        if posted:
            log.info("posted %d weekly digests", posted)
        return posted

    # -- on demand (/imocha digest) ---------------------------------------------------------------------

    def post_current_week(self, team_id: str, actor: Actor) -> int:
        """Post this week so far for every plan with activity; returns how many were posted. Workspace
        admins only. Not recorded: an admin asking is not the weekly digest, which still goes out on Monday."""
        if self._access is None:
            raise NotAllowed("The digest is not available in this process.")
        self._access.require_admin(team_id, actor.user_id, "post the digest")
        now = self._clock()
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                raise NotFound("iMocha is not set up yet: an admin can run `/imocha setup` first.")
            tz = zone(ws.timezone)
            monday = this_monday(now, tz)
            start, _ = week_bounds(monday, tz)
            plans = repos.plans_for(session, ws.id)
            figures = weekly_figures(session, plans, start, now, now, monday, ws.timezone or "UTC", partial=True)
        return sum(self._post(team_id, plan, figures[plan.id], week=None) for plan in plans if figures[plan.id].active)

    def figures(self, team_id: str, *, partial: bool = True) -> list[DigestStats]:
        """This week's figures per plan, scores included (for the owner's eyes: App Home, tests, benchmarks)."""
        now = self._clock()
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                return []
            tz = zone(ws.timezone)
            monday = this_monday(now, tz)
            start, _ = week_bounds(monday, tz)
            plans = repos.plans_for(session, ws.id)
            figures = weekly_figures(session, plans, start, now, now, monday, ws.timezone or "UTC", partial=partial)
        return [figures[p.id] for p in plans]

    # -- figures ----------------------------------------------------------------------------------------

    # -- posting ----------------------------------------------------------------------------------------

    def _post(self, team_id: str, plan: Plan, stats: DigestStats, *, week: str | None) -> int:
        """Upload the chart with the digest as its message; 1 when posted. Scores only where they may show."""
        channel, in_dm = plan.channel_id, False
        if channel is None:
            with self._sf() as session:
                ws = repos.workspace_by_team(session, team_id)
                channel = ws.default_channel_id if ws is not None else None
        try:
            if channel is None:
                channel, in_dm = self._gateway.dm_channel(team_id, plan.created_by), True
            if not (plan.share_scores_in_channel or in_dm):
                stats = stats.hide_scores()
            response = self._upload(team_id, channel, stats, plan.job_label)
        except (SlackApiError, SlackUnavailable) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else "not installed"
            log.warning("digest for plan %s (week %s) not posted: %s", plan.id, week or "current", error)
            if week is not None:
                self._failed(plan.id, week, str(error))
            return 0
        file_id = str((response.get("file") or {}).get("id") or "") or None
        if week is not None:
            self._done(plan.id, week, channel=channel, file_id=file_id)
        return 1

    def _upload(self, team_id: str, channel: str, stats: DigestStats, job_label: str) -> Any:
        client = self._gateway.client(team_id)
        upload: dict[str, Any] = {
            "channel": channel,
            "file": self._renderer.chart(stats),
            "filename": f"imocha-digest-{stats.week_start.isoformat()}.png",
            "title": f"iMocha weekly digest: {job_label}",
            "alt_txt": self._renderer.alt_text(stats),
            "initial_comment": self._renderer.text(stats),
        }
        try:
            return client.files_upload_v2(**upload)
        except SlackApiError as exc:
            # Cards reach public channels through chat:write.public, but sharing a file needs membership:
            # join the public channel once (channels:join) and share again.
            if exc.response.get("error") != "not_in_channel":
                raise
            client.conversations_join(channel=channel)
            return client.files_upload_v2(**upload)

    def _claim(self, workspace_id: int, plan_id: int, week: str, now: datetime) -> bool:
        with self._sf.begin() as session:
            values = {"workspace_id": workspace_id, "plan_id": plan_id, "week": week, "attempts": 0, "claimed_until": now + CLAIM}
            if repos.insert_ignore(session, WeeklyDigest, values, ["plan_id", "week"]):
                return True
            claimed = session.execute(
                update(WeeklyDigest)
                .where(
                    WeeklyDigest.plan_id == plan_id,
                    WeeklyDigest.week == week,
                    WeeklyDigest.done_at.is_(None),
                    WeeklyDigest.attempts < MAX_ATTEMPTS,
                    or_(WeeklyDigest.claimed_until.is_(None), WeeklyDigest.claimed_until <= now),
                )
                .values(claimed_until=now + CLAIM)
            )
            return bool(getattr(claimed, "rowcount", 0) == 1)

    def _mark_empty(self, workspace_id: int, plan_id: int, week: str, now: datetime) -> None:
        """A quiet week posts nothing, and is not looked at again."""
        with self._sf.begin() as session:
            repos.insert_ignore(
                session,
                WeeklyDigest,
                {"workspace_id": workspace_id, "plan_id": plan_id, "week": week, "attempts": 0, "done_at": now},
                ["plan_id", "week"],
            )

    def _done(self, plan_id: int, week: str, *, channel: str, file_id: str | None) -> None:
        now = self._clock()
        with self._sf.begin() as session:
            session.execute(
                update(WeeklyDigest)
                .where(WeeklyDigest.plan_id == plan_id, WeeklyDigest.week == week)
                .values(done_at=now, channel_id=channel, file_id=file_id, claimed_until=None, attempts=WeeklyDigest.attempts + 1)
            )

    def _failed(self, plan_id: int, week: str, error: str) -> None:
        now = self._clock()
        with self._sf.begin() as session:
            session.execute(
                update(WeeklyDigest)
                .where(WeeklyDigest.plan_id == plan_id, WeeklyDigest.week == week)
                .values(claimed_until=now + RETRY_AFTER, attempts=WeeklyDigest.attempts + 1, last_error=error[:500])
            )
