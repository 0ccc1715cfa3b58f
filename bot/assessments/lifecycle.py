"""How iMocha statuses move an invitation and its applications forward, and what Slack hears about it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.domain import AppStatus
from bot.imocha import Report, Status
from bot.runtime import metrics
from bot.slack.outbox import CARD, DM, THREAD, SlackOutbox
from bot.views import load_applications
from store import repos
from store.models import Application, GemWriteback, Invitation

log = logging.getLogger("bot.assessments.lifecycle")

# A status may only move to a higher rank through polling or callbacks, so a late "In Progress" never
# overwrites "Complete". Expired and cancelled leave "Pending" only through an explicit Resend.
RANK = {
    Status.UNKNOWN: -1,
    Status.PENDING: 0,
    Status.IN_PROGRESS: 1,
    Status.EXPIRED: 2,
    Status.CANCELLED: 2,
    Status.COMPLETE: 3,
    Status.TEST_LEFT: 3,
    Status.TERMINATED: 3,
}

APP_STATUS = {
    Status.PENDING: AppStatus.SENT,
    Status.IN_PROGRESS: AppStatus.IN_PROGRESS,
    Status.COMPLETE: AppStatus.NEEDS_REVIEW,
    Status.TERMINATED: AppStatus.NEEDS_REVIEW,
    Status.TEST_LEFT: AppStatus.LEFT,
    Status.EXPIRED: AppStatus.EXPIRED,
    Status.CANCELLED: AppStatus.CANCELLED,
}

OPEN_STATUSES = (Status.PENDING.value, Status.IN_PROGRESS.value)


def can_advance(old: str, new: Status) -> bool:
    return RANK.get(new, -1) > RANK.get(Status(old) if old in Status._value2member_map_ else Status.UNKNOWN, -1)


@dataclass(frozen=True)
class Observation:
    """What iMocha says about one invitation right now (from a report, a window query or a callback)."""

    imocha_id: int
    status: Status
    report: Report | None = None


def apply_report_fields(inv: Invitation, report: Report) -> None:
    inv.candidate_points = report.candidate_points
    inv.total_points = report.total_points
    inv.percentage = report.percentage
    inv.performance_category = report.performance_category
    inv.report_url = report.pdf_url
    if report.sections:
        inv.sections = [{"name": s.name, "score": s.candidate_score, "max": s.max_score} for s in report.sections]


def observe(session: Session, workspace_id: int, observations: Iterable[Observation], now: datetime) -> list[int]:
    """Apply observations to the stored invitations; returns the ids of applications whose status changed."""
    by_id = {obs.imocha_id: obs for obs in observations}
    invitations = repos.invitations_by_imocha_ids(session, workspace_id, by_id, lock=True)
    changed_invitations: list[Invitation] = []
    for inv in invitations:
        obs = by_id[inv.imocha_id]
        inv.last_checked_at = now
        if obs.report is not None and obs.status.finished:
            apply_report_fields(inv, obs.report)
        if not can_advance(inv.status, obs.status):
            continue
        log.info("invitation %s: %s → %s", inv.imocha_id, inv.status, obs.status.value)
        inv.status = obs.status.value
        inv.status_changed_at = now
        if obs.status == Status.IN_PROGRESS:
            inv.started_at = inv.started_at or now
        if obs.status.finished:
            inv.finished_at = now
        changed_invitations.append(inv)
    if not changed_invitations:
        return []
    links = repos.live_links(session, [inv.id for inv in changed_invitations])
    apps = {app.id: app for app in load_applications(session, {link.application_id for link in links})}
    invs = {inv.id: inv for inv in changed_invitations}
    changed: list[int] = []
    pending = PendingEffects()
    with session.no_autoflush:
        for link in links:
            app = apps.get(link.application_id)
            if app is None or app.current_invitation_id != link.invitation_id:
                continue
            if move_application(session, app, invs[link.invitation_id], actor="imocha", now=now, pending=pending):
                changed.append(app.id)
    pending.flush(session)
    return changed


@dataclass
class PendingEffects:
    """The outbox rows and audit entries of many status changes, written together by `flush` (a few statements)."""

    outbox: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, session: Session) -> None:
        insert_effects(session, self.outbox)
        repos.audit_many(session, self.audits)
        self.outbox, self.audits = [], []


def move_application(
    session: Session, app: Application, inv: Invitation, *, actor: str, now: datetime, pending: PendingEffects | None = None
) -> bool:
    """Set the application's status from its invitation's and queue the card update and notices."""
    target = APP_STATUS.get(Status(inv.status))
    if target is None or app.status == target:
        return False
    if app.status == AppStatus.REVIEWED and target == AppStatus.NEEDS_REVIEW:
        return False  # already reviewed; a replayed completion changes nothing
    app.status = target
    app.status_changed_at = now
    app.status_reason = None
    queue_status_effects(session, app, inv, actor=actor, pending=pending)
    return True


def queue_status_effects(session: Session, app: Application, inv: Invitation, *, actor: str, pending: PendingEffects | None = None) -> None:
    """One card update per state change, plus the notices that status deserves (each at most once).

    With `pending`, the outbox rows and the audit entry are collected there and inserted later, a batch
    at a time (the poller applies hundreds of changes per cycle); without it they are written at once.
    """
    status = AppStatus(app.status)
    ws = app.workspace_id
    # The same change seen twice (a poll and a callback racing) makes the same keys, so one set of writes.
    window = inv.valid_until.isoformat() if inv.valid_until else ""
    key = f"{app.id}:{inv.id}:{status.value}:{window}"
    rows = [SlackOutbox.row(workspace_id=ws, kind=CARD, key=f"card:{key}", application_id=app.id)]
    if status == AppStatus.NEEDS_REVIEW:
        rows += _completion_effects(session, app, inv, key)
    elif status in (AppStatus.EXPIRED, AppStatus.CANCELLED, AppStatus.LEFT, AppStatus.IN_PROGRESS):
        rows.append(
            SlackOutbox.row(
                workspace_id=ws,
                kind=THREAD,
                key=f"status:{key}",
                application_id=app.id,
                payload={"template": "status", "status": status.value, "actor": actor},
            )
        )
    audit: dict[str, Any] = {
        "workspace_id": ws,
        "actor": actor,
        "action": f"status_{status.value}",
        "application_id": app.id,
        "invitation_id": inv.id,
    }
    if pending is None:
        insert_effects(session, rows)
        repos.audit(session, **audit)
    else:
        pending.outbox.extend(rows)
        pending.audits.append(audit)


def _completion_effects(session: Session, app: Application, inv: Invitation, key: str) -> list[dict[str, Any]]:
    """A completion's notices: the thread reply (broadcast), the owner's DM, and for a Gem application
    its score write-back (inserted here, once per invitation)."""
    ws = app.workspace_id
    rows: list[dict[str, Any]] = []
    rows.append(
        SlackOutbox.row(
            workspace_id=ws,
            kind=THREAD,
            key=f"completion:{key}",
            application_id=app.id,
            payload={"template": "completion", "broadcast": True},
        )
    )
    if app.owner_user_id:
        rows.append(
            SlackOutbox.row(
                workspace_id=ws,
                kind=DM,
                key=f"result:{key}",
                application_id=app.id,
                payload={"template": "result", "user": app.owner_user_id},
            )
        )
    if app.source == "gem":
        repos.insert_ignore(
            session,
            GemWriteback,
            {"workspace_id": ws, "application_id": app.id, "invitation_id": inv.id, "attempts": 0},
            ["application_id", "invitation_id"],
        )
    return rows


def insert_effects(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert queued outbox rows in batches; count each completion once, when its notice is first queued."""
    for start in range(0, len(rows), 500):
        inserted = SlackOutbox.add_many(session, rows[start : start + 500])
        completions = sum(1 for key in inserted if key.startswith("completion:"))
        if completions:
            metrics.COMPLETIONS.inc(completions)
