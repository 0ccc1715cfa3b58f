"""A typed client for Gem's ATS API (`/ats/v0`): applications, candidates, jobs, users, stages and notes.

What is known of this API is secondhand (see the project's Gem reference). The client is written for
the unknowns: IDs are opaque strings, pages are bare JSON arrays read until a short page, 401 and 403
both mean "key refused" (an AWS API Gateway in front answers 403 to unknown keys), 429 is honoured
with or without `Retry-After`, and requests per key are paced and bounded by a shared `RateLimiter`.
"""

from __future__ import annotations

import hashlib
import logging
import random as _random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from bot.vendors.errors import VendorError, VendorRateLimitError, VendorStatusError
from bot.vendors.http import Failure, RetryPolicy, Vendor, VendorClient, VendorHTTP
from bot.vendors.pacing import RateLimiter
from bot.vendors.parsing import opt_datetime

logger = logging.getLogger("bot.ats.gem")

_T = TypeVar("_T")

NOTE_MAX_CHARS = 10_000  # Gem's documented limit for a note body
DEFAULT_RETRY = RetryPolicy()  # frozen, so one shared default is safe; the same policy as iMocha's

# --------------------------------------------------------------------------------------------------
# Values returned by the client
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An `{id, name}` pair: an application's current stage, or one of its jobs."""

    id: str
    name: str


@dataclass(frozen=True)
class Application:
    id: str
    candidate_id: str | None
    status: str | None  # active | rejected | hired
    stage: Ref | None
    jobs: tuple[Ref, ...]
    last_activity_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class EmailAddress:
    value: str
    is_primary: bool
    type: str | None = None


@dataclass(frozen=True)
class Candidate:
    id: str
    first_name: str
    last_name: str
    emails: tuple[EmailAddress, ...]

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def email_candidates(self) -> list[str]:
        """Addresses in preference order: the primary one first, then the others as Gem lists them."""
        ordered = [e for e in self.emails if e.is_primary] + [e for e in self.emails if not e.is_primary]
        return [e.value for e in ordered]


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    recruiter_ids: tuple[str, ...]
    coordinator_ids: tuple[str, ...]


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str | None
    disabled: bool
    site_admin: bool


@dataclass(frozen=True)
class JobStage:
    id: str
    name: str
    job_id: str | None
    priority: int | None


@dataclass(frozen=True)
class Note:
    id: str | None


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class GemError(VendorError):
    """Anything that went wrong talking to Gem. httpx exceptions never escape the client."""


class GemConnectionError(GemError):
    """Gem could not be reached (connect error, timeout, broken protocol), after retries."""


class GemStatusError(GemError, VendorStatusError):
    """Gem answered with a non-2xx status (`status_code`, `message`, `body`)."""


class GemAuthError(GemStatusError):
    """The API key was refused: 401, or 403 (what an API gateway says to a key it does not know)."""


class GemBadRequestError(GemStatusError):
    """400 or 422: Gem says the request itself is wrong; asking again will not help."""


class GemNotFoundError(GemStatusError):
    """404: no such candidate or application (deleted, or merged into another record)."""


class GemRateLimitError(GemStatusError, VendorRateLimitError):
    """429 ("Too Many Requests" or the gateway's "Limit Exceeded"), still, after retries (`retry_after`, seconds)."""


class GemServerError(GemStatusError):
    """5xx, still, after retries."""


class GemProtocolError(GemError):
    """A 2xx whose body is not the documented shape, or an unexpected redirect."""


# --------------------------------------------------------------------------------------------------
# Pacing (one `bot.vendors.pacing.RateLimiter` per key)
# --------------------------------------------------------------------------------------------------


class GemClients:
    """Builds `GemClient`s over one shared `httpx.Client`, with one `RateLimiter` per API key, so that
    the poller, the write-back and a setup check using the same key share its budget."""

    def __init__(self, http: httpx.Client, *, limiter: Callable[[], RateLimiter] = RateLimiter, **client_options: Any) -> None:
        self._http = http
        self._new_limiter = limiter
        self._options = client_options
        self._limiters: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def __call__(self, api_key: str) -> GemClient:
        fingerprint = key_fingerprint(api_key)
        with self._lock:
            limiter = self._limiters.get(fingerprint)
            if limiter is None:
                limiter = self._limiters[fingerprint] = self._new_limiter()
        return GemClient(self._http, api_key, limiter=limiter, **self._options)


