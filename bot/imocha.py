"""A typed client for the iMocha v3 Skills Assessment API, with its status vocabulary and callback parser."""

from __future__ import annotations

import enum
import logging
import math
import random as _random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import httpx

from bot.clock import system_clock

logger = logging.getLogger("bot.imocha")

_T = TypeVar("_T")

# --------------------------------------------------------------------------------------------------
# Status vocabulary
# --------------------------------------------------------------------------------------------------


class Status(enum.StrEnum):
    """Where an invitation / attempt stands, whatever spelling iMocha used for it."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    TEST_LEFT = "test_left"
    TERMINATED = "terminated"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """The candidate's attempt is over and a report exists."""
        return self in (Status.COMPLETE, Status.TEST_LEFT, Status.TERMINATED)

    @property
    def closed(self) -> bool:
        """Nothing more will happen to this invitation without a new invite or a reattempt."""
        return self.finished or self in (Status.EXPIRED, Status.CANCELLED)


# Keys are spellings with case, spaces, underscores and hyphens removed. Every spelling the docs print
# (reference §12) folds onto one of these.
_STATUS_SPELLINGS: dict[str, Status] = {
    "pending": Status.PENDING,
    # The report's `status` is "None" for an invitation that was never attempted (seen in live responses);
    # V2's "Reset" is a test re-opened for a retake. Both mean "waiting for the candidate".
    "none": Status.PENDING,
    "reset": Status.PENDING,
    "inprogress": Status.IN_PROGRESS,  # "In Progress", "Inprogress", "inprogress", V2 "In progress"
    "complete": Status.COMPLETE,
    "completed": Status.COMPLETE,  # Retrieve Invites and the help centre say "Completed"
    "generated": Status.COMPLETE,  # V2 report status: the report exists, so the test is complete
    "testleft": Status.TEST_LEFT,  # "Test Left", "TestLeft", "Testleft"
    "terminated": Status.TERMINATED,
    "expired": Status.EXPIRED,
    "cancelled": Status.CANCELLED,
    "canceled": Status.CANCELLED,
    "unknown": Status.UNKNOWN,
}


def normalize_status(raw: str | None) -> Status:
    """Map any iMocha status spelling to a `Status`; anything unrecognised is UNKNOWN, never an error.

    The string "None" (report status of an unattempted invitation) is PENDING; a missing value
    (Python ``None``) is UNKNOWN because nothing was said at all.
    """
    if not isinstance(raw, str):
        return Status.UNKNOWN
    key = "".join(ch for ch in raw.casefold() if ch not in " _-\t")
    return _STATUS_SPELLINGS.get(key, Status.UNKNOWN)


# --------------------------------------------------------------------------------------------------
# Values returned by the client
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class, even when imported into a test module

    test_id: int
    name: str
    duration: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class TestSection:
    __test__ = False

    name: str
    questions: int | None
    duration: int | None


@dataclass(frozen=True)
class TestDetail:
    __test__ = False

    test_id: int
    name: str
    duration: int | None
    sections: tuple[TestSection, ...]


@dataclass(frozen=True)
class Invitation:
    """The result of an invite or a reattempt (status is PENDING when iMocha does not say)."""

    invitation_id: int
    test_url: str
    status: Status


@dataclass(frozen=True)
class SectionScore:
    name: str
    candidate_score: float
    max_score: float
    questions: int | None


@dataclass(frozen=True)
class Report:
    invitation_id: int
    test_id: int | None
    test_name: str | None
    email: str | None
    candidate_name: str | None
    status: Status
    candidate_points: float | None
    total_points: float | None
    percentage: float | None
    performance_category: str | None
    pdf_url: str | None
    attempted_on: datetime | None
    sections: tuple[SectionScore, ...]


@dataclass(frozen=True)
class Attempt:
    """One row of Retrieve Invites (`/v3/candidates/testattempts`)."""

    invitation_id: int
    test_id: int | None
    name: str | None
    email: str | None
    status: Status


@dataclass(frozen=True)
class Cancelled:
    invitation_id: int
    status: Status


@dataclass(frozen=True)
class CallbackReplay:
    successful: tuple[int, ...]
    failed: tuple[int, ...]


@dataclass(frozen=True)
class Callback:
    """What iMocha POSTs to an invitation's callbackUrl (reference §6)."""

    invitation_id: int
    status: Status
    email: str | None
    candidate_score: float | None
    total_score: float | None
    pdf_url: str | None
    performance_category: str | None
    attempted_on_utc: datetime | None


