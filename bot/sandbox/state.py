"""The sandbox's in-memory iMocha account: one object over the units that keep it.

The account is kept by units sharing one lock, each in its own module: `catalogue` (API keys and
tests), `invitations` (invite, reattempt, cancel, expire), `attempts` (the candidate's side and what
is reported of it), `callbacks` (payloads and their delivery) and `controls` (faults and the call log
tests steer it with); `records` holds the statuses, refusals and records they share. `ImochaState`
is what the API routes, the pages, the demo and tests use; the names they import from here (records,
refusals, helpers) are re-exported below.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from bot.runtime.clock import system_clock
from bot.sandbox.attempts import Attempts
from bot.sandbox.callbacks import CallbackSender
from bot.sandbox.catalogue import Catalogue
from bot.sandbox.controls import Controls
from bot.sandbox.invitations import Invitations
from bot.sandbox.records import (
    ACCOUNT_TIMEZONE,
    ATTEMPT_STATES,
    ATTEMPTS_SPELLING,
    CANCEL_REFUSED,
    CANCELLED,
    COMPLETE,
    DEFAULT_VALIDITY,
    EXPIRED,
    FINISHED,
    FIRST_INVITATION_ID,
    IN_PROGRESS,
    PENDING,
    REPORT_SPELLING,
    STATUSES,
    TERMINATED,
    TEST_LEFT,
    Call,
    CallbackDelivery,
    Fault,
    ForeignInvitations,
    ImochaStateError,
    ImochaTest,
    InvalidRequest,
    InvalidTransition,
    Invitation,
    Question,
    Section,
    SectionResult,
    TestLink,
    UnknownInvitation,
    UnknownTest,
    UnknownTestLink,
    format_points,
    format_utc,
    json_number,
    parse_utc,
    performance_category,
    score_line,
)


class ImochaState:
    """One iMocha account: every API route and page reads and changes it under one lock.

    Each operation is its unit's own method (same signature and docstring), bound here by name.
    """

    def __init__(
        self,
        *,
        accept_key: Callable[[str], bool] | None = None,
        clock: Callable[[], datetime] | None = None,
        base_url: str = "http://127.0.0.1:8900",
    ):
        self.accept_key: Callable[[str], bool] = accept_key or (lambda key: key.startswith("sandbox-"))
        self.clock: Callable[[], datetime] = clock or system_clock  # tests may swap it on a running account
        self.base_url = base_url.rstrip("/")
        self.latency = 0.0  # seconds added to every API answer

        lock = threading.Lock()
        catalogue = Catalogue(lock, accept_key=lambda key: self.accept_key(key))
        self._callbacks = callbacks = CallbackSender(lock, now=self.now, base_url=lambda: self.base_url)
        invitations = Invitations(lock, catalogue, now=self.now)
        attempts = Attempts(lock, invitations, catalogue, callbacks, now=self.now)
        controls = Controls(lock)

        self.add_key, self.is_valid_key = catalogue.add_key, catalogue.is_valid_key
        self.add_test, self.add_test_link = catalogue.add_test, catalogue.add_test_link
        self.tests, self.test = catalogue.tests, catalogue.test

        self.invitation, self.invitations = invitations.invitation, invitations.invitations
        self.invitation_by_token = invitations.invitation_by_token
        self.invitation_by_report_token = invitations.invitation_by_report_token
        self.invite, self.reattempt = invitations.invite, invitations.reattempt
        self.cancel, self.expire = invitations.cancel, invitations.expire

        self.start, self.complete, self.leave = attempts.start, attempts.complete, attempts.leave
        self.submit_answers = attempts.submit_answers
        self.attempts_between, self.process_callbacks = attempts.attempts_between, attempts.process_callbacks

        self.callback_payload, self.wait_for_callbacks = callbacks.payload, callbacks.wait
        self.callback_deliveries = callbacks.deliveries

        self.fail_next, self.drop_connection_next, self.take_fault = controls.fail_next, controls.drop_connection_next, controls.take_fault
        self.record_call, self.count, self.reset_calls = controls.record_call, controls.count, controls.reset_calls
        self.calls = controls.calls

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def seed_demo(self) -> None:
        """Add the demo tests the `imocha-bot sandbox` command starts with."""
        from bot.sandbox.demo import seed_demo

        seed_demo(self)

    # ---- how callbacks are delivered (tests turn them off or make them quick) ---------------------

    @property
    def callbacks_enabled(self) -> bool:
        return self._callbacks.enabled

    @callbacks_enabled.setter
    def callbacks_enabled(self, value: bool) -> None:
        self._callbacks.enabled = value

    @property
    def callback_timeout(self) -> float:
        return self._callbacks.timeout

    @callback_timeout.setter
    def callback_timeout(self, value: float) -> None:
        self._callbacks.timeout = value

    @property
    def callback_retries(self) -> int:
        return self._callbacks.retries

    @callback_retries.setter
    def callback_retries(self, value: int) -> None:
        self._callbacks.retries = value

    @property
    def callback_retry_delay(self) -> float:
        return self._callbacks.retry_delay

    @callback_retry_delay.setter
    def callback_retry_delay(self, value: float) -> None:
        self._callbacks.retry_delay = value


__all__ = [
    "ACCOUNT_TIMEZONE",
    "ATTEMPTS_SPELLING",
    "ATTEMPT_STATES",
    "CANCELLED",
    "CANCEL_REFUSED",
    "COMPLETE",
    "DEFAULT_VALIDITY",
    "EXPIRED",
    "FINISHED",
    "FIRST_INVITATION_ID",
    "IN_PROGRESS",
    "PENDING",
    "REPORT_SPELLING",
    "STATUSES",
    "TERMINATED",
    "TEST_LEFT",
    "Call",
    "CallbackDelivery",
    "Fault",
    "ForeignInvitations",
    "ImochaState",
    "ImochaStateError",
    "ImochaTest",
    "InvalidRequest",
    "InvalidTransition",
    "Invitation",
    "Question",
    "Section",
    "SectionResult",
    "TestLink",
    "UnknownInvitation",
    "UnknownTest",
    "UnknownTestLink",
    "format_points",
    "format_utc",
    "json_number",
    "parse_utc",
    "performance_category",
    "score_line",
]