def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible name for a key, to tell keys apart without keeping them around."""
    return hashlib.sha256(api_key.strip().encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class GemClient(VendorClient):
    """Gem's ATS API over an injected `httpx.Client` (which carries the base URL and may be shared)."""

    DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
    PAGE_SIZE = 500  # the documented maximum of per_page
    _MAX_PAGES = 10_000  # a guard against a server that ignores `page`

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        *,
        application_secret: str | None = None,
        page_size: int = PAGE_SIZE,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], datetime] | None = None,  # the time base of `sleep`, for Retry-After dates (default: the wall clock)
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("Gem API key is empty")
        if not 1 <= page_size <= self.PAGE_SIZE:
            raise ValueError(f"page_size must be from 1 to {self.PAGE_SIZE}")
        key = api_key.strip()
        headers = {"X-API-Key": key}
        # Integration partners send an application secret with the customer's key; a team's own key
        # appears to work alone (unconfirmed by Gem), so it is sent only when configured.
        secret = application_secret.strip() if application_secret and application_secret.strip() else None
        if secret:
            headers["X-Application-Secret"] = secret
        self._page_size = page_size
        self._api = VendorHTTP(
            http,
            GEM,
            headers=headers,
            secrets=[key, secret],
            retry=retry,
            sleep=sleep,
            random=random,
            clock=clock,
            pacer=limiter or RateLimiter(),
        )

    # ---- reads -----------------------------------------------------------------------------------

    def check_key(self) -> int:
        """One cheap authenticated call (`GET /ats/v0/users`); GemAuthError when Gem refuses the key."""
        users = self._api.call("GET", "/ats/v0/users", _list_of(_parse_user), params={"page": 1, "per_page": 1})
        return len(users)

    def applications(
        self, *, last_activity_after: datetime | None = None, status: str | None = "active", job_id: str | None = None
    ) -> list[Application]:
        """Every application matching the filters, page by page until a short page."""
        params: dict[str, Any] = {}
        if last_activity_after is not None:
            params["last_activity_after"] = iso_utc(last_activity_after)
        if status is not None:
            params["status"] = status
        if job_id is not None:
            params["job_id"] = job_id
        return self._all_pages("/ats/v0/applications", _parse_application, params)

    def candidate(self, candidate_id: str) -> Candidate:
        return self._api.call("GET", f"/ats/v0/candidates/{_path_id(candidate_id)}", _parse_candidate)

    def jobs(self) -> list[Job]:
        # `GET /ats/v0/jobs/{id}` is unconfirmed; public code reads the list, and so does this.
        return self._all_pages("/ats/v0/jobs", _parse_job, {})

    def users(self) -> list[User]:
        return self._all_pages("/ats/v0/users", _parse_user, {})

    def job_stages(self) -> list[JobStage]:
        return self._all_pages("/ats/v0/job_stages", _parse_job_stage, {})

    # ---- write -----------------------------------------------------------------------------------

    def add_note(self, candidate_id: str, *, body: str, user_id: str | None, visibility: str = "private") -> Note:
        """Add a note to the candidate's activity feed. Not idempotent: the client retries it only when
        Gem certainly did not act on it (429, or no connection made); the caller schedules other retries."""
        if visibility not in ("public", "private"):
            raise ValueError("visibility must be 'public' or 'private'")
        payload: dict[str, Any] = {"body": body[:NOTE_MAX_CHARS], "visibility": visibility}
        if user_id:
            payload["user_id"] = user_id
        path = f"/ats/v0/candidates/{_path_id(candidate_id)}/activity_feed/notes"
        return self._api.call("POST", path, _parse_note, json=payload, idempotent=False)

    # ---- plumbing --------------------------------------------------------------------------------

    def _all_pages(self, path: str, parse_item: Callable[[Any], _T], params: Mapping[str, Any]) -> list[_T]:
        items: list[_T] = []
        seen: set[str] = set()
        for page in range(1, self._MAX_PAGES + 1):
            raw = self._api.call("GET", path, _raw_list, params={**params, "page": page, "per_page": self._page_size})
            fresh = 0
            for value in raw:
                try:
                    item = parse_item(value)
                except (ValueError, TypeError, KeyError) as exc:
                    raise GemProtocolError(f"unexpected item in Gem GET {path}: {exc}") from exc
                # Pages shift while they are read (an application moves, another is created): skip repeats.
                item_id = getattr(item, "id", None)
                if isinstance(item_id, str):
                    if item_id in seen:
                        continue
                    seen.add(item_id)
                fresh += 1
                items.append(item)
            # Stop on a short page: Gem's pagination headers are undocumented, and this is safe either way.
            if len(raw) < self._page_size or fresh == 0:
                break
        return items


def _status_error(failure: Failure) -> GemError:
    """The exception for a non-2xx answer (given to the vendor HTTP base as Gem's `status_error`)."""
    status, message, body = failure.status_code, failure.message, failure.body
    if 300 <= status < 400:
        where = failure.headers.get("location", "?")
        return GemProtocolError(f"Gem answered HTTP {status} (a redirect to {where}); check GEM_BASE_URL")
    if status == 429:
        return GemRateLimitError(status, message, body, retry_after=failure.retry_after)
    if status in (401, 403):
        return GemAuthError(status, message, body)
    if status in (400, 422):
        return GemBadRequestError(status, message, body)
    if status == 404:
        return GemNotFoundError(status, message, body)
    if status >= 500:
        return GemServerError(status, message, body)
    return GemStatusError(status, message, body)


