"""The status poller: keeps every open iMocha invitation current with a handful of calls per cycle."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments import lifecycle
from bot.assessments.lifecycle import OPEN_STATUSES, RANK, Observation
from bot.domain import Actor, ImochaUnavailable, NotAllowed
from bot.imocha import (
    AttemptState,
    BadRequestError,
    ImochaClient,
    ImochaError,
    ImochaProtocolError,
    NotFoundError,
    RateLimitError,
    Report,
    Status,
)
from bot.slack.access import Access
from bot.vendors.pacing import Holds
from bot.workspace.settings import NotConfigured, Workspaces
from store import repos
from store.models import Invitation, Workspace

log = logging.getLogger("bot.assessments.poller")

# What a Retrieve Invites row means when its testStatus is missing or unrecognised.
STATE_STATUS = {
    AttemptState.COMPLETED: Status.COMPLETE,
    AttemptState.CANCELLED: Status.CANCELLED,
    AttemptState.EXPIRED: Status.EXPIRED,
}
# Errors about one invitation's report that asking again next cycle will not fix. They must not hold
# the checkpoint back (or one bad row would freeze the window forever); the sweep retries them later.
PERMANENT = (NotFoundError, BadRequestError, ImochaProtocolError)
IN_CHUNK = 500  # ids per IN (...) list
APPLY_CHUNK = 200  # observations per transaction
DEFAULT_RETRY_AFTER = 60.0


@dataclass
class PollStats:
    """What one poll cycle of one workspace did."""

    workspace_id: int
    calls: int = 0  # iMocha requests made (the client's own retries of one request are not counted)
    reports_read: int = 0
    changed: int = 0  # applications whose status changed
    window_start: datetime | None = None
    window_end: datetime | None = None
    error: str | None = None
    duration: float = 0.0  # seconds

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Reads:
    unreadable: list[int] = field(default_factory=list)  # permanent per-invitation failures
    failure: ImochaError | None = None  # the transient error that stopped the reads


class _PollCore:
    """What the window poll, the sweep and the replay share: the database, iMocha's clients, the
    report reads, applying observations, and the per-workspace pause after a 429."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clock: Callable[[], datetime],
        *,
        max_workers: int,
        after_change: Callable[[], object] | None,
    ):
        self.sf = session_factory
        self.workspaces = workspaces
        self.clock = clock
        self._max_workers = max(1, max_workers)
        self._after_change = after_change
        # Per workspace: no iMocha calls before a moment (set from a 429's Retry-After).
        self.holds = Holds()

    def stream_reports(
        self, client: ImochaClient, imocha_ids: Sequence[int], stats: PollStats, reads: _Reads
    ) -> Iterator[tuple[int, Report]]:
        """Reports as they arrive, read with bounded concurrency. Unreadable invitations and the
        transient error that stopped the reads (no new read starts after one) land in `reads`."""
        stop = threading.Event()
        lock = threading.Lock()

        def read(imocha_id: int) -> Report | None:
            if stop.is_set():
                return None
            with lock:
                stats.calls += 1
            try:
                return client.report(imocha_id)
            except PERMANENT as exc:
                log.warning(
                    "invitation %s: iMocha report unusable (%s: %s); skipped for now",
                    imocha_id,
                    exc.__class__.__name__,
                    exc.message,
                )
                reads.unreadable.append(imocha_id)
            except ImochaError as exc:
                stop.set()
                reads.failure = reads.failure or exc
            return None

        if not imocha_ids:
            return
        workers = min(self._max_workers, len(imocha_ids))
        with ThreadPoolExecutor(workers, thread_name_prefix="imocha-report") as pool:
            futures = {pool.submit(read, imocha_id): imocha_id for imocha_id in imocha_ids}
            try:
                for future in as_completed(futures):
                    report = future.result()
                    if report is not None:
                        stats.reports_read += 1
                        yield futures[future], report
            finally:
                stop.set()  # the consumer failed or stopped early: start no more reads

    def apply(self, workspace_id: int, observations: list[Observation], now: datetime, *, checkpoint: datetime | None) -> int:
        """Apply observations (one transaction per chunk) and move the checkpoint with the last one."""
        observations.sort(key=lambda obs: obs.imocha_id)  # one lock order for every writer
        chunks = [observations[i : i + APPLY_CHUNK] for i in range(0, len(observations), APPLY_CHUNK)]
        if not chunks and checkpoint is not None:
            chunks = [[]]
        changed = 0
        for index, chunk in enumerate(chunks):
            with self.sf.begin() as session:
                if chunk:
                    changed += len(lifecycle.observe(session, workspace_id, chunk, now))
                if checkpoint is not None and index == len(chunks) - 1:
                    session.execute(update(Workspace).where(Workspace.id == workspace_id).values(poll_checkpoint=checkpoint))
        return changed

    def rate_limited(self, workspace_id: int, now: datetime, stats: PollStats) -> bool:
        until = self.holds.until(workspace_id, now)
        if until is None:
            return False
        stats.error = f"rate limited by iMocha until {until.isoformat(timespec='seconds')}"
        return True

    def failed(self, workspace_id: int, now: datetime, exc: ImochaError) -> ImochaError:
        if isinstance(exc, RateLimitError):
            wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
            self.holds.hold(workspace_id, now, timedelta(seconds=wait))
        return exc

    def notify(self) -> None:
        if self._after_change is None:
            return
        try:
            self._after_change()
        except Exception:  # the change is committed; its Slack delivery is retried by the outbox job
            log.exception("after_change hook failed")


