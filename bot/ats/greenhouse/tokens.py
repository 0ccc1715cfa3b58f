"""Harvest v3 access tokens: OAuth client credentials, one token per acting user (`sub=`), cached.

`POST {auth}/token` with HTTP Basic `client_id:client_secret` and the form `grant_type=client_credentials`
(plus `sub=<Greenhouse user id>` to act as that user; without it, the credential's service account)
answers `{"access_token", "expires_at" | "expires_in"}`. A token is renewed a minute before it
expires, or when the API refuses it (`drop`).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.ats.greenhouse.errors import (
    HarvestActingUserError,
    HarvestAuthError,
    HarvestConnectionError,
    HarvestProtocolError,
    HarvestRateLimitError,
    HarvestServerError,
    HarvestStatusError,
)
from bot.ats.greenhouse.models import HarvestCredentials, error_text
from bot.vendors.http import Failure, Vendor, VendorHTTP

log = logging.getLogger("bot.ats.greenhouse")

TOKEN_MARGIN = timedelta(seconds=60)  # a token is renewed this long before it expires
DEFAULT_TOKEN_LIFE = timedelta(hours=1)  # when the answer says nothing about expiry

TokenKey = tuple[str, int | None]  # (credential fingerprint, acting user or None for the service account)


class TokenCache:
    """Access tokens per (credential, acting user), until a minute before they expire; shared by clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, tuple[str, datetime]] = {}

    def get(self, key: TokenKey, now: datetime) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
        if hit is None or now >= hit[1] - TOKEN_MARGIN:
            return None
        return hit[0]

    def put(self, key: TokenKey, token: str, expires: datetime) -> None:
        with self._lock:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[key] = (token, expires)

    def drop(self, key: TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def _token_error(sub: int | None, failure: Failure) -> HarvestStatusError | HarvestProtocolError:
    """What the token endpoint's refusal means: the credential (service account) or the acting user."""
    status, body = failure.status_code, failure.body
    code = str(body.get("error") or "") if isinstance(body, dict) else ""
    detail = failure.message
    if 300 <= status < 400:
        return HarvestProtocolError(f"Greenhouse's token endpoint answered HTTP {status} (a redirect); check GREENHOUSE_AUTH_URL")
    if status == 429:
        return HarvestRateLimitError(429, detail, body, retry_after=failure.retry_after)
    if status >= 500:
        return HarvestServerError(status, f"Greenhouse's token endpoint failed: {detail}", body)
    if code == "invalid_client" or status == 401 or sub is None:
        return HarvestAuthError(status, f"Greenhouse refused the Harvest client ID and secret ({detail})", body)
    return HarvestActingUserError(status, f"Greenhouse would not issue a token acting as user {sub} ({detail})", body)


TOKEN_ENDPOINT = Vendor(
    name="Greenhouse",
    logger=log,
    connection_error=HarvestConnectionError,
    protocol_error=HarvestProtocolError,
    status_error=lambda failure: _token_error(None, failure),
    error_text=error_text,
    failure_level=logging.DEBUG,  # the write-back says what failed and what to do, in one line
)


class HarvestTokens:
    """Issues and caches the tokens of one credential, over the token endpoint's `httpx.Client`."""

    def __init__(
        self,
        auth: httpx.Client,
        credentials: HarvestCredentials,
        cache: TokenCache,
        clock: Callable[[], datetime],
        **options: Any,  # VendorHTTP's retry, sleep, random
    ) -> None:
        self._creds = credentials
        self._cache = cache
        self._clock = clock
        self._auth = auth
        self._basic = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()
        self._options = options

    def key(self, sub: int | None) -> TokenKey:
        return (self._creds.fingerprint, sub)

    def drop(self, sub: int | None) -> None:
        self._cache.drop(self.key(sub))

    def token(self, sub: int | None = None) -> str:
        """An access token for the service account (`sub` None) or acting as Greenhouse user `sub`."""
        cached = self._cache.get(self.key(sub), self._clock())
        if cached is not None:
            return cached
        form = {"grant_type": "client_credentials"}
        if sub is not None:
            form["sub"] = str(sub)
        token, expires = self._endpoint(sub).call("POST", "/token", lambda data: _read_token(data, self._clock()), data=form)
        self._cache.put(self.key(sub), token, expires)
        log.debug("Harvest token issued for %s", "the service account" if sub is None else f"user {sub}")
        return token

    def _endpoint(self, sub: int | None) -> VendorHTTP:
        return VendorHTTP(
            self._auth,
            replace(TOKEN_ENDPOINT, status_error=lambda failure: _token_error(sub, failure)),
            headers={"Authorization": f"Basic {self._basic}"},
            secrets=[self._creds.client_secret, self._basic],
            clock=self._clock,
            **self._options,
        )


def _read_token(data: Any, now: datetime) -> tuple[str, datetime]:
    try:
        token = str(data["access_token"])
        if not token.strip():
            raise ValueError("empty access_token")
    except (ValueError, KeyError, TypeError) as exc:
        raise HarvestProtocolError(f"Greenhouse's token endpoint answered without an access token ({exc})") from exc
    return token, _expiry(data, now)


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


__all__ = ["DEFAULT_TOKEN_LIFE", "TOKEN_MARGIN", "HarvestTokens", "TokenCache"]
