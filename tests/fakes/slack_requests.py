"""Build, sign and send requests shaped exactly like Slack's (slash commands, interactivity, events).

Body builders return the raw body string as Slack sends it: slash commands as flat form fields,
interactivity as a single form field `payload=<JSON>`, Events API envelopes as JSON. `sign()` makes
the `X-Slack-*` headers; `SlackSender` posts over real HTTP; `bolt_request()` wraps a body for
`App.dispatch()` without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_bolt.request import BoltRequest

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
APP_ID = "A0FAKEAPP"
# Loopback port 9 (discard) refuses at once: a listener that calls respond() without a test-provided
# response_url fails fast instead of reaching hooks.slack.com.
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response_url/unset"
DEFAULT_MESSAGE_TS = "1700000000.000100"

_counter = itertools.count(1)


def new_trigger_id() -> str:
    """A unique trigger id in Slack's shape ("<seconds>.<number>.<hex>")."""
    return f"{int(time.time())}.{next(_counter)}.{uuid.uuid4().hex}"


# -- signing ---------------------------------------------------------------------------------------------


def sign(body: str | bytes, secret: str, timestamp: int | None = None, *, content_type: str | None = None) -> dict[str, str]:
    """Headers Slack would send with `body`: v0 HMAC-SHA256 signature, timestamp, Content-Type.

    The Content-Type is JSON when the body starts with "{", else form-encoded, unless given. Bytes
    are signed as they are (they need not be UTF-8).
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body if isinstance(body, bytes) else body.encode()
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    if content_type is None:
        content_type = JSON if raw.lstrip().startswith(b"{") else FORM
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def bolt_request(body: str, secret: str, *, timestamp: int | None = None) -> BoltRequest:
    """A signed `BoltRequest` for `App(signing_secret=secret).dispatch(...)`."""
    headers: dict[str, str | Sequence[str]] = dict(sign(body, secret, timestamp))
    return BoltRequest(body=body, headers=headers)


# -- state.values helpers ----------------------------------------------------------------------------------


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": text if text is not None else value, "emoji": True},
        "value": value,
    }


def plain(value: str | None) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def select(value: str | None, text: str | None = None) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": None if value is None else _option(value, text)}


def external(value: str | None, text: str | None = None) -> dict[str, Any]:
    return {"type": "external_select", "selected_option": None if value is None else _option(value, text)}


def conversation(channel_id: str | None) -> dict[str, Any]:
    return {"type": "conversations_select", "selected_conversation": channel_id}


def channel(channel_id: str | None) -> dict[str, Any]:
    return {"type": "channels_select", "selected_channel": channel_id}


def user(user_id: str | None) -> dict[str, Any]:
    return {"type": "users_select", "selected_user": user_id}


def checkboxes(*values: str) -> dict[str, Any]:
    return {"type": "checkboxes", "selected_options": [_option(v) for v in values]}


def number(value: int | float | str | None) -> dict[str, Any]:
    return {"type": "number_input", "value": None if value is None else str(value)}


def email(value: str | None) -> dict[str, Any]:
    return {"type": "email_text_input", "value": value}


def radio(value: str | None, text: str | None = None) -> dict[str, Any]:
    return {"type": "radio_buttons", "selected_option": None if value is None else _option(value, text)}


# -- body builders -------------------------------------------------------------------------------------------


def _user(team_id: str, user_id: str, user_name: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _team(team_id: str) -> dict[str, Any]:
    return {"id": team_id, "domain": team_id.lower()}


def _channel_name(channel_id: str) -> str:
    if channel_id == "C0GENERAL":
        return "general"
    return "directmessage" if channel_id.startswith("D") else channel_id.lower()


def _payload(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def slash_command(
    *,
    team_id: str,
    user_id: str,
    text: str,
    command: str = "/imocha",
    channel_id: str = "C0GENERAL",
    trigger_id: str | None = None,
    response_url: str | None = None,
    user_name: str = "u",
    channel_name: str | None = None,
) -> str:
    """Form body of a slash command, fields in Slack's order."""
    return urlencode(
        {
            "token": "verification-token",
            "team_id": team_id,
            "team_domain": team_id.lower(),
            "channel_id": channel_id,
            "channel_name": channel_name or _channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url or DEFAULT_RESPONSE_URL,
            "trigger_id": trigger_id or new_trigger_id(),
        }
    )


def _action(action_type: str, action_id: str, block_id: str, value: Any) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": f"{time.time():.6f}",
    }
    values = value if isinstance(value, list | tuple) else [value]
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": "Button", "emoji": True}
        if value is not None:
            action["value"] = value
    elif action_type in ("static_select", "external_select", "radio_buttons", "overflow"):
        action["selected_option"] = None if value is None else _option(str(value))
    elif action_type in ("checkboxes", "multi_static_select", "multi_external_select"):
        action["selected_options"] = [_option(str(v)) for v in values if v is not None]
    elif action_type == "users_select":
        action["selected_user"] = value
    elif action_type == "conversations_select":
        action["selected_conversation"] = value
    elif action_type == "channels_select":
        action["selected_channel"] = value
    elif action_type == "datepicker":
        action["selected_date"] = value
    else:
        action["value"] = value
    return action


def _full_view(view: dict[str, Any], team_id: str, state_values: dict[str, Any] | None) -> dict[str, Any]:
    view_id = view.get("id") or "V1"
    full = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": "h",
        "title": {"type": "plain_text", "text": "iMocha"},
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": "BBOT",
        **view,
    }
    if state_values is not None:
        full["state"] = {"values": state_values}
    return full


