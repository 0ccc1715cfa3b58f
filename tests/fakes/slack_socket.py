"""A fake Socket Mode WebSocket endpoint: the handshake, a hello, and pongs; enough for `imocha-bot run` to connect."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class FakeSocketMode:
    """Accepts WebSocket connections on a loopback port; `url` is what apps.connections.open hands out."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self.host, self.port = host, self._listener.getsockname()[1]
        self.connections = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-socket-mode", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/link/?ticket=fake"

    def start(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            headers = dict(line.split(":", 1) for line in request.decode("latin-1").split("\r\n")[1:] if ":" in line)
            key = next((v.strip() for k, v in headers.items() if k.strip().lower() == "sec-websocket-key"), "")
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            self.connections += 1
            hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKE"}}
            conn.sendall(_frame(_TEXT, json.dumps(hello).encode()))
            try:
                while not self._stopped.is_set():
                    opcode, payload = _read_frame(conn)
                    if opcode == _PING:
                        conn.sendall(_frame(_PONG, payload))
                    elif opcode == _CLOSE:
                        conn.sendall(_frame(_CLOSE, payload[:2]))
                        return
            except (OSError, ConnectionError):
                return


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One client frame (masked, as RFC 6455 requires of clients)."""
    first, second = _recv_exactly(conn, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _recv_exactly(conn, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _recv_exactly(conn, 8))[0]
    mask = _recv_exactly(conn, 4) if second & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_recv_exactly(conn, size)))
    return first & 0x0F, payload
