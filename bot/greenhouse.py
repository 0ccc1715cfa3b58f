"""A client for Greenhouse's Harvest API v3: client-credentials tokens, users by email, applications, move / reject / unreject.

Harvest v1 and v2 (API key + `On-Behalf-Of` header) were sunset on 2026-08-31, so this speaks v3 only.
What it relies on, as found on 2026-12-03 (the `search` tool's stored copies of these pages):

- **Authentication** (harvestdocs.greenhouse.io/docs/authentication): a custom integration creates a
  "Harvest V3 (OAuth)" credential in Greenhouse (Dev Center → API Credentials) and gets a client ID and
  secret; `POST https://auth.greenhouse.io/token` with HTTP Basic `client_id:client_secret` and the
  form body `grant_type=client_credentials` (plus `sub`, below) answers an access token used as
  `Authorization: Bearer …`. Access tokens live an hour (harvestdocs …/docs/harvest-partner-oauth).
  Two public v3 clients (conductorone/baton-greenhouse, a TypeScript one) read `expires_at` (ISO 8601)
  from the answer, another fake answers `expires_in`; both are read here, and a token is renewed a
  minute before it expires, or after a 401.
- **On behalf of**: v1's `On-Behalf-Of: <user id>` header has no v3 counterpart. The token request's
  `sub=<Greenhouse user id>` names the acting user, and "any API requests made with that token will
  appear as if that user performed them"; without `sub` the token is the credential's service account
  (authentication guide; nango.dev/docs/api-integrations/greenhouse-harvest-oauth2-cc). So a write as
  the person who clicked uses a token minted for them; lookups use the service account's.
- **Users by email**: `GET /v3/users?primary_email=…` and, for secondary addresses,
  `GET /v3/user_emails?email=…` (case-insensitive exact match) then `GET /v3/users?ids=…`
  (harvestdocs …/reference/get_v3-users, get_v3-user-emails). Deactivated users are skipped.
- **Advance**: `POST /v3/applications/{id}/move` with `from_stage_id`; "leave to_stage_id and to_job_id
  blank if wanting to advance the application" (…/docs/write-endpoint-migration-guide, which maps v1's
  `/advance` here). `from_stage_id` "must match the candidate's current stage — it acts as a guard
  against stale move requests" (…/reference/post_v3-applications-id-move). 204 on success. Taking an
  advance back is the same call with `to_stage_id`.
- **Reject**: `POST /v3/applications/{id}/reject` with the required `rejection_reason_id` and optional
  `notes` (…/reference/post_v3-applications-id-reject), 204; reasons come from
  `GET /v3/rejection_reasons?include_defaults=true` (…/reference/get_v3-rejection-reasons).
- **Unreject**: `POST /v3/applications/{id}/unreject`. Not confirmed on Greenhouse's own pages: a
  connector changelog lists v3 "Unreject Application" (prismatic.io, 2026-06-12) and v1 had this path.
- **Reading an application**: list endpoints filter by `ids` (…/docs/list-endpoints), so
  `GET /v3/applications?ids=<id>`; lists are bare JSON arrays with cursor `Link` headers
  (…/docs/pagination). The v3 field names of the current stage are not shown in what was found:
  `current_stage_id` and v1's `current_stage: {id}` are both read.
- **Errors**: 401, 403 (a scope the credential lacks, or what the acting user may not do), 404, 422
  "Unprocessable Content" (v3 reference pages); the 422 body is read in v1's documented shape
  `{"message", "errors": [{"message", "field"}]}` (grnhse/greenhouse-api-docs, Harvest introduction),
  which public v3 clients parse too. The token endpoint answers OAuth's `{"error", "error_description"}`.
- **Rate limits**: per credential, in a rolling 10-second window announced by `X-RateLimit-Limit` /
  `X-RateLimit-Remaining`; over it, 429 with `Retry-After` (Harvest introduction for v1; the apis.io
  Greenhouse rate-limit profile for v3 adds `X-RateLimit-Reset`).

The client retries reads and token requests on connection errors, 5xx and short `Retry-After`s; a write
is retried only when Greenhouse certainly did not act on it (no connection made, or 429). Everything
else is raised as a typed error for the write-back queue (bot/writeback.py) to schedule or report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random as _random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.imocha import RetryPolicy, retry_after_seconds

log = logging.getLogger("bot.greenhouse")

HARVEST_URL = "https://harvest.greenhouse.io"
AUTH_URL = "https://auth.greenhouse.io"
TOKEN_MARGIN = timedelta(seconds=60)  # a token is renewed this long before it expires
DEFAULT_TOKEN_LIFE = timedelta(hours=1)  # when the answer says nothing about expiry
# Reads and token requests: a few quick tries; longer waits are the write-back queue's to schedule.
DEFAULT_RETRY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, max_retry_after=2.0)


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HarvestCredentials:
    """A Harvest v3 OAuth credential (client credentials flow); `repr` never shows the secret."""

    client_id: str
    client_secret: str = field(repr=False)

    def to_json(self) -> str:
        return json.dumps({"client_id": self.client_id, "client_secret": self.client_secret})

    @classmethod
    def from_json(cls, raw: str) -> HarvestCredentials:
        data = json.loads(raw)
        return cls(str(data["client_id"]), str(data["client_secret"]))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.client_id}\0{self.client_secret}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HarvestUser:
    id: int
    email: str | None
    name: str
    deactivated: bool = False


@dataclass(frozen=True)
class HarvestApplication:
    id: int
    status: str | None  # active | rejected | hired | converted …
    current_stage_id: int | None
    job_id: int | None


@dataclass(frozen=True)
class RejectionReason:
    id: int
    name: str
    type: str | None  # "We rejected them", "They rejected us", …


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class HarvestError(Exception):
    """Anything that went wrong talking to Greenhouse. httpx exceptions never escape the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HarvestConnectionError(HarvestError):
    """Greenhouse could not be reached, after retries. `maybe_sent`: a write may have landed."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class HarvestProtocolError(HarvestError):
    """A 2xx whose body is not the shape this client reads, a redirect, or an id that is not Greenhouse's."""


