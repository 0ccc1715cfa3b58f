"""The HTTP server: Slack requests, ATS/Greenhouse/iMocha webhooks, health and metrics (SPEC §4)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot import imocha
from bot.assessments.callbacks import CallbackHandler
from bot.ats.intake import Intake, IntakeEvent, valid_email
from bot.domain import DomainError
from bot.runtime import metrics
from bot.runtime.logs import new_request_id
from bot.slack.acks import AckGate
from bot.slack.outbox import SlackOutbox
from bot.slack.socket_mode import LinkStatus

log = logging.getLogger("bot.runtime.web")

MAX_BODY = 1024 * 1024


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    return await _read_asgi_body(request.receive, request.headers.get("content-length"), limit)


def hmac_ok(secret: str, body: bytes, given: str, *, prefix: str) -> bool:
    if not given.startswith(prefix):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given[len(prefix) :].strip().lower())


def _bad(error: str, fields: list[str] | None = None, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "fields": fields or []}, status_code=status)


def _switched_off(path: str, variable: str) -> JSONResponse:
    # 404 as SPEC §6 says for a route whose secret is unset, with a body that says how to switch it on.
    return JSONResponse({"error": f"{path} is switched off: set {variable} to enable it", "enable_with": variable}, status_code=404)


def _text(data: dict[str, Any], *path: str, limit: int = 200) -> str | None:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None:
        return None
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        node = str(node)
    if not isinstance(node, str):
        return None
    node = node.strip()
    return node if node and len(node) <= limit else None


def parse_ats_event(data: Any) -> tuple[IntakeEvent | None, list[str]]:
    """SPEC §4 generic intake payload → IntakeEvent, or the list of bad fields."""
    if not isinstance(data, dict):
        return None, ["body"]
    bad = []
    event_type = _text(data, "event")
    if event_type != "application.stage_changed":
        bad.append("event")
    required = {
        "id": _text(data, "id"),
        "application.id": _text(data, "application", "id"),
        "candidate.name": _text(data, "candidate", "name"),
        "candidate.email": _text(data, "candidate", "email", limit=320),
        "job.name": _text(data, "job", "name"),
        "stage.name": _text(data, "stage", "name"),
    }
    bad += [name for name, value in required.items() if value is None]
    email = required["candidate.email"]
    if email is not None and not valid_email(email):
        bad.append("candidate.email")
    team_id = data.get("team_id")
    if team_id is not None and not (isinstance(team_id, str) and re.fullmatch(r"[A-Z0-9]{2,32}", team_id)):
        bad.append("team_id")
    recruiter = _text(data, "recruiter", "email", limit=320)
    if data.get("recruiter") is not None and (recruiter is None or not valid_email(recruiter)):
        bad.append("recruiter.email")
    if bad:
        return None, sorted(set(bad))
    return IntakeEvent(
        source="ats",
        team_id=team_id,
        delivery_id=required["id"],
        application_id=str(required["application.id"]),
        candidate_id=_text(data, "candidate", "id"),
        candidate_name=str(required["candidate.name"]),
        candidate_email=email,
        job_id=_text(data, "job", "id"),
        job_name=str(required["job.name"]),
        stage_name=str(required["stage.name"]),
        stage_id=_text(data, "stage", "id"),
        recruiter_email=recruiter,
    ), []


def parse_greenhouse(data: Any, team_id: str | None) -> tuple[IntakeEvent | None, list[str]]:
    """Greenhouse candidate_stage_change → IntakeEvent (mapping in SPEC §8)."""
    application = ((data.get("payload") or {}).get("application")) if isinstance(data, dict) else None
    if not isinstance(application, dict):
        return None, ["payload.application"]
    candidate = application.get("candidate") or {}
    jobs = application.get("jobs") or []
    job = jobs[0] if isinstance(jobs, list) and jobs and isinstance(jobs[0], dict) else {}
    stage = application.get("current_stage") or {}
    emails = candidate.get("email_addresses") or []
    email = None
    if isinstance(emails, list) and emails and isinstance(emails[0], dict):
        email = _text(emails[0], "value", limit=320)
    name = " ".join(p for p in (_text(candidate, "first_name"), _text(candidate, "last_name")) if p)
    bad = []
    app_id = _text(application, "id")
    if app_id is None:
        bad.append("payload.application.id")
    if not name:
        bad.append("payload.application.candidate.first_name")
    if not _text(job, "name"):
        bad.append("payload.application.jobs")
    if not _text(stage, "name"):
        bad.append("payload.application.current_stage.name")
    if email is not None and not valid_email(email):
        bad.append("payload.application.candidate.email_addresses")
    if bad:
        return None, bad
    recruiter = _text(candidate.get("recruiter") or {}, "email", limit=320)
    return IntakeEvent(
        source="greenhouse",
        team_id=team_id,
        application_id=str(app_id),
        candidate_id=_text(candidate, "id"),
        candidate_name=name,
        candidate_email=email,
        job_id=_text(job, "id"),
        job_name=str(_text(job, "name")),
        stage_name=str(_text(stage, "name")),
        stage_id=_text(stage, "id"),
        recruiter_email=recruiter if recruiter and valid_email(recruiter) else None,
    ), []


@dataclass(frozen=True, kw_only=True)
class RouteServices:
    """What the web app's routes are given by the composition root: the services they call and the secrets
    that switch the webhooks on (a webhook whose secret is None answers 404, SPEC §6)."""

    bolt: App | None  # None in Socket Mode: Slack's requests arrive over the link
    signing_secret: str | None
    intake: Intake
    outbox: SlackOutbox
    callbacks: CallbackHandler
    ping_db: Callable[[], None]
    ats_secret: str | None
    greenhouse_secret: str | None
    greenhouse_team: Callable[[], str | None]  # the workspace of a delivery that names none
    oauth_enabled: bool = False
    gate: AckGate | None = None
    socket_status: Callable[[], LinkStatus] | None = None  # set in Socket Mode: /healthz reports the link


def create_web_app(
    services: RouteServices,
    *,
    on_startup: list[Callable[[], Any]] | None = None,
    on_shutdown: list[Callable[[], Any]] | None = None,
) -> FrontDoor:
    """The bot's ASGI app: each integration's routes, and `POST /slack/events` on its fast path."""
    routes = [
        *ats_routes(services),
        *greenhouse_routes(services),
        *imocha_routes(services),
        *health_routes(services),
        *oauth_routes(services),
    ]
    slack = SlackEndpoint(services.bolt, services.signing_secret, gate=services.gate)
    lifespan = _lifespan(slack, on_startup, on_shutdown)
    return FrontDoor(Starlette(routes=routes, lifespan=lifespan), {"/slack/events": slack})


def oauth_routes(services: RouteServices) -> list[Route]:
    """`GET /slack/install` and `/slack/oauth_redirect`, Bolt's OAuth flow (only when OAuth is on)."""
    bolt = services.bolt

    async def oauth(request: Request) -> Response:
        new_request_id("oauth")
        if bolt is None or bolt.oauth_flow is None:
            return PlainTextResponse("Not found", status_code=404)
        bolt_request = BoltRequest(body="", query=request.url.query, headers={k: [v] for k, v in request.headers.items()})
        flow = bolt.oauth_flow
        handler = flow.handle_installation if request.url.path.endswith("/install") else flow.handle_callback
        response = await run_in_threadpool(handler, bolt_request)
        resp = Response(content=response.body, status_code=response.status)
        for key, values in response.headers.items():
            for value in values:
                resp.headers.append(key, value)
        return resp

    if not services.oauth_enabled:
        return []
    return [Route("/slack/install", oauth, methods=["GET"]), Route("/slack/oauth_redirect", oauth, methods=["GET"])]


