"""The weekly digest: each plan's week in numbers, posted once per plan and week to its hiring channel with a chart."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.errors import SlackApiError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import AppStatus, NotFound
from bot.imocha import Status
from bot.slack_gateway import SlackGateway, SlackUnavailable
from store import repos
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Plan, WeeklyDigest, Workspace

log = logging.getLogger("bot.digest")

SEND_AT = time(9, 0)  # Monday 09:00 in the workspace's time zone
REVIEW_OVERDUE = timedelta(days=2)
CLAIM = timedelta(minutes=5)  # a replica that dies mid-upload frees its claim after this
RETRY_AFTER = timedelta(minutes=15)
MAX_ATTEMPTS = 8
MAX_WAITING_LISTED = 15


@dataclass(frozen=True)
class Waiting:
    """An assessment waiting for review longer than REVIEW_OVERDUE."""

    candidate: str
    owner_user_id: str | None
    days: int


@dataclass(frozen=True)
class DigestStats:
    """One plan's week. `scores` and `median_score` are only filled when the destination may show scores."""

    plan_id: int
    job_label: str
    stage_label: str
    test_name: str
    week_start: date  # Monday, in the workspace's zone
    week_end: date  # the day after the last day counted
    timezone: str
    sent: int
    started: int
    completed: int
    expired: int
    passed: int | None  # None when no completed assessment could be judged against a pass mark
    judged: int
    median_score: float | None
    median_hours_to_complete: float | None
    pass_mark: int | None
    scores: tuple[float, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    shows_scores: bool = False
    partial: bool = False  # the current week so far (/imocha digest), not a finished one

    @property
    def active(self) -> bool:
        return bool(self.sent or self.started or self.completed or self.expired)

    @property
    def pass_rate(self) -> float | None:
        return None if self.passed is None or not self.judged else 100.0 * self.passed / self.judged

    def hide_scores(self) -> DigestStats:
        return replace(self, scores=(), median_score=None, shows_scores=False)


class DigestRenderer(Protocol):
    """Turns a week's figures into a message and a PNG; implemented by handlers.digest."""

    def text(self, stats: DigestStats) -> str: ...

    def alt_text(self, stats: DigestStats) -> str: ...

    def chart(self, stats: DigestStats) -> bytes: ...


@dataclass
class _Tally:
    sent: int = 0
    started: int = 0
    completed: int = 0
    expired: int = 0
    scores: list[float] = field(default_factory=list)
    passed: int = 0
    judged: int = 0
    hours: list[float] = field(default_factory=list)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r; the digest uses UTC", name)
        return ZoneInfo("UTC")


def week_bounds(monday: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants that start and end the local week starting `monday` (DST-safe: each end is local midnight)."""
    start = datetime.combine(monday, time(0), tz)
    end = datetime.combine(monday + timedelta(days=7), time(0), tz)
    return start, end


def this_monday(now: datetime, tz: ZoneInfo) -> date:
    local = now.astimezone(tz).date()
    return local - timedelta(days=local.weekday())


def due_week(now: datetime, tz: ZoneInfo) -> date | None:
    """The Monday of the last finished week once this week's Monday 09:00 (local) has passed, else None."""
    monday = this_monday(now, tz)
    if now < datetime.combine(monday, SEND_AT, tz):
        return None
    return monday - timedelta(days=7)


class Digests:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: SlackGateway,
        renderer: DigestRenderer,
        clock: Callable[[], datetime],
    ):
        self._sf = session_factory
        self._gateway = gateway
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
                figures = self._figures(session, plans, start, end, now, monday, tz_name or "UTC", partial=False)
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

    def post_current_week(self, team_id: str) -> int:
        """Post this week so far for every plan with activity; returns how many were posted. Not recorded:
        an admin asking is not the weekly digest, which still goes out on Monday."""
        now = self._clock()
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                raise NotFound("iMocha is not set up yet: an admin can run `/imocha setup` first.")
            tz = zone(ws.timezone)
            monday = this_monday(now, tz)
            start, _ = week_bounds(monday, tz)
            plans = repos.plans_for(session, ws.id)
            figures = self._figures(session, plans, start, now, now, monday, ws.timezone or "UTC", partial=True)
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
            figures = self._figures(session, plans, start, now, now, monday, ws.timezone or "UTC", partial=partial)
        return [figures[p.id] for p in plans]

    # -- figures ----------------------------------------------------------------------------------------

    @staticmethod
    def _figures(
        session: Session,
        plans: Iterable[Plan],
        start: datetime,
        end: datetime,
        now: datetime,
        monday: date,
        tz_name: str,
        *,
        partial: bool,
    ) -> dict[int, DigestStats]:
        """Every plan's figures for [start, end) in two queries, whatever the number of plans."""
        plans = list(plans)
        by_id = {p.id: p for p in plans}
        tallies = {p.id: _Tally() for p in plans}
        if not plans:
            return {}

        def within(column: Any) -> Any:
            return and_(column >= start, column < end)

        rows = session.execute(
            select(
                Application.plan_id,
                Invitation.id,
                Invitation.status,
                Invitation.sent_at,
                Invitation.started_at,
                Invitation.finished_at,
                Invitation.status_changed_at,
                Invitation.percentage,
                Application.pass_mark,
            )
            .join(ApplicationInvitation, ApplicationInvitation.invitation_id == Invitation.id)
            .join(Application, Application.id == ApplicationInvitation.application_id)
            .where(
                Application.plan_id.in_(list(by_id)),
                or_(
                    within(Invitation.sent_at),
                    within(Invitation.started_at),
                    within(Invitation.finished_at),
                    within(Invitation.status_changed_at),
                ),
            )
        )
        seen: set[tuple[int, int]] = set()
        for plan_id, inv_id, status, sent_at, started_at, finished_at, changed_at, percentage, pass_mark in rows:
            if plan_id is None or (plan_id, inv_id) in seen:  # an invitation serving two applications of a plan counts once
                continue
            seen.add((plan_id, inv_id))
            tally = tallies[plan_id]
            if start <= sent_at < end:
                tally.sent += 1
            # A finish without a recorded start (iMocha reported it complete before any poll saw it in
            # progress) was still a start, at the latest when it finished.
            began = started_at or finished_at
            if began is not None and start <= began < end:
                tally.started += 1
            if status == Status.COMPLETE.value and finished_at is not None and start <= finished_at < end:
                tally.completed += 1
                tally.hours.append((finished_at - sent_at).total_seconds() / 3600)
                if percentage is not None:
                    tally.scores.append(float(percentage))
                    mark = pass_mark if pass_mark is not None else by_id[plan_id].pass_mark
                    if mark is not None:
                        tally.judged += 1
                        tally.passed += int(percentage >= mark)
            if status == Status.EXPIRED.value and start <= changed_at < end:
                tally.expired += 1

        waiting: dict[int, list[Waiting]] = {p.id: [] for p in plans}
        overdue = session.execute(
            select(Application.plan_id, Candidate.name, Application.owner_user_id, Application.status_changed_at)
            .join(Candidate, Candidate.id == Application.candidate_id)
            .where(
                Application.plan_id.in_(list(by_id)),
                Application.status == AppStatus.NEEDS_REVIEW.value,
                Application.status_changed_at <= now - REVIEW_OVERDUE,
            )
            .order_by(Application.status_changed_at, Application.id)
        )
        for plan_id, name, owner, since in overdue:
            if plan_id is None:
                continue
            waiting[plan_id].append(Waiting(candidate=name, owner_user_id=owner, days=(now - since).days))

        out = {}
        for plan in plans:
            t = tallies[plan.id]
            out[plan.id] = DigestStats(
                plan_id=plan.id,
                job_label=plan.job_label,
                stage_label=plan.stage_label,
                test_name=plan.test_name,
                week_start=monday,
                week_end=monday + timedelta(days=7),
                timezone=tz_name,
                sent=t.sent,
                started=t.started,
                completed=t.completed,
                expired=t.expired,
                passed=t.passed if t.judged else None,
                judged=t.judged,
                median_score=statistics.median(t.scores) if t.scores else None,
                median_hours_to_complete=statistics.median(t.hours) if t.hours else None,
                pass_mark=plan.pass_mark,
                scores=tuple(sorted(t.scores)),
                waiting=tuple(waiting[plan.id]),
                shows_scores=True,
                partial=partial,
            )
        return out

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
