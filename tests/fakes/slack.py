"""A local fake of the Slack Web API over real HTTP, for wiring tests of the bot through a real WebClient.

Point `WebClient(base_url=fake.api_url, token=...)` (or `App(client=...)`) at it. It keeps a small
directory (teams, users, channels), enforces tokens and team isolation, stores what the bot posts,
validates every Block Kit payload with Slack's limits (`tests.fakes.blockkit`), records every call and
can inject rate limits, server errors and latency. IDs are global, like Slack's: a user or channel id
belongs to exactly one team.

State is shared between the server thread and the test thread, so every read returns a copy.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.runtime.serving import ServerThread
from tests.fakes.blockkit import MAX_MESSAGE_TEXT, MAX_VIEW_BYTES, validate_blocks, validate_view

APP_ID = "A0FAKEAPP"
DEFAULT_SCOPES = (
    "chat:write,chat:write.public,commands,im:write,users:read,users:read.email,channels:read,groups:read,files:write,channels:join"
)
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "files")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Call:
    """One Web API request as the fake received it (form values are strings; JSON fields are decoded)."""

    method: str
    token: str | None
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class Message:
    """A message's current content. For ephemerals, `user` is the recipient; otherwise the author."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    user: str | None = None
    updates: int = 0
    files: list[str] | None = None  # ids of files shared with the message (files.completeUploadExternal)


