"""The outbox's lanes: each channel's rows sent one after another by one process, many channels at once.

A lane is the rows queued for one channel (or one user's DMs). `LaneRunner` starts a thread for each
due lane (up to `MAX_LANES` at a time); the thread holds the lane (a claim on its slack_lanes row,
renewed by the ClaimKeeper, so it lapses 3 s after this process dies) and delivers the lane's due rows
in queue order, `LANE_CHUNK` at a time, until none is left. A lane asked for while it runs looks once
more before it stops, so a row queued at that moment is not left for the next scheduler run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.claims import ClaimKeeper, ClaimTable, claim_one, let_go
from bot.slack.outbox.rows import Lane, OutboxRows, Row
from store import repos
from store.models import SlackLane

log = logging.getLogger("bot.slack.outbox")

LANE_CLAIMS = ClaimTable("slack_lanes", SlackLane, SlackLane.held_by, SlackLane.held_until, SlackLane.id.is_not(None))
MAX_LANES = 16  # channels drained in parallel by one process
LANE_CHUNK = 10  # rows a lane claims at a time
LANE_THREAD = "outbox-lane"

# Delivers claimed rows while holding the lane (its claim id); returns how many were sent.
DeliverRows = Callable[..., int]


class LaneRunner:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        claims: ClaimKeeper,
        rows: OutboxRows,
        clock: Callable[[], datetime],
        deliver: DeliverRows,
        executor: Executor | None = None,
    ):
        self._sf = session_factory
        self._claims = claims
        self._rows = rows
        self._clock = clock
        self._deliver = deliver
        # The composition root passes a pool whose threads let Slack's acks go first (bot/slack/acks.py);
        # its threads' names must start with LANE_THREAD.
        self._pool = executor or ThreadPoolExecutor(max_workers=MAX_LANES, thread_name_prefix=LANE_THREAD)
        self._lock = threading.Lock()
        self._active: dict[Lane, Future[int]] = {}
        self._again: set[Lane] = set()  # lanes asked for while running: they look once more before stopping

    def start(self, only: set[Lane] | None = None) -> list[Future[int]]:
        """Start each due lane (or those of `only`) not running here yet; returns the futures to wait for:
        also those of lanes already running, unless the caller is a lane itself (it would wait for itself)."""
        started = []
        in_lane = threading.current_thread().name.startswith(LANE_THREAD)
        for lane in only if only is not None else self._rows.due_lanes():
            with self._lock:
                running = self._active.get(lane)
                if running is not None:
                    self._again.add(lane)
                    if not in_lane:
                        started.append(running)
                    continue
                try:
                    future = self._pool.submit(self._run_lane, lane)
                except RuntimeError:  # shut down: the process is stopping
                    break
                self._active[lane] = future
            started.append(future)
        return started

    def run(self, only: set[Lane] | None = None) -> int:
        """Start the lanes and wait for them; returns how many writes they sent."""
        return sum(future.result() for future in self.start(only))

    def close(self) -> None:
        """Stop taking lanes; lanes under way finish the row they are on."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run_lane(self, lane: Lane) -> int:
        sent = 0
        try:
            while True:
                sent += self._drain(lane)
                with self._lock:
                    if lane not in self._again:
                        return sent
                    self._again.discard(lane)
        except Exception:  # the lane's error boundary: its rows stay queued for the next run
            log.exception("outbox lane %s failed; its rows stay queued", lane.key)
            return sent
        finally:
            with self._lock:
                self._active.pop(lane, None)
                self._again.discard(lane)

    def _hold(self, lane: Lane) -> int | None:
        """Claim the lane's row (created on first use); None when another process holds it."""
        now = self._clock()
        lease = claim_one(self._sf, self._claims, LANE_CLAIMS, SlackLane.key == lane.key, now)
        if lease is not None:
            return lease
        with self._sf.begin() as session:
            created = repos.insert_ignore(session, SlackLane, {"key": lane.key, "tat": now.timestamp()}, ["key"])
        return claim_one(self._sf, self._claims, LANE_CLAIMS, SlackLane.key == lane.key, now) if created else None

    def _drain(self, lane: Lane) -> int:
        """Hold the lane and send its due rows in order until none is left; 0 when another process holds it."""
        lease = self._hold(lane)
        if lease is None:
            return 0
        sent = 0
        try:
            while self._claims.holds(LANE_CLAIMS, lease):
                rows: list[Row] = self._rows.claim(lane=lane, limit=LANE_CHUNK)
                if not rows:
                    break
                sent += self._deliver(rows, lease=lease)
        finally:
            let_go(self._sf, self._claims, LANE_CLAIMS, lease)
        return sent

    def holds(self, lease: int) -> bool:
        return self._claims.holds(LANE_CLAIMS, lease)


__all__ = ["LANE_CLAIMS", "LANE_THREAD", "MAX_LANES", "LaneRunner"]