class AttemptState(enum.StrEnum):
    """The `state` filter of Retrieve Invites; COMPLETED covers Completed, Testleft and Terminated."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ImochaError(Exception):
    """Anything that went wrong talking to iMocha. httpx exceptions never escape the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImochaConnectionError(ImochaError):
    """iMocha could not be reached (connect error, timeout, broken protocol), after retries."""


class ImochaStatusError(ImochaError):
    """iMocha answered with a non-2xx status."""

    def __init__(self, status_code: int, message: str, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class AuthError(ImochaStatusError):
    """The API key was rejected (401) or lacks permission (403)."""


class BadRequestError(ImochaStatusError):
    """The request was invalid: 400, or a 401 carrying validation errors (Retrieve Invites, Process
    Callbacks report bad input and foreign ids that way; it does not mean the key is bad)."""


class NotFoundError(ImochaStatusError):
    """404: no such test or invitation."""


class RateLimitError(ImochaStatusError):
    """429, still, after retries."""

    def __init__(self, status_code: int, message: str, body: object = None, *, retry_after: float | None = None) -> None:
        super().__init__(status_code, message, body)
        self.retry_after = retry_after


class ServerError(ImochaStatusError):
    """5xx, still, after retries."""


class ImochaProtocolError(ImochaError):
    """A 2xx whose body is not the documented shape."""


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
            items, count = self._call("GET", "/v3/tests", _parse_tests_page, params=params)
            new = [t for t in items if t.test_id not in seen]
            seen.update(t.test_id for t in new)
            tests.extend(new)
            if len(items) < self.PAGE_SIZE or not new or (count is not None and len(tests) >= count):
                break
        return tests

    def get_test(self, test_id: int) -> TestDetail:
        return self._call("GET", f"/v3/tests/{_path_id(test_id)}", _parse_test_detail)

    def check_key(self) -> int:
        """One cheap authenticated call returning the account's test count; AuthError on a bad key."""
        items, count = self._call("GET", "/v3/tests", _parse_tests_page, params={"pageNo": 1, "pageSize": 1})
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
        return self._call("POST", f"/v3/tests/{_path_id(test_id)}/invite", _parse_invitation, json=body)

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
        return self._call("POST", path, _parse_invitation, json=body)

    def cancel(self, invitation_id: int) -> Cancelled:
        return self._call("POST", f"/v3/invitations/{_path_id(invitation_id)}/cancel", _parse_cancelled)

    # ---- reports and reconciliation ------------------------------------------------------------

    def report(self, invitation_id: int, *, report_type: int = 1) -> Report:
        path = f"/v3/reports/{_path_id(invitation_id)}"
        return self._call("GET", path, _report_parser(invitation_id), params={"reportType": report_type})

    def attempts(self, state: AttemptState, *, start: datetime, end: datetime) -> list[Attempt]:
        body = {"StartDateTime": _utc(start, "start"), "EndDateTime": _utc(end, "end")}
        params = {"state": AttemptState(state).value}
        return self._call("POST", "/v3/candidates/testattempts", _parse_attempts, params=params, json=body)

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
            replay = self._call("POST", "/v3/callbacks/process", _parse_replay, json=body)
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
        body = _error_body(response)
        text = _error_text(body)
        message = self._scrub(text) if text else f"HTTP {status} {response.reason_phrase}".strip()
        if status == 429:
            return RateLimitError(status, message, body, retry_after=retry_after)
        if status == 401 and _is_validation_body(body):
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


# --------------------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------------------


def _error_body(response: httpx.Response) -> object:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _is_validation_body(body: object) -> bool:
    # Retrieve Invites and Process Callbacks answer 401 `{"result": null, "errors": [...]}` for bad
    # input or foreign ids (reference §8); a rejected key is `{"statusCode": 401, "message": ...}`.
    return isinstance(body, dict) and isinstance(_lookup(body, "errors"), list | dict) and _lookup(body, "statusCode") is None


def _error_text(body: object) -> str | None:
    """The most useful human text from any of iMocha's error body shapes (reference §2)."""
    if isinstance(body, str):
        return body.strip()[:500] or None
    if not isinstance(body, dict):
        return None
    errors = _lookup(body, "errors")
    parts: list[str] = []
    if isinstance(errors, list):
        parts = [str(e).strip() for e in errors if e is not None]
    elif isinstance(errors, dict):  # ASP.NET validation problem details: {"field": ["message", ...]}
        for value in errors.values():
            parts.extend(str(v).strip() for v in (value if isinstance(value, list) else [value]))
    elif isinstance(errors, str):
        parts = [errors.strip()]
    parts = [p for p in parts if p]
    if parts:
        return "; ".join(parts)
    message = _lookup(body, "message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    description = _lookup(body, "description")  # V2 envelope: {"statuscode", "description", "result"}
    if isinstance(description, str) and description.strip():
        result = _lookup(body, "result")
        if isinstance(result, str) and result.strip():
            return f"{description.strip()}: {result.strip()}"
        return description.strip()
    for key in ("error_description", "error", "title", "detail"):
        value = _lookup(body, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


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
# Body parsing (ValueError on a shape violation; the client turns it into ImochaProtocolError)
# --------------------------------------------------------------------------------------------------


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lookup(data: Mapping[Any, Any], *names: str) -> Any:
    """The first non-null value among `names`, matching keys exactly first, then case-insensitively.

    iMocha's docs and live responses disagree on casing (`Status` vs `status`, `callbackURL` vs
    `callbackUrl`), so every read goes through here.
    """
    for name in names:
        value = data.get(name)
        if value is not None:
            return value
    folded = {k.casefold(): v for k, v in data.items() if isinstance(k, str) and v is not None}
    for name in names:
        value = folded.get(name.casefold())
        if value is not None:
            return value
    return None


def _obj(value: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _items(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


def _int(value: object, what: str) -> int:
    result = _opt_int(value)
    if result is None:
        raise ValueError(f"{what} must be an integer, got {_short(value)}")
    return result


_INTEGER = re.compile(r"-?[0-9]+")


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())  # ids are Integer64, but the report documents testId as a String
    return None


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _opt_str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _opt_datetime(value: object) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; iMocha's naive timestamps (e.g. AttemptedOnUtc) are UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_test(value: object) -> Test:
    item = _obj(value, "test")
    return Test(
        test_id=_int(_lookup(item, "testId"), "testId"),
        name=_opt_str(_lookup(item, "testName", "name")) or "",
        duration=_opt_int(_lookup(item, "duration")),
        status=_opt_str(_lookup(item, "status")),
    )


def _parse_tests_page(data: object) -> tuple[list[Test], int | None]:
    if isinstance(data, list):
        return [_parse_test(item) for item in data], None
    body = _obj(data, "tests page")
    if "tests" not in body and "Tests" not in body:
        raise ValueError("tests page has no 'tests' array")
    tests = [_parse_test(item) for item in _items(_lookup(body, "tests"), "tests")]
    return tests, _opt_int(_lookup(body, "count"))


def _parse_test_detail(data: object) -> TestDetail:
    body = _obj(data, "test")
    sections = tuple(
        TestSection(
            name=_opt_str(_lookup(section, "sectionName", "name")) or "",
            questions=_opt_int(_lookup(section, "questions", "noOfQue")),
            duration=_opt_int(_lookup(section, "duration")),
        )
        for section in (_obj(s, "section") for s in _items(_lookup(body, "sections"), "sections"))
    )
    return TestDetail(
        test_id=_int(_lookup(body, "testId"), "testId"),
        name=_opt_str(_lookup(body, "testName", "name")) or "",
        duration=_opt_int(_lookup(body, "duration")),
        sections=sections,
    )


def _parse_invitation(data: object) -> Invitation:
    body = _obj(data, "invitation")
    url = _opt_str(_lookup(body, "testUrl"))
    if url is None:
        raise ValueError("invitation has no testUrl")
    raw_status = _lookup(body, "status")
    return Invitation(
        invitation_id=_int(_lookup(body, "testInvitationId"), "testInvitationId"),
        test_url=url,
        status=Status.PENDING if raw_status is None else normalize_status(raw_status),
    )


def _parse_cancelled(data: object) -> Cancelled:
    body = _obj(data, "cancellation")
    raw_status = _lookup(body, "status")
    return Cancelled(
        invitation_id=_int(_lookup(body, "testInvitationId"), "testInvitationId"),
        status=Status.CANCELLED if raw_status is None else normalize_status(raw_status),
    )


def _report_parser(requested_id: int) -> Callable[[object], Report]:
    def parse(data: object) -> Report:
        body = _obj(data, "report")
        invitation_id = _lookup(body, "testInvitationId")
        points = _opt_float(_lookup(body, "candidatePoints"))
        total = _opt_float(_lookup(body, "totalTestPoints"))
        percentage = _opt_float(_lookup(body, "scorePercentage"))
        if percentage is None and points is not None and total:
            percentage = round(points / total * 100, 2)
        sections = tuple(
            SectionScore(
                name=_opt_str(_lookup(section, "sectionName")) or "",
                candidate_score=_opt_float(_lookup(section, "candidateScore")) or 0.0,
                max_score=_opt_float(_lookup(section, "sectionScore")) or 0.0,
                questions=_opt_int(_lookup(section, "noOfQue")),
            )
            for section in (_obj(s, "section") for s in _items(_lookup(body, "sections"), "sections"))
        )
        return Report(
            invitation_id=requested_id if invitation_id is None else _int(invitation_id, "testInvitationId"),
            test_id=_opt_int(_lookup(body, "testId")),
            test_name=_opt_str(_lookup(body, "testName")),
            email=_opt_str(_lookup(body, "candidateEmail")),
            candidate_name=_opt_str(_lookup(body, "candidateName")),
            status=normalize_status(_lookup(body, "status")),
            candidate_points=points,
            total_points=total,
            percentage=percentage,
            performance_category=_opt_str(_lookup(body, "performanceCategory")),
            pdf_url=_opt_str(_lookup(body, "pdfReportUrl")),
            attempted_on=_opt_datetime(_lookup(body, "attemptedOn")),
            sections=sections,
        )

    return parse


def _result(data: object, what: str) -> Mapping[Any, Any]:
    """Unwrap the `{"result": ..., "errors": ...}` envelope of the Callback API (reference §8)."""
    body = _obj(data, what)
    result = _lookup(body, "result")
    if result is None:
        errors = _error_text(body)
        raise ValueError(f"{what} has no result" + (f" (errors: {errors})" if errors else ""))
    return _obj(result, f"{what} result")


def _parse_attempts(data: object) -> list[Attempt]:
    result = _result(data, "test attempts")
    attempts = []
    for value in _items(_lookup(result, "testAttempts"), "testAttempts"):
        item = _obj(value, "test attempt")
        attempts.append(
            Attempt(
                invitation_id=_int(_lookup(item, "testInvitationId"), "testInvitationId"),
                test_id=_opt_int(_lookup(item, "testId")),
                name=_opt_str(_lookup(item, "name")),
                email=_opt_str(_lookup(item, "email")),
                status=normalize_status(_lookup(item, "testStatus", "status")),
            )
        )
    return attempts


def _parse_replay(data: object) -> CallbackReplay:
    ids = _obj(_lookup(_result(data, "process callbacks"), "testinvitationIds"), "testinvitationIds")
    return CallbackReplay(
        successful=tuple(_int(i, "successful id") for i in _items(_lookup(ids, "successful"), "successful")),
        failed=tuple(_int(i, "failed id") for i in _items(_lookup(ids, "failed"), "failed")),
    )


def parse_callback(data: object) -> Callback:
    """Parse the PascalCase JSON object iMocha POSTs to a callbackUrl (reference §6).

    Extra keys (e.g. BaseImgUrl) and nulls are tolerated; raises ValueError when `data` is not an
    object or has no integer TestInvitationId.
    """
    if not isinstance(data, dict):
        raise ValueError(f"callback payload must be a JSON object, got {type(data).__name__}")
    raw_id = _lookup(data, "TestInvitationId")
    if raw_id is None:
        raise ValueError("callback payload has no TestInvitationId")
    return Callback(
        invitation_id=_int(raw_id, "callback TestInvitationId"),
        status=normalize_status(_lookup(data, "Status")),
        email=_opt_str(_lookup(data, "CandidateEmailId")),
        candidate_score=_opt_float(_lookup(data, "CandidateScore")),
        total_score=_opt_float(_lookup(data, "TotalScore")),
        pdf_url=_opt_str(_lookup(data, "ReportPDFUrl")),
        performance_category=_opt_str(_lookup(data, "PerformanceCategory")),
        attempted_on_utc=_opt_datetime(_lookup(data, "AttemptedOnUtc")),
    )


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


__all__ = [
    "Attempt",
    "AttemptState",
    "AuthError",
    "BadRequestError",
    "Callback",
    "CallbackReplay",
    "Cancelled",
    "ImochaClient",
    "ImochaConnectionError",
    "ImochaError",
    "ImochaProtocolError",
    "ImochaStatusError",
    "Invitation",
    "NotFoundError",
    "RateLimitError",
    "Report",
    "RetryPolicy",
    "SectionScore",
    "ServerError",
    "Status",
    "Test",
    "TestDetail",
    "TestSection",
    "normalize_status",
    "parse_callback",
]
