"""iMocha's unauthenticated callback is only a hint: re-read the report from iMocha and act on that.

Anyone can POST to `/webhooks/imocha` (iMocha signs nothing), so a hint must never cost more than a
bounded number of iMocha calls: `ReportGate` lets one report read per invitation run at a time (a
callback arriving meanwhile is folded into one more read after it), and caps the reads per invitation
and overall within a sliding window. A callback over a cap is answered as usual and left to the status
poller, which reads every open invitation on its own schedule.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import imocha
from bot.assessments.lifecycle import Observation, observe
from bot.workspace.settings import Workspaces
from store.models import Invitation

log = logging.getLogger("bot.assessments.callbacks")


@dataclass(frozen=True)
class CallbackLimits:
    """How many report reads callbacks may cause in this process, per `window` seconds."""

    window: float = 60.0
    per_invitation: int = 4  # an invitation's own callbacks are In Progress, then a result: a few at most
    overall: int = 120


DEFAULT_LIMITS = CallbackLimits()


class ReportGate:
    """Decides whether a callback may read its invitation's report now. Thread-safe.

    `enter` says yes at most once at a time per invitation; a caller told yes reads, then asks `again`
    (yes when another callback came in meanwhile and the caps allow one more read) and finally calls
    `leave`. `monotonic` is any clock in seconds that does not go backwards in a way that matters; a
    jump back only shortens the window.
    """

    def __init__(self, limits: CallbackLimits = DEFAULT_LIMITS, *, monotonic: Callable[[], float]) -> None:
        self.limits = limits
        self._now = monotonic
        self._lock = threading.Lock()
        self._reading: set[int] = set()
        self._pending: set[int] = set()  # a callback came in during the read
        self._reads: dict[int, deque[float]] = {}
        self._all: deque[float] = deque()
        self._refused: dict[str, int] = {}  # callbacks left to the poller since the last log line, per cap
        self._said_at: dict[str, float] = {}

    def enter(self, invitation_id: int) -> bool:
        with self._lock:
            if invitation_id in self._reading:
                self._pending.add(invitation_id)
                return False
            if not self._take(invitation_id):
                return False
            self._reading.add(invitation_id)
            return True

    def again(self, invitation_id: int) -> bool:
        with self._lock:
            if invitation_id not in self._pending:
                return False
            self._pending.discard(invitation_id)
            return self._take(invitation_id)

    def leave(self, invitation_id: int) -> None:
        with self._lock:
            self._reading.discard(invitation_id)
            self._pending.discard(invitation_id)

    def _take(self, invitation_id: int) -> bool:
        now, limits = self._now(), self.limits
        _keep_window(self._all, now, limits.window)
        reads = self._reads.get(invitation_id) or deque()
        _keep_window(reads, now, limits.window)
        if len(self._all) >= limits.overall:
            self._refuse("overall", f"{limits.overall} report reads", now)
            return False
        if len(reads) >= limits.per_invitation:
            self._refuse("per invitation", f"{limits.per_invitation} report reads of one invitation", now)
            return False
        reads.append(now)
        self._reads[invitation_id] = reads
        self._all.append(now)
        if len(self._reads) > limits.overall:  # invitations whose reads left the window take no memory
            for key in [k for k, v in self._reads.items() if not _keep_window(v, now, limits.window)]:
                del self._reads[key]
        return True

    def _refuse(self, cap: str, what: str, now: float) -> None:
        self._refused[cap] = self._refused.get(cap, 0) + 1
        said = self._said_at.get(cap)
        if said is not None and said <= now < said + self.limits.window:
            return
        self._said_at[cap] = now
        log.warning(
            "iMocha callbacks over the %s cap (%s in %ds): %d left to the status poller; said once per window",
            cap,
            what,
            self.limits.window,
            self._refused.pop(cap),
        )


def _keep_window(times: deque[float], now: float, window: float) -> int:
    """Drop the times outside (now - window, now]; how many are left."""
    while times and times[0] <= now - window:
        times.popleft()
    while times and times[-1] > now:
        times.pop()
    return len(times)


class CallbackHandler:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clock: Callable[[], datetime],
        after_change: Callable[[], object] | None = None,
        limits: CallbackLimits = DEFAULT_LIMITS,
        monotonic: Callable[[], float] | None = None,  # the gate's window clock; default: the injected clock
    ):
        self._sf = session_factory
        self._workspaces = workspaces
        self._clock = clock
        self._after_change = after_change
        self.gate = ReportGate(limits, monotonic=monotonic or (lambda: clock().timestamp()))

    def handle(self, callback: imocha.Callback) -> int:
        """Returns how many applications changed. Unknown invitation ids are ignored."""
        with self._sf() as session:
            workspace_ids = list(session.scalars(select(Invitation.workspace_id).where(Invitation.imocha_id == callback.invitation_id)))
        if not workspace_ids:
            log.info("callback for unknown iMocha invitation %s ignored", callback.invitation_id)
            return 0
        if not self.gate.enter(callback.invitation_id):
            return 0  # a read is in flight (it reads once more after), or a cap is reached (the poller catches up)
        changed = 0
        try:
            said: imocha.Status | None = callback.status
            while True:
                changed += sum(self._read_report(workspace_id, callback.invitation_id, said) for workspace_id in workspace_ids)
                said = None  # a read folded in for later callbacks checks no single one's claim
                if not self.gate.again(callback.invitation_id):
                    break
        finally:
            self.gate.leave(callback.invitation_id)
        if changed and self._after_change is not None:
            self._after_change()
        return changed

    def _read_report(self, workspace_id: int, invitation_id: int, said: imocha.Status | None) -> int:
        client = self._workspaces.imocha_by_id(workspace_id)
        if client is None:
            return 0
        try:
            report = client.report(invitation_id)
        except imocha.ImochaError as exc:
            log.warning(
                "callback for invitation %s: report read failed (%s); the poller will catch up", invitation_id, exc.__class__.__name__
            )
            return 0
        if said is not None and report.status != said:
            log.info(
                "callback for invitation %s said %s but iMocha reports %s: acting on the report",
                invitation_id,
                said.value,
                report.status.value,
            )
        with self._sf.begin() as session:
            return len(observe(session, workspace_id, [Observation(invitation_id, report.status, report)], self._clock()))
