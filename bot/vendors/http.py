"""One request path for every vendor's API: retries, Retry-After, pacing, redaction and error mapping.

A vendor client describes its vendor once, derives from `VendorClient` and sends every request
through the `VendorHTTP` it keeps as `_api`:

    GREENHOUSE = Vendor(
        name="Greenhouse",                       # in every log line and error message
        logger=logging.getLogger("bot.ats.greenhouse"),
        connection_error=GreenhouseConnectionError,   # each takes one message argument
        protocol_error=GreenhouseProtocolError,
        status_error=_status_error,              # Failure -> the vendor's own exception (401 -> auth, ...)
    )

    class GreenhouseClient(VendorClient):
        DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)   # what build_http uses unless told otherwise

        def __init__(self, http: httpx.Client, api_key: str, **options: Any) -> None:
            self._api = VendorHTTP(http, GREENHOUSE, headers={"Authorization": ...}, secrets=[api_key], **options)

        def candidate(self, candidate_id: int) -> Candidate:
            return self._api.call("GET", f"/v1/candidates/{candidate_id}", parse_candidate)

Its exceptions derive from `bot.vendors.errors` (VendorError, VendorStatusError, VendorRateLimitError).
`call` returns what `parse` makes of the decoded JSON body; a `ValueError`, `TypeError` or `KeyError`
from `parse` becomes the vendor's protocol error. Every failure is one of the vendor's exceptions:
httpx exceptions never escape. Pass `idempotent=False` for a write that must not be repeated once
it may have reached the vendor (then only a refused connection or a 429 is retried), and a `Pacer`
(`slot()` around each request, `pause(seconds)` after a 429) to share one key's rate limit among
threads.
"""

from __future__ import annotations

import logging
import math
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
import tenacity

from bot.runtime.clock import system_clock

_T = TypeVar("_T")

REDACTED = "[redacted]"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a vendor client retries transient failures.

    Retried: connection errors, timeouts, protocol errors, and HTTP 408, 429, 500, 502, 503, 504 (only
    429 and a refused connection for a request sent with `idempotent=False`). A `Retry-After` header
    (seconds or HTTP date) is honoured up to `max_retry_after`; otherwise the delay is exponential
    backoff with full jitter, capped at `max_delay`.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    # A Retry-After over `max_retry_after` is given up on at once (for the caller to schedule) instead of waited at the cap.
    give_up_on_long_retry_after: bool = False

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
# Bodies and headers
# --------------------------------------------------------------------------------------------------


def error_body(response: httpx.Response) -> object:
    """The decoded JSON of an error answer, its text when it is not JSON, or None when it is empty."""
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def error_text(body: object) -> str | None:
    """`{message, errors}` (a list, or `{field: [messages]}`), or plain text, as one line."""
    if isinstance(body, str):
        return body.strip()[:300] or None
    if not isinstance(body, dict):
        return None
    parts: list[str] = []
    message = body.get("message") or body.get("Message")
    if isinstance(message, str) and message.strip():
        parts.append(message.strip())
    errors = body.get("errors")
    if isinstance(errors, dict):
        for field, value in errors.items():
            values = value if isinstance(value, list) else [value]
            parts.extend(f"{field}: {v}" for v in values if v not in (None, ""))
    elif isinstance(errors, list):
        parts.extend(str(e) for e in errors if e not in (None, ""))
    return "; ".join(parts)[:500] or None


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
# The request path
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A non-2xx answer, given to the vendor's `status_error` to become one of its exceptions."""

    status_code: int
    message: str  # the body's error text (redacted), or "HTTP 404 Not Found"
    body: object  # the decoded JSON body, its text, or None
    retry_after: float | None  # seconds, from Retry-After
    headers: httpx.Headers


@dataclass(frozen=True)
class Vendor:
    """What the request path needs to know about one vendor."""

    name: str
    logger: logging.Logger
    connection_error: Callable[[str], Exception]
    protocol_error: Callable[[str], Exception]
    status_error: Callable[[Failure], Exception]
    error_text: Callable[[object], str | None] = error_text
    auth_error: type[Exception] | None = None  # logged with `auth_hint` instead of the attempt count
    auth_hint: str | None = None
    failure_level: int = logging.WARNING  # of the line a failure is logged with (a client whose caller logs it: DEBUG)


class Pacer(Protocol):
    """One API key's rate limit, shared by every client using the key (e.g. `bot.ats.gem.RateLimiter`)."""

    def slot(self) -> AbstractContextManager[object]: ...

    def pause(self, seconds: float) -> None: ...