def ats_routes(services: RouteServices) -> list[Route]:
    """`POST /webhooks/ats`: the generic ATS intake, signed with ATS_WEBHOOK_SECRET (SPEC §4)."""

    async def ats_webhook(request: Request) -> Response:
        new_request_id("ats")
        data = await _signed_json(request, services.ats_secret, "/webhooks/ats", "ATS_WEBHOOK_SECRET", "x-signature", "sha256=")
        if isinstance(data, Response):
            return data
        event, bad = parse_ats_event(data)
        if event is None:
            return _bad("invalid or missing fields", bad)
        return await _accept(services, event)

    return [Route("/webhooks/ats", ats_webhook, methods=["POST"])]


def greenhouse_routes(services: RouteServices) -> list[Route]:
    """`POST /webhooks/greenhouse`: Greenhouse's candidate_stage_change, signed with GREENHOUSE_WEBHOOK_SECRET (SPEC §8)."""

    async def greenhouse_webhook(request: Request) -> Response:
        new_request_id("greenhouse")
        data = await _signed_json(
            request, services.greenhouse_secret, "/webhooks/greenhouse", "GREENHOUSE_WEBHOOK_SECRET", "signature", "sha256 "
        )
        if isinstance(data, Response):
            return data
        if not isinstance(data, dict) or data.get("action") != "candidate_stage_change":
            return JSONResponse({"status": "ignored"}, status_code=200)
        team = request.query_params.get("team_id") or services.greenhouse_team()
        event, bad = parse_greenhouse(data, team)
        if event is None:
            return _bad("invalid or missing fields", bad)
        response = await _accept(services, event)
        if response.status_code == 202:
            response.status_code = 200  # Greenhouse expects 200 for every validly signed delivery
        return response

    return [Route("/webhooks/greenhouse", greenhouse_webhook, methods=["POST"])]


