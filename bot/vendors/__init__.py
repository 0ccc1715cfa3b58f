"""The HTTP base every vendor client is built on (iMocha, Gem, and the ATS clients to come).

Owns the one request path to a vendor's API: the shared `httpx.Client` with explicit timeouts, the
retry policy (tenacity: connection errors, 408/429/5xx, Retry-After in seconds or as an HTTP date,
capped full-jitter backoff), pacing hooks for a per-key rate limit, error-body text, redaction of keys
in logs and errors, and the hand-off of a failed answer to the vendor's own exception classes. May
import the standard library, httpx, tenacity and `bot.clock`; nothing else of ours, so that any client
can build on it without an import cycle. How to adopt it: `bot/vendors/http.py`'s docstring.
"""

from bot.vendors.http import Failure, Pacer, RetryPolicy, Vendor, VendorHTTP, build_http, error_body, error_text, retry_after_seconds
from bot.vendors.pacing import RateLimiter

__all__ = [
    "Failure",
    "Pacer",
    "RateLimiter",
    "RetryPolicy",
    "Vendor",
    "VendorHTTP",
    "build_http",
    "error_body",
    "error_text",
    "retry_after_seconds",
]
