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
from typing import Annotated, Any, TypeVar

import httpx
from pydantic import BeforeValidator, Field, PlainValidator, model_validator

from bot.vendors.errors import VendorError, VendorRateLimitError, VendorStatusError
from bot.vendors.http import Failure, RetryPolicy, Vendor, VendorClient, VendorHTTP
from bot.vendors.pacing import RateLimiter
from bot.vendors.parsing import VendorBody, load, opt_datetime

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


# The values above are made from pydantic models of Gem's JSON (reference §7): each declares the fields
# read, and how leniently. Gem's shapes are secondhand, so every field but an id takes what is sent and
# reads anything unusable as empty; a missing or malformed id, an item that is not an object, or a number
# where a list belongs fails (`load` words it as one ValueError, which the client makes GemProtocolError).


def _id(value: object) -> str:
    # IDs are opaque base64 strings; an integer is accepted and kept as its text.
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"must be an id, got {value!r}"[:120])
    return str(value).strip()


def _id_or_none(value: object) -> str | None:
    return None if value is None or value == "" else _id(value)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


Id = Annotated[str, PlainValidator(_id)]
OptId = Annotated[str | None, PlainValidator(_id_or_none)]  # null or "" is none; anything else must be an id
Text = Annotated[str, PlainValidator(_text)]  # a string, stripped; anything else is ""
OptInt = Annotated[int | None, PlainValidator(_int)]  # an integer (not a boolean); anything else is None
OptTime = Annotated[datetime | None, PlainValidator(opt_datetime)]
IsTrue = Annotated[bool, PlainValidator(lambda value: value is True)]  # JSON true; anything else is False
IsSet = Annotated[bool, PlainValidator(lambda value: value not in (None, ""))]  # e.g. a `deleted_at` with a value


def _loop(value: object) -> list[Any]:
    """The entries of a list field, as the hand-written parser looped over them (`for x in value or []`):
    null, false, 0, "" and {} are none, and a string's characters or an object's keys are entries (then
    skipped as not objects, except as a bare email address); a number or true is an error."""
    try:
        return list(value or [])  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"must be a JSON array, got {type(value).__name__}") from None


def _has_id(value: object) -> bool:
    return isinstance(value, dict) and value.get("id") not in (None, "")


def _ref_or_none(value: object) -> object:
    """An `{id, name}` object without an id (or anything but an object) is no ref at all."""
    return value if _has_id(value) else None


def _looped_refs(value: object) -> list[Any]:
    return [entry for entry in _loop(value) if _has_id(entry)]


def _listed_refs(value: object) -> list[Any]:
    return [entry for entry in value if _has_id(entry)] if isinstance(value, list) else []


class _Body(VendorBody):
    """One JSON object of Gem's; `what` names it in errors."""


class RefBody(_Body):
    """`{id, name}`: a stage or job of an application (GemJobStageLite, GemJobLite), a hiring team's user."""

    what = "ref"

    id: Id
    name: Text = ""

    def value(self) -> Ref:
        return Ref(id=self.id, name=self.name)


Refs = Annotated[list[RefBody], BeforeValidator(_looped_refs)]  # entries without an id are skipped


class ApplicationBody(_Body):
    what = "application"

    id: Id
    candidate_id: OptId = None
    status: Text = ""
    current_stage: Annotated[RefBody | None, BeforeValidator(_ref_or_none)] = None
    jobs: Refs = []
    last_activity_at: OptTime = None
    deleted_at: OptTime = None

    def value(self) -> Application:
        return Application(
            id=self.id,
            candidate_id=self.candidate_id,
            status=self.status.lower() or None,
            stage=self.current_stage.value() if self.current_stage else None,
            jobs=tuple(job.value() for job in self.jobs),
            last_activity_at=self.last_activity_at,
            deleted_at=self.deleted_at,
        )


def _email_entries(value: object) -> list[Any]:
    """`{type, value, is_primary}` objects, a bare string being an address too; ones without an address are
    skipped. A lone string or object where the list belongs is that one address (not its characters or keys)."""
    entries = []
    for entry in [value] if isinstance(value, str | dict) and value else _loop(value):
        if isinstance(entry, str):
            entry = {"value": entry}
        if isinstance(entry, dict) and _text(entry.get("value")):
            entries.append(entry)
    return entries


