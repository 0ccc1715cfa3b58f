"""What can go wrong talking to Greenhouse, on the shared vendor error tree (`bot.vendors.errors`).

The write-back queue (bot/ats/writeback/) tells these apart: what to schedule again, what to report.
"""

from __future__ import annotations

from bot.vendors.errors import VendorError, VendorRateLimitError, VendorStatusError


class HarvestError(VendorError):
    """Anything that went wrong talking to Greenhouse. httpx exceptions never escape the client."""


class HarvestConnectionError(HarvestError):
    """Greenhouse could not be reached, after retries. `maybe_sent`: a write may have landed."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class HarvestProtocolError(HarvestError):
    """A 2xx whose body is not the shape this client reads, a redirect, or an id that is not Greenhouse's."""


class HarvestStatusError(HarvestError, VendorStatusError):
    """Greenhouse answered with a non-2xx status (`status_code`, `message`, `body`)."""


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


class HarvestRateLimitError(HarvestStatusError, VendorRateLimitError):
    """429, still, after retries (or a Retry-After longer than the client waits); `retry_after` in seconds."""


class HarvestServerError(HarvestStatusError):
    """5xx (or 408), still, after retries."""


__all__ = [
    "HarvestActingUserError",
    "HarvestAuthError",
    "HarvestConnectionError",
    "HarvestError",
    "HarvestForbiddenError",
    "HarvestNotFoundError",
    "HarvestProtocolError",
    "HarvestRateLimitError",
    "HarvestServerError",
    "HarvestStatusError",
    "HarvestValidationError",
]
