"""The vendor HTTP base (bot/vendors/http.py) as a new vendor's client would use it, through httpx.MockTransport."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from bot.vendors import Failure, RetryPolicy, Vendor, VendorClient, VendorError, VendorHTTP, VendorStatusError

KEY = "acme_live_4f9Qx2Lm7Zr8"


class AcmeError(VendorError):
    pass


class AcmeConnectionError(AcmeError):
    pass


class AcmeProtocolError(AcmeError):
    pass


class AcmeStatusError(AcmeError, VendorStatusError):
    pass


class AcmeAuthError(AcmeStatusError):
    pass


def acme_status_error(failure: Failure) -> AcmeError:
    kind = AcmeAuthError if failure.status_code == 401 else AcmeStatusError
    return kind(failure.status_code, failure.message, failure.body)


ACME = Vendor(
    name="Acme",
    logger=logging.getLogger("bot.acme"),
    connection_error=AcmeConnectionError,
    protocol_error=AcmeProtocolError,
    status_error=acme_status_error,
    auth_error=AcmeAuthError,
    auth_hint="Acme refused the key",
)


class Pacer:
    def __init__(self) -> None:
        self.slots = 0
        self.paused: list[float] = []

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.slots += 1
        yield

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


class AcmeClient(VendorClient):
    DEFAULT_TIMEOUT = httpx.Timeout(3.0)

    def __init__(self, http: httpx.Client, key: str, **options: Any) -> None:
        auth = {"Authorization": f"Bearer {key}"}
        self._api = VendorHTTP(http, ACME, headers=auth, secrets=[key], retry=RetryPolicy(max_attempts=3), random=lambda: 1.0, **options)

    def call(self, method: str, path: str, parse: Callable[[Any], Any], **options: Any) -> Any:
        return self._api.call(method, path, parse, **options)


def acme(
    *answers: Callable[[httpx.Request], httpx.Response], pacer: Pacer | None = None
) -> tuple[AcmeClient, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    script = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0) if len(script) > 1 else script[0]
        return answer(request)

    slept: list[float] = []
    http = AcmeClient.build_http("https://api.acme.test", transport=httpx.MockTransport(handle))
    return AcmeClient(http, KEY, sleep=slept.append, pacer=pacer), seen, slept


def status(code: int, body: object = None, headers: dict[str, str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json=body, headers=headers)


def test_a_new_vendor_gets_retries_its_own_errors_and_its_name_in_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    api, seen, slept = acme(status(503), status(401, {"message": f"key {KEY} is not valid"}))

    with caplog.at_level(logging.WARNING, logger="bot.acme"), pytest.raises(AcmeAuthError) as caught:
        api.call("GET", "/v1/things", list)

    assert len(seen) == 2 and slept == [0.5]
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" and r.url.host == "api.acme.test" for r in seen)
    assert caught.value.message == "key [redacted] is not valid" and caught.value.status_code == 401
    assert KEY not in repr(api) and "api.acme.test" in repr(api)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Acme GET /v1/things failed: HTTP 503 (attempt 1/3); retrying in 0.50s",
        "Acme GET /v1/things failed: HTTP 401, Acme refused the key",
    ]
    assert KEY not in caplog.text


def test_a_write_that_may_have_landed_is_not_sent_again_but_a_refused_connection_is() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api, seen, _ = acme(refused, status(500), status(201, {"id": 7}))
    with pytest.raises(AcmeStatusError) as caught:
        api.call("POST", "/v1/notes", dict, json={"body": "hi"}, idempotent=False)

    assert caught.value.status_code == 500
    assert len(seen) == 2  # the refused connection was retried, the 500 was not


def test_a_429_pauses_the_pacer_for_every_user_of_the_key_instead_of_sleeping_this_thread() -> None:
    pacer = Pacer()
    api, seen, slept = acme(status(429, headers={"Retry-After": "4"}), status(200, [1, 2]), pacer=pacer)

    assert api.call("GET", "/v1/things", list) == [1, 2]

    assert len(seen) == 2 and pacer.paused == [4.0] and pacer.slots == 2 and slept == [0.0]


def test_a_2xx_the_parser_rejects_is_the_vendors_protocol_error() -> None:
    api, _, _ = acme(status(200, {"things": "none"}))

    def parse(data: object) -> list[object]:
        raise ValueError("things must be a list")

    with pytest.raises(AcmeProtocolError, match="unexpected response from Acme GET /v1/things: things must be a list"):
        api.call("GET", "/v1/things", parse)


def test_a_hold_lasts_until_its_moment_per_workspace_and_can_be_cleared() -> None:
    from datetime import UTC, datetime, timedelta

    from bot.vendors.pacing import Holds

    holds = Holds()
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert holds.until(1, now) is None
    end = holds.hold(1, now, timedelta(seconds=30))
    assert end == now + timedelta(seconds=30)
    assert holds.until(1, now + timedelta(seconds=29)) == end
    assert holds.until(1, end) is None  # over at its moment
    assert holds.until(2, now) is None  # another workspace is not held
    holds.hold(2, now, timedelta(minutes=5))
    holds.clear()
    assert holds.until(2, now) is None


def test_after_a_429_a_hold_lasts_its_retry_after_or_a_minute_when_it_gave_none() -> None:
    from datetime import UTC, datetime, timedelta

    from bot.vendors.pacing import DEFAULT_HOLD, Holds

    holds = Holds()
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert holds.after_429(1, now, 120.0) == timedelta(seconds=120)
    assert holds.until(1, now) == now + timedelta(seconds=120)
    assert holds.after_429(2, now, None) == DEFAULT_HOLD == timedelta(seconds=60)
    assert holds.until(2, now) == now + DEFAULT_HOLD
