"""iMocha's errors: one shallow tree, and the text of each of its error body shapes (reference §2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.vendors.errors import VendorError, VendorRateLimitError, VendorStatusError
from bot.vendors.http import Failure


class ImochaError(VendorError):
    """Anything that went wrong talking to iMocha. httpx exceptions never escape the client."""


class ImochaConnectionError(ImochaError):
    """iMocha could not be reached (connect error, timeout, broken protocol), after retries."""


class ImochaStatusError(ImochaError, VendorStatusError):
    """iMocha answered with a non-2xx status (`status_code`, `message`, `body`)."""


class AuthError(ImochaStatusError):
    """The API key was rejected (401) or lacks permission (403)."""


class BadRequestError(ImochaStatusError):
    """The request was invalid: 400, or a 401 carrying validation errors (Retrieve Invites, Process
    Callbacks report bad input and foreign ids that way; it does not mean the key is bad)."""


class NotFoundError(ImochaStatusError):
    """404: no such test or invitation."""


class RateLimitError(ImochaStatusError, VendorRateLimitError):
    """429, still, after retries (`retry_after`: what iMocha last asked for, in seconds)."""


class ServerError(ImochaStatusError):
    """5xx, still, after retries."""


class ImochaProtocolError(ImochaError):
    """A 2xx whose body is not the documented shape."""


# ----------------------------------------------------------------------------- error bodies


def status_error(failure: Failure) -> ImochaStatusError:
    """The exception for a non-2xx answer (given to the vendor HTTP base as iMocha's `status_error`)."""
    status, message, body = failure.status_code, failure.message, failure.body
    if status == 429:
        return RateLimitError(status, message, body, retry_after=failure.retry_after)
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


def is_validation_body(body: object) -> bool:
    # Retrieve Invites and Process Callbacks answer 401 `{"result": null, "errors": [...]}` for bad
    # input or foreign ids (reference §8); a rejected key is `{"statusCode": 401, "message": ...}`.
    return isinstance(body, dict) and isinstance(lookup(body, "errors"), list | dict) and lookup(body, "statusCode") is None


def error_text(body: object) -> str | None:
    """The most useful human text from any of iMocha's error body shapes (reference §2)."""
    if isinstance(body, str):
        return body.strip()[:500] or None
    if not isinstance(body, dict):
        return None
    errors = lookup(body, "errors")
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
    message = lookup(body, "message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    description = lookup(body, "description")  # V2 envelope: {"statuscode", "description", "result"}
    if isinstance(description, str) and description.strip():
        result = lookup(body, "result")
        if isinstance(result, str) and result.strip():
            return f"{description.strip()}: {result.strip()}"
        return description.strip()
    for key in ("error_description", "error", "title", "detail"):
        value = lookup(body, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def lookup(data: Mapping[Any, Any], *names: str) -> Any:
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
