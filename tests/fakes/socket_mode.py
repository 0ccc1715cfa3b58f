"""A local Slack Socket Mode server for tests: a real WebSocket server (RFC 6455) on loopback.

`FakeSlack.use_socket_mode(server)` makes the fake Web API's `apps.connections.open` hand out this
server's `ws://` URL with a one-time ticket. Each connection gets `hello`; the test pushes envelopes
with `deliver()` (or `SocketSender`, which speaks like `slack_requests.SlackSender`) and each one must
be acknowledged with its `envelope_id` within 3 s: `Delivery.wait_ack()` fails the test otherwise, and
late acks, acks for envelopes never sent and malformed frames land in `problems`.

Slack's side of a connection's life is scripted: `disconnect(reason)` sends a `disconnect` message
(and closes the socket after `close_after` s), `drop()` closes sockets without a close frame (or
resets them), `deafen()` loses the acks a connection sends (the ack never reached Slack),
`accepting = False` refuses new connections (the port stops listening), and `redeliver()` sends an
envelope again as Slack does when it got no ack (same `envelope_id`, or a new one with
`retry_attempt`). Upgrades with a bad path, headers or ticket are answered 4xx (`refused`).

Server frames are unmasked, client frames must be masked; pings get pongs with the same payload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx

from tests.fakes import slack_requests as sr

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ACK_DEADLINE = 3.0
APP_ID = sr.APP_ID


@dataclass(frozen=True)
class Ack:
    """One ack the server read: `payload` is what the bot answered with (None for a bare ack)."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float  # time.monotonic()
    connection: int
    lost: bool = False  # read on a deafened connection: Slack never saw it


@dataclass
class Delivery:
    """One envelope sent on one connection, and the acks that came back for it."""

    envelope: dict[str, Any]
    connection: int | None
    sent_at: float
    acks: list[Ack] = field(default_factory=list)
    acked: threading.Event = field(default_factory=threading.Event)

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])

    @property
    def type(self) -> str:
        return str(self.envelope["type"])

    def wait_ack(self, timeout: float = ACK_DEADLINE) -> Ack:
        """The first ack Slack saw, waiting at most `timeout` s (3 s: Slack's deadline) from now."""
        if not self.acked.wait(timeout):
            raise AssertionError(f"{self.type} envelope {self.envelope_id} was not acknowledged within {timeout:g} s")
        return next(a for a in self.acks if not a.lost)


