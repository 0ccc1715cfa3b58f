"""Slack's rate limits, in one table, and the budgets that keep the bot inside them.

Each limited method has a token bucket in GCRA form (a "theoretical arrival time", `tat`): a call may go
at `tat - tolerance` or later, and each call pushes `tat` one interval on. `burst` calls may go back to
back after a quiet spell; after that, one per interval, exactly at Slack's pace (not below it).

- `SharedBudget` keeps `tat` in the database (store.models.SlackLane), moved by compare-and-set, so
  every replica spends one budget per channel and per workspace method: two replicas do not post at
  2 per second. The outbox (bot/slack/outbox/) reserves its slot there before each call.
- `LocalBudget` keeps it in this process, for the calls the handlers make while a user waits
  (views.publish, chat.postEphemeral), which are per user and far below their limits in practice.

When Slack answers 429 anyway, `Retry-After` moves the shared `tat` past the wait (`hold`), so every
sender of that budget waits, not only the one that was refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store import repos
from store.models import SlackLane

# A budget's next slot is never legitimately further ahead than a Retry-After (clamped to this): one
# further ahead was written by a replica whose clock runs fast, and is read as "free now".
MAX_AHEAD = 60.0

CHANNEL = "channel"
WORKSPACE = "workspace"


@dataclass(frozen=True)
class Limit:
    """`per_second` calls sustained, `burst` back to back, per channel or per workspace."""

    scope: str
    per_second: float
    burst: int

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


# Slack's limits, "per API method per app per workspace" (docs.slack.dev method pages; the tiers are
# minimums: Tier 3 is "50+ per minute", Tier 4 "100+"). chat.postMessage is "Special": about one message
# per second per channel, short bursts above it allowed. See ../shared/reference/slack-platform.md §3.3-3.4.
LIMITS: dict[str, Limit] = {
    "chat.postMessage": Limit(CHANNEL, 1.0, 3),  # Special: 1/s per channel, short bursts
    "chat.update": Limit(WORKSPACE, 50 / 60, 5),  # Tier 3: 50+ per minute
    "chat.postEphemeral": Limit(WORKSPACE, 100 / 60, 10),  # Tier 4: 100+ per minute
    "views.publish": Limit(WORKSPACE, 100 / 60, 10),  # Tier 4: 100+ per minute
}


def budget_key(team_id: str, method: str, channel: str | None = None) -> str:
    """The budget a call spends: the channel's for per-channel limits, else the workspace method's."""
    limit = LIMITS[method]
    if limit.scope == CHANNEL:
        if not channel:
            raise ValueError(f"{method} is limited per channel: a channel is needed")
        return f"{team_id}/{channel}"
    return f"{team_id}/{method}"


@dataclass(frozen=True)
class Slot:
    """When a call may go: `wait` seconds from now; `taken` when the slot is reserved for the caller."""

    wait: float
    taken: bool


def next_slot(tat: float, now: float, limit: Limit) -> float:
    """The earliest moment a call may go, given the budget's `tat`."""
    return max(now, tat - limit.tolerance)


def spend(tat: float, at: float, limit: Limit) -> float:
    """The budget's `tat` after a call at `at`."""
    return max(tat, at) + limit.interval


class SharedBudget:
    """Budgets every replica shares, in the database; a reservation is one short transaction."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime]):
        self._sf = session_factory
        self._clock = clock

    def reserve(self, key: str, limit: Limit, *, max_wait: float) -> Slot:
        """Reserve the next slot if it is at most `max_wait` seconds away; otherwise reserve nothing and
        say how long until it is free."""
        for _ in range(10):
            now = self._clock().timestamp()
            with self._sf.begin() as session:
                row = session.execute(select(SlackLane.id, SlackLane.tat).where(SlackLane.key == key).with_for_update()).first()
                if row is None:
                    if repos.insert_ignore(session, SlackLane, {"key": key, "tat": spend(now, now, limit)}, ["key"]):
                        return Slot(0.0, True)
                    continue  # another process created it meanwhile
                tat = now if row.tat - now > MAX_AHEAD + limit.tolerance + max_wait else row.tat
                at = next_slot(tat, now, limit)
                if at - now > max_wait:
                    return Slot(at - now, False)
                moved = session.execute(
                    update(SlackLane).where(SlackLane.id == row.id, SlackLane.tat == row.tat).values(tat=spend(tat, at, limit))
                ).rowcount  # type: ignore[attr-defined]
            if moved == 1:
                return Slot(at - now, True)
        return Slot(limit.interval, False)  # heavily contended: come back after one interval

    def hold(self, key: str, limit: Limit, seconds: float) -> None:
        """Slack said 429 with Retry-After: nobody spends this budget for `seconds` (then one call at a time)."""
        until = self._clock().timestamp() + min(seconds, MAX_AHEAD) + limit.tolerance
        with self._sf.begin() as session:
            if not repos.insert_ignore(session, SlackLane, {"key": key, "tat": until}, ["key"]):
                session.execute(update(SlackLane).where(SlackLane.key == key, SlackLane.tat < until).values(tat=until))


class LocalBudget:
    """The same arithmetic in this process: waits up to `max_wait` for a slot, then lets the call go
    (Slack's 429 and the SDK's retry are the backstop)."""

    def __init__(
        self,
        *,
        max_wait: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._max_wait = max_wait
        self._now = monotonic
        self._sleep = sleep
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_for(self, key: str, limit: Limit) -> float:
        """Take a slot for a call (sleeping until it comes, up to `max_wait`); returns the seconds waited."""
        with self._lock:
            now = self._now()
            if len(self._tat) > 50_000:
                self._tat.clear()
            tat = self._tat.get(key, now)
            at = min(next_slot(tat, now, limit), now + self._max_wait)
            self._tat[key] = spend(tat, at, limit)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait


__all__ = ["LIMITS", "Limit", "LocalBudget", "SharedBudget", "Slot", "budget_key", "next_slot", "spend"]
