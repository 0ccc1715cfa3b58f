"""ImochaClient: the iMocha v3 endpoints over an injected `httpx.Client` and the shared vendor HTTP base."""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.imocha.errors import ImochaConnectionError, ImochaProtocolError, error_text, status_error
from bot.imocha.models import (
    parse_attempts,
    parse_cancelled,
    parse_invitation,
    parse_replay,
    parse_test_detail,
    parse_tests_page,
    report_parser,
)
from bot.imocha.status import AttemptState
from bot.imocha.values import Attempt, CallbackReplay, Cancelled, Invitation, Report, Test, TestDetail
from bot.vendors.http import RetryPolicy, Vendor, VendorClient, VendorHTTP

DEFAULT_RETRY = RetryPolicy()  # frozen, so one shared default is safe

IMOCHA = Vendor(
    name="iMocha",
    logger=logging.getLogger("bot.imocha"),
    connection_error=ImochaConnectionError,
    protocol_error=ImochaProtocolError,
    status_error=status_error,
    error_text=error_text,
)


class ImochaClient(VendorClient):
    """iMocha v3 over an injected `httpx.Client` (which carries the base URL and may be shared).

    POSTs are retried like GETs (`RetryPolicy`). That is safe for iMocha because its state-changing
    calls are idempotent by design (reference §5.3/§5.4): a repeated invite returns the existing
    invitation, a repeated reattempt returns the latest active reattempt, Process Callbacks only
    re-queues delivery, and a repeated cancel cannot cancel twice (at worst a retry whose first try did
    land answers 400 "can not be cancelled", which the caller sees as BadRequestError rather than a
    duplicate effect).
    """

    DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
    PAGE_SIZE = 100
    CALLBACK_CHUNK = 100  # Process Callbacks accepts at most 100 ids per call (reference §8.1)
    _MAX_PAGES = 1000  # a guard against a server that ignores pageNo

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], datetime] | None = None,  # the time base of `sleep`, for Retry-After dates (default: the wall clock)
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("iMocha API key is empty")
        key = api_key.strip()
        self._api = VendorHTTP(
            http, IMOCHA, headers={"X-API-KEY": key}, secrets=[key], retry=retry, sleep=sleep, random=random, clock=clock
        )

    # ---- tests -----------------------------------------------------------------------------------

    def list_tests(self) -> list[Test]:
        tests: list[Test] = []
        seen: set[int] = set()
        for page in range(1, self._MAX_PAGES + 1):
            params = {"pageNo": page, "pageSize": self.PAGE_SIZE}
            items, count = self._api.call("GET", "/v3/tests", parse_tests_page, params=params)
            new = [t for t in items if t.test_id not in seen]
            seen.update(t.test_id for t in new)
            tests.extend(new)
            if len(items) < self.PAGE_SIZE or not new or (count is not None and len(tests) >= count):
                break
        return tests

    def get_test(self, test_id: int) -> TestDetail:
        return self._api.call("GET", f"/v3/tests/{_path_id(test_id)}", parse_test_detail)

    def check_key(self) -> int:
        """One cheap authenticated call returning the account's test count; AuthError on a bad key."""
        items, count = self._api.call("GET", "/v3/tests", parse_tests_page, params={"pageNo": 1, "pageSize": 1})
        return count if count is not None else len(items)

    # ---- invitations ---------------------------------------------------------------------------

    def invite(
        self,
        test_id: int,
        *,
        email: str,
        name: str,
        send_email: bool = True,
        callback_url: str | None = None,
        redirect_url: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Invitation:
        body = _without_none(
            {
                "email": email,
                "name": name,
                "sendEmail": "yes" if send_email else "no",
                "callbackUrl": callback_url,
                "redirectUrl": redirect_url,
                "startDateTime": _utc_or_none(start, "start"),
                "endDateTime": _utc_or_none(end, "end"),
            }
        )
        return self._api.call("POST", f"/v3/tests/{_path_id(test_id)}/invite", parse_invitation, json=body)

    def reattempt(
        self,
        invitation_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        callback_url: str | None = None,
        send_email: bool = True,
    ) -> Invitation:
        # Reattempt spells its body in PascalCase, unlike invite (reference §5.4, §13.9).
        body = _without_none(
            {
                "StartDateTime": _utc_or_none(start, "start"),
                "EndDateTime": _utc_or_none(end, "end"),
                "CallbackUrl": callback_url,
                "sendEmail": "yes" if send_email else "no",
            }
        )
        path = f"/v3/invitations/{_path_id(invitation_id)}/reattempt"
        return self._api.call("POST", path, parse_invitation, json=body)

    def cancel(self, invitation_id: int) -> Cancelled:
        return self._api.call("POST", f"/v3/invitations/{_path_id(invitation_id)}/cancel", parse_cancelled)

    # ---- reports and reconciliation ------------------------------------------------------------

    def report(self, invitation_id: int, *, report_type: int = 1) -> Report:
        path = f"/v3/reports/{_path_id(invitation_id)}"
        return self._api.call("GET", path, report_parser(invitation_id), params={"reportType": report_type})

    def attempts(self, state: AttemptState, *, start: datetime, end: datetime) -> list[Attempt]:
        body = {"StartDateTime": _utc(start, "start"), "EndDateTime": _utc(end, "end")}
        params = {"state": AttemptState(state).value}
        return self._api.call("POST", "/v3/candidates/testattempts", parse_attempts, params=params, json=body)

    def process_callbacks(self, invitation_ids: Sequence[int]) -> CallbackReplay:
        """Ask iMocha to re-send callbacks; ids are sent in chunks of 100 and the results merged.

        If a later chunk fails the exception propagates; earlier chunks have already been queued,
        which is harmless because a replay only re-sends a notification.
        """
        ids = list(dict.fromkeys(_path_id(i) for i in invitation_ids))
        successful: list[int] = []
        failed: list[int] = []
        for offset in range(0, len(ids), self.CALLBACK_CHUNK):
            chunk = ids[offset : offset + self.CALLBACK_CHUNK]
            body = {"testinvitationIds": chunk}
            replay = self._api.call("POST", "/v3/callbacks/process", parse_replay, json=body)
            successful.extend(replay.successful)
            failed.extend(replay.failed)
        return CallbackReplay(successful=tuple(successful), failed=tuple(failed))


# --------------------------------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------------------------------


def _path_id(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"iMocha ids are integers, got {type(value).__name__}")
    return value


def _utc(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_or_none(value: datetime | None, what: str) -> str | None:
    return None if value is None else _utc(value, what)


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}
