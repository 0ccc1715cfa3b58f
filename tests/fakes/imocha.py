"""A fake iMocha for tests: the sandbox over real HTTP, a settable clock, and a callback receiver.

Use the `fake_imocha` fixture (import it into the test module or a conftest), or `running_fake_imocha()`:

    def test_invite_sends_the_link(fake_imocha):
        client = ImochaClient(base_url=fake_imocha.url, api_key=GOOD_KEY)
        ...
        assert fake_imocha.state.count("/invite", "POST") == 1
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime.serving import ServerThread, free_port
from bot.sandbox.api import create_app
from bot.sandbox.state import ImochaState

GOOD_KEY = "sandbox-test-key"
BAD_KEY = "not-a-key"
PYTHON_TEST_ID = 1001
SQL_TEST_ID = 1002


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every test client: httpx builds a new one per client otherwise (~70 ms)."""
    return httpx.create_ssl_context()


def web_client(**kwargs: Any) -> httpx.Client:
    """A plain httpx client (a browser stand-in) that is cheap to create."""
    kwargs.setdefault("verify", tls_context())
    kwargs.setdefault("timeout", 5.0)
    return httpx.Client(**kwargs)


class ManualClock:
    """A clock the test moves by hand; pass it as `clock=` (or assign `state.clock`)."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


def seed_known_tests(state: ImochaState) -> None:
    """The tests every fixture account has: 1001 "Python Developer" (50 points) and 1002 "SQL Basics"."""
    state.add_test(
        PYTHON_TEST_ID,
        "Python Developer",
        [("Python basics", 30), ("Problem solving", 20)],
        duration=40,
        questions=[
            ("What does `len([1, 2, 3])` return?", ["2", "3", "4"], 1, 0),
            ("Which type is immutable?", ["list", "tuple", "dict"], 1, 0),
            ("Binary search on n sorted items takes…", ["O(n)", "O(log n)", "O(1)"], 1, 1),
            ("Which structure is first-in, first-out?", ["stack", "queue", "heap"], 1, 1),
        ],
        labels=["python"],
    )
    state.add_test(
        SQL_TEST_ID,
        "SQL Basics",
        [("Queries", 25), ("Joins", 25)],
        duration=30,
        labels=["sql"],
    )


def new_state(base_url: str, **state_kwargs: Any) -> ImochaState:
    state_kwargs.pop("base_url", None)
    state = ImochaState(base_url=base_url, **state_kwargs)
    state.add_key(GOOD_KEY)
    state.callback_retry_delay = 0.01
    seed_known_tests(state)
    return state


class FakeImocha:
    """A running sandbox: `.url` is the iMocha base URL, `.state` its account (swapped by `reset`)."""

    def __init__(self, app: Starlette, server: ServerThread):
        self.app = app
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> ImochaState:
        state: ImochaState = self.app.state.imocha
        return state

    def reset(self, **state_kwargs: Any) -> ImochaState:
        """Replace the account with a fresh one (keys, known tests, no invitations, no faults)."""
        self.app.state.imocha = new_state(self.url, **state_kwargs)
        return self.state

    def client(self, key: str | None = GOOD_KEY, **kwargs: Any) -> httpx.Client:
        """An httpx client on the fake's URL that sends `key` (none when None)."""
        headers = {"X-API-KEY": key} if key is not None else {}
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("verify", tls_context())
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 5.0), **kwargs)

    def invite(
        self,
        test_id: int = PYTHON_TEST_ID,
        email: str = "ada@example.com",
        name: str = "Ada Lovelace",
        **fields: Any,
    ) -> dict[str, Any]:
        """POST an invite through the API (asserting success) and return its JSON answer."""
        with self.client() as client:
            response = client.post(f"/v3/tests/{test_id}/invite", json={"email": email, "name": name, **fields})
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer


def start_fake_imocha(**state_kwargs: Any) -> FakeImocha:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(new_state(url, **state_kwargs))
    server = ServerThread(app, port=port).start()
    return FakeImocha(app, server)


@contextmanager
def running_fake_imocha(**state_kwargs: Any) -> Iterator[FakeImocha]:
    """A fake iMocha on its own port for the duration of the block."""
    fake = start_fake_imocha(**state_kwargs)
    try:
        yield fake
    finally:
        fake.server.stop()


_shared: FakeImocha | None = None


def _stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.server.stop()
        _shared = None


@pytest.fixture
def fake_imocha(request: pytest.FixtureRequest) -> FakeImocha:
    """A fake iMocha with a fresh account for each test; the server itself is shared by the session."""
    global _shared
    if _shared is None:
        _shared = start_fake_imocha()
        request.config.add_cleanup(_stop_shared)
    _shared.reset()
    return _shared


# ----------------------------------------------------------------------------------------- callbacks


class CallbackReceiver:
    """A local endpoint for iMocha's callbacks; records each JSON body, can fail on purpose."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 500 to this many deliveries
        self._changed = threading.Condition()
        self.app = Starlette(routes=[Route("/webhooks/imocha", self._receive, methods=["POST"])])
        self.server = ServerThread(self.app)

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/imocha"

    async def _receive(self, request: Request) -> Response:
        body = await request.json()
        with self._changed:
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"error": "down"}, 500)
            self.received.append(body)
            self._changed.notify_all()
        return JSONResponse({"ok": True})

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` callbacks arrived; returns them all (fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} callbacks, got {len(self.received)}: {self.received}")
                self._changed.wait(remaining)
            return list(self.received)

    def reset(self) -> None:
        with self._changed:
            self.received.clear()
            self.fail_next = 0


@contextmanager
def running_callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    receiver.server.start()
    try:
        yield receiver
    finally:
        receiver.server.stop()


@pytest.fixture
def imocha_callback_receiver() -> Iterator[CallbackReceiver]:
    with running_callback_receiver() as receiver:
        yield receiver
