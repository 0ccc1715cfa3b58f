"""A fake Greenhouse Harvest API v3 over real HTTP, shaped like the documented v3 endpoints (bot/ats/greenhouse/client.py says where).

One server answers both hosts: the OAuth token endpoint (`POST /token`, HTTP Basic client ID and
secret, `grant_type=client_credentials`, optional `sub`) and the API (`/v3/...`, Bearer tokens). It
keeps one Greenhouse account: users (primary and secondary emails), jobs with ordered stages,
applications, rejection reasons, and every move / reject / unreject made, with the user it was made
as. Scopes per credential (403 without), OAuth errors from the token endpoint, Harvest's 422 shape,
and faults (429 with Retry-After, 5xx, latency) for the tests. Use the `fake_harvest` fixture:

    def test_it(fake_harvest):
        state = fake_harvest.state
        rita = state.add_user("Rita Recruiter", "rita@example.com")
        job = state.add_job("Designer", ["Application Review", "Assessment", "Onsite"])
        app_id = state.add_application(job, "Assessment")
        ...
        assert state.writes == [("move", app_id, rita, {"from_stage_id": ...})]
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime.serving import ServerThread

CLIENT_ID = "gh-client-0123456789"
CLIENT_SECRET = "gh-secret-abcdefghijklmnopqrstuvwxyz"
ALL_SCOPES = frozenset(
    {
        "harvest:users:list",
        "harvest:user_emails:list",
        "harvest:applications:list",
        "harvest:applications:move",
        "harvest:applications:reject",
        "harvest:applications:unreject",
        "harvest:rejection_reasons:list",
    }
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    sub: int | None  # the acting user of the token used (None: the service account, or no token)


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class HarvestState:
    """One Greenhouse account. Mutate it from the test thread; the server thread reads it under `lock`."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.credentials: dict[str, dict[str, Any]] = {CLIENT_ID: {"secret": CLIENT_SECRET, "scopes": set(ALL_SCOPES)}}
        self.tokens: dict[str, tuple[str, int | None, datetime]] = {}  # token -> (client id, sub, expires)
        self.token_life = timedelta(hours=1)
        self.users: dict[int, dict[str, Any]] = {}
        self.user_emails: list[dict[str, Any]] = []
        self.jobs: dict[int, dict[str, Any]] = {}
        self.applications: dict[int, dict[str, Any]] = {}
        self.reasons: list[dict[str, Any]] = [
            {"id": 301, "name": "Wasn't interested", "type": {"id": 2, "name": "They rejected us"}},
            {"id": 302, "name": "Not a cultural fit", "type": {"id": 1, "name": "We rejected them"}},
            {"id": 303, "name": "Lacking skill(s)/qualification(s)", "type": {"id": 1, "name": "We rejected them"}},
        ]
        self.writes: list[tuple[str, int, int | None, dict[str, Any]]] = []  # (action, application, as user, body)
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.latency: dict[str, float] = {}  # path prefix -> seconds added to its answers
        self._numbers = itertools.count(1001)

    # -- building the account -------------------------------------------------------------------

    def add_user(self, name: str, email: str, *, secondary: Sequence[str] = (), deactivated: bool = False) -> int:
        uid = next(self._numbers)
        first, _, last = name.partition(" ")
        with self.lock:
            self.users[uid] = {
                "id": uid,
                "name": name,
                "first_name": first,
                "last_name": last,
                "primary_email": email,
                "deactivated": deactivated,
                "site_admin": False,
                "created_at": iso(self.clock()),
                "updated_at": iso(self.clock()),
            }
            for address in (email, *secondary):
                self.user_emails.append({"id": next(self._numbers), "user_id": uid, "email": address, "verified": True})
        return uid

    def add_job(self, name: str, stages: Sequence[str]) -> dict[str, Any]:
        """A job and its interview plan in order; returns it with `stage_ids` by stage name."""
        job_id = next(self._numbers)
        stage_ids = {stage: next(self._numbers) for stage in stages}
        with self.lock:
            self.jobs[job_id] = {"id": job_id, "name": name, "stages": [stage_ids[s] for s in stages], "stage_ids": stage_ids}
        return self.jobs[job_id]

    def add_application(self, job: dict[str, Any], stage: str, *, candidate_id: int | None = None) -> int:
        app_id = next(self._numbers)
        with self.lock:
            self.applications[app_id] = {
                "id": app_id,
                "candidate_id": candidate_id or next(self._numbers),
                "job_id": job["id"],
                "status": "active",
                "current_stage_id": job["stage_ids"][stage],
                "rejected_at": None,
                "rejection_reason_id": None,
                "updated_at": iso(self.clock()),
            }
        return app_id

    def stage_name(self, application_id: int) -> str:
        with self.lock:
            app = self.applications[application_id]
            job = self.jobs[app["job_id"]]
            return next(name for name, sid in job["stage_ids"].items() if sid == app["current_stage_id"])

    def fail(
        self, method: str, path_prefix: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        with self.lock:
            self.faults.append(Fault(method, path_prefix, status, times, headers or {}, body))

    # -- reading what happened ------------------------------------------------------------------

    def count(self, method: str, path_prefix: str = "") -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.method == method and c.path.startswith(path_prefix))

    def calls_to(self, method: str, path_prefix: str = "") -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]