@dataclass
class UploadedFile:
    """A file uploaded with files.getUploadURLExternal, its upload URL and files.completeUploadExternal."""

    id: str
    team_id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    completed: bool = False


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST to a fake response_url."""

    id: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class _Team:
    id: str
    name: str
    bot_user_id: str
    bot_id: str

    @property
    def domain(self) -> str:
        return re.sub(r"[^a-z0-9-]", "", self.name.lower()) or "workspace"


@dataclass
class _User:
    id: str
    team_id: str
    name: str
    email: str | None
    flags: dict[str, bool]


@dataclass
class _Channel:
    id: str
    team_id: str
    name: str
    members: list[str]
    is_private: bool = False
    im_user: str | None = None


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None
    error: str
    empty_body: bool


@dataclass
class _ViewMeta:
    team_id: str
    how: str  # "open", "push" or "publish"
    user_id: str | None = None


class SlackError(Exception):
    """Raised inside a method handler to answer `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.status, self.extra = error, status, extra


class FakeSlack:
    """The fake Web API server. Use as a context manager or call `start()` / `stop()`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self._host, self._port = host, port
        self._server: ServerThread | None = None
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.reset()
        self._methods: dict[str, Callable[[_Team, dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.join": self._conversations_join,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "functions.completeSuccess": self._functions_complete_success,
            "functions.completeError": self._functions_complete_error,
        }
        self.app = Starlette(
            routes=[
                Route("/api/{method:path}", self._api, methods=["GET", "POST"]),
                Route("/response_url/{rid:path}", self._response_url, methods=["POST"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
            ]
        )

    def reset(self) -> None:
        """Forget everything (directory, messages, views, calls, faults, latency); the server keeps running.

        Lets one started fake serve a whole test module: reset it per test instead of restarting.
        """
        with self._lock:
            self.latency: float = 0.0
            # View ids restart at V1 so the first modal a test opens matches slack_requests' default view_id.
            self._view_ids = itertools.count(1)
            self._teams: dict[str, _Team] = {}
            self._tokens: dict[str, str] = {}  # bot token -> team id
            self._app_tokens: set[str] = set()
            self._revoked: set[str] = set()
            self._users: dict[str, _User] = {}
            self._channels: dict[str, _Channel] = {}
            self._messages: dict[str, list[Message]] = {}
            self._ephemerals: list[Message] = []
            self._views: dict[str, dict[str, Any]] = {}
            self._view_meta: dict[str, _ViewMeta] = {}
            self._homes: dict[str, str] = {}  # user id -> view id
            self._used_triggers: set[str] = set()
            self._expired_triggers: set[str] = set()
            self._faults: dict[str, list[_Fault]] = {}
            self._hold: Callable[[str, dict[str, Any]], bool] | None = None
            self._holding = 0  # calls waiting in a hold now
            self._oauth: tuple[str, str] | None = None
            self._oauth_codes: dict[str, str] = {}
            self._oauth_installers: dict[str, str] = {}
            self._socket_mode: Callable[[], str] | None = None
            self._calls: list[Call] = []
            self._responses: list[ResponseUrlPost] = []
            self._violations: list[str] = []
            self.issued_tokens: list[str] = []
            self._files: dict[str, UploadedFile] = {}
            # function_execution_id -> ("success", outputs) or ("error", message); and the declared outputs
            self._executions: dict[str, tuple[str, Any]] = {}
            self._pending_executions: dict[str, dict[str, str]] = {}
            # A fixed URL for apps.connections.open to hand out (use_socket_mode() serves a real one); by
            # default a path on this server, which answers the WebSocket handshake with 404.
            self.socket_mode_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is None:
            self._server = ServerThread(self.app, host=self._host, port=self._port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return self._server.url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, rid: str = "1") -> str:
        return f"{self.url}/response_url/{rid}"

    # -- directory ---------------------------------------------------------------------------------

    def add_team(
        self,
        team_id: str,
        bot_token: str,
        *,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_name: str = "Acme",
    ) -> None:
        with self._lock:
            self._teams[team_id] = _Team(team_id, team_name, bot_user_id, bot_id)
            self._tokens[bot_token] = team_id
            self._revoked.discard(bot_token)

    def add_user(
        self,
        user_id: str,
        *,
        team_id: str,
        email: str | None = None,
        name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        is_bot: bool = False,
    ) -> None:
        flags = {
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": is_restricted,
            "is_ultra_restricted": is_ultra_restricted,
            "is_bot": is_bot,
        }
        with self._lock:
            self._require_team(team_id)
            self._users[user_id] = _User(user_id, team_id, name or user_id.lower(), email, flags)

    def add_channel(
        self,
        channel_id: str,
        *,
        team_id: str,
        name: str,
        members: Iterable[str] = (),
        is_private: bool = False,
    ) -> None:
        """Add a channel. For a private channel the bot can see, include the team's bot user id in members."""
        with self._lock:
            self._require_team(team_id)
            self._channels[channel_id] = _Channel(channel_id, team_id, name, list(dict.fromkeys(members)), is_private)

    def add_member(self, channel_id: str, user_id: str) -> None:
        with self._lock:
            members = self._channels[channel_id].members
            if user_id not in members:
                members.append(user_id)

    def add_message(
        self,
        channel_id: str,
        *,
        text: str,
        user: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Seed a message (say, from a person) in a channel or IM; returns its ts."""
        with self._lock:
            if channel_id not in self._channels:
                raise KeyError(f"unknown channel {channel_id!r}: add it (or open the IM) first")
            message = Message(channel_id, self._next_ts(), text, blocks, thread_ts, False, user)
            self._messages.setdefault(channel_id, []).append(message)
            return message.ts

    def add_app_token(self, xapp_token: str) -> None:
        if not xapp_token.startswith("xapp-"):
            raise ValueError("app-level tokens start with xapp-")
        with self._lock:
            self._app_tokens.add(xapp_token)

    def use_socket_mode(self, server: Any) -> None:
        """Make apps.connections.open hand out `server.issue_url()` (a `tests.fakes.socket_mode.FakeSocketMode`,
        or anything with that method) instead of a URL nothing listens on."""
        with self._lock:
            self._socket_mode = server.issue_url

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._revoked.add(token)

    def expire_trigger(self, trigger_id: str) -> None:
        with self._lock:
            self._expired_triggers.add(trigger_id)

    def set_oauth(
        self,
        client_id: str,
        client_secret: str,
        code_to_team: dict[str, str],
        *,
        installers: dict[str, str] | None = None,
    ) -> None:
        """Accept `code`s for oauth.v2.access; each code installs into its team once (installer per code)."""
        with self._lock:
            self._oauth = (client_id, client_secret)
            self._oauth_codes.update(code_to_team)
            self._oauth_installers.update(installers or {})

    # -- fault injection -----------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: int | None = 1,
        error: str = "ratelimited",
        empty_body: bool = False,
    ) -> None:
        """Make the next `count` calls of `method` ("*" = any, "response_url" = response URLs) fail.

        429 carries `Retry-After: <retry_after>` (omitted when None); 5xx answers `internal_error`
        unless `error` is given, or an empty body with `empty_body=True`; status 200 answers
        `{"ok": false, "error": error}` like an ordinary Slack error.
        """
        if status >= 500 and error == "ratelimited":
            error = "internal_error"
        with self._lock:
            self._faults.setdefault(method, []).append(
                _Fault(status, count, None if retry_after is None else int(retry_after), error, empty_body)
            )

    def hold(self, match: Callable[[str, dict[str, Any]], bool]) -> None:
        """Hold the calls for which `match(method, body)` is true, unrecorded and unanswered, until `release()`.

        A held call whose client hung up meanwhile (the bot was killed) is dropped on release: Slack
        never received it. One whose client still waits is then handled as usual.
        """
        with self._lock:
            self._hold = match

    def release(self) -> None:
        with self._lock:
            self._hold = None

    @property
    def holding(self) -> int:
        """How many calls wait in the hold now."""
        with self._lock:
            return self._holding

    # -- recording and state -------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def count(self, method: str) -> int:
        return len(self.calls_to(method))

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def violations(self) -> list[str]:
        """Payloads Slack would have rejected as the bot's fault (invalid blocks/views, no text, too long)."""
        with self._lock:
            return list(self._violations)

    @property
    def responses(self) -> list[ResponseUrlPost]:
        with self._lock:
            return list(self._responses)

    def responses_to(self, rid: str) -> list[ResponseUrlPost]:
        return [r for r in self.responses if r.id == rid]

    def messages(self, channel: str) -> list[Message]:
        """Every message in the channel (top level and thread replies), oldest first, as currently shown."""
        with self._lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def top_level(self, channel: str) -> list[Message]:
        """What the channel itself shows: top-level messages and broadcast thread replies."""
        return [m for m in self.messages(channel) if m.thread_ts is None or m.reply_broadcast]

    def message(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages(channel) if m.ts == ts), None)

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages(channel) if m.thread_ts == ts]

    def dms_to(self, user_id: str) -> list[Message]:
        return self.messages(_im_id(user_id))

    def ephemerals(self, user_id: str) -> list[Message]:
        with self._lock:
            return copy.deepcopy([m for m in self._ephemerals if m.user == user_id])

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._views)

    def opened_views(self) -> list[dict[str, Any]]:
        """Views created by views.open, in order, with their current content."""
        return self._views_by("open")

    def pushed_views(self) -> list[dict[str, Any]]:
        return self._views_by("push")

    def published_home(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def start_function(self, team_id: str, execution_id: str, *, outputs: dict[str, str], token: str | None = None) -> str:
        """Run a custom function as Workflow Builder would: returns the execution's just-in-time token
        (valid for functions.complete* and ordinary calls of the team). `outputs` maps each declared
        output's name to its manifest type; completeSuccess must give every one, with a string value."""
        token = token or f"xwfp-{execution_id}"
        with self._lock:
            self._require_team(team_id)
            self._tokens[token] = team_id
            self._pending_executions[execution_id] = dict(outputs)
        return token

    def execution(self, execution_id: str) -> tuple[str, Any] | None:
        """("success", outputs) or ("error", message) once the function completed, else None."""
        with self._lock:
            return copy.deepcopy(self._executions.get(execution_id))

    def files(self, channel: str | None = None) -> list[UploadedFile]:
        """Uploaded files, oldest first; with `channel`, only those shared there."""
        with self._lock:
            return copy.deepcopy([f for f in self._files.values() if channel is None or f.channel == channel])

    def team_of(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    # -- waiting ---------------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[FakeSlack], bool], timeout: float = 15.0, *, message: str = "") -> FakeSlack:
        """Poll `predicate(self)` until it is true; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(message or f"condition not met within {timeout}s")
            time.sleep(0.01)
        return self

    def wait_for_calls(self, method: str, n: int, timeout: float = 15.0) -> list[Call]:
        """Wait until at least `n` calls of `method` arrived and return them all."""
        try:
            self.wait_for(lambda fake: fake.count(method) >= n, timeout)
        except AssertionError:
            raise AssertionError(f"expected {n} calls to {method} within {timeout}s, got {self.count(method)}") from None
        return self.calls_to(method)

    # -- HTTP ------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = _parse_body(raw, headers.get("content-type", ""), dict(request.query_params))
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        token = _bearer(headers.get("authorization")) or body.get("token")
        if await self._held(method, body, request):
            return PlainTextResponse("dropped: the client hung up while the call was held", status_code=499)
        with self._lock:
            self._calls.append(Call(method, token, body, headers, time.time()))
            fault = self._take_fault(method)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return _fault_response(fault)
        with self._lock:
            try:
                payload, extra_headers = self._dispatch(method, token, body, headers)
            except SlackError as e:
                return JSONResponse({"ok": False, "error": e.error, **e.extra}, status_code=e.status)
            except Exception as e:  # a bug in the fake: make it loud in the test, not a bare 500
                return JSONResponse({"ok": False, "error": f"fake_slack_bug: {e!r}"}, status_code=500)
        return JSONResponse({"ok": True, **payload}, headers=extra_headers)

    async def _response_url(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = _parse_body(raw, headers.get("content-type", ""), {})
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        with self._lock:
            self._responses.append(ResponseUrlPost(rid, body, headers, time.time()))
            fault = self._take_fault("response_url")
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return _fault_response(fault)
        blocks = body.get("blocks")
        if blocks is not None:
            problems = validate_blocks(blocks, surface="message")
            if problems:
                self._violate("response_url", problems)
                return PlainTextResponse("invalid_blocks", status_code=400)
        if not body.get("delete_original") and not body.get("text") and not blocks:
            self._violate("response_url", ["/text: a message needs text or blocks (no_text)"])
            return PlainTextResponse("no_text", status_code=400)
        return PlainTextResponse("ok")

    async def _held(self, method: str, body: dict[str, Any], request: Request) -> bool:
        """Wait while the call is held; True when it is to be dropped (its client is gone)."""
        with self._lock:
            if self._hold is None or not self._hold(method, body):
                return False
            self._holding += 1
        try:
            while True:
                with self._lock:
                    if self._hold is None:
                        break
                await asyncio.sleep(0.02)
            return await request.is_disconnected()
        finally:
            with self._lock:
                self._holding -= 1

    async def _upload(self, request: Request) -> Response:
        """The upload URL files.getUploadURLExternal hands out: takes the raw bytes of one PNG."""
        file_id = request.path_params["file_id"]
        raw = await request.body()
        with self._lock:
            self._calls.append(Call("upload", None, {"file_id": file_id, "bytes": len(raw)}, dict(request.headers), time.time()))
            fault = self._take_fault("upload")
            if fault is not None:
                return _fault_response(fault)
            upload = self._files.get(file_id)
            if upload is None or upload.completed:
                return PlainTextResponse("invalid_upload_url", status_code=404)
            problems = []
            if len(raw) != upload.length:
                problems.append(f"/upload: {len(raw)} bytes arrived, {upload.length} were announced")
            if not raw.startswith(PNG_SIGNATURE):
                problems.append(f"/upload: {upload.filename} is not a PNG")
            if problems:
                self._violate("upload", problems)
                return PlainTextResponse("invalid_file", status_code=400)
            upload.data = raw
        return PlainTextResponse(f"OK - {len(raw)}")

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
                return fault
        return None

    def _dispatch(
        self, method: str, token: str | None, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        if method == "oauth.v2.access":
            return self._oauth_v2_access(body, headers), {}
        if method == "apps.connections.open":
            return self._apps_connections_open(token), {}
        if method == "api.test":  # needs no token; `imocha-bot run` asks it in OAuth mode
            return {"args": {k: v for k, v in body.items() if k != "token"}}, {}
        if method not in self._methods:
            raise SlackError("unknown_method")
        if not token:
            raise SlackError("not_authed")
        if token in self._revoked:
            raise SlackError("token_revoked")
        if token in self._app_tokens:
            raise SlackError("not_allowed_token_type")
        team_id = self._tokens.get(token)
        if team_id is None:
            raise SlackError("invalid_auth")
        payload = self._methods[method](self._teams[team_id], body)
        scopes = {"x-oauth-scopes": DEFAULT_SCOPES} if method == "auth.test" else {}
        return payload, scopes

    def _violate(self, method: str, problems: list[str]) -> None:
        with self._lock:
            self._violations.extend(f"{method}: {p}" for p in problems)

    # -- lookups ----------------------------------------------------------------------------------------

    def _require_team(self, team_id: str) -> _Team:
        if team_id not in self._teams:
            raise KeyError(f"unknown team {team_id!r}: call add_team first")
        return self._teams[team_id]

    def _user(self, team: _Team, user_id: Any) -> _User:
        user = self._users.get(user_id) if isinstance(user_id, str) else None
        if user is None and user_id == team.bot_user_id:
            flags = {"is_bot": True}
            return _User(team.bot_user_id, team.id, "imocha", None, flags)
        if user is None or user.team_id != team.id:
            raise SlackError("user_not_found")
        return user

    def _channel(self, team: _Team, channel_id: Any, *, posting: bool = False) -> _Channel:
        if not isinstance(channel_id, str) or not channel_id:
            raise SlackError("channel_not_found")
        if channel_id.startswith("#"):
            found = next(
                (c for c in self._channels.values() if c.team_id == team.id and c.name == channel_id[1:]),
                None,
            )
            channel_id = found.id if found else ""
        if posting and channel_id[:1] in ("U", "W") and channel_id not in self._channels:
            try:
                user = self._user(team, channel_id)
            except SlackError:
                raise SlackError("channel_not_found") from None
            return self._open_im(team, user.id)
        channel = self._channels.get(channel_id)
        if channel is None or channel.team_id != team.id:
            raise SlackError("channel_not_found")
        if channel.is_private and team.bot_user_id not in channel.members:
            raise SlackError("channel_not_found")
        return channel

    def _open_im(self, team: _Team, user_id: str) -> _Channel:
        im_id = _im_id(user_id)
        if im_id not in self._channels:
            self._channels[im_id] = _Channel(im_id, team.id, "", [user_id, team.bot_user_id], False, user_id)
        return self._channels[im_id]

    def _find_message(self, channel: _Channel, ts: Any) -> Message:
        for message in self._messages.get(channel.id, []):
            if message.ts == ts:
                return message
        raise SlackError("message_not_found")

    def _next_ts(self) -> str:
        n = next(self._ts) * 100
        return f"{1700000000 + n // 1_000_000}.{n % 1_000_000:06d}"

    def _views_by(self, how: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy([v for vid, v in self._views.items() if self._view_meta[vid].how == how])

    # -- message content ----------------------------------------------------------------------------------

    def _content(self, method: str, body: dict[str, Any], *, required: bool = True) -> tuple[Any, Any]:
        text, blocks = body.get("text"), body.get("blocks")
        if required and not text and not blocks and not body.get("attachments"):
            self._violate(method, ["/text: a message needs text or blocks (no_text)"])
            raise SlackError("no_text")
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            self._violate(method, [f"/text: {len(text)} characters is over {MAX_MESSAGE_TEXT} (msg_too_long)"])
            raise SlackError("msg_too_long")
        if blocks is not None:
            problems = validate_blocks(blocks, surface="message")
            if problems:
                self._violate(method, problems)
                raise SlackError("invalid_blocks", response_metadata=_metadata(problems))
        return text, blocks

    def _message_json(self, team: _Team, message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": message.user,
            "bot_id": team.bot_id,
            "app_id": APP_ID,
            "text": message.text or "",
            "ts": message.ts,
            "team": team.id,
        }
        if message.blocks is not None:
            out["blocks"] = message.blocks
        if message.thread_ts:
            out["thread_ts"] = message.thread_ts
        return out

    # -- methods --------------------------------------------------------------------------------------------

    def _auth_test(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{team.domain}.slack.com/",
            "team": team.name,
            "user": "imocha",
            "team_id": team.id,
            "user_id": team.bot_user_id,
            "bot_id": team.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"), posting=True)
        text, blocks = self._content("chat.postMessage", body)
        thread_ts = body.get("thread_ts") or None
        if thread_ts is not None:
            parent = next((m for m in self._messages.get(channel.id, []) if m.ts == thread_ts), None)
            if parent is None:
                # Slack still posts it, but the reply hangs off nothing: almost surely a bot bug.
                self._violate("chat.postMessage", [f"/thread_ts: no message {thread_ts} in {channel.id}"])
            else:
                thread_ts = parent.thread_ts or parent.ts
        message = Message(
            channel=channel.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            reply_broadcast=bool(thread_ts) and _truthy(body.get("reply_broadcast")),
            user=team.bot_user_id,
        )
        self._messages.setdefault(channel.id, []).append(message)
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(team, message)}

    def _chat_update(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        message = self._find_message(channel, body.get("ts"))
        if message.user != team.bot_user_id:
            raise SlackError("cant_update_message")
        text, blocks = self._content("chat.update", body)
        if "text" in body:
            message.text = text
        if "blocks" in body:
            message.blocks = blocks
        message.updates += 1
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text or "",
            "message": self._message_json(team, message),
        }

    def _chat_delete(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        message = self._find_message(channel, body.get("ts"))
        if message.user != team.bot_user_id:
            raise SlackError("cant_delete_message")
        self._messages[channel.id].remove(message)
        return {"channel": channel.id, "ts": message.ts}

    def _chat_post_ephemeral(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        user = self._user(team, body.get("user"))
        if user.id not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks = self._content("chat.postEphemeral", body)
        ts = self._next_ts()
        self._ephemerals.append(Message(channel.id, ts, text, blocks, body.get("thread_ts") or None, False, user.id))
        return {"message_ts": ts}

    def _chat_get_permalink(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        message = self._find_message(channel, body.get("message_ts"))
        link = f"https://{team.domain}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.thread_ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _conversations_open(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel"):
            channel = self._channel(team, body["channel"])
            return {"channel": self._channel_json(team, channel) if _truthy(body.get("return_im")) else {"id": channel.id}}
        users = [u for u in str(body.get("users") or "").split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("fake_does_not_support_mpim")
        user = self._user(team, users[0])
        existed = _im_id(user.id) in self._channels
        channel = self._open_im(team, user.id)
        out: dict[str, Any] = {"channel": self._channel_json(team, channel) if _truthy(body.get("return_im")) else {"id": channel.id}}
        if existed:
            out.update(no_op=True, already_open=True)
        return out

    def _conversations_join(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        if channel.is_private or channel.im_user is not None:
            raise SlackError("method_not_supported_for_channel_type")
        if team.bot_user_id not in channel.members:
            channel.members.append(team.bot_user_id)
        return {"channel": self._channel_json(team, channel)}

    def _channel_json(self, team: _Team, channel: _Channel) -> dict[str, Any]:
        if channel.im_user:
            return {
                "id": channel.id,
                "created": 1700000000,
                "is_im": True,
                "is_org_shared": False,
                "user": channel.im_user,
                "is_user_deleted": False,
            }
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_private,
            "is_group": channel.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.is_private,
            "is_archived": False,
            "is_general": channel.name == "general",
            "is_member": team.bot_user_id in channel.members,
            "context_team_id": team.id,
            "num_members": len(channel.members),
            "created": 1700000000,
        }

    def _conversations_info(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel_json(team, self._channel(team, body.get("channel")))}

    def _conversations_members(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(team, body.get("channel"))
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        page = channel.members[start : start + limit]
        more = start + limit < len(channel.members)
        return {"members": page, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _user_json(self, user: _User, *, locale: bool = False) -> dict[str, Any]:
        display = user.name
        out: dict[str, Any] = {
            "id": user.id,
            "team_id": user.team_id,
            "name": user.name,
            "deleted": False,
            "real_name": display,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": {
                "real_name": display,
                "real_name_normalized": display,
                "display_name": display,
                "display_name_normalized": display,
                "team": user.team_id,
                **({"email": user.email} if user.email else {}),
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": 1700000000,
        }
        out.update(user.flags)
        if locale:
            out["locale"] = "en-US"
        return out

    def _users_info(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        user = self._user(team, body.get("user"))
        return {"user": self._user_json(user, locale=_truthy(body.get("include_locale")))}

    def _users_lookup_by_email(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        email = str(body.get("email") or "").lower()
        for user in self._users.values():
            if user.team_id == team.id and user.email and user.email.lower() == email:
                return {"user": self._user_json(user)}
        raise SlackError("users_not_found")

    # -- views ----------------------------------------------------------------------------------------------

    def _view_arg(self, method: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        view = body.get("view")
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments", response_metadata=_metadata(["/view: is required"]))
        if view.get("type") != kind:
            problem = f"/view/type: {method} needs a {kind} view, not {view.get('type')!r}"
            self._violate(method, [problem])
            raise SlackError("invalid_arguments", response_metadata=_metadata([problem]))
        problems = validate_view(view)
        if problems:
            self._violate(method, problems)
            too_large = any(f"{MAX_VIEW_BYTES}-byte" in p for p in problems)
            raise SlackError("view_too_large" if too_large else "invalid_arguments", response_metadata=_metadata(problems))
        return view

    def _use_trigger(self, body: dict[str, Any]) -> None:
        trigger = body.get("trigger_id") or body.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_arguments", response_metadata=_metadata(["/trigger_id: is required"]))
        if trigger in self._expired_triggers:
            raise SlackError("expired_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        self._used_triggers.add(trigger)

    def _check_external_id(self, team: _Team, view: dict[str, Any], own_id: str | None = None) -> None:
        external_id = view.get("external_id")
        if not external_id:
            return
        for vid, existing in self._views.items():
            if vid != own_id and self._view_meta[vid].team_id == team.id and existing.get("external_id") == external_id:
                raise SlackError("duplicate_external_id")

    def _store_view(self, team: _Team, view: dict[str, Any], meta: _ViewMeta, *, view_id: str | None = None) -> dict[str, Any]:
        previous = self._views.get(view_id) if view_id else None
        view_id = view_id or f"V{next(self._view_ids)}"
        stored = {
            "id": view_id,
            "team_id": team.id,
            "type": view["type"],
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": previous["external_id"] if previous else "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "previous_view_id": previous["previous_view_id"] if previous else None,
            "app_id": APP_ID,
            "app_installed_team_id": team.id,
            "bot_id": team.bot_id,
            **copy.deepcopy(view),
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
        }
        self._views[view_id] = stored
        self._view_meta.setdefault(view_id, meta)
        return stored

    def _views_open(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg("views.open", body, "modal")
        self._check_external_id(team, view)
        self._use_trigger(body)
        return {"view": self._store_view(team, view, _ViewMeta(team.id, "open"))}

    def _views_push(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg("views.push", body, "modal")
        self._check_external_id(team, view)
        self._use_trigger(body)
        return {"view": self._store_view(team, view, _ViewMeta(team.id, "push"))}

    def _views_update(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        view_id = body.get("view_id")
        if not view_id:
            external_id = body.get("external_id")
            if not external_id:
                raise SlackError("invalid_arguments", response_metadata=_metadata(["view_id or external_id is required"]))
            view_id = next(
                (vid for vid, v in self._views.items() if v.get("external_id") == external_id and self._view_meta[vid].team_id == team.id),
                None,
            )
        if view_id not in self._views or self._view_meta[view_id].team_id != team.id:
            raise SlackError("not_found")
        current = self._views[view_id]
        view = self._view_arg("views.update", body, current["type"])
        if body.get("hash") and body["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        self._check_external_id(team, view, view_id)
        return {"view": self._store_view(team, view, self._view_meta[view_id], view_id=view_id)}

    def _views_publish(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        user = self._user(team, body.get("user_id"))
        view = self._view_arg("views.publish", body, "home")
        current_id = self._homes.get(user.id)
        if body.get("hash") and current_id and body["hash"] != self._views[current_id]["hash"]:
            raise SlackError("hash_conflict")
        stored = self._store_view(team, view, _ViewMeta(team.id, "publish", user.id), view_id=current_id)
        self._homes[user.id] = stored["id"]
        return {"view": stored}

    # -- oauth and socket mode ---------------------------------------------------------------------

    def _files_get_upload_url_external(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        filename, length = body.get("filename"), body.get("length")
        if not filename or not str(length or "").isdigit() or int(str(length)) <= 0:
            raise SlackError("invalid_arguments")
        alt = body.get("alt_txt")
        if alt is not None and len(str(alt)) > 1000:
            self._violate("files.getUploadURLExternal", [f"/alt_txt: {len(str(alt))} characters is over 1000"])
            raise SlackError("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self._files[file_id] = UploadedFile(file_id, team.id, str(filename), int(str(length)), alt)
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        files = body.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments")
        uploads = []
        for item in files:
            upload = self._files.get(str((item or {}).get("id")))
            if upload is None or upload.team_id != team.id or upload.completed:
                raise SlackError("file_not_found")
            if upload.data is None:
                self._violate("files.completeUploadExternal", [f"/files: {upload.id} was never uploaded"])
                raise SlackError("file_upload_not_found")
            upload.title = item.get("title") or upload.filename
            uploads.append(upload)
        channel_id = body.get("channel_id")
        comment = body.get("initial_comment")
        if isinstance(comment, str) and len(comment) > MAX_MESSAGE_TEXT:
            self._violate("files.completeUploadExternal", [f"/initial_comment: {len(comment)} characters is over {MAX_MESSAGE_TEXT}"])
            raise SlackError("msg_too_long")
        if channel_id:
            channel = self._channel(team, channel_id, posting=True)
            # chat:write.public lets a bot post text anywhere public, not share files: it must be a member.
            if channel.im_user is None and team.bot_user_id not in channel.members:
                raise SlackError("not_in_channel")
            message = Message(channel.id, self._next_ts(), comment or "", None, body.get("thread_ts") or None, False, team.bot_user_id)
            message.files = [u.id for u in uploads]
            self._messages.setdefault(channel.id, []).append(message)
        for upload in uploads:
            upload.completed = True
            upload.channel = channel_id or None
        return {"files": [{"id": u.id, "name": u.filename, "title": u.title, "mimetype": "image/png"} for u in uploads]}

    def _execution(self, body: dict[str, Any]) -> str:
        execution_id = str(body.get("function_execution_id") or "")
        if execution_id in self._executions:
            raise SlackError("function_execution_already_completed")
        if execution_id not in self._pending_executions:
            raise SlackError("function_execution_not_found")
        return execution_id

    def _functions_complete_success(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        execution_id = self._execution(body)
        outputs = body.get("outputs")
        if isinstance(outputs, str):
            outputs = json.loads(outputs)
        declared = self._pending_executions[execution_id]
        problems = []
        if not isinstance(outputs, dict):
            problems.append("/outputs: not an object")
        else:
            problems += [f"/outputs/{name}: missing" for name in declared if name not in outputs]
            problems += [f"/outputs/{name}: not declared" for name in outputs if name not in declared]
            problems += [
                f"/outputs/{name}: {type(value).__name__} for a {declared[name]}"
                for name, value in outputs.items()
                if name in declared and declared[name] == "string" and not isinstance(value, str)
            ]
        if problems:
            self._violate("functions.completeSuccess", problems)
            raise SlackError("invalid_arguments")
        self._executions[execution_id] = ("success", outputs)
        return {}

    def _functions_complete_error(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
        execution_id = self._execution(body)
        error = body.get("error")
        if not isinstance(error, str) or not error.strip():
            self._violate("functions.completeError", ["/error: a message is required"])
            raise SlackError("invalid_arguments")
        self._executions[execution_id] = ("error", error)
        return {}

    def _oauth_v2_access(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if self._oauth is None or client_id != self._oauth[0]:
            raise SlackError("invalid_client_id")
        if client_secret != self._oauth[1]:
            raise SlackError("bad_client_secret")
        code = body.get("code")
        team_id = self._oauth_codes.pop(code, None) if isinstance(code, str) else None
        if team_id is None:
            raise SlackError("invalid_code")
        team = self._teams.get(team_id) or _Team(team_id, "Acme", "UBOT", "BBOT")
        self._teams[team_id] = team
        token = f"xoxb-{team_id}-{next(self._ids)}-{uuid.uuid4().hex[:12]}"
        self._tokens[token] = team_id
        self.issued_tokens.append(token)
        installer = self._oauth_installers.get(str(code)) or next(
            (u.id for u in self._users.values() if u.team_id == team_id and not u.flags["is_bot"]),
            "UINSTALLER",
        )
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": DEFAULT_SCOPES,
            "bot_user_id": team.bot_user_id,
            "app_id": APP_ID,
            "team": {"id": team.id, "name": team.name},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": installer},
        }

    def _apps_connections_open(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise SlackError("not_authed")
        if token in self._revoked:
            raise SlackError("token_revoked")
        if token in self._tokens:
            raise SlackError("not_allowed_token_type")
        if token not in self._app_tokens:
            raise SlackError("invalid_auth")
        if self._socket_mode is not None:
            return {"url": self._socket_mode()}
        if self.socket_mode_url:
            return {"url": self.socket_mode_url}
        # No Socket Mode server given (use_socket_mode): a well-formed URL nothing listens on.
        port = self._server.port if self._server else 0
        return {"url": f"ws://{self._host}:{port}/link/?ticket={uuid.uuid4().hex}&app_id={APP_ID}"}


# -- module helpers ---------------------------------------------------------------------------------------


def _im_id(user_id: str) -> str:
    return "D" + user_id


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization[7:].strip() or None
    return None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def _metadata(problems: list[str]) -> dict[str, list[str]]:
    return {"messages": [f"[ERROR] {p}" for p in problems]}


def _parse_body(raw: bytes, content_type: str, query: dict[str, str]) -> dict[str, Any]:
    """Parse a JSON or form body the way Slack does; JSON-valued form fields (blocks, view...) are decoded."""
    body: dict[str, Any] = dict(query)
    text = raw.decode("utf-8")
    if "json" in content_type:
        parsed = json.loads(text) if text.strip() else {}
        if not isinstance(parsed, dict):
            raise ValueError("JSON body must be an object")
        body.update(parsed)
    elif text:
        body.update(parse_qsl(text, keep_blank_values=True))
    for key in _JSON_FIELDS:  # form bodies always, JSON bodies when the caller pre-serialised them
        if isinstance(body.get(key), str) and body[key]:
            body[key] = json.loads(body[key])
    return body


def _fault_response(fault: _Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 and fault.retry_after is not None else {}
    if fault.empty_body:
        return Response(b"", status_code=fault.status, headers=headers)
    return JSONResponse({"ok": False, "error": fault.error}, status_code=fault.status, headers=headers)
