"""The fake Socket Mode server, driven by slack_sdk's own built-in client (not the bot)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode

APP_TOKEN = "xapp-1-A0FAKEAPP-fake"


@pytest.fixture
def server() -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    with FakeSlack() as slack, FakeSocketMode() as sm:
        slack.add_app_token(APP_TOKEN)
        slack.use_socket_mode(sm)
        yield slack, sm


def _client(slack: FakeSlack, answer: dict[str, object] | None = None, delay: float = 0.0) -> SocketModeClient:
    client = SocketModeClient(app_token=APP_TOKEN, web_client=WebClient(base_url=slack.api_url), auto_reconnect_enabled=False)

    def ack(c: BaseSocketModeClient, request: SocketModeRequest) -> None:
        time.sleep(delay)
        c.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=answer))

    client.socket_mode_request_listeners.append(ack)
    return client


def _close(client: SocketModeClient, sm: FakeSocketMode) -> None:
    # Without the first two lines close() waits up to 3 s for the SDK's blocked read and 1 s for its queue.
    sm.drop()
    client.closed = True
    client.message_queue.put(None)
    client.close()


def test_apps_connections_open_hands_out_a_one_time_url_of_the_server_which_says_hello_and_gets_acks(
    server: tuple[FakeSlack, FakeSocketMode],
) -> None:
    slack, sm = server
    hellos: list[str] = []
    client = _client(slack, answer={"text": "ok"})
    client.on_message_listeners.append(hellos.append)
    try:
        url = client.issue_new_wss_url()
        assert url.startswith(sm.url + "?ticket=") and slack.calls_to("apps.connections.open")[0].token == APP_TOKEN
        client.wss_uri = url
        client.connect()
        sm.wait_connected()
        delivery = sm.deliver("slash_commands", {"command": "/imocha", "text": "help"})
        ack = delivery.wait_ack()
        assert ack.envelope_id == delivery.envelope_id and ack.payload == {"text": "ok"}
        assert delivery.envelope["accepts_response_payload"] is True
        assert json.loads(hellos[0])["type"] == "hello"
        deadline = time.monotonic() + 3
        while sm.live[0].pings == 0 and time.monotonic() < deadline:  # the client pings on connect; the server pongs
            time.sleep(0.01)
        assert sm.live[0].pings >= 1
        assert sm.problems == [] and sm.unacked() == []
    finally:
        _close(client, sm)
    # the ticket was used up: the same URL does not connect twice
    with socket.create_connection(("127.0.0.1", sm.port)) as raw:
        raw.sendall(f"GET {url.split(str(sm.port), 1)[1]} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".encode())
        raw.sendall(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 401")


def test_late_acks_and_acks_for_unknown_envelopes_are_problems(server: tuple[FakeSlack, FakeSocketMode]) -> None:
    slack, sm = server
    sm.ack_deadline = 0.2
    client = _client(slack, delay=0.3)
    try:
        client.wss_uri = client.issue_new_wss_url()
        client.connect()
        sm.wait_connected()
        delivery = sm.deliver("events_api", {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_home_opened"}})
        assert delivery.envelope["retry_attempt"] == 0
        delivery.wait_ack(2)
        client.send_socket_mode_response({"envelope_id": "never-sent"})
        deadline = time.monotonic() + 2
        while len(sm.problems) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any("acknowledged after" in p for p in sm.problems)
        assert any("never-sent" in p for p in sm.problems)
    finally:
        _close(client, sm)
