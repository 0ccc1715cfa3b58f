"""Socket Mode: Slack's requests over a WebSocket, each acknowledged first and handled once, the link watched.

`SocketModeLink` runs the Bolt app over slack_sdk's built-in Socket Mode client, with what that
client leaves to its user:

- **Acks first.** Each envelope counts on the acks gate (`bot/slack/acks.py`) from the moment it is read
  off the socket until its ack is written, as HTTP requests do in `bot/runtime/web.py`, so the work after
  the acks waits for them. Envelopes go from the receive thread straight to the ack workers, and what
  happens to each one there is `bot/slack/socket_envelopes.py`'s (`EnvelopeHandler`).
- **Once per envelope.** Slack delivers an envelope again when it did not get the ack (the socket
  dropped first), with the same `envelope_id`, or for events a new one with `retry_attempt` and the
  same `event_id`. A re-delivery of one already handled is answered with the first ack and not run
  again; one that never arrived the first time is handled. (HTTP mode drops every retried event,
  `bot/runtime/app.py`; over Socket Mode a retry may be the only delivery that reached us.) The memory is
  per process: across replicas the services' own idempotency holds (one invitation, one card).
- **Reconnecting.** `disconnect` messages and dropped sockets lead to a new `apps.connections.open`
  and a new connection within about a second, with backoff while Slack cannot be reached. The
  SDK's receive loop spins on a socket the server closed (it reads b"" forever and pings fail for
  ~50 s before it gives up), so end-of-file is turned into the error it handles (`_Socket`).
- **Stopping clearly.** `disconnect` with `link_disabled` (Socket Mode turned off for the app) and an
  app-level token Slack refuses stop the link with one log line, and `stop_listeners` hear of it
  (`imocha-bot run` exits non-zero), instead of retrying forever.
- **Health.** `status()` says whether the link is up and for how long it has been down, on an
  injectable monotonic clock; `/healthz` answers 503 once it has been down for over 30 s.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.slack.acks import AckGate
from bot.slack.socket_envelopes import AckPool, EnvelopeHandler, HandledEnvelopes, ack_payload, envelope_keys

log = logging.getLogger("bot.slack.socket_mode")

# apps.connections.open errors that no retry fixes: the app-level token is wrong, revoked or lacks connections:write.
REFUSED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type", "missing_scope"}
)
DOWN_LIMIT = 30.0  # seconds down after which the link counts as unhealthy


class SocketModeStopped(Exception):
    """The link stopped for good (Socket Mode disabled, or the app-level token refused); the message says why."""


@dataclass(frozen=True)
class LinkStatus:
    """`state`: "connecting" (never up yet), "connected", "reconnecting" or "stopped"."""

    state: str
    down_seconds: float
    healthy: bool
    reason: str | None = None


# -- the link -----------------------------------------------------------------------------------------


class _LinkHealth:
    """The link's health bookkeeping: whether it is up, since when it has been down and why, and whether
    it stopped for good; what `status()` (and so `/healthz`) reads. `wake` rouses the watcher."""

    def __init__(self, monotonic: Callable[[], float]):
        self._monotonic = monotonic
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.wake = threading.Event()
        self.ever_connected = False
        self.down_since: float | None = monotonic()
        self.cause: str | None = None
        self.refreshing = False
        self.retry_logged = False
        self.stop_reason: str | None = None
        self.raise_on_stop = False

    def status(self, down_limit: float) -> LinkStatus:
        with self.lock:
            if self.stop_reason is not None:
                return LinkStatus("stopped", self.seconds_down(), False, self.stop_reason)
            if self.down_since is None:
                return LinkStatus("connected", 0.0, True)
            down = self.seconds_down()
            state = "reconnecting" if self.ever_connected else "connecting"
            return LinkStatus(state, down, down <= down_limit, self.cause)

    def seconds_down(self) -> float:
        return 0.0 if self.down_since is None else max(0.0, self._monotonic() - self.down_since)

    def observe(self, up: bool) -> None:
        """Note the moment the link went down or came back (`up`: the current connection is open and said hello)."""
        with self.lock:
            if self.stop_reason is not None:
                return
            if up and self.down_since is not None:
                down = self.seconds_down()
                self.down_since, self.cause, self.refreshing, self.retry_logged = None, None, False, False
                if self.ever_connected:
                    log.info("Socket Mode connected again after %.1f s", down)
                else:
                    log.debug("Socket Mode connected")  # `run` says so in its start-up line
                self.ever_connected = True
                self.ready.set()
            elif not up and self.down_since is None:
                self.down_since = self._monotonic()
                if not self.refreshing:
                    log.warning("Socket Mode connection lost (%s); reconnecting", self.cause or "the socket closed")

    def note(self, cause: str) -> None:
        """Why the link may be down (a close, an error); the watcher acts on it at once."""
        self.cause = cause
        self.wake.set()

    def reconnect_failed(self, cause: str, max_retry_interval: float) -> None:
        """Once per outage, a line saying why reconnecting fails (the watcher keeps trying, with backoff)."""
        self.note(cause)
        with self.lock:
            first = not self.retry_logged and self.stop_reason is None
            self.retry_logged = True
        if first:
            log.warning("Socket Mode cannot connect yet (%s); retrying with backoff up to %g s", cause, max_retry_interval)

    def stop(self, reason: str) -> bool:
        """Mark the link stopped for `reason`; False if it had stopped already."""
        with self.lock:
            if self.stop_reason is not None:
                return False
            self.stop_reason = reason
            if self.down_since is None:
                self.down_since = self._monotonic()
        return True


class SocketModeLink:
    """Bolt over Slack's Socket Mode, with acks counted, re-deliveries answered once, reconnects and health.

    Nothing connects until `connect()`. `monotonic` is the clock the health accounting reads (tests move
    it instead of waiting 30 s); the pacing of reconnect attempts uses real time.
    """

    def __init__(
        self,
        bolt: App,
        *,
        app_token: str,
        gate: AckGate | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        threads: int = 32,
        ping_interval: float = 5.0,
        down_limit: float = DOWN_LIMIT,
        retry_interval: float = 0.5,
        max_retry_interval: float = 10.0,
        duplicate_wait: float = 2.5,
    ):
        self.bolt = bolt
        self.app_token = app_token
        self.gate = gate
        self.monotonic = monotonic
        self.threads = threads
        self.ping_interval = ping_interval
        self.down_limit = down_limit
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self.envelopes = EnvelopeHandler(bolt, duplicate_wait=duplicate_wait)
        self.handled: HandledEnvelopes = self.envelopes.handled
        self.stop_listeners: list[Callable[[str], None]] = []
        self.client: _Client | None = None
        self._health = _LinkHealth(lambda: self.monotonic())
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        self._hello_session: str | None = None
        self.pool: AckPool | None = None
        self._refresh = False

    # -- public ---------------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> bool:
        """Open the link and wait up to `timeout` s for Slack's hello; False if not up yet (it keeps trying).

        Raises SocketModeStopped when Slack refuses the app-level token or has Socket Mode disabled.
        """
        if self.client is None:
            self.pool = AckPool(self.gate, self.threads)
            self.client = _Client(self)
            self._health.down_since = self.monotonic()
            self._health.raise_on_stop = True
            self._watcher = threading.Thread(target=self._watch, name="socket-watch", daemon=True)
            self._watcher.start()
        try:
            self._health.ready.wait(timeout)
        finally:
            self._health.raise_on_stop = False
        if self._health.stop_reason is not None:
            raise SocketModeStopped(self._health.stop_reason)
        return self.status().state == "connected"

    def status(self) -> LinkStatus:
        self._observe()
        return self._health.status(self.down_limit)

    @property
    def stopped(self) -> bool:
        return self._health.stop_reason is not None

    @property
    def duplicate_wait(self) -> float:
        """How long a re-delivery waits for the first delivery's ack (`EnvelopeHandler`)."""
        return self.envelopes.duplicate_wait

    @duplicate_wait.setter
    def duplicate_wait(self, seconds: float) -> None:
        self.envelopes.duplicate_wait = seconds

    def close(self) -> None:
        """Take no new envelopes (Slack delivers them again elsewhere), ack those in hand, then disconnect."""
        self._closing.set()
        self._health.wake.set()
        if self._watcher is not None:
            self._watcher.join(5)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()

    # -- state ------------------------------------------------------------------------------------

    def _is_up(self) -> bool:
        client = self.client
        return client is not None and client.is_connected() and self._hello_session == client.session_id()

    def _observe(self) -> None:
        """Note the moment the link went down or came back; the watcher calls this at least every 0.1 s.

        Up means the current connection is open and said hello. Events only say why it went down
        (`_note`): a close or error may concern a connection already replaced by a newer one.
        """
        self._health.observe(self._is_up())

    def _note(self, cause: str) -> None:
        """Why the link may be down (a close, an error); the watcher acts on it at once."""
        self._health.note(cause)

    def _reconnect_failed(self, cause: str) -> None:
        """Once per outage, a line saying why reconnecting fails (the watcher keeps trying, with backoff)."""
        self._health.reconnect_failed(cause, self.max_retry_interval)

    def _stop(self, reason: str) -> None:
        if not self._health.stop(reason):
            return
        if self.client is not None:
            self.client.auto_reconnect_enabled = False
        if not self._health.raise_on_stop:  # connect() raises it to its caller instead
            log.error("%s; stopping", reason)
        self._health.ready.set()
        self._health.wake.set()
        for listener in list(self.stop_listeners):
            listener(reason)

    # -- messages from the client ---------------------------------------------------------------------

    def _receive(self, raw: str) -> None:
        """Every message the connection reads, on its receive thread: hello and disconnect are handled here,
        envelopes are counted on the acks gate at once and handed to the ack workers (`EnvelopeHandler.handle`)."""
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("Socket Mode: a message that is not JSON (%d characters)", len(raw))
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "hello" and self.client is not None:
            self._hello_session = self.client.session_id()
            self._observe()
        elif kind == "disconnect":
            reason = str(message.get("reason") or "unknown")
            if reason == "link_disabled":
                self._stop(
                    "Slack disabled Socket Mode for this app (disconnect: link_disabled): turn Socket Mode on in the app's "
                    "settings, or unset SLACK_APP_TOKEN to run in HTTP mode"
                )
            else:
                log.info("Slack asked for a new Socket Mode connection (%s)", reason)
                self._health.refreshing, self._refresh, self._hello_session = True, True, None
                self._note(f"disconnect: {reason}")
        elif self.pool is not None and self.client is not None and not self._closing.is_set():
            request = SocketModeRequest.from_dict(message)
            if request is not None:
                with contextlib.suppress(RuntimeError):  # closing: left unacked, so Slack delivers it again
                    self.pool.submit(self.envelopes.handle, self.client, request)

    # -- the watcher ----------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Reconnect whenever the link is down (at once, then with backoff), until closed or stopped."""
        delay = self.retry_interval
        next_try = 0.0
        while not self._closing.is_set() and not self.stopped:
            try:
                self._observe()
                client = self.client
                if client is not None and self._refresh:  # Slack asked for a new connection: open it, then drop the old
                    self._refresh = False
                    client.connect_to_new_endpoint(force=True)
                elif client is not None and not client.is_connected() and time.monotonic() >= next_try:
                    client.connect_to_new_endpoint()
                    if client.is_connected():
                        delay = self.retry_interval
                    else:
                        next_try = time.monotonic() + delay
                        delay = min(delay * 2, self.max_retry_interval)
            except Exception:  # the watcher is the link's error boundary: it must outlive any one failure
                log.exception("Socket Mode watcher failed; it keeps watching")
            self._health.wake.wait(0.1)
            self._health.wake.clear()