class _Connection:
    def __init__(self, server: FakeSocketMode, sock: socket.socket, number: int, path: str):
        self.server, self.sock, self.number, self.path = server, sock, number, path
        self.alive = True
        self.deaf = False
        self.hello_sent = threading.Event()
        self.pings = 0
        self._send_lock = threading.Lock()
        self._buffer = b""

    # -- frames ------------------------------------------------------------------------------------

    def send_frame(self, opcode: int, data: bytes) -> bool:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self._send_lock:
            if not self.alive:
                return False
            try:
                self.sock.sendall(head + data)
                return True
            except OSError:
                self._dead()
                return False

    def send_json(self, message: dict[str, Any]) -> bool:
        return self.send_frame(0x1, json.dumps(message, separators=(",", ":")).encode())

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the client")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        b1, b2 = self._read(2)
        opcode, masked, length = b1 & 0x0F, b2 & 0x80, b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if not masked:
            self.server._problem(f"connection {self.number}: a client frame (opcode {opcode}) was not masked")
        mask = self._read(4) if masked else b""
        data = self._read(length)
        if masked and length:
            key = (mask * (length // 4 + 1))[:length]
            data = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        return opcode, data

    # -- life ---------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.server.send_hello:
                self.send_json(
                    {
                        "type": "hello",
                        "num_connections": len(self.server.live),
                        "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                        "connection_info": {"app_id": APP_ID},
                    }
                )
            self.hello_sent.set()
            while True:
                opcode, data = self.read_frame()
                if opcode == 0x9:  # ping
                    self.pings += 1
                    self.send_frame(0xA, data)
                elif opcode == 0x8:  # close: answer it and hang up
                    self.send_frame(0x8, data[:2])
                    break
                elif opcode == 0x1:
                    self.server._received(self, data.decode("utf-8"))
                elif opcode != 0xA:
                    self.server._problem(f"connection {self.number}: unexpected opcode {opcode}")
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self._dead()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """A clean close: a close frame, then the socket."""
        self.send_frame(0x8, struct.pack("!H", code) + reason.encode())
        self.drop()

    def drop(self, *, reset: bool = False) -> None:
        """Close the TCP connection without a close frame: FIN, or RST with `reset`."""
        with self._send_lock:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        self._dead()

    def _dead(self) -> None:
        if self.alive:
            self.alive = False
            self.server._gone(self)


class FakeSocketMode:
    """The fake Socket Mode server. Use as a context manager or `start()` / `stop()`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, check_tickets: bool = True, ack_deadline: float = ACK_DEADLINE):
        self.host = host
        self.check_tickets = check_tickets
        self.ack_deadline = ack_deadline
        self._listener: socket.socket | None = socket.create_server((host, port or 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._numbers = itertools.count(1)
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.send_hello = True
            self.tickets: set[str] = set()
            self.connections: list[_Connection] = []
            self.handshakes: list[str] = []  # request paths of accepted and refused upgrades
            self.refused = 0
            self.deliveries: list[Delivery] = []
            self.received: list[dict[str, Any]] = []
            self.problems: list[str] = []
            self.on_ack: Callable[[Ack], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeSocketMode:
        assert self._listener is not None
        self._thread = threading.Thread(target=self._accept, args=(self._listener,), name=f"socket-mode-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.accepting = False
        for conn in list(self.connections):
            conn.drop()

    @property
    def accepting(self) -> bool:
        return self._listener is not None

    @accepting.setter
    def accepting(self, value: bool) -> None:
        """False closes the listening socket (clients get "connection refused"); True listens again on the same port."""
        with self._lock:
            if not value and self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it (close alone does not)
                self._listener.close()
                self._listener = None
            elif value and self._listener is None:
                self._listener = socket.create_server((self.host, self.port), backlog=64)
                threading.Thread(target=self._accept, args=(self._listener,), name=f"socket-mode-{self.port}", daemon=True).start()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/link/"

    def issue_url(self) -> str:
        """A connection URL with a fresh one-time ticket (what apps.connections.open returns)."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self.tickets.add(ticket)
        return f"{self.url}?ticket={ticket}&app_id={APP_ID}"

    # -- connections -----------------------------------------------------------------------------------

    @property
    def live(self) -> list[_Connection]:
        with self._lock:
            return [c for c in self.connections if c.alive]

    @property
    def accepted(self) -> int:
        """Connections accepted so far (live or not)."""
        with self._lock:
            return len(self.connections)

    def wait_connected(self, count: int = 1, timeout: float = 5.0) -> _Connection:
        """Wait until at least `count` connections were accepted and the newest live one got hello; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                live = [c for c in self.connections if c.alive and c.hello_sent.is_set()]
                if len(self.connections) >= count and live:
                    return live[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected connection {count} within {timeout:g} s; accepted {len(self.connections)}, live {len(live)}"
                    )
                self._changed.wait(remaining)

    def wait_disconnected(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while any(c.alive for c in self.connections):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the client did not disconnect")
                self._changed.wait(remaining)

    def disconnect(
        self, reason: str = "refresh_requested", *, connection: _Connection | None = None, close_after: float | None = None
    ) -> None:
        """Send Slack's `disconnect` message; close that socket cleanly `close_after` s later (None: leave it open)."""
        conn = connection or self._newest()
        conn.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})
        if close_after is not None:
            timer = threading.Timer(close_after, conn.close)
            timer.daemon = True
            timer.start()

    def drop(self, connection: _Connection | None = None, *, reset: bool = False) -> None:
        """Close connections abruptly (all live ones unless one is given): no close frame, FIN or RST."""
        for conn in [connection] if connection else self.live:
            conn.drop(reset=reset)

    def deafen(self, connection: _Connection | None = None) -> None:
        """From now on the acks this connection carries are lost on the way (recorded with `lost=True`)."""
        (connection or self._newest()).deaf = True

    # -- envelopes -------------------------------------------------------------------------------------

    def deliver(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: _Connection | None = None,
        lose: bool = False,
    ) -> Delivery:
        """Send one envelope on the newest live connection (or `connection`); `lose=True` loses it in transit."""
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": type,
            "payload": payload,
            "accepts_response_payload": _accepts_payload(type, payload) if accepts_response_payload is None else accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        elif retry_attempt is not None:
            envelope["retry_attempt"], envelope["retry_reason"] = retry_attempt, retry_reason or "timeout"
        conn = None if lose else (connection or self._newest())
        delivery = Delivery(envelope, conn.number if conn else None, time.monotonic())
        with self._lock:
            self.deliveries.append(delivery)
        if conn is not None and not conn.send_json(envelope):
            raise AssertionError(f"connection {conn.number} closed before envelope {delivery.envelope_id} could be sent")
        return delivery

    def deliver_many(self, envelopes: list[tuple[str, dict[str, Any]]], *, connection: _Connection | None = None) -> list[Delivery]:
        """Several envelopes written back to back (a burst)."""
        conn = connection or self._newest()
        out, frames = [], []
        for type, payload in envelopes:
            envelope = {
                "envelope_id": str(uuid.uuid4()),
                "type": type,
                "payload": payload,
                "accepts_response_payload": _accepts_payload(type, payload),
            }
            if type == "events_api":
                envelope.update(retry_attempt=0, retry_reason="")
            out.append(envelope)
            frames.append(json.dumps(envelope, separators=(",", ":")).encode())
        deliveries = [Delivery(envelope, conn.number, 0.0) for envelope in out]
        with self._lock:
            self.deliveries.extend(deliveries)
        for delivery, data in zip(deliveries, frames, strict=True):
            delivery.sent_at = time.monotonic()  # each timed from just before its own frame is written
            conn.send_frame(0x1, data)
        return deliveries

    def redeliver(
        self, delivery: Delivery, *, new_envelope_id: bool = False, retry_attempt: int = 1, retry_reason: str = "timeout"
    ) -> Delivery:
        """Send an envelope again as Slack does when its ack did not arrive (events carry the retry fields)."""
        envelope = delivery.envelope
        return self.deliver(
            delivery.type,
            envelope["payload"],
            envelope_id=None if new_envelope_id else delivery.envelope_id,
            accepts_response_payload=envelope["accepts_response_payload"],
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )

    def acks_for(self, envelope_id: str) -> list[Ack]:
        with self._lock:
            return [a for d in self.deliveries if d.envelope_id == envelope_id for a in d.acks]

    def unacked(self) -> list[Delivery]:
        """Deliveries sent on a connection that Slack has no ack for."""
        with self._lock:
            return [d for d in self.deliveries if d.connection is not None and not d.acked.is_set()]

    # -- internals -----------------------------------------------------------------------------------

    def _newest(self) -> _Connection:
        live = self.live
        if not live:
            raise AssertionError("no live Socket Mode connection")
        return live[-1]

    def _problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)

    def _received(self, conn: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._problem(f"connection {conn.number}: a text frame that is not JSON: {text[:80]!r}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            self._problem(f"connection {conn.number}: a message without an envelope_id: {text[:120]!r}")
            return
        now = time.monotonic()
        payload = message.get("payload")
        ack = Ack(message["envelope_id"], payload if isinstance(payload, dict) else None, now, conn.number, lost=conn.deaf)
        with self._lock:
            self.received.append(message)
            pending = [d for d in self.deliveries if d.envelope_id == ack.envelope_id and d.connection is not None]
            if not pending:
                self.problems.append(f"an ack for envelope {ack.envelope_id}, which was never sent")
                return
            # one ack answers every delivery of the envelope still waiting (a re-delivery and the first)
            for delivery in [d for d in pending if not d.acked.is_set()] or pending[-1:]:
                delivery.acks.append(ack)
                if not ack.lost and not delivery.acked.is_set():
                    if now - delivery.sent_at > self.ack_deadline:
                        self.problems.append(
                            f"{delivery.type} envelope {ack.envelope_id} acknowledged after {now - delivery.sent_at:.2f} s"
                        )
                    delivery.acked.set()
            hook = self.on_ack
        if hook is not None:
            hook(ack)

    def _gone(self, conn: _Connection) -> None:
        with self._changed:
            self._changed.notify_all()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._upgrade, args=(sock,), name=f"socket-mode-conn-{self.port}", daemon=True).start()

    def _upgrade(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    sock.close()
                    return
                head += chunk
            sock.settimeout(None)
            request_line, *lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        except (OSError, ValueError):
            sock.close()
            return
        path = urlsplit(target)
        ticket = (parse_qs(path.query).get("ticket") or [""])[0]
        with self._lock:
            self.handshakes.append(target)
            refusal = None
            if method != "GET" or not path.path.startswith("/link"):
                refusal = "404 Not Found"
            elif (
                headers.get("upgrade", "").lower() != "websocket"
                or headers.get("sec-websocket-version") != "13"
                or "sec-websocket-key" not in headers
            ):
                refusal = "400 Bad Request"
            elif self.check_tickets and ticket not in self.tickets:
                refusal = "401 Unauthorized"
            if refusal is not None:
                self.refused += 1
            else:
                self.tickets.discard(ticket)
        if refusal is not None:
            with contextlib.suppress(OSError):
                sock.sendall(f"HTTP/1.1 {refusal}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            sock.close()
            return
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
        sock.sendall(
            f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        with self._changed:
            conn = _Connection(self, sock, next(self._numbers), target)
            self.connections.append(conn)
        threading.Thread(target=conn.run, name=f"socket-mode-read-{conn.number}", daemon=True).start()
        conn.hello_sent.wait(5)
        with self._changed:
            self._changed.notify_all()


def _accepts_payload(type: str, payload: dict[str, Any]) -> bool:
    """As Slack sets it: slash commands, view submissions and options loads can be answered with a payload."""
    if type == "slash_commands":
        return True
    return type == "interactive" and payload.get("type") in ("view_submission", "block_suggestion")


# -- a sender that speaks like slack_requests.SlackSender -------------------------------------------------


def form_fields(body: str) -> dict[str, Any]:
    """A slash command's form body (`slack_requests.slash_command`) as the envelope's payload."""
    return dict(parse_qsl(body, keep_blank_values=True))


def interactive_payload(body: str) -> dict[str, Any]:
    """An interactivity body (`payload=<JSON>`) as the envelope's payload."""
    payload: dict[str, Any] = json.loads(form_fields(body)["payload"])
    return payload


class SocketSender:
    """Slack requests as Socket Mode envelopes: `command`, `action`, `submit`, `suggest`, `event` as in
    `SlackSender`, each returning the ack as an `httpx.Response` (200, the ack's payload as JSON body).

    Each call waits for the ack (3 s at most) and fails the test without one; `last` is its Delivery.
    """

    def __init__(self, server: FakeSocketMode, *, timeout: float = ACK_DEADLINE):
        self.server = server
        self.timeout = timeout
        self.last: Delivery | None = None

    def send(self, type: str, payload: dict[str, Any]) -> httpx.Response:
        self.last = self.server.deliver(type, payload)
        ack = self.last.wait_ack(self.timeout)
        if ack.payload is None:
            return httpx.Response(200)
        return httpx.Response(200, json=ack.payload)

    def command(self, **kwargs: Any) -> httpx.Response:
        return self.send("slash_commands", form_fields(sr.slash_command(**kwargs)))

    def action(self, **kwargs: Any) -> httpx.Response:
        return self.send("interactive", interactive_payload(sr.block_action(**kwargs)))

    def submit(self, **kwargs: Any) -> httpx.Response:
        return self.send("interactive", interactive_payload(sr.view_submission(**kwargs)))

    def suggest(self, **kwargs: Any) -> httpx.Response:
        return self.send("interactive", interactive_payload(sr.block_suggestion(**kwargs)))

    def event(self, **kwargs: Any) -> httpx.Response:
        return self.send("events_api", json.loads(sr.event_callback(**kwargs)))

    def close(self) -> None:
        pass
