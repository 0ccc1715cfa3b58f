"""Claims on queued work (Slack writes, Gem notes) that last as long as their holder works, and not longer.

A process claims a row of work by writing its holder id and an expiry `CLAIM_TTL` (3 s) ahead on it,
in one UPDATE that only succeeds where no live claim is (so the database decides every race). While
the process works on its rows, a thread of this module renews their expiry twice a second: a Slack
call that is slow under load keeps its claim however long it takes. When the process dies (SIGKILL, OOM,
a lost node), nobody renews its claims and they lapse within the TTL. The same thread in every other
process, a restarted one or a surviving replica, looks twice a second for lapsed claims and runs the
work again; a restarted process also runs it once as it starts. So work left by a dead holder is
resumed 2.5-3.5 s after its death, instead of after a fixed claim time that had to outlast the slowest
call (a minute, before).

Why this stays exactly once:

- A claim is taken only by compare-and-set on its expiry, so while its holder renews it, no other
  process can take it; within one process, a row already being worked on is never handed out twice.
- A holder starts a row's write only while it knows its claim lasts at least `FENCE_MARGIN` more: the
  start of its last successful renewal (or of the claim) plus the TTL, on the monotonic clock. A holder
  that cannot reach the database to renew therefore stops before the claim it can no longer prove
  lapses, and leaves the row to whoever takes it next.
- Completion (done, retry later, given up) is recorded only where the row is still this holder's and
  not done, by compare-and-set, so it is recorded once; a completion that finds the row taken over is
  logged as an error.

What is left: a write already in flight when its holder stops being able to renew for longer than the
TTL (its database connection hangs while another process still reaches the database) can be made a
second time by the next holder. Slack takes no fencing token, so no claim scheme closes that window;
renewals twice a second with a 3 s TTL make it need a database stall of over two seconds for one
process only, during a write. Claim expiries are written and compared with each process's injected clock: replicas' clocks must
agree to well under a second (NTP does).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.claim_tables import ClaimTable, lapsed_holders, renew_claims
from bot.runtime.logs import new_request_id

log = logging.getLogger("bot.runtime.claims")

CLAIM_TTL = timedelta(seconds=3)
RENEW_SECONDS = 0.5  # renewals and the look for lapsed claims, this often
FENCE_MARGIN = 1.0  # seconds of claim a write needs left before it starts


def process_holder_id() -> str:
    """This process's name for leases: host and pid."""
    return f"{os.uname().nodename}:{os.getpid()}"


def claim_holder_id(base: str | None = None) -> str:
    """A holder id for claims, unique to this process's life: a restarted container often has the same
    host name and pid 1, and its predecessor's claims must not look like its own."""
    return f"{base or process_holder_id()}:{secrets.token_hex(3)}"


