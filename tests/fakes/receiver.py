"""A local receiver for the bot's outgoing events: verifies each signature and records what came, in order."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.runtime.serving import ServerThread


@dataclass
class Received:
    event: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool
    status: int  # what the receiver answered


@dataclass
class EventReceiver:
    secret: str
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # the next answers, then 200
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, status: int, *, times: int = 1, **headers: str) -> None:
        """Answer the next `times` deliveries with `status` (and headers such as Retry-After)."""
        with self._lock:
            self.answers.extend([(status, {k.replace("_", "-"): v for k, v in headers.items()})] * times)

    async def _post(self, request: Request) -> JSONResponse:
        body = await request.body()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, request.headers.get("x-signature", ""))
        with self._lock:
            status, headers = self.answers.pop(0) if self.answers else (200, {})
            self.received.append(Received(json.loads(body), dict(request.headers), ok, status))
        return JSONResponse({"ok": status < 300}, status_code=status, headers=headers)

    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx, in the order they arrived."""
        with self._lock:
            return [r.event for r in self.received if r.status < 300]

    def types(self) -> list[str]:
        return [event["type"] for event in self.accepted()]


def serve_receiver(secret: str) -> Iterator[EventReceiver]:
    receiver = EventReceiver(secret)
    app = Starlette(routes=[Route("/events", receiver._post, methods=["POST"])])
    with ServerThread(app) as server:
        receiver.url = f"{server.url}/events"
        yield receiver