# ------------------------------------------------------------------------------------------- the API


def _harvest_error(status: int, message: str, field_name: str | None = None) -> JSONResponse:
    """Harvest's documented error body: a message and, for 422, the fields that failed."""
    errors = [{"message": message, "field": field_name}] if field_name else []
    return JSONResponse({"message": "Validation error" if status == 422 else message, "errors": errors}, status_code=status)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _ids(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    return [int(part) for part in raw.split(",") if part.strip().isdigit()]


def create_app(state: HarvestState) -> Starlette:
    def current() -> HarvestState:
        found: HarvestState = app.state.harvest
        return found

    async def slow(path: str) -> None:
        gh = current()
        delay = max((seconds for prefix, seconds in gh.latency.items() if path.startswith(prefix)), default=0.0)
        if delay:
            await asyncio.sleep(delay)

    def fault(gh: HarvestState, request: Request) -> Response | None:
        for item in gh.faults:
            if item.times > 0 and item.method == request.method and request.url.path.startswith(item.path_prefix):
                item.times -= 1
                body = item.body if item.body is not None else {"message": "Too Many Requests" if item.status == 429 else "Server error"}
                return JSONResponse(body, status_code=item.status, headers=item.headers)
        return None

    async def token(request: Request) -> Response:
        gh = current()
        form = dict(await request.form())
        await slow("/token")
        with gh.lock:
            gh.calls.append(Call("POST", "/token", {}, {k: v for k, v in form.items() if k != "client_secret"}, None))
            failed = fault(gh, request)
            if failed is not None:
                return failed
            client_id, secret = _basic(request.headers.get("authorization", ""))
            cred = gh.credentials.get(client_id or "")
            if cred is None or secret != cred["secret"]:
                return _oauth_error(401, "invalid_client", "Client authentication failed")
            if form.get("grant_type") != "client_credentials":
                return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
            sub = None
            if form.get("sub"):
                raw = str(form["sub"])
                user = gh.users.get(int(raw)) if raw.isdigit() else None
                if user is None or user["deactivated"]:
                    return _oauth_error(400, "invalid_request", f"sub {raw} is not an active user of this organization")
                sub = int(raw)
            value = secrets.token_urlsafe(24)
            expires = gh.clock() + gh.token_life
            gh.tokens[value] = (str(client_id), sub, expires)
            return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_at": iso(expires)})

    async def guarded(request: Request, scope: str, fn: Callable[[HarvestState, int | None, Any], Response]) -> Response:
        """Count the call, apply a fault, check the Bearer token and the scope; then answer."""
        gh = current()
        body: Any = None
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
        with gh.lock:
            raw = request.headers.get("authorization", "")
            found = gh.tokens.get(raw.removeprefix("Bearer ").strip()) if raw.startswith("Bearer ") else None
            sub = found[1] if found else None
            gh.calls.append(Call(request.method, request.url.path, dict(request.query_params), body, sub))
        # Counted as it arrives, answered after the latency: a client killed meanwhile never hears that
        # Greenhouse did the work (as when the bot is killed mid-call).
        await slow(request.url.path)
        with gh.lock:
            failed = fault(gh, request)
            if failed is not None:
                return failed
            if found is None or found[2] <= gh.clock():
                return JSONResponse({"message": "Unauthorized"}, status_code=401)
            if scope not in gh.credentials[found[0]]["scopes"]:
                return JSONResponse({"message": f"Missing required scope: {scope}"}, status_code=403)
            return fn(gh, sub, body)

    async def users(request: Request) -> Response:
        def run(gh: HarvestState, _sub: int | None, _body: Any) -> Response:
            items = list(gh.users.values())
            ids = _ids(request.query_params.get("ids"))
            if ids is not None:
                items = [u for u in items if u["id"] in ids]
            email = request.query_params.get("primary_email")
            if email is not None:
                items = [u for u in items if u["primary_email"].lower() == email.strip().lower()]
            return JSONResponse(items[: int(request.query_params.get("per_page", "100"))])

        return await guarded(request, "harvest:users:list", run)

    async def user_emails(request: Request) -> Response:
        def run(gh: HarvestState, _sub: int | None, _body: Any) -> Response:
            wanted = {e.strip().lower() for e in request.query_params.get("email", "").split(",") if e.strip()}
            return JSONResponse([row for row in gh.user_emails if not wanted or row["email"].lower() in wanted])

        return await guarded(request, "harvest:user_emails:list", run)

    async def applications(request: Request) -> Response:
        def run(gh: HarvestState, _sub: int | None, _body: Any) -> Response:
            ids = _ids(request.query_params.get("ids"))
            items = [a for a in gh.applications.values() if ids is None or a["id"] in ids]
            return JSONResponse(items)

        return await guarded(request, "harvest:applications:list", run)

    async def reasons(request: Request) -> Response:
        return await guarded(request, "harvest:rejection_reasons:list", lambda gh, _s, _b: JSONResponse(gh.reasons))

    def application_or_404(gh: HarvestState, request: Request) -> dict[str, Any] | Response:
        raw = request.path_params["application_id"]
        app_row = gh.applications.get(int(raw)) if raw.isdigit() else None
        return app_row if app_row is not None else _harvest_error(404, "Resource not found")

    async def move(request: Request) -> Response:
        def run(gh: HarvestState, sub: int | None, body: Any) -> Response:
            found = application_or_404(gh, request)
            if isinstance(found, Response):
                return found
            if not isinstance(body, dict) or not isinstance(body.get("from_stage_id"), int):
                return _harvest_error(422, "is required", "from_stage_id")
            if found["status"] != "active":
                return _harvest_error(422, f"the application is {found['status']}", "application")
            if body["from_stage_id"] != found["current_stage_id"]:
                return _harvest_error(422, "does not match the application's current stage", "from_stage_id")
            stages = gh.jobs[found["job_id"]]["stages"]
            if body.get("to_stage_id") is not None:
                if body["to_stage_id"] not in stages:
                    return _harvest_error(422, "is not a stage of this job", "to_stage_id")
                target = body["to_stage_id"]
            else:
                position = stages.index(found["current_stage_id"])
                if position + 1 >= len(stages):
                    return _harvest_error(422, "the application is at the job's last stage", "from_stage_id")
                target = stages[position + 1]
            found["current_stage_id"] = target
            found["updated_at"] = iso(gh.clock())
            gh.writes.append(("move", found["id"], sub, body))
            return Response(status_code=204)

        return await guarded(request, "harvest:applications:move", run)

    async def reject(request: Request) -> Response:
        def run(gh: HarvestState, sub: int | None, body: Any) -> Response:
            found = application_or_404(gh, request)
            if isinstance(found, Response):
                return found
            reason = body.get("rejection_reason_id") if isinstance(body, dict) else None
            if reason not in {r["id"] for r in gh.reasons}:
                return _harvest_error(422, "is required and must be a rejection reason", "rejection_reason_id")
            if found["status"] != "active":
                return _harvest_error(422, f"the application is already {found['status']}", "application")
            found.update(status="rejected", rejected_at=iso(gh.clock()), rejection_reason_id=reason)
            gh.writes.append(("reject", found["id"], sub, body))
            return Response(status_code=204)

        return await guarded(request, "harvest:applications:reject", run)

    async def unreject(request: Request) -> Response:
        def run(gh: HarvestState, sub: int | None, body: Any) -> Response:
            found = application_or_404(gh, request)
            if isinstance(found, Response):
                return found
            if found["status"] != "rejected":
                return _harvest_error(422, "the application is not rejected", "application")
            found.update(status="active", rejected_at=None, rejection_reason_id=None)
            gh.writes.append(("unreject", found["id"], sub, body or {}))
            return Response(status_code=204)

        return await guarded(request, "harvest:applications:unreject", run)

    routes = [
        Route("/token", token, methods=["POST"]),
        Route("/v3/users", users, methods=["GET"]),
        Route("/v3/user_emails", user_emails, methods=["GET"]),
        Route("/v3/applications", applications, methods=["GET"]),
        Route("/v3/rejection_reasons", reasons, methods=["GET"]),
        Route("/v3/applications/{application_id}/move", move, methods=["POST"]),
        Route("/v3/applications/{application_id}/reject", reject, methods=["POST"]),
        Route("/v3/applications/{application_id}/unreject", unreject, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.harvest = state
    return app


def _basic(header: str) -> tuple[str | None, str | None]:
    if not header.startswith("Basic "):
        return None, None
    try:
        client_id, _, secret = base64.b64decode(header.removeprefix("Basic ").strip()).decode().partition(":")
    except ValueError:
        return None, None
    return client_id, secret


class FakeHarvest:
    """A running fake: `.url` is both the Harvest base URL and the auth base URL; `.state` its account."""

    def __init__(self, app: Starlette, server: ServerThread) -> None:
        self.app = app
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> HarvestState:
        state: HarvestState = self.app.state.harvest
        return state

    def reset(self, clock: Callable[[], datetime] | None = None) -> HarvestState:
        self.app.state.harvest = HarvestState(clock)
        return self.state


def start_fake_harvest() -> FakeHarvest:
    app = create_app(HarvestState())
    return FakeHarvest(app, ServerThread(app).start())


_shared: FakeHarvest | None = None


def _stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.server.stop()
        _shared = None


@pytest.fixture
def fake_harvest(request: pytest.FixtureRequest) -> FakeHarvest:
    """A fake Greenhouse with a fresh, empty account for each test; the server is shared by the session."""
    global _shared
    if _shared is None:
        _shared = start_fake_harvest()
        request.config.add_cleanup(_stop_shared)
    _shared.reset()
    return _shared
