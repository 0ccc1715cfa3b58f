"""A plan's week in numbers: the figures, the week's bounds in the workspace's zone, and the queries."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bot.domain import AppStatus
from bot.imocha import Status
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Plan

log = logging.getLogger("bot.digest")

SEND_AT = time(9, 0)  # Monday 09:00 in the workspace's time zone
REVIEW_OVERDUE = timedelta(days=2)


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


def weekly_figures(
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
    by_id = {p.id: p for p in plans}
    if not by_id:
        return {}
    tallies = _tally_invitations(session, by_id, start, end)
    waiting = _overdue_reviews(session, by_id, now)
    return {plan.id: _stats(plan, tallies[plan.id], waiting[plan.id], monday, tz_name, partial=partial) for plan in by_id.values()}


def _tally_invitations(session: Session, by_id: dict[int, Plan], start: datetime, end: datetime) -> dict[int, _Tally]:
    """Sent, started, completed and expired invitations per plan, with the scores and hours of the completed."""
    tallies = {plan_id: _Tally() for plan_id in by_id}

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
    return tallies


def _overdue_reviews(session: Session, by_id: dict[int, Plan], now: datetime) -> dict[int, list[Waiting]]:
    """Per plan, the results waiting for review longer than REVIEW_OVERDUE, oldest first."""
    waiting: dict[int, list[Waiting]] = {plan_id: [] for plan_id in by_id}
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
        if plan_id is not None:
            waiting[plan_id].append(Waiting(candidate=name, owner_user_id=owner, days=(now - since).days))
    return waiting


def _stats(plan: Plan, t: _Tally, waiting: list[Waiting], monday: date, tz_name: str, *, partial: bool) -> DigestStats:
    return DigestStats(
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
        waiting=tuple(waiting),
        shows_scores=True,
        partial=partial,
    )