class ClaimKeeper:
    """This process's claims: which rows it holds and until when it is sure of them (the fence).

    Its thread (`_Ticker`) renews them and, once `start()` was called, watches for others' lapsed claims,
    whose work `_Recoveries` runs again; the statements are bot/runtime/claim_tables.py's.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        holder: str,
        clock: Callable[[], datetime],
        ttl: timedelta = CLAIM_TTL,
        renew_every: float = RENEW_SECONDS,
        margin: float = FENCE_MARGIN,
        executor: Executor | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        if renew_every * 2 > ttl.total_seconds() or margin >= ttl.total_seconds():
            raise ValueError("a claim must outlive two renewal intervals and the fence margin")
        self.holder = holder
        self._sf = session_factory
        self._clock = clock
        self._ttl = ttl
        self._margin = margin
        self._monotonic = monotonic
        self._lock = threading.Lock()  # guards all below, and the ticker's and the recoveries' state
        self._held: dict[str, dict[int, float]] = {}  # table -> row id -> monotonic time the claim is sure until
        self._tables: dict[str, ClaimTable] = {}
        self._watching = False
        self._stopping = False
        self._recoveries = _Recoveries(executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="claims"))
        self._ticker = _Ticker(self.beat, every=renew_every, lock=self._lock, wanted=self._wanted, eager=lambda: self._watching)

    # -- claiming (called by the owners of the work) --------------------------------------------------

    def mark(self) -> float:
        """Call before reading the clock for a claim: the claim is sure from this moment."""
        return self._monotonic()

    def expiry(self, now: datetime) -> datetime:
        """The expiry to write on a row claimed at `now`."""
        return now + self._ttl

    def take(self, table: ClaimTable, ids: Iterable[int], since: float) -> list[int]:
        """Record rows just claimed in the database (after the claim committed); returns those this
        process was not already working on, which are the caller's to work on."""
        sure_until = since + self._ttl.total_seconds()
        fresh = []
        with self._lock:
            self._tables.setdefault(table.name, table)
            held = self._held.setdefault(table.name, {})
            for row_id in ids:
                if row_id in held:
                    held[row_id] = max(held[row_id], sure_until)  # the claim was refreshed, the row stays with its worker
                else:
                    held[row_id] = sure_until
                    fresh.append(row_id)
            if fresh and not self._stopping:
                self._ticker.ensure_running()
        return fresh

    def holds(self, table: ClaimTable, row_id: int) -> bool:
        """Whether a write for the row may start now: this process holds it, for at least the margin more."""
        with self._lock:
            sure_until = self._held.get(table.name, {}).get(row_id)
        return sure_until is not None and self._monotonic() + self._margin < sure_until

    def release(self, table: ClaimTable, row_id: int) -> None:
        """Stop renewing a row (its outcome is recorded, or it was left)."""
        with self._lock:
            self._held.get(table.name, {}).pop(row_id, None)

    # -- recovery ------------------------------------------------------------------------------------

    def recover_with(self, table: ClaimTable, work: Callable[[], object]) -> None:
        """Run `work` (which claims and does the table's due rows) when claims on the table lapse."""
        with self._lock:
            self._tables.setdefault(table.name, table)
            self._recoveries.add(table.name, work)

    def start(self) -> None:
        """Watch for lapsed claims from now on, and resume whatever is due at once (a restart)."""
        with self._lock:
            self._watching = True
            self._stopping = False
            self._ticker.ensure_running()
            names = self._recoveries.names()
        log.debug("claims held as %s; claims lapse %gs after their holder stops", self.holder, self._ttl.total_seconds())
        for name in names:
            self._recover(name)

    def stop(self) -> None:
        """Stop renewing and watching; wait for a recovery that is running."""
        with self._lock:
            self._stopping = True
            self._watching = False
        self._ticker.stop()
        self._recoveries.shutdown()

    # -- the thread's tick ---------------------------------------------------------------------------

    def beat(self) -> None:
        """One tick: renew this process's claims, then (when watching) look for others' lapsed claims."""
        self._renew()
        if self._watching:
            for name in self._lapsed():
                self._recover(name)

    def _wanted(self) -> bool:
        # with self._lock held: whether the thread has anything left to do
        return not self._stopping and (self._watching or any(self._held.values()))

    def _renew(self) -> None:
        with self._lock:
            held = {name: list(rows) for name, rows in self._held.items() if rows}
        for name, ids in held.items():
            since = self._monotonic()
            renewed = renew_claims(self._sf, self._tables[name], ids, holder=self.holder, expiry=self.expiry(self._clock()))
            sure_until = since + self._ttl.total_seconds()
            with self._lock:
                rows = self._held.get(name, {})
                for row_id in renewed:
                    if row_id in rows:
                        rows[row_id] = max(rows[row_id], sure_until)

    def _lapsed(self) -> list[str]:
        """Tables with rows whose claim lapsed (their holder stopped renewing), logging each holder once."""
        with self._lock:
            tables = [self._tables[name] for name in self._recoveries.names()]
        now = self._clock()
        found = []
        with self._sf() as session:
            for table in tables:
                holders = lapsed_holders(session, table, now)
                if holders:
                    found.append(table.name)
                    self._recoveries.report(table.name, holders)
        return found

    def _recover(self, name: str) -> None:
        with self._lock:
            if not self._stopping:
                self._recoveries.submit(name)


