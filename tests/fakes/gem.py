"""A fake Gem ATS API over real HTTP, shaped like the documented fields (see the Gem reference, §5–§8).

Bare JSON arrays, `page`/`per_page` (1–500), `X-API-Key`, ISO-8601 `last_activity_after`, opaque
base64 ids, notes on a candidate's activity feed; faults (401/403 for a bad key, 429 with
Retry-After, 5xx) and call counting for the tests. Use the `fake_gem` fixture:

    def test_it(fake_gem):
        state = fake_gem.state
        job = state.add_job("Backend Engineer", stages=["Application Review", "iMocha assessment"])
        ...
        assert state.count("GET", "/ats/v0/applications") == 1
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime.serving import ServerThread

GOOD_GEM_KEY = "GemTeamKey0123456789abcdefghijklmnopqrs"  # 40 alphanumerics, like Gem's keys
BAD_GEM_KEY = "GemWrongKey123456789abcdefghijklmnopqrs"
MAX_PER_PAGE = 500


def gem_id(kind: str, number: int) -> str:
    """Gem's ids are base64 of "type:number" (e.g. "candidates:18497077")."""
    return base64.b64encode(f"{kind}:{number}".encode()).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    api_key: str | None


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class GemState:
    """One Gem account. Mutate it from the test thread; the server thread reads it under `lock`."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.keys = {GOOD_GEM_KEY}
        self.refused_status = 401  # an API gateway would say 403
        self.applications: dict[str, dict[str, Any]] = {}
        self.candidates: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.stages: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.latency = 0.0  # seconds added to every answer
        self.in_flight = 0
        self.max_in_flight = 0
        self._numbers = itertools.count(1)

    # -- building the account -------------------------------------------------------------------

    def add_user(self, name: str, email: str | None, *, site_admin: bool = False, disabled: bool = False) -> str:
        uid = gem_id("users", next(self._numbers))
        first, _, last = name.partition(" ")
        with self.lock:
            self.users[uid] = {
                "id": uid,
                "name": name,
                "first_name": first,
                "last_name": last,
                "employee_id": None,
                "primary_email_address": email,
                "emails": [{"email": email, "is_primary": True}] if email else [],
                "disabled": disabled,
                "site_admin": site_admin,
                "deleted_at": None,
                "created_at": iso(self.clock()),
                "updated_at": iso(self.clock()),
            }
        return uid

    def add_job(
        self, name: str, *, stages: Sequence[str], recruiters: Sequence[str] = (), coordinators: Sequence[str] = ()
    ) -> dict[str, Any]:
        """A job and its interview plan; returns the job with `stage_ids` by stage name."""
        job_id = gem_id("jobs", next(self._numbers))
        stage_ids: dict[str, str] = {}
        with self.lock:
            for priority, stage_name in enumerate(stages):
                sid = gem_id("job_stages", next(self._numbers))
                stage_ids[stage_name] = sid
                self.stages[sid] = {
                    "id": sid,
                    "name": stage_name,
                    "job_id": job_id,
                    "priority": priority,
                    "active": True,
                    "interviews": [],
                    "created_at": iso(self.clock()),
                    "updated_at": iso(self.clock()),
                    "deleted_at": None,
                }
            self.jobs[job_id] = {
                "id": job_id,
                "name": name,
                "requisition_id": None,
                "confidential": False,
                "status": "open",
                "created_at": iso(self.clock()),
                "departments": [],
                "offices": [],
                "hiring_team": {
                    "hiring_managers": [],
                    "recruiters": [self._user_lite(uid) for uid in recruiters],
                    "coordinators": [self._user_lite(uid) for uid in coordinators],
                    "sourcers": [],
                },
            }
        return {"id": job_id, "name": name, "stage_ids": stage_ids}

    def add_candidate(self, first: str, last: str, emails: Sequence[tuple[str, bool]] = ()) -> str:
        """`emails` are (address, is_primary) pairs, in the order Gem lists them."""
        cid = gem_id("candidates", next(self._numbers))
        with self.lock:
            self.candidates[cid] = {
                "id": cid,
                "first_name": first,
                "last_name": last,
                "company": None,
                "title": None,
                "email_addresses": [{"type": "personal", "value": value, "is_primary": primary} for value, primary in emails],
                "phone_numbers": [],
                "tags": [],
                "application_ids": [],
                "is_private": False,
                "created_at": iso(self.clock()),
                "updated_at": None,
            }
        return cid

    def add_application(self, candidate_id: str, job: dict[str, Any], stage: str, *, status: str = "active") -> str:
        aid = gem_id("applications", next(self._numbers))
        with self.lock:
            now = iso(self.clock())
            self.applications[aid] = {
                "id": aid,
                "candidate_id": candidate_id,
                "applied_at": now,
                "rejected_at": None,
                "last_activity_at": now,
                "source": {"id": gem_id("sources", 1), "public_name": "LinkedIn"},
                "credited_to": None,
                "rejection_reason": None,
                "jobs": [{"id": job["id"], "name": job["name"]}],
                "job_post_id": None,
                "status": status,
                "current_stage": {"id": job["stage_ids"][stage], "name": stage},
                "deleted_at": None,
            }
            self.candidates[candidate_id]["application_ids"].append(aid)
        return aid

    def move(self, application_id: str, stage: str, *, touch: bool = True) -> None:
        """Move an application to another stage of its job; `touch=False` leaves `last_activity_at` alone
        (whether Gem updates it on a stage move is unconfirmed)."""
        with self.lock:
            app = self.applications[application_id]
            job_id = app["jobs"][0]["id"]
            sid = next(s["id"] for s in self.stages.values() if s["job_id"] == job_id and s["name"] == stage)
            app["current_stage"] = {"id": sid, "name": stage}
            if touch:
                app["last_activity_at"] = iso(self.clock())

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

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()

    def _user_lite(self, uid: str) -> dict[str, Any]:
        user = self.users[uid]
        return {k: user[k] for k in ("id", "name", "first_name", "last_name", "employee_id")}


# ------------------------------------------------------------------------------------------- the API


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": status, "status": str(status), "message": message, "errors": extra}, status_code=status)


def _parse_time(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def create_app(state: GemState) -> Starlette:
    def current() -> GemState:
        found: GemState = app.state.gem
        return found

    async def guard(request: Request) -> Response | None:
        """Count the call, apply a fault, check the key; an answer here ends the request."""
        gem = current()
        key = request.headers.get("x-api-key")
        with gem.lock:
            gem.calls.append(Call(request.method, request.url.path.rstrip("/"), dict(request.query_params), key))
            for fault in gem.faults:
                if fault.times > 0 and fault.method == request.method and request.url.path.startswith(fault.path_prefix):
                    fault.times -= 1
                    body = fault.body if fault.body is not None else {"message": "Limit Exceeded" if fault.status == 429 else "fault"}
                    return JSONResponse(body, status_code=fault.status, headers=fault.headers)
            if key not in gem.keys:
                if gem.refused_status == 403:
                    return JSONResponse({"message": "Forbidden"}, status_code=403)
                return _error(401, "Invalid API key")
        return None

    def page(request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            number = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", "100"))
        except ValueError:
            return _error(422, "Validation error", page=["must be an integer"])
        if number < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return _error(422, "Validation error", per_page=[f"must be between 1 and {MAX_PER_PAGE}"])
        start = (number - 1) * per_page
        return JSONResponse(items[start : start + per_page])

    async def answer(request: Request, fn: Callable[[GemState], Response]) -> Response:
        gem = current()
        with gem.lock:
            gem.in_flight += 1
            gem.max_in_flight = max(gem.max_in_flight, gem.in_flight)
        try:
            if gem.latency:
                await asyncio.sleep(gem.latency)
            refused = await guard(request)
            if refused is not None:
                return refused
            with gem.lock:
                return fn(gem)
        finally:
            with gem.lock:
                gem.in_flight -= 1

    async def applications(request: Request) -> Response:
        def run(gem: GemState) -> Response:
            items = [a for a in gem.applications.values() if a["deleted_at"] is None]
            status = request.query_params.get("status")
            if status is not None:
                if status not in ("active", "rejected", "hired"):
                    return _error(422, "Validation error", status=["must be one of active, rejected, hired"])
                items = [a for a in items if a["status"] == status]
            if "job_id" in request.query_params:
                items = [a for a in items if any(j["id"] == request.query_params["job_id"] for j in a["jobs"])]
            raw_after = request.query_params.get("last_activity_after")
            if raw_after is not None:
                after = _parse_time(raw_after)
                if after is None:
                    return _error(422, "Validation error", last_activity_after=["must be an ISO-8601 date-time"])
                items = [a for a in items if datetime.fromisoformat(a["last_activity_at"]) > after]
            return page(request, items)

        return await answer(request, run)

    async def candidate(request: Request) -> Response:
        def run(gem: GemState) -> Response:
            found = gem.candidates.get(request.path_params["candidate_id"])
            return JSONResponse(found) if found else _error(404, "Candidate not found")

        return await answer(request, run)

    async def listing(request: Request) -> Response:
        kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]

        def run(gem: GemState) -> Response:
            table = {"jobs": gem.jobs, "users": gem.users, "job_stages": gem.stages}[kind]
            return page(request, list(table.values()))

        return await answer(request, run)

    async def add_note(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None

        def run(gem: GemState) -> Response:
            cid = request.path_params["candidate_id"]
            if cid not in gem.candidates:
                return _error(404, "Candidate not found")
            if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"].strip():
                return _error(422, "Validation error", body=["is required"])
            if len(body["body"]) > 10_000:
                return _error(422, "Validation error", body=["must be at most 10000 characters"])
            if body.get("visibility") not in ("public", "private"):
                return _error(422, "Validation error", visibility=["must be public or private"])
            user_id = body.get("user_id")
            if user_id is not None and user_id not in gem.users:
                return _error(422, "Validation error", user_id=["unknown user"])
            note_id = gem_id("notes", len(gem.notes) + 1)
            gem.notes.append({"id": note_id, "candidate_id": cid, **body})
            user = gem._user_lite(user_id) if user_id else None
            return JSONResponse(
                {
                    "id": note_id,
                    "created_at": iso(gem.clock()),
                    "body": body["body"],
                    "user": user,
                    "private": body["visibility"] == "private",
                    "visibility": body["visibility"],
                },
                status_code=201,
            )

        return await answer(request, run)

    routes = []
    for suffix in ("", "/"):
        routes += [
            Route(f"/ats/v0/applications{suffix}", applications, methods=["GET"]),
            Route(f"/ats/v0/candidates/{{candidate_id}}{suffix}", candidate, methods=["GET"]),
            Route(f"/ats/v0/candidates/{{candidate_id}}/activity_feed/notes{suffix}", add_note, methods=["POST"]),
            Route(f"/ats/v0/jobs{suffix}", listing, methods=["GET"]),
            Route(f"/ats/v0/users{suffix}", listing, methods=["GET"]),
            Route(f"/ats/v0/job_stages{suffix}", listing, methods=["GET"]),
        ]
    app = Starlette(routes=routes)
    app.state.gem = state
    return app


class FakeGem:
    """A running fake: `.url` is the Gem base URL (like https://api.gem.com), `.state` its account."""

    def __init__(self, app: Starlette, server: ServerThread) -> None:
        self.app = app
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> GemState:
        state: GemState = self.app.state.gem
        return state

    def reset(self, clock: Callable[[], datetime] | None = None) -> GemState:
        self.app.state.gem = GemState(clock)
        return self.state


def start_fake_gem() -> FakeGem:
    app = create_app(GemState())
    server = ServerThread(app).start()
    return FakeGem(app, server)


_shared: FakeGem | None = None


def _stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.server.stop()
        _shared = None


@pytest.fixture
def fake_gem(request: pytest.FixtureRequest) -> FakeGem:
    """A fake Gem with a fresh, empty account for each test; the server itself is shared by the session."""
    global _shared
    if _shared is None:
        _shared = start_fake_gem()
        request.config.add_cleanup(_stop_shared)
    _shared.reset()
    return _shared