class EmailAddressBody(_Body):
    what = "email address"

    value: Text
    is_primary: IsTrue = False
    type: Text = ""


class CandidateBody(_Body):
    what = "candidate"

    id: Id
    first_name: Text = ""
    last_name: Text = ""
    email_addresses: Annotated[list[EmailAddressBody], BeforeValidator(_email_entries)] = []

    def value(self) -> Candidate:
        emails = tuple(EmailAddress(e.value, e.is_primary, e.type or None) for e in self.email_addresses)
        return Candidate(id=self.id, first_name=self.first_name, last_name=self.last_name, emails=emails)


class HiringTeamBody(_Body):
    what = "hiring team"

    recruiters: Annotated[list[RefBody], BeforeValidator(_listed_refs)] = []  # GemUserLite; anything but an array is nobody
    coordinators: Annotated[list[RefBody], BeforeValidator(_listed_refs)] = []


class JobBody(_Body):
    what = "job"

    id: Id
    name: Text = ""
    hiring_team: Annotated[HiringTeamBody, BeforeValidator(lambda team: team if isinstance(team, dict) else {})] = Field(
        default_factory=HiringTeamBody
    )

    def value(self) -> Job:
        team = self.hiring_team
        return Job(
            id=self.id,
            name=self.name,
            recruiter_ids=tuple(user.id for user in team.recruiters),
            coordinator_ids=tuple(user.id for user in team.coordinators),
        )


def _user_emails(value: object) -> list[str] | None:
    """A user's addresses (`{email}` or `{value}` objects, or strings), blank ones skipped; None when not a list."""
    try:
        entries = _loop(value)
    except ValueError:
        return None  # an error only if the user has no primary address (UserBody._an_address)
    found = (_text(entry.get("email") or entry.get("value")) if isinstance(entry, dict) else _text(entry) for entry in entries)
    return [email for email in found if email]


class UserBody(_Body):
    what = "user"

    id: Id
    name: Text = ""
    first_name: Text = ""
    last_name: Text = ""
    primary_email_address: Text = ""
    emails: Annotated[list[str] | None, BeforeValidator(_user_emails)] = []  # read only without a primary address
    disabled: IsTrue = False
    deleted: IsSet = Field(False, validation_alias="deleted_at")
    site_admin: IsTrue = False

    @model_validator(mode="after")
    def _an_address(self) -> UserBody:
        if not self.primary_email_address and self.emails is None:
            raise ValueError("user emails must be a JSON array")
        return self

    def value(self) -> User:
        email = self.primary_email_address or next(iter(self.emails or ()), None)
        return User(
            id=self.id,
            name=self.name or " ".join(part for part in (self.first_name, self.last_name) if part),
            email=email,
            disabled=self.disabled or self.deleted,
            site_admin=self.site_admin,
        )


class JobStageBody(_Body):
    what = "job stage"

    id: Id
    name: Text = ""
    job_id: OptId = None
    priority: OptInt = None

    def value(self) -> JobStage:
        return JobStage(id=self.id, name=self.name, job_id=self.job_id, priority=self.priority)


class NoteBody(_Body):
    """The created note; its shape is secondhand, and a 2xx is what matters, so nothing in it can fail."""

    what = "note"

    id: Annotated[str | None, PlainValidator(lambda value: None if value in (None, "") else str(value))] = None


def _parse_application(value: object) -> Application:
    return load(ApplicationBody, value).value()


def _parse_candidate(value: object) -> Candidate:
    return load(CandidateBody, value).value()


def _parse_job(value: object) -> Job:
    return load(JobBody, value).value()


def _parse_user(value: object) -> User:
    return load(UserBody, value).value()


def _parse_job_stage(value: object) -> JobStage:
    return load(JobStageBody, value).value()


def _parse_note(data: object) -> Note:
    return Note(id=load(NoteBody, data).id if isinstance(data, dict) else None)
