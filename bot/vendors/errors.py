"""The error tree every vendor's own exceptions derive from (ImochaError, GemError, ...).

A vendor declares its classes on these: `class AcmeError(VendorError)`, then
`class AcmeStatusError(AcmeError, VendorStatusError)` and `class AcmeRateLimitError(AcmeStatusError,
VendorRateLimitError)`; callers catch the vendor's own classes, and code that serves every vendor
may catch these.
"""

from __future__ import annotations


class VendorError(Exception):
    """Anything that went wrong talking to a vendor. httpx exceptions never escape a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VendorStatusError(VendorError):
    """The vendor answered with a non-2xx status."""

    def __init__(self, status_code: int, message: str, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class VendorRateLimitError(VendorStatusError):
    """429, still, after retries; `retry_after` is what the vendor last asked for, in seconds."""

    def __init__(self, status_code: int, message: str, body: object = None, *, retry_after: float | None = None) -> None:
        super().__init__(status_code, message, body)
        self.retry_after = retry_after