class _WindowPoll:
    """The window poll: what closed in iMocha since the checkpoint (less an overlap), in three calls,
    then a report per completion; the checkpoint moves only when nothing was missed."""

    def __init__(self, core: _PollCore, *, overlap: timedelta, first_window: timedelta):
        self._core = core
        self._overlap = overlap
        self._first_window = first_window

    def run(self, workspace_id: int) -> tuple[PollStats, ImochaError | None]:
        started = time.monotonic()
        # iMocha takes whole seconds: the window (and so the checkpoint) ends on one, or a change in
        # the last fraction of a second would fall outside this window yet before the next one's start.
        now = self._core.clock().replace(microsecond=0)
        stats = PollStats(workspace_id, window_end=now)
        try:
            exc = self._poll(workspace_id, now, stats)
        finally:
            stats.duration = time.monotonic() - started
        if exc is not None:
            stats.error = f"{exc.__class__.__name__}: {exc.message}"
        if stats.error:
            log.warning(
                "poll of workspace %s stopped: %s; checkpoint kept, the window from %s is covered again next cycle",
                workspace_id,
                stats.error,
                _iso(stats.window_start),
            )
        else:
            log.debug(
                "poll of workspace %s: %d calls, %d reports, %d changed, window %s..%s, %.2fs",
                workspace_id,
                stats.calls,
                stats.reports_read,
                stats.changed,
                _iso(stats.window_start),
                _iso(stats.window_end),
                stats.duration,
            )
        if stats.changed:
            self._core.notify()
        return stats, exc

    def _poll(self, workspace_id: int, now: datetime, stats: PollStats) -> ImochaError | None:
        if self._core.rate_limited(workspace_id, now, stats):
            return None
        client = self._core.workspaces.imocha_by_id(workspace_id)
        if client is None:
            stats.error = "iMocha is not set up for this workspace"
            return None
        start = self._window_start(workspace_id, now)
        stats.window_start = start

        # 1. Which invitations reached a closed state in the window: three calls, whatever the count.
        seen: dict[int, Status] = {}
        try:
            for state in (AttemptState.COMPLETED, AttemptState.CANCELLED, AttemptState.EXPIRED):
                stats.calls += 1
                for attempt in client.attempts(state, start=start, end=now):
                    status = attempt.status if attempt.status.closed else STATE_STATUS[state]
                    if RANK[status] > RANK[seen.get(attempt.invitation_id, Status.UNKNOWN)]:
                        seen[attempt.invitation_id] = status
        except ImochaError as exc:
            return self._core.failed(workspace_id, now, exc)

        # 2. Only those still open here matter; unknown or already closed ones cost nothing more.
        open_ids = self._open_locally(workspace_id, seen)
        observations = [Observation(i, seen[i]) for i in open_ids if not seen[i].finished]
        finished = [i for i in open_ids if seen[i].finished]

        # 3. A report per completion, for the score (cancelled and expired need none). Reports are
        # applied in chunks as they arrive, so the database work overlaps the reads still in flight.
        reads = _Reads()
        for imocha_id, report in self._core.stream_reports(client, finished, stats, reads):
            status = report.status if report.status is not Status.UNKNOWN else seen[imocha_id]
            observations.append(Observation(imocha_id, status, report))
            if len(observations) >= APPLY_CHUNK:
                stats.changed += self._core.apply(workspace_id, observations, now, checkpoint=None)
                observations = []

        # 4. Apply the rest; the checkpoint moves only when nothing was missed.
        checkpoint = now if reads.failure is None else None
        stats.changed += self._core.apply(workspace_id, observations, now, checkpoint=checkpoint)
        if reads.failure is not None:
            return self._core.failed(workspace_id, now, reads.failure)
        return None

    def _window_start(self, workspace_id: int, now: datetime) -> datetime:
        with self._core.sf() as session:
            checkpoint = session.scalar(select(Workspace.poll_checkpoint).where(Workspace.id == workspace_id))
            if checkpoint is not None:
                # min(): a clock that stepped back must not make the window end before it starts.
                return min(checkpoint, now) - self._overlap
            oldest = session.scalar(
                select(func.min(Invitation.sent_at)).where(Invitation.workspace_id == workspace_id, Invitation.status.in_(OPEN_STATUSES))
            )
        start = now - self._first_window
        return min(start, oldest) if oldest is not None else start

    def _open_locally(self, workspace_id: int, imocha_ids: Iterable[int]) -> list[int]:
        ids = sorted(imocha_ids)
        found: list[int] = []
        if not ids:
            return found
        with self._core.sf() as session:
            for offset in range(0, len(ids), IN_CHUNK):
                found.extend(
                    session.scalars(
                        select(Invitation.imocha_id).where(
                            Invitation.workspace_id == workspace_id,
                            Invitation.imocha_id.in_(ids[offset : offset + IN_CHUNK]),
                            Invitation.status.in_(OPEN_STATUSES),
                        )
                    )
                )
        return sorted(found)


