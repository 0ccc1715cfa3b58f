"""The pieces of the Socket Mode link that need no server: re-delivery memory, ack payloads, the socket wrapper."""

from __future__ import annotations

import errno
import socket
import threading

import pytest
from slack_bolt import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.slack.acks import AckGate
from bot.slack.socket_envelopes import AckPool
from bot.slack.socket_mode import HandledEnvelopes, _Socket, ack_payload, envelope_keys


def _event(envelope_id: str, event_id: str, retry: int = 0) -> SocketModeRequest:
    return SocketModeRequest("events_api", envelope_id, {"type": "event_callback", "event_id": event_id}, retry_attempt=retry)


def test_a_redelivered_envelope_gets_the_first_answer_and_an_event_retry_is_known_by_its_event_id() -> None:
    handled = HandledEnvelopes()
    first, entry = handled.claim(["envelope:E1"])
    assert first
    handled.finish(["envelope:E1"], entry, acked=True, payload={"response_action": "errors"})
    again, earlier = handled.claim(["envelope:E1"])
    assert not again and earlier.done.is_set() and earlier.payload == {"response_action": "errors"}

    keys = envelope_keys(_event("E2", "Ev9"))
    assert keys == ["envelope:E2", "event:Ev9"]
    first, entry = handled.claim(keys)
    handled.finish(keys, entry, acked=True, payload=None)
    retried = envelope_keys(_event("E3", "Ev9", retry=1))  # a new envelope id, the same event
    again, earlier = handled.claim(retried)
    assert not again and earlier is entry
    assert handled.claim(["envelope:E3"])[0] is False  # and the new envelope id is known from now on


def test_a_delivery_that_was_not_acknowledged_is_forgotten_so_that_slacks_retry_runs() -> None:
    handled = HandledEnvelopes()
    _first, entry = handled.claim(["envelope:E1"])
    handled.finish(["envelope:E1"], entry, acked=False, payload=None)
    assert handled.claim(["envelope:E1"])[0] is True


def test_the_memory_keeps_the_last_deliveries_only() -> None:
    handled = HandledEnvelopes(limit=3)
    for n in range(5):
        handled.claim([f"envelope:E{n}"])
    assert handled.claim(["envelope:E0"])[0] is True
    assert handled.claim(["envelope:E4"])[0] is False


def test_the_ack_carries_bolts_json_body_or_its_text() -> None:
    assert ack_payload(BoltResponse(status=200, body="")) is None
    assert ack_payload(BoltResponse(status=200, body={"options": []})) == {"options": []}
    assert ack_payload(BoltResponse(status=200, body="hello")) == {"text": "hello"}


def test_the_socket_wrapper_turns_end_of_file_into_an_error_and_waits_a_short_while_at_most() -> None:
    ours, theirs = socket.socketpair()
    gate = AckGate()
    wrapped = _Socket(ours, gate, poll=0.05)
    with pytest.raises(TimeoutError):
        wrapped.recv(10)
    theirs.sendall(b"abcdef")
    assert wrapped.recv(3) == b"abc"
    assert gate.answering == 1  # bytes still wait to be read: the work after the acks waits too
    assert wrapped.recv(3) == b"def"
    with pytest.raises(TimeoutError):
        wrapped.recv(10)
    assert gate.answering == 0  # all read and handed over
    theirs.close()
    with pytest.raises(ConnectionAbortedError):
        wrapped.recv(10)
    wrapped.close()
    with pytest.raises(OSError) as closed:
        wrapped.recv(10)
    assert closed.value.errno == errno.EBADF  # what the SDK expects of a socket it closed itself
    assert gate.answering == 0


def test_each_message_counts_on_the_acks_gate_until_its_worker_is_done() -> None:
    gate = AckGate(max_wait=5)
    release = threading.Event()
    pool = AckPool(gate, max_workers=2)
    try:
        futures = [pool.submit(release.wait, 5) for _ in range(3)]
        assert gate.answering == 3  # the third is queued and counts too
        release.set()
        for f in futures:
            f.result(5)
        assert gate.answering == 0
    finally:
        pool.shutdown()
