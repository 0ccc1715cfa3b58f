"""ImochaClient: the iMocha v3 endpoints over an injected `httpx.Client`, with its retry policy."""

from __future__ import annotations

import logging
import math
import random as _random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import httpx

from bot.clock import system_clock
from bot.imocha import models
from bot.imocha.errors import (
    AuthError,
    BadRequestError,
    ImochaConnectionError,
    ImochaProtocolError,
    ImochaStatusError,
    NotFoundError,
    RateLimitError,
    ServerError,
    error_body,
    error_text,
    is_validation_body,
)
from bot.imocha.status import AttemptState
from bot.imocha.values import Attempt, CallbackReplay, Cancelled, Invitation, Report, Test, TestDetail

logger = logging.getLogger("bot.imocha")

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently `ImochaClient` retries transient failures.

    Retried: connection errors, timeouts, protocol errors, and HTTP 408, 429, 500, 502, 503, 504.
    A `Retry-After` header (seconds or HTTP date) is honoured up to `max_retry_after`; otherwise the
    delay is exponential backoff with full jitter, capped at `max_delay`.

    POSTs are retried too. That is safe for iMocha because its state-changing calls are idempotent
    by design (reference §5.3/§5.4): a repeated invite returns the existing invitation, a repeated
    reattempt returns the latest active reattempt, Process Callbacks only re-queues delivery, and a
    repeated cancel cannot cancel twice (at worst a retry whose first try did land answers 400
    "can not be cancelled", which the caller sees as BadRequestError rather than a duplicate effect).
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    RETRY_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int, rand: float) -> float:
        """Full-jitter delay after failed attempt number `attempt` (1-based); `rand` is in [0, 1]."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return max(0.0, min(1.0, rand)) * ceiling

    def honour(self, retry_after: float) -> float:
        return min(max(0.0, retry_after), self.max_retry_after)


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class ImochaClient:
    """iMocha v3 over an injected `httpx.Client` (which carries the base URL and may be shared)."""

    DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
    PAGE_SIZE = 100
    CALLBACK_CHUNK = 100  # Process Callbacks accepts at most 100 ids per call (reference §8.1)
    _MAX_PAGES = 1000  # a guard against a server that ignores pageNo

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        *,
        retry: RetryPolicy = RetryPolicy(),  # frozen, so one shared default is safe
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], datetime] = system_clock,  # the time base of `sleep`, for Retry-After dates
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("iMocha API key is empty")
        self._http = http
        self._api_key = api_key.strip()
        self._retry = retry
        self._sleep = sleep
        self._random = random
        self._clock = clock

    def __repr__(self) -> str:
        return f"ImochaClient(base_url={str(self._http.base_url)!r})"

    @staticmethod
    def build_http(
        base_url: str,
        *,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 20,
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.Client:
        """An `httpx.Client` for one or many `ImochaClient`s; it holds no key (that goes per request)."""
        return httpx.Client(
            base_url=base_url,
            timeout=timeout if timeout is not None else ImochaClient.DEFAULT_TIMEOUT,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "imocha-slack-bot"},
            follow_redirects=False,
        )

    # ---- tests -----------------------------------------------------------------------------------

    def list_tests(self) -> list[Test]:
        tests: list[Test] = []
        seen: set[int] = set()
        for page in range(1, self._MAX_PAGES + 1):
            params = {"pageNo": page, "pageSize": self.PAGE_SIZE}
            items, count = self._call("GET", "/v3/tests", models.parse_tests_page, params=params)
            new = [t for t in items if t.test_id not in seen]
            seen.update(t.test_id for t in new)
            tests.extend(new)
            if len(items) < self.PAGE_SIZE or not new or (count is not None and len(tests) >= count):
                break
        return tests

    def get_test(self, test_id: int) -> TestDetail:
        return self._call("GET", f"/v3/tests/{_path_id(test_id)}", models.parse_test_detail)

    def check_key(self) -> int:
        """One cheap authenticated call returning the account's test count; AuthError on a bad key."""
        items, count = self._call("GET", "/v3/tests", models.parse_tests_page, params={"pageNo": 1, "pageSize": 1})
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
        return self._call("POST", f"/v3/tests/{_path_id(test_id)}/invite", models.parse_invitation, json=body)

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
        return self._call("POST", path, models.parse_invitation, json=body)

    def cancel(self, invitation_id: int) -> Cancelled:
        return self._call("POST", f"/v3/invitations/{_path_id(invitation_id)}/cancel", models.parse_cancelled)

    # ---- reports and reconciliation ------------------------------------------------------------

    def report(self, invitation_id: int, *, report_type: int = 1) -> Report:
        path = f"/v3/reports/{_path_id(invitation_id)}"
        return self._call("GET", path, models.report_parser(invitation_id), params={"reportType": report_type})

    def attempts(self, state: AttemptState, *, start: datetime, end: datetime) -> list[Attempt]:
        body = {"StartDateTime": _utc(start, "start"), "EndDateTime": _utc(end, "end")}
        params = {"state": AttemptState(state).value}
        return self._call("POST", "/v3/candidates/testattempts", models.parse_attempts, params=params, json=body)

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
            replay = self._call("POST", "/v3/callbacks/process", models.parse_replay, json=body)
            successful.extend(replay.successful)
            failed.extend(replay.failed)
        return CallbackReplay(successful=tuple(successful), failed=tuple(failed))

    # ---- plumbing --------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], _T],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> _T:
        data = self._request(method, path, params=params, json=json)
        try:
            return parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("iMocha %s %s failed: 2xx body is not the documented shape", method, path)
            raise ImochaProtocolError(f"unexpected response from iMocha {method} {path}: {exc}") from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one logical request: auth header, retries, error mapping and JSON decoding."""
        max_attempts = self._retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    headers={"X-API-KEY": self._api_key, "Accept": "application/json"},
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                reason = type(exc).__name__
                retryable = isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)
                if retryable and attempt < max_attempts:
                    self._pause(method, path, reason, attempt, self._retry.backoff(attempt, self._random()))
                    continue
                logger.warning("iMocha %s %s failed: %s (attempt %d/%d)", method, path, reason, attempt, max_attempts)
                detail = self._scrub(str(exc)) or reason
                raise ImochaConnectionError(f"could not reach iMocha for {method} {path}: {reason}: {detail}") from exc

            status = response.status_code
            logger.debug("iMocha %s %s -> %d (attempt %d/%d)", method, path, status, attempt, max_attempts)
            if response.is_success:
                return self._decode(method, path, response)

            retry_after = retry_after_seconds(response, self._clock)
            # POSTs are retried like GETs: iMocha's invite/reattempt/cancel are idempotent (see RetryPolicy).
            if status in RetryPolicy.RETRY_STATUSES and attempt < max_attempts:
                if retry_after is not None:
                    delay = self._retry.honour(retry_after)
                else:
                    delay = self._retry.backoff(attempt, self._random())
                self._pause(method, path, f"HTTP {status}", attempt, delay)
                continue

            logger.warning("iMocha %s %s failed: HTTP %d (attempt %d/%d)", method, path, status, attempt, max_attempts)
            error = self._status_error(response, retry_after)
            logger.debug("iMocha %s %s error message: %s", method, path, error.message)
            raise error

    def _pause(self, method: str, path: str, reason: str, attempt: int, delay: float) -> None:
        logger.warning(
            "iMocha %s %s failed: %s (attempt %d/%d); retrying in %.2fs",
            method,
            path,
            reason,
            attempt,
            self._retry.max_attempts,
            delay,
        )
        self._sleep(delay)

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            logger.warning("iMocha %s %s failed: HTTP %d body is not JSON", method, path, response.status_code)
            raise ImochaProtocolError(f"iMocha {method} {path} answered HTTP {response.status_code} with a body that is not JSON") from exc

    def _status_error(self, response: httpx.Response, retry_after: float | None) -> ImochaStatusError:
        status = response.status_code
        body = error_body(response)
        text = error_text(body)
        message = self._scrub(text) if text else f"HTTP {status} {response.reason_phrase}".strip()
        if status == 429:
            return RateLimitError(status, message, body, retry_after=retry_after)
        if status == 401 and is_validation_body(body):
            return BadRequestError(status, message, body)
        if status in (401, 403):
            return AuthError(status, message, body)
        if status == 400:
            return BadRequestError(status, message, body)
        if status == 404:
            return NotFoundError(status, message, body)
        if status >= 500:
            return ServerError(status, message, body)
        return ImochaStatusError(status, message, body)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def retry_after_seconds(response: httpx.Response, clock: Callable[[], datetime]) -> float | None:
    """Seconds to wait according to Retry-After (delta-seconds or HTTP date), or None if absent/garbled."""
    raw = response.headers.get("Retry-After")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        when = _http_date(raw)
        if when is None:
            return None
        # Measure against the server's own Date header when it sent one, so clock skew does not matter.
        date_header = response.headers.get("Date")
        now = (_http_date(date_header) if date_header else None) or clock()
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _http_date(raw: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


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