class HarvestStatusError(HarvestError):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class HarvestAuthError(HarvestStatusError):
    """The client ID and secret were refused (by the token endpoint, or 401 with a fresh token)."""


class HarvestActingUserError(HarvestStatusError):
    """Greenhouse would not issue a token acting as that user (deactivated, or not allowed)."""


class HarvestForbiddenError(HarvestStatusError):
    """403: the credential lacks a scope for this call, or the acting user may not do it."""


class HarvestNotFoundError(HarvestStatusError):
    """404: no such application (deleted or merged), or an unknown path."""


class HarvestValidationError(HarvestStatusError):
    """400 or 422: Greenhouse says the request is wrong (a stale from_stage_id, an application already rejected…)."""


class HarvestRateLimitError(HarvestStatusError):
    def __init__(self, status_code: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(status_code, message)
        self.retry_after = retry_after


class HarvestServerError(HarvestStatusError):
    """5xx (or 408), still, after retries."""


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


class TokenCache:
    """Access tokens per (credential, acting user), until a minute before they expire; shared by clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, int | None], tuple[str, datetime]] = {}

    def get(self, key: tuple[str, int | None], now: datetime) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
        if hit is None or now >= hit[1] - TOKEN_MARGIN:
            return None
        return hit[0]

    def put(self, key: tuple[str, int | None], token: str, expires: datetime) -> None:
        with self._lock:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[key] = (token, expires)

    def drop(self, key: tuple[str, int | None]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


class HarvestClients:
    """Builds a `HarvestClient` per credential over two shared `httpx.Client`s (the API and the token
    endpoint), with one token cache between them."""

    def __init__(self, api: httpx.Client, auth: httpx.Client, **options: Any) -> None:
        self._api = api
        self._auth = auth
        self._options = options
        self._tokens = TokenCache()

    def __call__(self, credentials: HarvestCredentials) -> HarvestClient:
        return HarvestClient(self._api, self._auth, credentials, tokens=self._tokens, **self._options)

    @staticmethod
    def build(
        harvest_url: str = HARVEST_URL,
        auth_url: str = AUTH_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> tuple[HarvestClients, list[httpx.Client]]:
        """The factory and the clients it sends with (the caller closes them)."""
        common: dict[str, Any] = {
            "timeout": httpx.Timeout(15.0, connect=5.0),
            "transport": transport,
            "follow_redirects": False,  # a redirect would carry the bearer token or the secret elsewhere
            "headers": {"Accept": "application/json", "User-Agent": "imocha-slack-bot"},
        }
        api = httpx.Client(base_url=harvest_url.rstrip("/"), **common)
        auth = httpx.Client(base_url=auth_url.rstrip("/"), **common)
        return HarvestClients(api, auth, **options), [api, auth]


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class HarvestClient:
    """Harvest v3 for one credential. Public methods return typed values and raise `HarvestError`s."""

    def __init__(
        self,
        api: httpx.Client,
        auth: httpx.Client,
        credentials: HarvestCredentials,
        *,
        clock: Callable[[], datetime],  # token expiry and Retry-After dates
        tokens: TokenCache | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not credentials.client_id.strip() or not credentials.client_secret.strip():
            raise ValueError("the Harvest client ID and secret must not be empty")
        self._api = api
        self._auth = auth
        self._creds = credentials
        self._tokens = tokens or TokenCache()
        self._retry = retry
        self._sleep = sleep
        self._random = random
        self._clock = clock

    def __repr__(self) -> str:
        return f"HarvestClient(base_url={str(self._api.base_url)!r}, client_id={self._creds.client_id!r})"

    # ---- reads -----------------------------------------------------------------------------------

    def check(self) -> None:
        """A token for the credential's service account and one cheap read (the user list, which the
        write-back needs): HarvestAuthError when the ID and secret are refused, HarvestForbiddenError
        when the credential lacks the users scope."""
        self._get("/v3/users", {"per_page": 1})

    def find_user(self, email: str) -> HarvestUser | None:
        """The active Greenhouse user with this email, primary first, then secondary addresses."""
        email = email.strip()
        for user in _list(self._get("/v3/users", {"primary_email": email}), _user):
            if not user.deactivated:
                return user
        rows = self._get("/v3/user_emails", {"email": email})
        user_ids = sorted({row["user_id"] for row in _list(rows, _user_email)})
        if not user_ids:
            return None
        users = _list(self._get("/v3/users", {"ids": ",".join(str(u) for u in user_ids[:50])}), _user)
        return next((u for u in users if not u.deactivated), None)

    def application(self, application_id: int | str) -> HarvestApplication:
        app_id = gh_id(application_id, "application")
        found = [a for a in _list(self._get("/v3/applications", {"ids": app_id}), _application) if a.id == app_id]
        if not found:
            raise HarvestNotFoundError(404, f"Greenhouse has no application {app_id}")
        return found[0]

    def rejection_reasons(self) -> list[RejectionReason]:
        return _list(self._get("/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}), _reason)

    # ---- writes (acting as a Greenhouse user) ------------------------------------------------------

    def move(self, application_id: int | str, *, from_stage_id: int | str, to_stage_id: int | str | None = None, as_user: int) -> None:
        """Advance the application from `from_stage_id` to the next stage, or move it to `to_stage_id`."""
        body: dict[str, Any] = {"from_stage_id": gh_id(from_stage_id, "stage")}
        if to_stage_id is not None:
            body["to_stage_id"] = gh_id(to_stage_id, "stage")
        self._write(f"/v3/applications/{gh_id(application_id, 'application')}/move", body, as_user)

    def reject(self, application_id: int | str, *, rejection_reason_id: int, notes: str | None, as_user: int) -> None:
        body: dict[str, Any] = {"rejection_reason_id": rejection_reason_id}
        if notes:
            body["notes"] = notes[:2000]
        self._write(f"/v3/applications/{gh_id(application_id, 'application')}/reject", body, as_user)

    def unreject(self, application_id: int | str, *, as_user: int) -> None:
        self._write(f"/v3/applications/{gh_id(application_id, 'application')}/unreject", {}, as_user)

    # ---- plumbing --------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        return self._request("GET", path, params=params, sub=None, write=False)

    def _write(self, path: str, body: dict[str, Any], as_user: int) -> None:
        self._request("POST", path, json_body=body, sub=as_user, write=True)

    def token(self, sub: int | None = None) -> str:
        """An access token for the service account (`sub` None) or acting as Greenhouse user `sub`."""
        key = (self._creds.fingerprint, sub)
        cached = self._tokens.get(key, self._clock())
        if cached is not None:
            return cached
        form = {"grant_type": "client_credentials"}
        if sub is not None:
            form["sub"] = str(sub)
        response = self._send(self._auth, "POST", "/token", data=form, auth=(self._creds.client_id, self._creds.client_secret))
        if response.status_code != 200:
            raise self._token_error(response, sub)
        try:
            data = response.json()
            token = str(data["access_token"])
            if not token.strip():
                raise ValueError("empty access_token")
        except (ValueError, KeyError, TypeError) as exc:
            raise HarvestProtocolError(f"Greenhouse's token endpoint answered 200 without an access token ({exc})") from exc
        self._tokens.put(key, token, _expiry(data, self._clock()))
        log.debug("Harvest token issued for %s", "the service account" if sub is None else f"user {sub}")
        return token

    def _token_error(self, response: httpx.Response, sub: int | None) -> HarvestError:
        body = _body(response)
        code = str(body.get("error") or "") if isinstance(body, dict) else ""
        detail = _message(body) or f"HTTP {response.status_code}"
        if response.status_code == 429:
            return HarvestRateLimitError(429, detail, retry_after=retry_after_seconds(response, self._clock))
        if response.status_code >= 500:
            return HarvestServerError(response.status_code, f"Greenhouse's token endpoint failed: {detail}")
        if code == "invalid_client" or response.status_code == 401 or sub is None:
            return HarvestAuthError(response.status_code, f"Greenhouse refused the Harvest client ID and secret ({detail})")
        return HarvestActingUserError(response.status_code, f"Greenhouse would not issue a token acting as user {sub} ({detail})")

    def _request(
        self, method: str, path: str, *, sub: int | None, write: bool, params: Mapping[str, Any] | None = None, json_body: Any = None
    ) -> Any:
        fresh_token = False
        attempt = 0
        while True:
            attempt += 1
            token = self.token(sub)
            response = self._send(
                self._api, method, path, params=params, json=json_body, headers={"Authorization": f"Bearer {token}"}, write=write
            )
            status = response.status_code
            if response.is_success:
                return _decode(method, path, response)
            if status == 401 and not fresh_token:
                # The cached token expired early or was revoked: one more try with a new one. A 401
                # is never acted on, so a write may be sent again.
                self._tokens.drop((self._creds.fingerprint, sub))
                fresh_token = True
                continue
            retry_after = retry_after_seconds(response, self._clock)
            if attempt < self._retry.max_attempts and self._retryable(status, retry_after, write):
                delay = retry_after if retry_after is not None else self._retry.backoff(attempt, self._random())
                log.warning(
                    "Greenhouse %s %s: HTTP %d (attempt %d/%d); retrying in %.2fs",
                    method,
                    path,
                    status,
                    attempt,
                    self._retry.max_attempts,
                    delay,
                )
                self._sleep(delay)
                continue
            raise self._status_error(method, path, response, retry_after)

    def _retryable(self, status: int, retry_after: float | None, write: bool) -> bool:
        if status == 429:  # throttled requests are not acted on; only short waits are spent here
            return retry_after is None or retry_after <= self._retry.max_retry_after
        return not write and status in (408, 500, 502, 503, 504)

    def _send(self, client: httpx.Client, method: str, path: str, *, write: bool = False, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, retried on connection errors (for a write: only if nothing was sent)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return client.request(method, path, **kwargs)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                reason = type(exc).__name__
                not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                retryable = not_sent if write else isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)
                if retryable and attempt < self._retry.max_attempts:
                    delay = self._retry.backoff(attempt, self._random())
                    log.warning("Greenhouse %s %s failed: %s (attempt %d); retrying in %.2fs", method, path, reason, attempt, delay)
                    self._sleep(delay)
                    continue
                raise HarvestConnectionError(
                    f"could not reach Greenhouse for {method} {path}: {reason}", maybe_sent=write and not not_sent
                ) from exc

    def _status_error(self, method: str, path: str, response: httpx.Response, retry_after: float | None) -> HarvestError:
        status = response.status_code
        message = _message(_body(response)) or f"HTTP {status} {response.reason_phrase}".strip()
        # The caller says what failed and what to do (one line per failure); this is the detail.
        log.debug("Greenhouse %s %s failed: HTTP %d: %s", method, path, status, message)
        if 300 <= status < 400:
            return HarvestProtocolError(f"Greenhouse answered HTTP {status} (a redirect); check GREENHOUSE_HARVEST_URL")
        if status == 429:
            return HarvestRateLimitError(status, message, retry_after=retry_after)
        if status == 401:
            return HarvestAuthError(status, message)
        if status == 403:
            return HarvestForbiddenError(status, message)
        if status == 404:
            return HarvestNotFoundError(status, message)
        if status in (400, 409, 422):
            return HarvestValidationError(status, message)
        if status >= 500 or status == 408:
            return HarvestServerError(status, message)
        return HarvestStatusError(status, message)


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------


def gh_id(value: object, what: str) -> int:
    """A Greenhouse id (a positive integer, also as text, as the webhook and the database keep it)."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) <= 0:
        raise HarvestProtocolError(f"{value!r} is not a Greenhouse {what} id")
    return int(text)


