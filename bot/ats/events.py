"""Signed outgoing events: every assessment state change POSTed to EVENTS_WEBHOOK_URL, at least once, in order.

The audit log is the source: each state change already writes one audit entry in the same transaction
as the change, so an event can never be lost or invented. The `events.deliver` job (one replica at a
time) turns new audit entries of the kinds in EVENT_TYPES into `event_deliveries` rows (one per entry,
a unique constraint) and POSTs them oldest first. An application's events go out in order: while one
of them waits for a retry, the later ones wait too; other applications go on.

Each body is one JSON object signed like the inbound ATS webhook: `X-Signature: sha256=<hex>`, the
HMAC-SHA256 of the raw body with EVENTS_WEBHOOK_SECRET, so one verifier serves both directions. The
event id (`evt_<audit id>`) is stable: a retry, a crash between the POST and its bookkeeping, or
`imocha-bot events replay` sends the same id again, and receivers dedupe on it.

Retries: connection errors, 429 (honouring Retry-After) and 5xx back off exponentially (5 s doubling,
at most 1 h) for 24 hours after the change; any other 4xx is the receiver refusing the event for good
and is not retried. A change older than 24 hours when first seen is not sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.backoff import Backoff
from bot.vendors.http import retry_after_seconds
from store import repos
from store.models import Application, AuditEntry, Candidate, EventDelivery, Invitation, Job, Workspace

log = logging.getLogger("bot.ats.events")

# Audit actions (outcome "ok") that are state changes, and the event each one is.
EVENT_TYPES = {
    "sent": "assessment.sent",
    "resent": "assessment.sent",
    "reattempt": "assessment.sent",
    "reused": "assessment.sent",  # a result linked from another application: `reused` is true
    "status_in_progress": "assessment.started",
    "status_needs_review": "assessment.completed",
    "status_expired": "assessment.expired",
    "status_cancelled": "assessment.cancelled",
    "cancelled": "assessment.cancelled",
    "status_left": "assessment.left",
    "reviewed": "assessment.reviewed",
    "decided": "assessment.decided",  # `decision`: advance | reject
    "decision_undone": "assessment.decision_undone",  # `decision`: the one taken back
}
RETRY_FOR = timedelta(hours=24)
BACKOFF = Backoff(first=5.0, cap=3600.0)
BATCH = 500
DELIVERED, CLOSED, WAITING = "delivered", "closed", "waiting"


def sign(body: bytes, secret: str) -> str:
    """The X-Signature header value for `body`: the same scheme as POST /webhooks/ats."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def build_event(session: Session, entry: AuditEntry) -> dict[str, Any] | None:
    """The event for one audit entry, from what the database holds; None when its application is gone."""
    event_type = EVENT_TYPES.get(entry.action)
    app = session.get(Application, entry.application_id) if entry.application_id is not None else None
    if event_type is None or app is None:
        return None
    candidate = session.get(Candidate, app.candidate_id)
    job = session.get(Job, app.job_id)
    team_id = session.scalar(select(Workspace.team_id).where(Workspace.id == entry.workspace_id))
    inv = session.get(Invitation, entry.invitation_id) if entry.invitation_id is not None else None
    event: dict[str, Any] = {
        "id": f"evt_{entry.id}",
        "type": event_type,
        "occurred_at": iso(entry.created_at),
        "team_id": team_id,
        "actor": entry.actor,
        "application": {"id": app.external_id, "source": app.source, "stage": app.stage_name},
        "candidate": {
            "id": app.external_candidate_id or (candidate.external_id if candidate else None),
            "name": candidate.name if candidate else None,
            "email": candidate.email if candidate else None,
        },
        "job": {"id": job.external_id if job else None, "name": job.name if job else None},
        "assessment": {
            "test_id": inv.test_id if inv else app.test_id,
            "test_name": inv.test_name if inv else app.test_name,
            "invitation_id": inv.imocha_id if inv else None,
            "attempt": inv.attempt if inv else app.attempt,
            "valid_until": iso(inv.valid_until) if inv else None,
            "reused": entry.action == "reused",
        },
    }
    if entry.action in ("decided", "decision_undone"):
        event["decision"] = entry.detail
    if event_type == "assessment.completed" and inv is not None:
        passed = None if inv.percentage is None or app.pass_mark is None else inv.percentage >= app.pass_mark
        event["result"] = {
            "points": inv.candidate_points,
            "total_points": inv.total_points,
            "percentage": inv.percentage,
            "pass_mark": app.pass_mark,
            "passed": passed,
            "performance_category": inv.performance_category,
            "report_url": inv.report_url,
            "finished_at": iso(inv.finished_at),
        }
    return event


@dataclass(frozen=True)
class Outcome:
    """What one POST achieved: delivered, worth retrying (after `retry_after` when the receiver said), or refused."""

    delivered: bool
    retry: bool
    error: str | None = None
    retry_after: float | None = None


class EventSender:
    """POSTs signed event bodies to one URL over an injected httpx.Client."""

    def __init__(self, http: httpx.Client, url: str, secret: str, clock: Callable[[], datetime]):
        self._http = http
        self._url = url
        self._secret = secret
        self._clock = clock

    def post(self, event: dict[str, Any]) -> Outcome:
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "imocha-slack-bot",
            "X-Event-Id": event["id"],
            "X-Event-Type": event["type"],
            "X-Signature": sign(body, self._secret),
        }
        try:
            response = self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(False, True, f"{exc.__class__.__name__}: {str(exc)[:200]}")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True, False)
        if status == 429 or status >= 500 or status == 408:
            return Outcome(False, True, f"HTTP {status}", retry_after_seconds(response, self._clock))
        return Outcome(False, False, f"HTTP {status}: refused by the receiver")


