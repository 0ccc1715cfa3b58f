"""Pacing vendor calls: a token bucket and a shared pause per API key, and holds per workspace.

A `RateLimiter` is the `Pacer` a `VendorHTTP` takes; give every client that uses one key the same
limiter (`bot.ats.gem.GemClients` keeps one per key), so that they share the key's budget. It makes
the next request sleep, on the monotonic clock, through a short Retry-After.

`Holds` is for a 429 the client did not sleep through (a long Retry-After, or none): per workspace, a
wall-clock time before which the background work does not call that vendor again. Nobody blocks:
the iMocha poller and the Gem poller skip the workspace, and the write-back queues reschedule their
rows until then (those times are compared with stored next-attempt times, hence the wall clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta


class RateLimiter:
    """Paces one API key: a token bucket (`rate` requests per second, `burst` at once), at most
    `max_in_flight` requests at a time, and a shared pause after a 429 so that every thread using the
    key waits, not only the one that was told to."""

    def __init__(
        self,
        *,
        rate: float = 10.0,
        burst: int = 10,
        max_in_flight: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1 or max_in_flight < 1:
            raise ValueError("rate, burst and max_in_flight must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._in_flight = threading.BoundedSemaphore(max_in_flight)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the in-flight places and one token for the duration of a request."""
        with self._in_flight:
            self._take()
            yield

    def pause(self, seconds: float) -> None:
        """No request with this key for `seconds` (from a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def _take(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
                    self._updated = now
                    if self._tokens >= 1 - 1e-9:  # float error must not leave a sliver of a token to wait for
                        self._tokens = max(0.0, self._tokens - 1)
                        return
                    wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


DEFAULT_HOLD = timedelta(seconds=60)  # after a 429 that gave no Retry-After


class Holds:
    """Per workspace: no calls to one vendor before a moment (set after a 429). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[int, datetime] = {}

    def after_429(self, workspace_id: int, now: datetime, retry_after: float | None) -> timedelta:
        """Hold the workspace for the 429's Retry-After, or DEFAULT_HOLD when it gave none; returns the wait."""
        wait = timedelta(seconds=retry_after) if retry_after else DEFAULT_HOLD
        self.hold(workspace_id, now, wait)
        return wait

    def hold(self, workspace_id: int, now: datetime, wait: timedelta) -> datetime:
        """No calls for the workspace until `now + wait`; returns that moment."""
        with self._lock:
            self._until[workspace_id] = until = now + wait
            return until

    def until(self, workspace_id: int, now: datetime) -> datetime | None:
        """When the workspace's hold ends, or None when it has none at `now`."""
        with self._lock:
            until = self._until.get(workspace_id)
        return until if until is not None and now < until else None

    def clear(self) -> None:
        with self._lock:
            self._until.clear()