class _Transient(Exception):
    """A failed attempt worth another; what giving up needs to say is kept on it."""

    def __init__(
        self, attempt: int, wait: float, *, paced: bool = False, cause: httpx.HTTPError | None = None, failure: Failure | None = None
    ) -> None:
        super().__init__(f"attempt {attempt}")
        self.attempt = attempt
        self.wait = wait  # how long before the next attempt
        self.paced = paced  # the wait is the pacer's (every user of the key waits), not this thread's sleep
        self.cause = cause
        self.failure = failure

    @property
    def reason(self) -> str:
        return type(self.cause).__name__ if self.failure is None else f"HTTP {self.failure.status_code}"


class VendorHTTP:
    """Sends one vendor's requests over an injected `httpx.Client` (which carries the base URL)."""

    def __init__(
        self,
        http: httpx.Client,
        vendor: Vendor,
        *,
        headers: Mapping[str, str],
        secrets: Iterable[str | None] = (),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], datetime] | None = None,  # the time base of `sleep`, for Retry-After dates
        pacer: Pacer | None = None,
    ) -> None:
        self._http = http
        self._vendor = vendor
        self._log = vendor.logger
        self._headers = {"Accept": "application/json", **headers}
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._clock = clock or system_clock
        self._pacer = pacer

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], _T],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> _T:
        """Send the request and parse its JSON body; a body `parse` rejects is the vendor's protocol error."""
        body = self.request(method, path, params=params, json=json, data=data, idempotent=idempotent)
        try:
            return parse(body)
        except (ValueError, TypeError, KeyError) as exc:
            self._log.log(
                self._vendor.failure_level, "%s %s %s failed: 2xx body is not the documented shape", self._vendor.name, method, path
            )
            raise self._vendor.protocol_error(f"unexpected response from {self._vendor.name} {method} {path}: {exc}") from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one logical request (retried as the policy says) and return its decoded JSON body.

        `json` is sent as a JSON body, `data` as a form (`application/x-www-form-urlencoded`).
        """
        attempts = iter(range(1, self._retry.max_attempts + 1))

        def attempt() -> httpx.Response:
            return self._attempt(method, path, next(attempts), params=params, json=json, data=data, idempotent=idempotent)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._retry.max_attempts),
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=_planned_delay,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, _transient(state)),
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _Transient as last:
            raise self._give_up(method, path, last) from last.cause
        return self._decode(method, path, response)

    # ---- one attempt -----------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        path: str,
        number: int,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, str] | None,
        idempotent: bool,
    ) -> httpx.Response:
        try:
            with self._pacer.slot() if self._pacer is not None else nullcontext():
                response = self._http.request(method, path, params=params, json=json, data=data, headers=self._headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if isinstance(exc, httpx.HTTPError) and _retryable_transport(exc, idempotent):
                raise _Transient(number, self._retry.backoff(number, self._random()), cause=exc) from exc
            raise self._connection_error(method, path, exc, number) from exc

        status = response.status_code
        self._log.debug("%s %s %s -> %d (attempt %d/%d)", self._vendor.name, method, path, status, number, self._retry.max_attempts)
        if response.is_success:
            return response
        failure = self._failure(response)
        # A throttled request never reached the vendor, so even a write is safe to send again.
        if (status == 429 or (idempotent and status in RetryPolicy.RETRY_STATUSES)) and not self._too_long(failure):
            wait = (
                self._retry.honour(failure.retry_after) if failure.retry_after is not None else self._retry.backoff(number, self._random())
            )
            paced = status == 429 and self._pacer is not None
            if paced:
                assert self._pacer is not None
                self._pacer.pause(wait)  # the limit is per key: every thread using it waits, this one in its next slot()
            raise _Transient(number, wait, paced=paced, failure=failure)
        raise self._status_error(method, path, failure, number)

    def _too_long(self, failure: Failure) -> bool:
        """A Retry-After this client leaves to its caller rather than wait for."""
        wait = failure.retry_after
        return self._retry.give_up_on_long_retry_after and wait is not None and wait > self._retry.max_retry_after

    def _failure(self, response: httpx.Response) -> Failure:
        body = error_body(response)
        text = self._vendor.error_text(body)
        message = self.redact(text) if text else f"HTTP {response.status_code} {response.reason_phrase}".strip()
        return Failure(response.status_code, message, body, retry_after_seconds(response, self._clock), response.headers)

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            name, status = self._vendor.name, response.status_code
            self._log.log(self._vendor.failure_level, "%s %s %s failed: HTTP %d body is not JSON", name, method, path, status)
            raise self._vendor.protocol_error(f"{name} {method} {path} answered HTTP {status} with a body that is not JSON") from exc

    # ---- giving up, and saying so ----------------------------------------------------------------

    def _give_up(self, method: str, path: str, last: _Transient) -> Exception:
        if last.failure is not None:
            return self._status_error(method, path, last.failure, last.attempt)
        assert last.cause is not None
        return self._connection_error(method, path, last.cause, last.attempt)

    def _connection_error(self, method: str, path: str, exc: Exception, attempt: int) -> Exception:
        name, reason = self._vendor.name, type(exc).__name__
        level, attempts = self._vendor.failure_level, self._retry.max_attempts
        self._log.log(level, "%s %s %s failed: %s (attempt %d/%d)", name, method, path, reason, attempt, attempts)
        detail = self.redact(str(exc)) or reason
        return self._vendor.connection_error(f"could not reach {name} for {method} {path}: {reason}: {detail}")

    def _status_error(self, method: str, path: str, failure: Failure, attempt: int) -> Exception:
        error = self._vendor.status_error(failure)
        name, status = self._vendor.name, failure.status_code
        auth, level = self._vendor.auth_error, self._vendor.failure_level
        if auth is not None and self._vendor.auth_hint and isinstance(error, auth):
            self._log.log(level, "%s %s %s failed: HTTP %d, %s", name, method, path, status, self._vendor.auth_hint)
        elif status == 429:
            self._log.log(level, "%s %s %s failed: still rate-limited (HTTP 429) after %d attempts", name, method, path, attempt)
        else:
            self._log.log(level, "%s %s %s failed: HTTP %d (attempt %d/%d)", name, method, path, status, attempt, self._retry.max_attempts)
        self._log.debug("%s %s %s error message: %s", name, method, path, failure.message)
        return error

    def _log_retry(self, method: str, path: str, last: _Transient) -> None:
        name, attempts = self._vendor.name, self._retry.max_attempts
        if last.failure is not None and last.failure.status_code == 429:
            asked = " as Retry-After asks" if last.failure.retry_after is not None else ""
            self._log.warning(
                "%s rate limit (HTTP 429) on %s %s (attempt %d/%d); waiting %.2fs%s",
                name,
                method,
                path,
                last.attempt,
                attempts,
                last.wait,
                asked,
            )
            return
        self._log.warning(
            "%s %s %s failed: %s (attempt %d/%d); retrying in %.2fs", name, method, path, last.reason, last.attempt, attempts, last.wait
        )


class VendorClient:
    """What every vendor client shares: `build_http` with its timeout, and a repr without the key.

    A subclass sets `DEFAULT_TIMEOUT` and keeps its `VendorHTTP` as `_api`; its endpoints call `self._api.call`.
    """

    DEFAULT_TIMEOUT: ClassVar[httpx.Timeout] = httpx.Timeout(10.0, connect=5.0)
    _api: VendorHTTP

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._api.base_url!r})"

    @classmethod
    def build_http(
        cls,
        base_url: str,
        *,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 20,
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.Client:
        """An `httpx.Client` for one or many of these clients (`DEFAULT_TIMEOUT` unless told otherwise).

        It holds no key (that goes per request) and follows no redirect (see `build_http`).
        """
        timeout = timeout if timeout is not None else cls.DEFAULT_TIMEOUT
        return build_http(base_url, timeout=timeout, max_connections=max_connections, transport=transport)


def _transient(state: tenacity.RetryCallState) -> _Transient:
    error = state.outcome.exception() if state.outcome is not None else None
    if not isinstance(error, _Transient):  # the retry predicate lets nothing else through
        raise TypeError(f"unexpected retry outcome: {error!r}")
    return error


def _planned_delay(state: tenacity.RetryCallState) -> float:
    last = _transient(state)
    return 0.0 if last.paced else last.wait


def _retryable_transport(exc: httpx.HTTPError, idempotent: bool) -> bool:
    if not isinstance(exc, httpx.TransportError) or isinstance(exc, httpx.UnsupportedProtocol):
        return False
    # Without a connection the vendor saw nothing; after one, a write may have landed.
    return idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def build_http(
    base_url: str,
    *,
    timeout: httpx.Timeout,
    max_connections: int = 20,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An `httpx.Client` for one vendor's clients; it holds no key (that goes per request).

    Redirects are not followed: a redirect would carry the key header to wherever it points.
    """
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": "imocha-slack-bot"},
        follow_redirects=False,
    )