class EventDeliverer:
    """The `events.deliver` job: record new state changes as deliveries, then send what is due."""

    def __init__(self, session_factory: sessionmaker[Session], sender: EventSender, clock: Callable[[], datetime]):
        self._sf = session_factory
        self._sender = sender
        self._clock = clock

    def run(self) -> int:
        """One cycle; returns how many events were delivered."""
        self.record_new()
        return self.deliver_due()

    def record_new(self) -> int:
        """Turn audit entries of the last 24 hours that have no delivery yet into pending deliveries."""
        since = self._clock() - RETRY_FOR
        with self._sf.begin() as session:
            entries = session.execute(
                select(AuditEntry.id, AuditEntry.application_id, AuditEntry.action)
                .outerjoin(EventDelivery, EventDelivery.audit_id == AuditEntry.id)
                .where(
                    EventDelivery.id.is_(None),
                    AuditEntry.created_at >= since,
                    AuditEntry.outcome == "ok",
                    AuditEntry.action.in_(list(EVENT_TYPES)),
                    AuditEntry.application_id.is_not(None),
                )
                .order_by(AuditEntry.id)
                .limit(BATCH)
            ).all()
            rows = [
                {"audit_id": audit_id, "application_id": app_id, "event_type": EVENT_TYPES[action], "attempts": 0}
                for audit_id, app_id, action in entries
            ]
            return len(repos.insert_many_ignore(session, EventDelivery, rows, ["audit_id"], EventDelivery.id))

    def deliver_due(self) -> int:
        now = self._clock()
        with self._sf() as session:
            pending = session.execute(
                select(EventDelivery.id, EventDelivery.application_id, EventDelivery.next_attempt_at)
                .where(EventDelivery.done_at.is_(None))
                .order_by(EventDelivery.audit_id)
                .limit(BATCH)
            ).all()
        blocked: set[int | None] = set()  # applications with an earlier event still waiting
        delivered = 0
        for delivery_id, app_id, due in pending:
            if app_id in blocked:
                continue
            result = WAITING if due > now else self._deliver(delivery_id)
            if result == WAITING:
                blocked.add(app_id)
            delivered += result == DELIVERED
        return delivered

    def _deliver(self, delivery_id: int) -> str:
        """Send one event: DELIVERED; CLOSED (refused for good, expired, nothing to send), so the next may
        go; or WAITING for a retry, which holds the application's later events back."""
        with self._sf() as session:
            delivery = session.get(EventDelivery, delivery_id)
            entry = session.get(AuditEntry, delivery.audit_id) if delivery else None
            if delivery is None or entry is None:
                return CLOSED
            event = build_event(session, entry)
            occurred = entry.created_at
            attempts = delivery.attempts
        if event is None:
            self._close(delivery_id, attempts, "nothing to send: the application is gone")
            return CLOSED
        outcome = self._sender.post(event)
        now = self._clock()
        if outcome.delivered:
            self._close(delivery_id, attempts + 1, None)
            log.info("event %s %s delivered", event["id"], event["type"])
            return DELIVERED
        if not outcome.retry:
            self._close(delivery_id, attempts + 1, outcome.error)
            log.error("event %s %s refused by the receiver (%s); not retried", event["id"], event["type"], outcome.error)
            return CLOSED
        delay = BACKOFF.after(attempts + 1, retry_after=outcome.retry_after)
        if now + timedelta(seconds=delay) > occurred + RETRY_FOR:
            self._close(delivery_id, attempts + 1, f"gave up after 24 hours: {outcome.error}")
            log.error("event %s %s gave up after %d attempts: %s", event["id"], event["type"], attempts + 1, outcome.error)
            return CLOSED
        with self._sf.begin() as session:
            session.execute(
                update(EventDelivery)
                .where(EventDelivery.id == delivery_id)
                .values(attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=delay), last_error=outcome.error)
            )
        log.warning("event %s %s not delivered (%s); retrying in %.0fs", event["id"], event["type"], outcome.error, delay)
        return WAITING

    def _close(self, delivery_id: int, attempts: int, error: str | None) -> None:
        with self._sf.begin() as session:
            session.execute(
                update(EventDelivery)
                .where(EventDelivery.id == delivery_id)
                .values(attempts=attempts, done_at=self._clock(), last_error=error)
            )

    def replay(self, since: datetime, until: datetime | None = None) -> tuple[int, int]:
        """Send again, in order, every event whose change happened at or after `since` (before `until`).

        Returns (delivered, failed). Replayed events keep their ids; nothing is queued or retried.
        """
        with self._sf() as session:
            stmt = (
                select(AuditEntry)
                .where(AuditEntry.created_at >= since, AuditEntry.outcome == "ok", AuditEntry.action.in_(list(EVENT_TYPES)))
                .order_by(AuditEntry.id)
            )
            if until is not None:
                stmt = stmt.where(AuditEntry.created_at < until)
            events = [event for event in (build_event(session, entry) for entry in session.scalars(stmt)) if event is not None]
        delivered = failed = 0
        for event in events:
            outcome = self._sender.post(event)
            if outcome.delivered:
                delivered += 1
            else:
                failed += 1
                log.warning("replay of event %s %s failed: %s", event["id"], event["type"], outcome.error)
        return delivered, failed


def build_deliverer(
    url: str,
    secret: str,
    session_factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    *,
    transport: httpx.BaseTransport | None = None,
) -> tuple[EventDeliverer, httpx.Client]:
    """The deliverer and the httpx.Client it sends with (the caller closes it)."""
    http = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False, transport=transport)
    return EventDeliverer(session_factory, EventSender(http, url, secret, clock), clock), http
