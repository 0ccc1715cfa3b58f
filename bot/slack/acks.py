"""Acks first: the work that follows Slack's acks waits while Slack requests are being answered.

One process answers every request under one GIL. When 200 requests arrive together, the work their
listeners hand over (iMocha calls, database writes, card rendering) would otherwise start at once on
the work pool and share the GIL with the acks still to send, so every ack waited for it: Slack gives
an ack 3 s, and a late one shows the user an error even though the work went through. The front door
(`bot/runtime/web.py`) counts the Slack requests in flight; the work pool holds each task back until that
count is zero, or at most `max_wait` seconds, so that a steady stream of requests delays work by no
more than that (a `views.open` must use its trigger within 3 s).

A task that had already started when a burst arrives yields too: the clients it calls iMocha and
Slack through call `yield_to_acks()` before each request, and so does each database transaction it
begins (bot/runtime/app.py wires them); it waits, at most `step_wait` seconds, when the calling thread is
one of the work pool's. Garbage collection is put off while requests are answered (`defer_gc`).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from bot.runtime.logs import ContextExecutor

T = TypeVar("T")


class AckGate:
    """How many Slack requests are being answered now; `wait_idle` blocks until none (or the timeout)."""

    def __init__(self, max_wait: float = 0.5, step_wait: float = 0.2, *, defer_gc: bool = False, gc_max_deferral: float = 1.0):
        if max_wait < 0 or step_wait < 0 or gc_max_deferral < 0:
            raise ValueError("max_wait, step_wait and gc_max_deferral must be >= 0")
        self.max_wait = max_wait
        self.step_wait = step_wait
        self.defer_gc = defer_gc
        self.gc_max_deferral = gc_max_deferral
        self._answering = 0
        self._idle = threading.Condition()
        self._work = threading.local()
        self._gc_off_since: float | None = None  # when this gate switched the collector off

    @property
    def answering(self) -> int:
        return self._answering

    @contextmanager
    def request(self) -> Iterator[None]:
        """Count one request from its arrival until its answer is written."""
        self.arrived()
        try:
            yield
        finally:
            self.answered()

    def arrived(self) -> None:
        """Count one request as being answered; pair each call with one `answered()` (or use `request()`)."""
        with self._idle:
            self._answering += 1
            if self.defer_gc:
                self._defer_gc()

    def answered(self) -> None:
        with self._idle:
            self._answering -= 1
            if self._answering == 0:
                self._idle.notify_all()
                self._resume_gc()

    def _defer_gc(self) -> None:
        """Garbage collection waits too: a full collection held the GIL 20-50 ms while acks queued
        behind it (bench/ack.py). It runs once no request is being answered, or after at most
        `gc_max_deferral` s of requests without a pause, so a steady stream cannot put it off for good."""
        if self._gc_off_since is None:
            if gc.isenabled():
                gc.disable()
                self._gc_off_since = time.monotonic()
        elif time.monotonic() - self._gc_off_since > self.gc_max_deferral:
            self._resume_gc()

    def _resume_gc(self) -> None:
        if self._gc_off_since is not None:
            self._gc_off_since = None
            gc.enable()

    def wait_idle(self, timeout: float | None = None) -> float:
        """Block until no request is being answered, at most `timeout` (default `max_wait`) s; the seconds waited."""
        if self._answering == 0:
            return 0.0
        started = time.monotonic()
        with self._idle:
            self._idle.wait_for(lambda: self._answering == 0, timeout=self.max_wait if timeout is None else timeout)
        return time.monotonic() - started

    def yield_to_acks(self, *_: object) -> None:
        """In a work-pool task, wait (at most `step_wait` s) while requests are being answered; else nothing.

        The arguments are ignored, so that it serves as an httpx request hook as it is.
        """
        if self._answering and getattr(self._work, "active", False):
            self.wait_idle(self.step_wait)

    def watch_sessions(self, session_factory: sessionmaker[Session]) -> None:
        """Yield to acks as each outermost transaction of these sessions begins (before it takes a connection)."""

        def on_begin(session: Session, transaction: SessionTransaction) -> None:
            if transaction.parent is None:
                self.yield_to_acks()

        event.listen(session_factory, "after_transaction_create", on_begin)

    @contextmanager
    def work(self) -> Iterator[None]:
        """Mark the current thread as running work that yields to acks."""
        self._work.active = True
        try:
            yield
        finally:
            self._work.active = False


class WorkPool(ContextExecutor):
    """The work pool (`services.background`): tasks keep the submitter's request id and let the acks go first."""

    def __init__(self, max_workers: int, gate: AckGate | None = None, thread_name_prefix: str = "bg"):
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.gate = gate

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        gate = self.gate
        if gate is None:
            return super().submit(fn, *args, **kwargs)

        def after_the_acks() -> T:
            gate.wait_idle()
            with gate.work():
                return fn(*args, **kwargs)

        return super().submit(after_the_acks)
