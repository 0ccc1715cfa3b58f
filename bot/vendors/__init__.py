"""The base every vendor client is built on (iMocha, Gem, and the ATS clients to come).

Owns the one request path to a vendor's API (`http`): the shared `httpx.Client` with explicit
timeouts, the retry policy (tenacity: connection errors, 408/429/5xx, Retry-After in seconds or as an
HTTP date, capped full-jitter backoff), error-body text, redaction of keys in logs and errors, and the
hand-off of a failed answer to the vendor's own exceptions; the error tree those derive from
(`errors`); pacing one key's rate limit (`pacing`); and lenient readers for body fields (`parsing`).
May import the standard library, httpx, tenacity and `bot.runtime.clock`; nothing else of ours, so that any
client can build on it without an import cycle. How to adopt it: `bot/vendors/http.py`'s docstring.
"""

from bot.vendors.errors import VendorError, VendorRateLimitError, VendorStatusError
from bot.vendors.http import (
    Failure,
    Pacer,
    RetryPolicy,
    Vendor,
    VendorClient,
    VendorHTTP,
    build_http,
    error_body,
    error_text,
    retry_after_seconds,
)
from bot.vendors.pacing import Holds, RateLimiter

__all__ = [
    "Failure",
    "Holds",
    "Pacer",
    "RateLimiter",
    "RetryPolicy",
    "Vendor",
    "VendorClient",
    "VendorError",
    "VendorHTTP",
    "VendorRateLimitError",
    "VendorStatusError",
    "build_http",
    "error_body",
    "error_text",
    "retry_after_seconds",
]
