"""The outbox table's side of delivery: which rows are due, claiming them, recording each outcome.

Rows are claimed for this process (bot/runtime/claims.py) by compare-and-set on their claim, and each
outcome (done, retry later, given up) is recorded only where the row is still this process's, so a row
is delivered by one process at a time and recorded done once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.backoff import Backoff
from bot.runtime.claims import ClaimKeeper, ClaimTable
from store.models import OutboxMessage, Workspace

log = logging.getLogger("bot.slack.outbox")

MAX_ATTEMPTS = 12
BACKOFF = Backoff(first=2.0, cap=300.0)  # after a failed Slack write: 2 s doubling, at most 5 min
CLAIMS = ClaimTable("slack_outbox", OutboxMessage, OutboxMessage.claimed_by, OutboxMessage.claimed_until, OutboxMessage.done_at.is_(None))
PERMANENT = {"invalid_blocks", "msg_too_long", "no_text", "invalid_arguments", "user_not_found", "account_inactive"}


@dataclass(frozen=True)
class Lane:
    """Where rows go one after another: a workspace's channel (or a user, for DMs); None for old rows."""

    workspace_id: int
    team_id: str
    name: str | None

    @property
    def key(self) -> str:
        return f"{self.team_id}/{self.name or '-'}"


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    application_id: int | None
    team_id: str
    lane: Lane
    payload: dict[str, Any] = field(default_factory=dict)


class OutboxRows:
    def __init__(self, session_factory: sessionmaker[Session], claims: ClaimKeeper, clock: Callable[[], datetime]):
        self._sf = session_factory
        self._claims = claims
        self._clock = clock

    def _due(self, now: datetime) -> Any:
        return (
            OutboxMessage.done_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )

    def due_lanes(self, limit: int = 200) -> list[Lane]:
        """Lanes with rows due and unclaimed, the oldest row's lane first."""
        now = self._clock()
        with self._sf() as session:
            rows = session.execute(
                select(OutboxMessage.workspace_id, Workspace.team_id, OutboxMessage.lane)
                .join(Workspace, Workspace.id == OutboxMessage.workspace_id)
                .where(*self._due(now))
                .group_by(OutboxMessage.workspace_id, Workspace.team_id, OutboxMessage.lane)
                .order_by(func.min(OutboxMessage.id))
                .limit(limit)
            )
            return [Lane(r[0], r[1], r[2]) for r in rows]

    def claim(self, *, application_id: int | None = None, lane: Lane | None = None, limit: int = 200) -> list[Row]:
        """Claim due rows (of one application, or of one lane), oldest first; returns those now this process's."""
        since = self._claims.mark()
        now = self._clock()
        with self._sf.begin() as session:
            due = select(OutboxMessage.id).where(*self._due(now)).order_by(OutboxMessage.id).limit(limit)
            if application_id is not None:
                due = due.where(OutboxMessage.application_id == application_id)
            if lane is not None:
                due = due.where(
                    OutboxMessage.workspace_id == lane.workspace_id,
                    OutboxMessage.lane.is_(None) if lane.name is None else OutboxMessage.lane == lane.name,
                )
            ids = list(session.scalars(due))
            if not ids:
                return []
            claimed = set(
                session.scalars(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), *self._due(now)[2:])
                    .values(claimed_by=self._claims.holder, claimed_until=self._claims.expiry(now))
                    .returning(OutboxMessage.id)
                )
            )
            found = [
                Row(r[0], r[1], r[2], r[3], Lane(r[5], r[3], r[6]), dict(r[4] or {}))
                for r in session.execute(
                    select(
                        OutboxMessage.id,
                        OutboxMessage.kind,
                        OutboxMessage.application_id,
                        Workspace.team_id,
                        OutboxMessage.payload,
                        OutboxMessage.workspace_id,
                        OutboxMessage.lane,
                    )
                    .join(Workspace, Workspace.id == OutboxMessage.workspace_id)
                    .where(OutboxMessage.id.in_(claimed))
                    .order_by(OutboxMessage.id)
                )
            ]
        mine = set(self._claims.take(CLAIMS, [r.id for r in found], since))
        return [r for r in found if r.id in mine]

    def holds(self, row: Row) -> bool:
        return self._claims.holds(CLAIMS, row.id)

    def release(self, row: Row) -> None:
        self._claims.release(CLAIMS, row.id)

    def leave(self, row: Row) -> None:
        """Give a claimed row back undelivered, due at once (another path delivers it)."""
        with self._sf.begin() as session:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row.id, self._mine()).values(claimed_by=None, claimed_until=None)
            )
        self.release(row)

    def pending(self) -> int:
        with self._sf() as session:
            return int(session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.done_at.is_(None))) or 0)

    # -- outcomes (compare-and-set on this process's claim) ------------------------------------------

    def _mine(self) -> Any:
        return (OutboxMessage.claimed_by == self._claims.holder) & OutboxMessage.done_at.is_(None)

    def finish(self, row: Row) -> None:
        with self._sf.begin() as session:
            result: Any = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, self._mine())
                .values(done_at=self._clock(), claimed_by=None, claimed_until=None, last_error=None)
            )
        if result.rowcount != 1:
            log.error("outbox #%s was delivered, but another process had taken it over: it may show twice in Slack", row.id)

    def retry(self, row: Row, error: str | None, *, delay: float | None = None, count_attempt: bool = True) -> None:
        with self._sf.begin() as session:
            stored = session.get(OutboxMessage, row.id, with_for_update=True)
            if stored is None or stored.claimed_by != self._claims.holder or stored.done_at is not None:
                return  # taken over meanwhile: its new holder records the outcome
            if count_attempt:
                stored.attempts += 1
            stored.claimed_by = None
            stored.claimed_until = None
            if stored.attempts >= MAX_ATTEMPTS:
                stored.done_at = self._clock()
                stored.last_error = f"gave up after {stored.attempts} attempts: {error}"
                log.error("outbox %s #%s gave up: %s", stored.kind, row.id, error)
                return
            wait = BACKOFF.after(stored.attempts, retry_after=delay)
            stored.next_attempt_at = self._clock() + timedelta(seconds=wait)
            if error:
                stored.last_error = error

    def give_up(self, row: Row, error: str) -> None:
        log.error("outbox #%s dropped: %s", row.id, error)
        with self._sf.begin() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, self._mine())
                .values(done_at=self._clock(), claimed_by=None, claimed_until=None, last_error=f"dropped: {error}")
            )

    def slack_refused(self, row: Row, exc: SlackApiError) -> None:
        """Record a Slack error: 429 retries after Retry-After, permanent errors drop, others back off."""
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"http_{status}")
        if status == 429:
            wait = retry_after(exc)
            log.info("outbox %s #%s rate limited by Slack; retrying in %ss", row.kind, row.id, wait)
            self.retry(row, "ratelimited", delay=wait, count_attempt=False)
        elif error in PERMANENT:
            log.error("outbox %s #%s refused by Slack: %s %s", row.kind, row.id, error, exc.response.get("response_metadata"))
            self.give_up(row, error)
        else:
            log.warning("outbox %s #%s Slack error %s (HTTP %s); will retry", row.kind, row.id, error, status)
            self.retry(row, error)


def retry_after(exc: SlackApiError) -> float:
    try:
        return max(1.0, float(exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or 1))
    except (TypeError, ValueError):
        return 1.0