class _Ticker:
    """The claims thread: a `beat` every `every` seconds for as long as `wanted()` says there is work.

    It runs on the keeper's lock: `wanted` is read, and the thread is started and ends, with it held, so
    that a row taken just as the thread decides to end starts a new thread.
    """

    def __init__(
        self, beat: Callable[[], None], *, every: float, lock: threading.Lock, wanted: Callable[[], bool], eager: Callable[[], bool]
    ):
        self._beat = beat
        self._every = every
        self._lock = lock
        self._wanted = wanted
        self._eager = eager  # whether a new thread beats at once instead of after one interval
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def ensure_running(self) -> None:
        """Start the thread unless it is running (with the lock held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="claims", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Wake the thread and wait for it to end (call once `wanted()` is false)."""
        with self._lock:
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        first = True
        while True:
            if not (first and self._eager()):
                self._wake.wait(self._every)
                self._wake.clear()
            first = False
            with self._lock:
                if not self._wanted():
                    self._thread = None
                    return
            try:
                self._beat()
            except Exception as exc:  # the database is away: the fence stops new writes; try again next tick
                log.warning("could not renew or check claims: %s: %s", exc.__class__.__name__, exc)


class _Recoveries:
    """The work that resumes each table's lapsed claims, run on `executor` at most once at a time per
    table, and the holders whose lapse was logged already.

    `add`, `names` and `submit` are called with the keeper's lock held; `report` from the tick.
    """

    def __init__(self, executor: Executor):
        self._executor = executor
        self._work: dict[str, Callable[[], object]] = {}
        self._running: dict[str, Future[None]] = {}
        self._reported: set[str] = set()

    def add(self, name: str, work: Callable[[], object]) -> None:
        self._work[name] = work

    def names(self) -> list[str]:
        return list(self._work)

    def submit(self, name: str) -> None:
        """Run the table's work, unless it has none or its last run is still going."""
        work = self._work.get(name)
        running = self._running.get(name)
        if work is None or (running is not None and not running.done()):
            return
        try:
            self._running[name] = self._executor.submit(_run_recovery, name, work)
        except RuntimeError:  # the executor is shut down: the process is stopping
            return

    def report(self, name: str, holders: list[str]) -> None:
        """Log the holders whose claims on the table lapsed, each once."""
        new = [h for h in holders if h not in self._reported]
        if new:
            if len(self._reported) > 1000:
                self._reported.clear()
            self._reported.update(new)
            log.info("%s: claims of %s lapsed (the holder stopped); resuming the work", name, ", ".join(new))

    def shutdown(self) -> None:
        """Wait for a run that is going; run nothing after."""
        self._executor.shutdown(wait=True)


def _run_recovery(name: str, work: Callable[[], object]) -> None:
    new_request_id(f"recover-{name}")
    try:
        work()
    except Exception:  # the error boundary of recovery, like the scheduler's job wrapper
        log.exception("resuming %s failed; the next tick or the scheduled job tries again", name)


def claim_one(
    session_factory: sessionmaker[Session], claims: ClaimKeeper, table: ClaimTable, where: ColumnElement[bool], now: datetime
) -> int | None:
    """Claim the one row `where` picks if no live claim is on it (a lease: a lane, a card); returns its id."""
    since = claims.mark()
    with session_factory.begin() as session:
        row_id = session.scalars(
            update(table.model)
            .where(where, or_(table.expiry.is_(None), table.expiry < now))
            .values({table.holder: claims.holder, table.expiry: claims.expiry(now)})
            .returning(table.model.id)
            .execution_options(synchronize_session=False)
        ).first()
    if row_id is None:
        return None
    return row_id if claims.take(table, [row_id], since) else None


def let_go(session_factory: sessionmaker[Session], claims: ClaimKeeper, table: ClaimTable, row_id: int) -> None:
    """Give back a row taken with `claim_one`, so the next claimant need not wait for it to lapse."""
    claims.release(table, row_id)
    with session_factory.begin() as session:
        session.execute(
            update(table.model)
            .where(table.model.id == row_id, table.holder == claims.holder)
            .values({table.holder: None, table.expiry: None})
            .execution_options(synchronize_session=False)
        )


__all__ = ["CLAIM_TTL", "ClaimKeeper", "ClaimTable", "claim_holder_id", "claim_one", "let_go", "process_holder_id"]