class _Sweep:
    """The sweep: reports of the open invitations checked longest ago, a batch per workspace."""

    def __init__(self, core: _PollCore, *, sweep_batch: int):
        self._core = core
        self._sweep_batch = sweep_batch

    def sweep(self, workspace_id: int | None = None) -> int:
        """Read reports of the open invitations checked longest ago (In Progress, and what the window
        queries cannot see); returns how many applications changed."""
        workspace_ids = [workspace_id] if workspace_id is not None else [ws for ws, _ in self._core.workspaces.active_workspaces()]
        changed = 0
        for ws in workspace_ids:
            try:
                changed += self._sweep_workspace(ws)
            except Exception:  # one workspace's database or key problem must not stop the others
                log.exception("sweep of workspace %s failed", ws)
        if changed:
            self._core.notify()
        return changed

    def _sweep_workspace(self, workspace_id: int) -> int:
        now = self._core.clock()
        stats = PollStats(workspace_id, window_end=now)
        if self._core.rate_limited(workspace_id, now, stats):
            return 0
        with self._core.sf() as session:
            ids = list(
                session.scalars(
                    select(Invitation.imocha_id)
                    .where(Invitation.workspace_id == workspace_id, Invitation.status.in_(OPEN_STATUSES))
                    .order_by(Invitation.last_checked_at.asc().nulls_first(), Invitation.id)
                    .limit(self._sweep_batch)
                )
            )
        if not ids:
            return 0
        client = self._core.workspaces.imocha_by_id(workspace_id)
        if client is None:
            return 0
        reads = _Reads()
        observations = [Observation(i, report.status, report) for i, report in self._core.stream_reports(client, ids, stats, reads)]
        # An unreadable invitation still counts as checked, so it moves to the back of the queue.
        observations += [Observation(i, Status.UNKNOWN) for i in reads.unreadable]
        changed = self._core.apply(workspace_id, observations, now, checkpoint=None)
        if reads.failure is not None:
            self._core.failed(workspace_id, now, reads.failure)
            log.warning(
                "sweep of workspace %s stopped after %d reports: %s: %s",
                workspace_id,
                stats.reports_read,
                reads.failure.__class__.__name__,
                reads.failure.message,
            )
        else:
            log.debug("sweep of workspace %s: %d reports, %d changed", workspace_id, stats.reports_read, changed)
        return changed