def imocha_routes(services: RouteServices) -> list[Route]:
    """`POST /webhooks/imocha`: iMocha's result callbacks, answered at once and handled after the answer."""

    async def imocha_callback(request: Request) -> Response:
        new_request_id("callback")
        try:
            raw = await read_body(request)
        except BodyTooLarge:
            return _bad("body over 1 MiB", status=413)
        try:
            callback = imocha.parse_callback(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad(f"not an iMocha callback: {exc}"[:200], ["body"])
        metrics.CALLBACKS.inc()
        return JSONResponse({"status": "ok"}, status_code=200, background=BackgroundTask(_safe_callback, services.callbacks, callback))

    return [Route("/webhooks/imocha", imocha_callback, methods=["POST"])]


def health_routes(services: RouteServices) -> list[Route]:
    """`GET /healthz` (the database, and the Socket Mode link when there is one) and `GET /metrics`."""
    socket_status = services.socket_status

    async def healthz(request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "db": "ok"}
        try:
            await run_in_threadpool(services.ping_db)
        except Exception as exc:
            log.warning("health check: database unreachable (%s)", exc.__class__.__name__)
            body.update(status="error", db="unreachable")
        if socket_status is not None:
            # In Socket Mode Slack's requests only arrive over the link: a link down for over 30 s (or stopped)
            # makes the bot unhealthy, so that a supervisor restarts it.
            link = socket_status()
            body["socket_mode"] = link.state
            if link.state != "connected":
                body["socket_mode_down_seconds"] = round(link.down_seconds, 1)
            if not link.healthy:
                body["status"] = "error"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def metrics_route(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics_route, methods=["GET"])]


async def _signed_json(request: Request, secret: str | None, path: str, variable: str, header: str, prefix: str) -> Any:
    """A webhook's JSON body once its HMAC signature checks out; or the Response that refuses it
    (404 while the route's secret is unset, 413, 401, 400)."""
    if not secret:
        return _switched_off(path, variable)
    try:
        raw = await read_body(request)
    except BodyTooLarge:
        return _bad("body over 1 MiB", status=413)
    if not hmac_ok(secret, raw, request.headers.get(header, ""), prefix=prefix):
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _bad("body is not valid JSON", ["body"])


async def _accept(services: RouteServices, event: IntakeEvent) -> Response:
    """Hand a webhook's event to the intake; a new application's card is delivered after the answer."""
    try:
        result = await run_in_threadpool(services.intake.receive, event)
    except DomainError as exc:
        return _bad(str(exc), ["team_id"])
    if not result.accepted:
        return JSONResponse({"status": "ignored", "reason": result.reason}, status_code=200)
    metrics.INTAKE.labels(source=event.source, outcome="created" if result.created else "duplicate").inc()
    task = BackgroundTask(services.outbox.deliver_later, application_id=result.application_id) if result.created else None
    return JSONResponse({"status": "accepted", "application": event.application_id}, status_code=202, background=task)