def block_action(
    *,
    team_id: str,
    user_id: str,
    action_id: str,
    value: Any,
    block_id: str = "b",
    channel_id: str | None = None,
    message_ts: str | None = None,
    view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    action_type: str = "button",
    message: dict[str, Any] | None = None,
    state_values: dict[str, Any] | None = None,
    user_name: str = "u",
) -> str:
    """Form body (`payload=`) of a block_actions request from a message, or from a view when `view` is given.

    `value` becomes the element's value (button) or selection (`action_type` = static_select,
    checkboxes, users_select, conversations_select, ...). A view is completed into Slack's full view
    object (id, state, hash, app_installed_team_id ...); `message` replaces the default source message.
    """
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(team_id, user_id, user_name),
        "api_app_id": APP_ID,
        "token": "verification-token",
        "trigger_id": trigger_id or new_trigger_id(),
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if view is not None:
        full = _full_view(view, team_id, state_values)
        payload["container"] = {"type": "view", "view_id": full["id"]}
        payload["view"] = full
        if response_url:
            payload["response_url"] = response_url
    else:
        channel_id = channel_id or "C0GENERAL"
        message_ts = message_ts or DEFAULT_MESSAGE_TS
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": _channel_name(channel_id)}
        payload["message"] = message or {
            "type": "message",
            "ts": message_ts,
            "user": "UBOT",
            "bot_id": "BBOT",
            "text": "",
            "blocks": [],
        }
        payload["state"] = {"values": state_values or {}}
        payload["response_url"] = response_url or DEFAULT_RESPONSE_URL
    payload["actions"] = [_action(action_type, action_id, block_id, value)]
    return _payload(payload)


def view_submission(
    *,
    team_id: str,
    user_id: str,
    callback_id: str,
    values: dict[str, Any],
    private_metadata: str = "",
    view_id: str = "V1",
    trigger_id: str | None = None,
    hash: str = "h",
    blocks: list[dict[str, Any]] | None = None,
    response_urls: list[dict[str, Any]] | None = None,
    user_name: str = "u",
) -> str:
    """Form body (`payload=`) of a view_submission; `values` is `view.state.values`."""
    view = _full_view(
        {
            "id": view_id,
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "hash": hash,
            "blocks": blocks or [],
            "submit": {"type": "plain_text", "text": "Submit"},
            "close": {"type": "plain_text", "text": "Cancel"},
        },
        team_id,
        values,
    )
    return _payload(
        {
            "type": "view_submission",
            "team": _team(team_id),
            "user": _user(team_id, user_id, user_name),
            "api_app_id": APP_ID,
            "token": "verification-token",
            "trigger_id": trigger_id or new_trigger_id(),
            "view": view,
            "response_urls": response_urls or [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
    )


def block_suggestion(
    *,
    team_id: str,
    user_id: str,
    action_id: str,
    value: str,
    block_id: str = "b",
    view_id: str = "V1",
    callback_id: str = "",
    user_name: str = "u",
) -> str:
    """Form body (`payload=`) of an external_select options request from a modal (`value` = typed text)."""
    return _payload(
        {
            "type": "block_suggestion",
            "user": _user(team_id, user_id, user_name),
            "container": {"type": "view", "view_id": view_id},
            "api_app_id": APP_ID,
            "token": "verification-token",
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
            "team": _team(team_id),
            "enterprise": None,
            "is_enterprise_install": False,
            "view": _full_view({"id": view_id, "callback_id": callback_id}, team_id, None),
        }
    )


def event_callback(*, team_id: str, event: dict[str, Any], event_id: str | None = None) -> str:
    """JSON body of an Events API delivery wrapping `event`."""
    now = int(time.time())
    return json.dumps(
        {
            "token": "verification-token",
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(_counter):08d}",
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": "UBOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }
    )


def app_home_opened(*, user_id: str, tab: str = "home", view: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `app_home_opened` event for `event_callback(event=...)`."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": "D" + user_id,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return event


def url_verification(challenge: str) -> str:
    return json.dumps({"token": "verification-token", "challenge": challenge, "type": "url_verification"})


# -- sending ----------------------------------------------------------------------------------------


class SlackSender:
    """Signs and POSTs Slack requests to a running bot over real HTTP."""

    def __init__(self, base_url: str, signing_secret: str, path: str = "/slack/events") -> None:
        self.url = base_url.rstrip("/") + path
        self.signing_secret = signing_secret
        self._client = httpx.Client(timeout=10.0)

    def post(
        self,
        body: str,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST `body` signed; `signature`, `timestamp`, `headers` override what is sent."""
        sent = sign(body, self.signing_secret, timestamp, content_type=content_type)
        if signature is not None:
            sent["X-Slack-Signature"] = signature
        sent.update(headers or {})
        return self._client.post(self.url, content=body.encode(), headers=sent)

    def command(self, **kwargs: Any) -> httpx.Response:
        return self.post(slash_command(**kwargs), content_type=FORM)

    def action(self, **kwargs: Any) -> httpx.Response:
        return self.post(block_action(**kwargs), content_type=FORM)

    def submit(self, **kwargs: Any) -> httpx.Response:
        return self.post(view_submission(**kwargs), content_type=FORM)

    def suggest(self, **kwargs: Any) -> httpx.Response:
        return self.post(block_suggestion(**kwargs), content_type=FORM)

    def event(self, **kwargs: Any) -> httpx.Response:
        return self.post(event_callback(**kwargs), content_type=JSON)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SlackSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
