"""The client for Greenhouse's Harvest API v3: client-credentials tokens, users by email, applications, move / reject / unreject.

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

Requests go through the shared vendor request path (`bot.vendors.http.VendorHTTP`), which retries
reads and token requests on connection errors, 5xx and short `Retry-After`s (a longer one is raised at
once); a write is retried only when Greenhouse certainly did not act on it (no connection made, or
429). Greenhouse's own: one more try with a fresh token after a 401, and `maybe_sent` on a write's
connection error. Everything else is raised as a typed error for the write-back queue
(bot/ats/writeback/) to schedule or report.
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from bot.ats.greenhouse.errors import (
    HarvestAuthError,
    HarvestConnectionError,
    HarvestError,
    HarvestForbiddenError,
    HarvestNotFoundError,
    HarvestProtocolError,
    HarvestRateLimitError,
    HarvestServerError,
    HarvestStatusError,
    HarvestValidationError,
)
from bot.ats.greenhouse.models import (
    HarvestApplication,
    HarvestCredentials,
    HarvestUser,
    RejectionReason,
    error_text,
    gh_id,
    list_of,
    parse_application,
    parse_reason,
    parse_user,
    parse_user_email,
)
from bot.ats.greenhouse.tokens import HarvestTokens, TokenCache
from bot.vendors.http import Failure, RetryPolicy, Vendor, VendorClient, VendorHTTP

log = logging.getLogger("bot.ats.greenhouse")

HARVEST_URL = "https://harvest.greenhouse.io"
AUTH_URL = "https://auth.greenhouse.io"
# Reads and token requests: a few quick tries; longer waits are the write-back queue's to schedule.
DEFAULT_RETRY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, max_retry_after=2.0, give_up_on_long_retry_after=True)


def _status_error(failure: Failure) -> HarvestError:
    """A Harvest API answer that is not 2xx, as the exception the write-back queue tells apart."""
    status, message, body = failure.status_code, failure.message, failure.body
    if 300 <= status < 400:
        return HarvestProtocolError(f"Greenhouse answered HTTP {status} (a redirect); check GREENHOUSE_HARVEST_URL")
    if status == 429:
        return HarvestRateLimitError(status, message, body, retry_after=failure.retry_after)
    kinds: dict[int, type[HarvestStatusError]] = {
        401: HarvestAuthError,
        403: HarvestForbiddenError,
        404: HarvestNotFoundError,
        400: HarvestValidationError,
        409: HarvestValidationError,
        422: HarvestValidationError,
        408: HarvestServerError,
    }
    kind = kinds.get(status, HarvestServerError if status >= 500 else HarvestStatusError)
    return kind(status, message, body)


HARVEST = Vendor(
    name="Greenhouse",
    logger=log,
    connection_error=HarvestConnectionError,
    protocol_error=HarvestProtocolError,
    status_error=_status_error,
    error_text=error_text,
    failure_level=logging.DEBUG,  # the write-back says what failed and what to do, in one line
)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # no connection: Greenhouse saw nothing


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
        """The factory and the clients it sends with (the caller closes them); redirects are not
        followed, as one would carry the bearer token or the secret elsewhere."""
        api = HarvestClient.build_http(harvest_url.rstrip("/"), transport=transport)
        auth = HarvestClient.build_http(auth_url.rstrip("/"), transport=transport)
        return HarvestClients(api, auth, **options), [api, auth]


class HarvestClient(VendorClient):
    """Harvest v3 for one credential. Public methods return typed values and raise `HarvestError`s."""

    DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

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
        self._http = api
        self._creds = credentials
        self._clock = clock
        self._options: dict[str, Any] = {"retry": retry, "sleep": sleep, "random": random, "clock": clock}
        self._tokens = HarvestTokens(auth, credentials, tokens or TokenCache(), **self._options)

    def __repr__(self) -> str:
        return f"HarvestClient(base_url={str(self._http.base_url)!r}, client_id={self._creds.client_id!r})"

    # ---- reads -----------------------------------------------------------------------------------

    def check(self) -> None:
        """A token for the credential's service account and one cheap read (the user list, which the
        write-back needs): HarvestAuthError when the ID and secret are refused, HarvestForbiddenError
        when the credential lacks the users scope."""
        self._get("/v3/users", {"per_page": 1})

    def find_user(self, email: str) -> HarvestUser | None:
        """The active Greenhouse user with this email, primary first, then secondary addresses."""
        email = email.strip()
        for user in list_of(parse_user)(self._get("/v3/users", {"primary_email": email})):
            if not user.deactivated:
                return user
        rows = list_of(parse_user_email)(self._get("/v3/user_emails", {"email": email}))
        user_ids = sorted({row["user_id"] for row in rows})
        if not user_ids:
            return None
        users = list_of(parse_user)(self._get("/v3/users", {"ids": ",".join(str(u) for u in user_ids[:50])}))
        return next((u for u in users if not u.deactivated), None)

    def application(self, application_id: int | str) -> HarvestApplication:
        app_id = gh_id(application_id, "application")
        found = [a for a in list_of(parse_application)(self._get("/v3/applications", {"ids": app_id})) if a.id == app_id]
        if not found:
            raise HarvestNotFoundError(404, f"Greenhouse has no application {app_id}")
        return found[0]

    def rejection_reasons(self) -> list[RejectionReason]:
        return list_of(parse_reason)(self._get("/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}))

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

    def token(self, sub: int | None = None) -> str:
        """An access token for the service account (`sub` None) or acting as Greenhouse user `sub`."""
        return self._tokens.token(sub)

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        return self._request("GET", path, sub=None, params=params)

    def _write(self, path: str, body: dict[str, Any], as_user: int) -> None:
        self._request("POST", path, sub=as_user, json=body, write=True)

    def _request(self, method: str, path: str, *, sub: int | None, write: bool = False, **body: Any) -> Any:
        """One request with the token of `sub`; a write is sent again only when Greenhouse did not act on it."""
        for fresh_token in (False, True):
            token = self._tokens.token(sub)
            api = VendorHTTP(self._http, HARVEST, headers={"Authorization": f"Bearer {token}"}, secrets=[token], **self._options)
            try:
                return api.request(method, path, idempotent=not write, **body)
            except HarvestAuthError as exc:
                if exc.status_code != 401 or fresh_token:
                    raise
                # The cached token expired early or was revoked: one more try with a new one. A 401
                # is never acted on, so a write may be sent again.
                self._tokens.drop(sub)
            except HarvestConnectionError as exc:
                exc.maybe_sent = write and not isinstance(exc.__cause__, _NOT_SENT)
                raise
        raise AssertionError("unreachable")  # the second pass returns or raises


__all__ = ["AUTH_URL", "DEFAULT_RETRY", "HARVEST", "HARVEST_URL", "HarvestClient", "HarvestClients"]