class StatusPoller:
    """Keeps open invitations current: the window poll each cycle, the sweep behind it, and
    /imocha resync's replay; the parts share one _PollCore."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clock: Callable[[], datetime],
        *,
        overlap: timedelta = timedelta(minutes=10),
        first_window: timedelta = timedelta(days=1),
        max_workers: int = 4,
        sweep_batch: int = 50,
        after_change: Callable[[], object] | None = None,
        access: Access | None = None,
    ):
        self._access = access  # who may resync; without it nobody may (the background jobs need none)
        self._core = _PollCore(session_factory, workspaces, clock, max_workers=max_workers, after_change=after_change)
        self._window = _WindowPoll(self._core, overlap=overlap, first_window=first_window)
        self._sweep = _Sweep(self._core, sweep_batch=sweep_batch)
        # Per workspace: no iMocha calls before a moment (set from a 429's Retry-After); shared by the parts.
        self.holds = self._core.holds

    # -- the window poll ----------------------------------------------------------------------------

    def poll_all(self) -> list[PollStats]:
        results = []
        for workspace_id, team_id in self._core.workspaces.active_workspaces():
            try:
                results.append(self.poll_workspace(workspace_id))
            except Exception as exc:  # a database or key problem in one workspace must not stop the others
                log.exception("poll of workspace %s (%s) failed", workspace_id, team_id)
                results.append(PollStats(workspace_id, error=f"{exc.__class__.__name__}: {exc}"))
        return results

    def poll_workspace(self, workspace_id: int) -> PollStats:
        stats, _exc = self._window.run(workspace_id)
        return stats

    # -- the sweep ----------------------------------------------------------------------------------

    def sweep(self, workspace_id: int | None = None) -> int:
        """Read reports of the open invitations checked longest ago (In Progress, and what the window
        queries cannot see); returns how many applications changed."""
        return self._sweep.sweep(workspace_id)

    # -- /imocha resync -----------------------------------------------------------------------------

    def resync(self, team_id: str, actor: Actor, *, started: Callable[[], object] | None = None) -> int:
        """`/imocha resync`: workspace admins only; `started` runs once they may, before iMocha is asked.

        iMocha's failure comes back as ImochaUnavailable, worded for the admin.
        """
        if self._access is None:
            raise NotAllowed("Resync is not available in this process.")
        self._access.require_admin(team_id, actor.user_id, "resync")
        if started is not None:
            started()
        try:
            return self.replay(team_id)
        except ImochaError as exc:
            kind = exc.__class__.__name__
            raise ImochaUnavailable(f"Resync failed: iMocha error ({kind}).", kind=kind) from None

    def replay(self, team_id: str) -> int:
        """Ask iMocha to re-send the callbacks of the workspace's open invitations, then poll now.

        Returns how many invitation ids were asked about. Raises the client's ImochaError when the
        replay or the poll failed (the poll runs either way), NotConfigured without a key.
        """
        with self._core.sf() as session:
            workspace = repos.workspace_by_team(session, team_id)
            if workspace is None or workspace.imocha_key_enc is None:
                raise NotConfigured("iMocha is not set up yet: an admin can run `/imocha setup`.")
            workspace_id = workspace.id
            ids = list(
                session.scalars(
                    select(Invitation.imocha_id)
                    .where(Invitation.workspace_id == workspace_id, Invitation.status.in_(OPEN_STATUSES))
                    .order_by(Invitation.imocha_id)
                )
            )
        client = self._core.workspaces.imocha(team_id)
        try:
            if ids:
                client.process_callbacks(ids)
                log.info("workspace %s: asked iMocha to replay callbacks of %d invitations", team_id, len(ids))
        finally:
            _stats, exc = self._window.run(workspace_id)
        if exc is not None:
            raise exc
        return len(ids)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "-"