class _Socket:
    """The SDK's socket, read in a way its receive loop copes with, and counted on the acks gate.

    - End-of-file raises ConnectionAbortedError: on b"" the SDK's loop read again at once, so a
      connection the server closed spun a CPU for the ~50 s its pings took to give up; an OSError ends
      the loop and the link reconnects.
    - A read waits at most `poll` s (then raises the timeout the loop expects and retries): the loop
      holds a lock while it reads, and replacing a connection waits for that lock, so with the SDK's
      3-s read timeout a new connection's hello and envelopes waited up to 3 s for the old one.
    - While bytes wait to be read and parsed, that counts on the acks gate as one request being
      answered: in a burst the ack workers could otherwise empty the gate between two reads, and the
      work after the acks started while envelopes were still unread (each envelope then counts on its
      own from its hand-over to its ack).
    """

    def __init__(self, sock: Any, gate: AckGate | None = None, poll: float = 0.1):
        self._sock = sock
        self._gate = gate
        self._poll = poll
        self._reading = False
        self._lock = threading.Lock()

    def _read_some(self, reading: bool) -> None:
        if self._gate is None:
            return
        with self._lock:
            if reading == self._reading:
                return
            self._reading = reading
        if reading:
            self._gate.arrived()
        else:
            self._gate.answered()

    def recv(self, size: int, *args: Any) -> bytes:
        sock = self._sock
        pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes the descriptor no longer shows
        if not (pending is not None and pending()):
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:  # what was read so far is parsed and handed over
                    self._read_some(False)
                    readable, _, _ = select.select([sock], [], [], self._poll)
            except (ValueError, OSError):  # closed meanwhile (descriptor -1): what the SDK expects of a closed socket
                self._read_some(False)
                raise OSError(errno.EBADF, "the socket is closed") from None
            if not readable:
                raise TimeoutError("timed out")
        self._read_some(True)
        data: bytes = sock.recv(size, *args)
        if not data and size:
            self._read_some(False)
            raise ConnectionAbortedError(errno.ECONNABORTED, "Slack closed the connection")
        return data

    def close(self) -> None:
        self._read_some(False)
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Client(SocketModeClient):
    """slack_sdk's built-in client, with the link deciding when to reconnect and when to stop."""

    def __init__(self, link: SocketModeLink):
        super().__init__(
            app_token=link.app_token,
            logger=logging.getLogger("slack_sdk.socket_mode"),
            web_client=link.bolt.client,
            proxy=link.bolt.client.proxy,
            auto_reconnect_enabled=False,  # the link's watcher reconnects (and stops when it should)
            ping_interval=link.ping_interval,
            receive_buffer_size=64 * 1024,  # the SDK's frame parser recurses per chunk: fewer, larger chunks
            concurrency=1,  # its message workers stay idle: the link's own pool handles envelopes
        )
        self.link = link

    def issue_new_wss_url(self) -> str:
        try:
            response = self.web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            if error in REFUSED:
                self.link._stop(
                    f"SLACK_APP_TOKEN was refused by Slack ({error}): Socket Mode cannot connect; create an app-level token "
                    "with connections:write, or unset SLACK_APP_TOKEN to run in HTTP mode"
                )
                raise SocketModeStopped(error) from None
            raise
        return str(response["url"])

    def connect_to_new_endpoint(self, force: bool = False) -> None:
        if self.link.stopped or self.closed:
            return
        try:
            super().connect_to_new_endpoint(force)
        except SocketModeStopped:
            pass
        except Exception as exc:  # network, 5xx, rate limits: the watcher tries again with backoff
            if isinstance(exc, SlackApiError):
                cause = f"apps.connections.open answered {exc.response.get('error') or exc.response.status_code}"
            else:
                first_line = str(exc).splitlines()[0][:160] if str(exc) else ""
                cause = f"{exc.__class__.__name__}: {first_line}" if first_line else exc.__class__.__name__
            self.link._reconnect_failed(cause)

    def connect(self) -> None:
        super().connect()
        session = self.current_session
        if session is not None:
            with session.sock_send_lock:
                if session.sock is not None and not isinstance(session.sock, _Socket):
                    session.sock = _Socket(session.sock, self.link.gate)  # type: ignore[assignment]

    def enqueue_message(self, message: str) -> None:
        # The link takes each message on the receive thread instead of the SDK's queue, processor thread
        # and second JSON parse: one thread hop less, and an envelope counts on the acks gate on arrival.
        self.link._receive(message)

    def close(self) -> None:
        self.closed = True
        self.message_queue.put(None)  # wakes the idle message processor's 1-s queue read, which close() waits for
        super().close()

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, ConnectionError):  # the server closed or reset the socket, or refused a new one
            cause = f"{error.__class__.__name__}: {error}"
            if self.link._is_up():
                self.link._note(cause)
            else:
                self.link._reconnect_failed(cause)
            return
        super()._on_error(error)

    def _on_close(self, code: int, reason: str | None = None) -> None:
        self.link._note(f"closed by Slack ({code}{', ' + reason if reason else ''})")
        super()._on_close(code, reason)


__all__ = [
    "DOWN_LIMIT",
    "REFUSED",
    "HandledEnvelopes",
    "LinkStatus",
    "SocketModeLink",
    "SocketModeStopped",
    "ack_payload",
    "envelope_keys",
]