def _expiry(data: Mapping[str, Any], now: datetime) -> datetime:
    raw = data.get("expires_at")
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    seconds = data.get("expires_in")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return now + timedelta(seconds=float(seconds))
    return now + DEFAULT_TOKEN_LIFE


def _decode(method: str, path: str, response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise HarvestProtocolError(f"Greenhouse {method} {path} answered HTTP {response.status_code} with a body that is not JSON") from exc


def _body(response: httpx.Response) -> object:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return response.text.strip()[:300]


def _message(body: object) -> str | None:
    """Harvest's `{"message", "errors": [{"message", "field"}]}`, or OAuth's `{"error", "error_description"}`, as one line."""
    if isinstance(body, str):
        return body or None
    if not isinstance(body, dict):
        return None
    parts: list[str] = []
    for key in ("message", "error_description", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
            if key != "error_description":
                break
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and item.get("message"):
                parts.append(f"{item['field']}: {item['message']}" if item.get("field") else str(item["message"]))
            elif isinstance(item, str):
                parts.append(item)
    return "; ".join(parts)[:500] or None


def _list(data: object, parse: Callable[[Any], Any]) -> list[Any]:
    if not isinstance(data, list):
        raise HarvestProtocolError(f"a Harvest list must be a JSON array, got {type(data).__name__}")
    try:
        return [parse(item) for item in data]
    except (ValueError, TypeError, KeyError) as exc:
        raise HarvestProtocolError(f"unexpected item in a Harvest list: {exc}") from exc


def _obj(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    if isinstance(value, dict):
        return _opt_int(value.get("id"))
    return int(str(value))


def _user(value: object) -> HarvestUser:
    item = _obj(value)
    email = item.get("primary_email") or item.get("primary_email_address")
    name = item.get("name") or " ".join(str(p) for p in (item.get("first_name"), item.get("last_name")) if p)
    deactivated = item.get("deactivated") is True or item.get("disabled") is True
    return HarvestUser(id=int(item["id"]), email=str(email) if email else None, name=str(name or ""), deactivated=deactivated)


def _user_email(value: object) -> dict[str, Any]:
    item = _obj(value)
    return {"user_id": int(item["user_id"]), "email": str(item.get("email") or "")}


def _application(value: object) -> HarvestApplication:
    item = _obj(value)
    stage = item.get("current_stage_id", item.get("current_stage"))
    job = item.get("job_id")
    if job is None and isinstance(item.get("jobs"), list) and item["jobs"]:
        job = item["jobs"][0]
    status = item.get("status")
    return HarvestApplication(
        id=int(item["id"]),
        status=str(status).lower() if isinstance(status, str) else None,
        current_stage_id=_opt_int(stage),
        job_id=_opt_int(job),
    )


def _reason(value: object) -> RejectionReason:
    item = _obj(value)
    kind = item.get("type")
    if isinstance(kind, dict):
        kind = kind.get("name")
    return RejectionReason(id=int(item["id"]), name=str(item.get("name") or ""), type=str(kind) if kind else None)


__all__ = [
    "HarvestActingUserError",
    "HarvestApplication",
    "HarvestAuthError",
    "HarvestClient",
    "HarvestClients",
    "HarvestConnectionError",
    "HarvestCredentials",
    "HarvestError",
    "HarvestForbiddenError",
    "HarvestNotFoundError",
    "HarvestProtocolError",
    "HarvestRateLimitError",
    "HarvestServerError",
    "HarvestStatusError",
    "HarvestUser",
    "HarvestValidationError",
    "RejectionReason",
    "TokenCache",
    "gh_id",
]