def _lifespan(
    slack: SlackEndpoint, on_startup: list[Callable[[], Any]] | None, on_shutdown: list[Callable[[], Any]] | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Starlette's lifespan: the startup hooks and the ack threads before the first request, the
    shutdown hooks and the ack pool after the last."""

    async def startup() -> None:
        import anyio.to_thread

        # Webhooks and callbacks hold a worker thread while they write; allow bursts of them.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 200
        for fn in on_startup or []:
            await run_in_threadpool(fn)
        await run_in_threadpool(slack.start_threads)
        # What the process built to get here (modules, the engine, Bolt and its listeners) lives as long
        # as the process; a full collection walked all of it again, 50 ms holding the GIL while acks
        # waited (bench/ack.py). Move it out of the collector's sight.
        gc.collect()
        gc.freeze()

    async def shutdown() -> None:
        for fn in on_shutdown or []:
            await run_in_threadpool(fn)
        slack.close()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await startup()
        try:
            yield
        finally:
            await shutdown()

    return lifespan


class FrontDoor:
    """The ASGI app: the paths in `fast` go straight to their endpoint, everything else to Starlette.

    `POST /slack/events` is the one route with a deadline (Slack's 3 s) and bursts of traffic; it skips
    Starlette's middleware, request objects and anyio's thread limiter.
    """

    def __init__(self, app: Starlette, fast: dict[str, ASGIApp]):
        self.app = app
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.fast.get(scope["path"]) if scope["type"] == "http" else None
        await (endpoint or self.app)(scope, receive, send)


class SlackEndpoint:
    """`POST /slack/events` as a bare ASGI endpoint: read, verify the signature, parse, dispatch to Bolt.

    Bolt runs the listener on a thread of `ack_threads` (listeners ack, then hand the rest to the work
    pool; a few read the database before answering a modal) and answers when it returns. The gate
    counts the request from its arrival to its answer, so that work after the acks waits for them.
    """

    def __init__(self, bolt: App | None, signing_secret: str | None, *, gate: AckGate | None = None, ack_threads: int = 32):
        self.bolt = bolt
        self.verifier = BytesSignatureVerifier(signing_secret) if signing_secret else None
        self.gate = gate or AckGate(max_wait=0)
        self.ack_threads = ack_threads
        self.pool = ThreadPoolExecutor(max_workers=ack_threads, thread_name_prefix="ack")

    def start_threads(self) -> None:
        """Start every ack thread now rather than during the first burst of requests."""
        barrier = threading.Barrier(self.ack_threads)
        for future in [self.pool.submit(barrier.wait, 5) for _ in range(self.ack_threads)]:
            future.result(10)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.gate.request():
            status, content_type, body, extra = await self.answer(scope, receive)
            headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
            headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, str, bytes, dict[str, str]]:
        new_request_id("slack")
        started = time.perf_counter()
        if scope["method"] != "POST":
            return _json_answer(405, {"error": "POST only"})
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            raw = await _read_asgi_body(receive, headers.get("content-length"))
        except BodyTooLarge:
            return _json_answer(413, {"error": "body too large"})
        if self.bolt is None:
            return _json_answer(404, {"error": "Slack requests arrive over Socket Mode in this deployment"})
        if self.verifier is not None:
            try:
                ok = self.verifier.is_valid(raw, headers.get("x-slack-request-timestamp", "0"), headers.get("x-slack-signature", ""))
            except (ValueError, TypeError):
                ok = False
            if not ok:
                return _json_answer(401, {"error": "invalid request"})
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _json_answer(400, {"error": "body is not UTF-8"})
        body = _parse_slack_body(text, headers.get("content-type", ""))
        if body is None:
            return _json_answer(400, {"error": "malformed Slack payload"})
        # Bolt gets the body parsed once, here: its own parser reads any form body containing the word
        # "payload" as interactivity and loses the slash command (`/imocha payload`). The signature is
        # checked above, so Bolt's own check is off in HTTP mode (bot/runtime/app.py).
        query = scope.get("query_string", b"").decode("latin-1")
        bolt_request = _with_body(BoltRequest(body="", query=query, headers={k: [v] for k, v in headers.items()}), body)
        loop = asyncio.get_running_loop()
        try:
            response: BoltResponse = await loop.run_in_executor(self.pool, contextvars.copy_context().run, self.bolt.dispatch, bolt_request)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            # Bolt indexes payloads as Slack shapes them (`actions[0]`, `event.type`, `team.id`...);
            # a signed body of another shape makes its middleware raise before any listener runs.
            log.warning("Slack request Bolt could not read: %s: %s", exc.__class__.__name__, exc)
            return _json_answer(400, {"error": "malformed Slack payload"})
        metrics.ACK_LATENCY.observe(time.perf_counter() - started)
        extra = {k: v[0] for k, v in response.headers.items() if v and k.lower() not in ("content-length", "content-type")}
        content_type = (response.headers.get("content-type") or ["text/plain;charset=utf-8"])[0]
        content = response.body.encode() if isinstance(response.body, str) else bytes(response.body or b"")
        return response.status, content_type, content, extra


class BytesSignatureVerifier(SignatureVerifier):
    """Slack's v0 signature computed over the body's bytes as sent.

    slack_sdk decodes the body as UTF-8 first, so a correctly signed body that is not UTF-8 raised
    and was answered 401; its signature verifies, and it is a malformed body (400, SPEC §8).
    """

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        if timestamp is None:
            return None
        raw = body if isinstance(body, bytes) else (body or "").encode()
        digest = hmac.new(self.signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        return f"v0={digest}"


def _json_answer(status: int, data: dict[str, Any]) -> tuple[int, str, bytes, dict[str, str]]:
    return status, "application/json", json.dumps(data).encode(), {}


async def _read_asgi_body(receive: Receive, declared: str | None, limit: int = MAX_BODY) -> bytes:
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _safe_callback(callbacks: CallbackHandler, callback: imocha.Callback) -> None:
    try:
        callbacks.handle(callback)
    except Exception:
        log.exception("handling the iMocha callback for invitation %s failed", callback.invitation_id)


def _parse_slack_body(text: str, content_type: str) -> dict[str, Any] | None:
    """Parse a Slack body the way Slack sends it; None when it is malformed."""
    try:
        if text.startswith("{") or "application/json" in content_type:
            data = json.loads(text)
            return data if isinstance(data, dict) and _slack_shaped(data) else None
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            data = json.loads(form["payload"][0])
            return data if isinstance(data, dict) and _slack_shaped(data) else None
        if not form:
            return None
        return {key: values[0] for key, values in form.items()}
    except (ValueError, IndexError):
        return None


# Fields Slack sends as objects, which Bolt's middleware and our parsers index without checking;
# Slack sends the nullable ones as null in some payloads (org-wide installs, views).
_SLACK_OBJECTS = ("team", "user", "enterprise", "channel", "container", "view", "message", "state")
_SLACK_NULLABLE = ("team", "enterprise", "channel")


def _slack_shaped(data: dict[str, Any]) -> bool:
    """Whether a JSON payload has the envelope Slack gives it (objects where objects belong)."""
    for key in _SLACK_OBJECTS:
        if key in data and not isinstance(data[key], dict) and not (data[key] is None and key in _SLACK_NULLABLE):
            return False
    if "event" in data and not (isinstance(data["event"], dict) and isinstance(data["event"].get("type", ""), str)):
        return False
    if "actions" in data:
        actions = data["actions"]
        if not (isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions)):
            return False
    view = data.get("view")
    if isinstance(view, dict):
        state = view.get("state")
        if state is not None and not (isinstance(state, dict) and isinstance(state.get("values") or {}, dict)):
            return False
    return True


def _with_body(request: BoltRequest, body: dict[str, Any]) -> BoltRequest:
    from slack_bolt.request.internals import build_context

    request.body = body
    request.context = build_context(request.context, body)
    return request
