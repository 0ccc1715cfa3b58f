"""Socket Mode envelopes: each one handed to Bolt once and acknowledged with Bolt's answer, on the ack workers.

`SocketModeLink` (socket_mode.py) owns the connection: it reads the envelopes off the socket and hands
them over. This module owns what happens to an envelope after that:

- `AckPool`, the ack workers: an envelope counts on the acks gate from its hand-over until it is handled.
- `HandledEnvelopes`, the per-process memory of what was handled and answered (`envelope_keys`).
- `EnvelopeHandler`: Bolt's dispatch of a first delivery and the ack carrying its answer (`ack_payload`);
  a re-delivery of one already handled is answered with the first ack and not run again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.errors import SlackClientNotConnectedError
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.runtime import metrics
from bot.runtime.logs import new_request_id
from bot.slack.acks import AckGate

log = logging.getLogger("bot.slack.socket_mode")  # the link's logger: one story per link in the logs

T = TypeVar("T")


# -- handled envelopes -------------------------------------------------------------------------------


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    acked: bool = False
    payload: dict[str, Any] | None = None


class HandledEnvelopes:
    """Which envelopes this process handled and what it answered, so that a re-delivery is answered, not run.

    Keys are `envelope:<id>` and, for events, `event:<event_id>`; the last `limit` deliveries are kept.
    A delivery that was not acknowledged (Bolt did not answer 200) is forgotten, so Slack's retry of it
    runs again.
    """

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, keys: list[str]) -> tuple[bool, _Entry]:
        """(True, new entry) for a first delivery; (False, the earlier one's entry) for a re-delivery."""
        with self._lock:
            for key in keys:
                earlier = self._entries.get(key)
                if earlier is not None:
                    for other in keys:
                        self._entries.setdefault(other, earlier)
                    return False, earlier
            entry = _Entry()
            for key in keys:
                self._entries[key] = entry
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
            return True, entry

    def finish(self, keys: list[str], entry: _Entry, *, acked: bool, payload: dict[str, Any] | None) -> None:
        with self._lock:
            entry.acked, entry.payload = acked, payload
            if not acked:
                for key in keys:
                    if self._entries.get(key) is entry:
                        del self._entries[key]
        entry.done.set()


def envelope_keys(request: SocketModeRequest) -> list[str]:
    keys = [f"envelope:{request.envelope_id}"]
    event_id = request.payload.get("event_id") if request.type == "events_api" else None
    if isinstance(event_id, str) and event_id:
        keys.append(f"event:{event_id}")
    return keys


def ack_payload(response: BoltResponse) -> dict[str, Any] | None:
    """What goes back with the ack, as Bolt's Socket Mode adapter sends it: a JSON body, or text as {"text": ...}."""
    if not response.body:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("application/json"):
        data = json.loads(response.body)
        return data if isinstance(data, dict) else {"text": response.body}
    return {"text": response.body}


# -- handling ----------------------------------------------------------------------------------------


class EnvelopeHandler:
    """Each envelope handled once: Bolt answers a first delivery, a re-delivery gets the first ack.

    A re-delivery that arrives while the first is still running waits up to `duplicate_wait` s for
    its ack; if there is none by then, it is left unanswered (Slack delivers it again).
    """

    def __init__(self, bolt: App, *, duplicate_wait: float, handled: HandledEnvelopes | None = None):
        self.bolt = bolt
        self.duplicate_wait = duplicate_wait
        self.handled = HandledEnvelopes() if handled is None else handled

    def handle(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        """On an ack worker: dispatch `request` to Bolt (or recall its first answer) and ack it over `client`."""
        new_request_id("slack")
        started = time.perf_counter()
        keys = envelope_keys(request)
        first, entry = self.handled.claim(keys)
        if not first:
            self._answer_again(client, request, entry)
            return
        acked, payload = False, None
        try:
            response = _dispatch(self.bolt, request)
            if response is not None and response.status == 200:
                acked, payload = True, ack_payload(response)
            elif response is not None:
                log.warning("%s %s not acknowledged: Bolt answered %s", request.type, request.envelope_id, response.status)
        finally:
            self.handled.finish(keys, entry, acked=acked, payload=payload)
        if acked:
            _send_ack(client, request, payload)
            metrics.ACK_LATENCY.observe(time.perf_counter() - started)

    def _answer_again(self, client: BaseSocketModeClient, request: SocketModeRequest, entry: _Entry) -> None:
        entry.done.wait(self.duplicate_wait)
        retry = f", retry {request.retry_attempt}" if request.retry_attempt else ""
        if entry.done.is_set() and entry.acked:
            log.info("Slack delivered %s %s again%s: answered with the first ack", request.type, request.envelope_id, retry)
            _send_ack(client, request, entry.payload)
        else:
            log.info("Slack delivered %s %s again%s while the first is still running", request.type, request.envelope_id, retry)


def _dispatch(bolt: App, request: SocketModeRequest) -> BoltResponse | None:
    # No retry headers: bot/runtime/app.py's middleware drops retried events, which over Socket Mode may be the
    # first delivery that reached us; re-deliveries are told apart by their ids instead (`handled`).
    try:
        return bolt.dispatch(BoltRequest(mode="socket_mode", body=request.payload))
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        # As in bot/runtime/web.py: a payload of another shape than Slack's makes Bolt's middleware raise.
        log.warning("Socket Mode %s Bolt could not read: %s: %s", request.type, exc.__class__.__name__, exc)
        return None


def _send_ack(client: BaseSocketModeClient, request: SocketModeRequest, payload: dict[str, Any] | None) -> None:
    try:
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))
    except SlackClientNotConnectedError:
        log.warning("the ack of %s %s was not sent: the connection closed (Slack delivers it again)", request.type, request.envelope_id)


# -- the ack workers ---------------------------------------------------------------------------------


class AckPool(ThreadPoolExecutor):
    """The ack workers: each envelope counts on the acks gate from its arrival until it is handled."""

    def __init__(self, gate: AckGate | None, max_workers: int):
        super().__init__(max_workers=max_workers, thread_name_prefix="socket-ack")
        self.gate = gate

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        gate = self.gate
        if gate is None:
            return super().submit(fn, *args, **kwargs)

        def counted() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                gate.answered()

        gate.arrived()
        try:
            return super().submit(counted)
        except BaseException:
            gate.answered()
            raise