GEM = Vendor(
    name="Gem",
    logger=logger,
    connection_error=GemConnectionError,
    protocol_error=GemProtocolError,
    status_error=_status_error,
    auth_error=GemAuthError,
    auth_hint="Gem refused the API key (check it, and that API access is enabled for the Gem account)",
)


# --------------------------------------------------------------------------------------------------
# Bodies (ValueError on a shape violation; the client turns it into GemProtocolError)
# --------------------------------------------------------------------------------------------------


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as JavaScript's toISOString() (what Nango sends)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _path_id(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value or "?" in value or "#" in value:
        raise ValueError(f"not a Gem id: {value!r}")
    return value.strip()


def _raw_list(data: object) -> list[Any]:
    if not isinstance(data, list):
        raise ValueError(f"a page must be a JSON array, got {type(data).__name__}")
    return data


def _list_of(parse_item: Callable[[Any], _T]) -> Callable[[Any], list[_T]]:
    def parse(data: object) -> list[_T]:
        return [parse_item(item) for item in _raw_list(data)]

    return parse


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _id(value: object, what: str) -> str:
    # IDs are opaque base64 strings; an integer is accepted and kept as its text.
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"{what} must be an id, got {value!r}"[:120])
    return str(value).strip()


def _opt_id(value: object) -> str | None:
    return None if value is None or value == "" else _id(value, "id")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _ref(value: object) -> Ref | None:
    if not isinstance(value, dict) or value.get("id") in (None, ""):
        return None
    return Ref(id=_id(value["id"], "id"), name=_text(value.get("name")))


def _parse_application(value: object) -> Application:
    item = _obj(value, "application")
    jobs = tuple(ref for ref in (_ref(j) for j in item.get("jobs") or []) if ref is not None)
    return Application(
        id=_id(item.get("id"), "application id"),
        candidate_id=_opt_id(item.get("candidate_id")),
        status=_text(item.get("status")).lower() or None,
        stage=_ref(item.get("current_stage")),
        jobs=jobs,
        last_activity_at=opt_datetime(item.get("last_activity_at")),
        deleted_at=opt_datetime(item.get("deleted_at")),
    )


def _parse_candidate(value: object) -> Candidate:
    item = _obj(value, "candidate")
    emails = []
    for entry in item.get("email_addresses") or []:
        if isinstance(entry, dict) and _text(entry.get("value")):
            emails.append(EmailAddress(_text(entry.get("value")), entry.get("is_primary") is True, _text(entry.get("type")) or None))
        elif isinstance(entry, str) and entry.strip():
            emails.append(EmailAddress(entry.strip(), False))
    return Candidate(
        id=_id(item.get("id"), "candidate id"),
        first_name=_text(item.get("first_name")),
        last_name=_text(item.get("last_name")),
        emails=tuple(emails),
    )


def _user_ids(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(_id(u["id"], "user id") for u in value if isinstance(u, dict) and u.get("id") not in (None, ""))


def _parse_job(value: object) -> Job:
    item = _obj(value, "job")
    raw_team = item.get("hiring_team")
    team: Mapping[str, Any] = raw_team if isinstance(raw_team, dict) else {}
    return Job(
        id=_id(item.get("id"), "job id"),
        name=_text(item.get("name")),
        recruiter_ids=_user_ids(team.get("recruiters")),
        coordinator_ids=_user_ids(team.get("coordinators")),
    )


def _parse_user(value: object) -> User:
    item = _obj(value, "user")
    email = _text(item.get("primary_email_address")) or None
    if email is None:
        for entry in item.get("emails") or []:
            candidate = _text(entry.get("email") or entry.get("value")) if isinstance(entry, dict) else _text(entry)
            if candidate:
                email = candidate
                break
    name = _text(item.get("name")) or " ".join(p for p in (_text(item.get("first_name")), _text(item.get("last_name"))) if p)
    return User(
        id=_id(item.get("id"), "user id"),
        name=name,
        email=email,
        disabled=item.get("disabled") is True or item.get("deleted_at") not in (None, ""),
        site_admin=item.get("site_admin") is True,
    )


def _parse_job_stage(value: object) -> JobStage:
    item = _obj(value, "job stage")
    priority = item.get("priority")
    return JobStage(
        id=_id(item.get("id"), "stage id"),
        name=_text(item.get("name")),
        job_id=_opt_id(item.get("job_id")),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
    )


def _parse_note(data: object) -> Note:
    if isinstance(data, dict) and data.get("id") not in (None, ""):
        return Note(id=str(data["id"]))
    return Note(id=None)  # the response shape is secondhand: a 2xx is what matters


__all__ = [
    "Application",
    "Candidate",
    "EmailAddress",
    "GemAuthError",
    "GemBadRequestError",
    "GemClient",
    "GemClients",
    "GemConnectionError",
    "GemError",
    "GemNotFoundError",
    "GemProtocolError",
    "GemRateLimitError",
    "GemServerError",
    "GemStatusError",
    "Job",
    "JobStage",
    "Note",
    "RateLimiter",
    "Ref",
    "RetryPolicy",
    "User",
    "iso_utc",
    "key_fingerprint",
]
