"""The sandbox's callbacks: the §6 payload of an invitation, and its delivery in order, with retries."""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.sandbox.records import ACCOUNT_TIMEZONE, CallbackDelivery, Invitation, json_number

# The account's logger: these lines said "bot.sandbox.state" before the account was split in units.
log = logging.getLogger("bot.sandbox.state")


class CallbackSender:
    """Queues callbacks under the account's lock and POSTs them from one worker thread at a time."""

    def __init__(self, lock: threading.Lock, *, now: Callable[[], datetime], base_url: Callable[[], str]) -> None:
        self._lock = lock
        self._now = now
        self._base_url = base_url
        self.enabled = True
        self.timeout = 5.0
        self.retries = 5  # "retries 5 times consecutively" (§6): 6 attempts in all
        self.retry_delay = 0.2
        self.deliveries: list[CallbackDelivery] = []
        self._idle = threading.Condition(lock)
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._delivering = False
        self._undelivered = 0

    def payload(self, inv: Invitation) -> dict[str, Any]:
        """The §6 payload for the invitation's current state."""
        finished = inv.finished
        attempted = inv.attempted_at or inv.status_changed_at
        return {
            "CandidateEmailId": inv.email,
            "AttemptedOn": attempted.astimezone(ACCOUNT_TIMEZONE).strftime("%d-%b-%Y %I:%M %p"),
            "TotalScore": json_number(inv.total_points) if finished else 0,
            "CandidateScore": json_number(inv.points) if finished else 0,
            "ReportPDFUrl": inv.pdf_url(self._base_url()) if finished else None,
            "TestInvitationId": inv.id,
            "Status": inv.status,
            "AttemptedOnUtc": attempted.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "PerformanceCategory": inv.category if finished else None,
        }

    def fire_locked(self, inv: Invitation) -> None:
        """Queue the invitation's current callback (the caller holds the lock)."""
        if not (self.enabled and inv.callback_url):
            return
        self._outbox.append((inv.callback_url, self.payload(inv)))
        self._undelivered += 1
        if not self._delivering:
            self._delivering = True
            worker = threading.Thread(target=self._deliver_outbox, name="imocha-sandbox-callbacks", daemon=True)
            worker.start()

    def wait(self, timeout: float = 5.0) -> bool:
        """Block until every queued callback has been delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._undelivered == 0, timeout)

    def _deliver_outbox(self) -> None:
        # One worker at a time keeps each invitation's callbacks in order (In Progress before Complete).
        with httpx.Client(timeout=self.timeout, verify=_tls_context()) as client:
            while True:
                with self._lock:
                    if not self._outbox:
                        self._delivering = False
                        self._idle.notify_all()
                        return
                    url, payload = self._outbox.popleft()
                try:
                    self._deliver(client, url, payload)
                finally:
                    with self._lock:
                        self._undelivered -= 1
                        self._idle.notify_all()

    def _deliver(self, client: httpx.Client, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, self.retries + 2):
            status_code: int | None = None
            error: str | None = None
            try:
                status_code = client.post(url, json=payload).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery = CallbackDelivery(url, payload, attempt, status_code, error, self._now())
            with self._lock:
                self.deliveries.append(delivery)
            if delivery.ok:
                return
            log.info("callback to %s failed (attempt %d): %s", url, attempt, error or status_code)
            if attempt <= self.retries:
                time.sleep(self.retry_delay)
        log.warning("callback to %s given up after %d attempts", url, self.retries + 1)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building httpx's default context costs ~70 ms; callback batches are frequent in tests.
    return httpx.create_ssl_context()
