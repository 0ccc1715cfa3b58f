"""Shared pieces of the benchmarks: the fakes, the bot in its own process, seeding, signed bursts, statistics.

Process layout (on purpose, so that no process's CPU work is charged to another's GIL):

- this process: the fake Slack (`tests/fakes/slack.py`) and the fake iMocha (the sandbox), both on
  loopback, and the orchestration (seeding, setup, reading the fakes' call logs);
- the bot: `bot.runtime.app.build_runtime` + `bot.runtime.serving.ServerThread(runtime.web, lifespan="on")`, in a
  child process (`BotProcess`), as it runs in production;
- the load: a child process (`Loader`) that signs the requests and fires them over keep-alive
  connections opened beforehand, timing each one from just before it is sent to its response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TEAM = "T0BENCH"
BOT_TOKEN = "xoxb-bench-token"
SECRET = "bench-signing-secret"
ATS_SECRET = "bench-ats-secret"
ADMIN = "UADMIN"
CHANNEL = "CHIRING"
OTHER_CHANNEL = "COTHER"  # a hiring channel the recruiters are not in
USERS = [f"UREC{i:03d}" for i in range(40)]  # recruiters, all members of CHANNEL
IMOCHA_KEY = "sandbox-test-key"
TEST_ID = 1001
TEST_NAME = "Python Developer"

SPAWN = multiprocessing.get_context("spawn")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ThreadClock:
    """Samples each thread's CPU time (/proc/PID/task/TID/schedstat, ns) every few ms while running.

    `used(start, end, names)` is the CPU each group of threads (name without its trailing number) used
    between two `time.perf_counter()` instants, so a burst's CPU can be told from the work around it.
    """

    def __init__(self, pid: int, interval: float = 0.002):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[int, int]:
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    out[int(tid)] = int(f.read().split()[0])
            except (OSError, ValueError):
                pass
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._read()))
            time.sleep(self.interval)

    def __enter__(self) -> ThreadClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def used(self, start: float, end: float, names: dict[int, str]) -> dict[str, float]:
        """Seconds of CPU by thread group between `start` and `end` (nearest samples)."""
        before = min(self.samples, key=lambda s: abs(s[0] - start))[1]
        after = min(self.samples, key=lambda s: abs(s[0] - end))[1]
        groups: Counter[str] = Counter()
        for tid, ns in after.items():
            name = names.get(tid, "other").rstrip("0123456789").rstrip("_-") or "other"
            groups[name] += (ns - before.get(tid, 0)) / 1e9
        return dict(groups)


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def machine() -> str:
    import platform
    import sqlite3

    return f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}"


# -- the fakes (in this process) --------------------------------------------------------------------


class Fakes:
    """The fake Slack Web API and the fake iMocha, with the team, users and hiring channel the bot needs."""

    def __init__(self, *, slack_latency: float = 0.1, imocha_latency: float = 2.0, slack: Any = None):
        from tests.fakes.imocha import start_fake_imocha
        from tests.fakes.slack import FakeSlack

        self.slack = (slack if slack is not None else FakeSlack()).start()
        self.imocha = start_fake_imocha()
        self.imocha.state.callbacks_enabled = False
        self.slack.add_team(TEAM, BOT_TOKEN)
        self.slack.add_user(ADMIN, team_id=TEAM, email="admin@example.com", is_admin=True)
        for user in USERS:
            self.slack.add_user(user, team_id=TEAM, email=f"{user.lower()}@example.com")
        self.slack.add_channel(CHANNEL, team_id=TEAM, name="hiring", members=[ADMIN, *USERS])
        self.slack.add_channel(OTHER_CHANNEL, team_id=TEAM, name="hiring-elsewhere", members=[ADMIN])
        self.slack_latency = slack_latency
        self.imocha_latency = imocha_latency

    def slow_down(self) -> None:
        """Switch on the benchmark latencies (setup runs without them)."""
        self.slack.latency = self.slack_latency
        self.imocha.state.latency = self.imocha_latency

    def stop(self) -> None:
        self.slack.stop()
        self.imocha.server.stop()


# -- the bot (a child process) ------------------------------------------------------------------------


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    current = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bot_settings(options: dict[str, Any]) -> Any:
    from bot.runtime.config import load_settings

    return load_settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=options["slack_api_url"],
        database_url=options["database_url"],
        imocha_base_url=options["imocha_url"],
        ats_webhook_secret=ATS_SECRET,
        encryption_key=options["encryption_key"],
        imocha_poll_seconds=60,
        public_url=None,
        slack_app_token=options.get("app_token"),  # set: Socket Mode (bench/socket_ack.py)
    )


def _record_gc_pauses(over: float = 0.002) -> list[tuple[int, float]]:
    """(generation, seconds) of each garbage collection in this process that takes over `over` s."""
    import gc

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (seconds := time.perf_counter() - started[0]) > over:
            pauses.append((int(info["generation"]), seconds))

    gc.callbacks.append(timed)
    return pauses


def _serve_bot(conn: Connection, options: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, format="bot[%(process)d] %(levelname)s %(name)s: %(message)s")
    from bot.runtime.app import build_runtime
    from bot.runtime.serving import ServerThread

    runtime = build_runtime(bot_settings(options), holder_id=options.get("holder_id"))
    pauses = _record_gc_pauses()
    server = ServerThread(runtime.web, lifespan="on").start()
    if runtime.socket_link is not None and not runtime.socket_link.connect(timeout=30):
        raise RuntimeError("the bot did not connect over Socket Mode")
    conn.send({"url": server.url, "pid": os.getpid(), "rss": _rss_mb()})
    while True:
        command, arg = conn.recv()
        try:
            if command == "rss":
                conn.send(_rss_mb())
            elif command == "threads":
                import threading

                conn.send(threading.active_count())
            elif command == "gc_pauses":
                conn.send(list(pauses))
                pauses.clear()
            elif command == "thread_names":
                import threading

                conn.send({t.native_id: t.name for t in threading.enumerate()})
            elif command == "poll":
                started = time.monotonic()
                stats = runtime.services.poller.poll_all()
                conn.send({"seconds": time.monotonic() - started, "stats": [repr(s) for s in stats], "rss": _rss_mb()})
            elif command == "deliver":
                conn.send(runtime.services.outbox.deliver(limit=arg or 200))
            elif command == "pending":
                conn.send(runtime.services.outbox.pending())
            elif command == "stop":
                server.stop()
                runtime.close()
                conn.send(_rss_mb())
                return
            else:
                conn.send(ValueError(f"unknown command {command!r}"))
        except Exception as exc:  # report to the orchestrator instead of dying silently
            conn.send(exc)


def bot_options(
    fakes: Fakes, database_url: str, encryption_key: str, *, holder_id: str | None = None, app_token: str | None = None
) -> dict[str, Any]:
    return {
        "slack_api_url": fakes.slack.api_url,
        "imocha_url": fakes.imocha.url,
        "database_url": database_url,
        "encryption_key": encryption_key,
        "holder_id": holder_id,
        "app_token": app_token,
    }


class BotProcess:
    """The real bot in its own process (HTTP mode, or Socket Mode with `app_token`); `ask()` sends it a control command."""

    def __init__(self, *, fakes: Fakes, database_url: str, encryption_key: str, holder_id: str | None = None, app_token: str | None = None):
        self._conn, child = SPAWN.Pipe()
        options = bot_options(fakes, database_url, encryption_key, holder_id=holder_id, app_token=app_token)
        self.process = SPAWN.Process(target=_serve_bot, args=(child, options), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 60
        while not self._conn.poll(0.2):
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start (see its output above)")
        hello = self._conn.recv()
        self.url: str = hello["url"]
        self.pid: int = hello["pid"]
        self.startup_rss: tuple[float, float] = hello["rss"]

    def ask(self, command: str, arg: Any = None, timeout: float = 300) -> Any:
        self._conn.send((command, arg))
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the bot did not answer {command!r} within {timeout} s")
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def stop(self) -> tuple[float, float] | None:
        try:
            return self.ask("stop", timeout=30)  # type: ignore[no-any-return]
        except Exception:
            return None
        finally:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()


# -- the database ---------------------------------------------------------------------------------------


def fresh_database(url: str) -> None:
    """Drop and recreate every table (use a scratch database); a missing PostgreSQL database is created."""
    from sqlalchemy import make_url, text

    from store.db import make_engine
    from store.models import Base

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        admin = make_engine(str(parsed.set(database="postgres").render_as_string(hide_password=False)), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()


def sqlite_url(directory: str) -> str:
    return f"sqlite:///{Path(directory) / 'bench.db'}"


def backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def workspace_id(url: str) -> int:
    from sqlalchemy import select

    from store.db import make_engine
    from store.models import Workspace

    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(select(Workspace.id).where(Workspace.team_id == TEAM)).scalar_one()
    engine.dispose()
    return int(found)


@dataclass
class Seeded:
    """Application ids seeded per status."""

    needs_sending: list[int]
    sent: list[int]
    expired: list[int]


def seed_applications(
    url: str,
    fakes: Fakes | None,
    *,
    needs_sending: int = 0,
    sent: int = 0,
    expired: int = 0,
    owner: str | Sequence[str] = USERS,
    jobs: int = 5,
    start_at: int = 0,
    cards: bool = True,
    imocha_invitations: bool = True,
    channel: str = CHANNEL,
) -> Seeded:
    """Bulk-insert applications through `store.models` (one `executemany` per table).

    Sent and expired ones get an invitation, created in the fake iMocha too (so Cancel and Resend act
    on invitations iMocha knows); with `cards`, each application has a card in the hiring channel and
    the fake Slack holds the card message, so `chat.update` finds it.
    """
    from sqlalchemy import func, insert, select, text

    from bot.runtime.clock import system_clock
    from store.db import make_engine, make_session_factory
    from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, SlackCard

    ws = workspace_id(url)
    engine = make_engine(url)
    sf = make_session_factory(engine, system_clock)  # the bot under test runs on the system clock too
    owners = [owner] if isinstance(owner, str) else list(owner)
    now = system_clock()
    long_ago = now - timedelta(days=2)
    total = needs_sending + sent + expired
    statuses = ["needs_sending"] * needs_sending + ["sent"] * sent + ["expired"] * expired
    with sf.begin() as session:
        job_ids = []
        for j in range(jobs):
            external = f"bench-job-{j}"
            found = session.scalar(select(Job.id).where(Job.workspace_id == ws, Job.external_id == external))
            if found is None:
                found = session.scalar(
                    insert(Job).values(workspace_id=ws, external_id=external, name=f"Engineer, team {j}").returning(Job.id)
                )
            job_ids.append(found)
        base_app = (session.scalar(select(func.max(Application.id))) or 0) + 1
        base_cand = (session.scalar(select(func.max(Candidate.id))) or 0) + 1
        base_inv = (session.scalar(select(func.max(Invitation.id))) or 0) + 1
        n_ids = list(range(total))
        emails = [f"cand{start_at + base_cand + n}@example.com" for n in n_ids]
        session.execute(
            insert(Candidate),
            [{"id": base_cand + n, "workspace_id": ws, "name": f"Candidate {base_cand + n}", "email": emails[n]} for n in n_ids],
        )
        invitations = []
        imocha_ids: dict[int, int] = {}
        for n, status in enumerate(statuses):
            if status == "needs_sending":
                continue
            if fakes is not None and imocha_invitations:
                inv, _new = fakes.imocha.state.invite(TEST_ID, email=emails[n], name=f"Candidate {base_cand + n}")
                if status == "expired":
                    fakes.imocha.state.expire(inv.id)
                imocha_ids[n] = inv.id
            else:
                imocha_ids[n] = 9_000_000 + base_inv + n
            invitations.append(
                {
                    "id": base_inv + n,
                    "workspace_id": ws,
                    "imocha_id": imocha_ids[n],
                    "test_id": TEST_ID,
                    "test_name": TEST_NAME,
                    "candidate_email": emails[n],
                    "candidate_name": f"Candidate {base_cand + n}",
                    "test_url": "http://127.0.0.1/take",
                    "status": "pending" if status == "sent" else "expired",
                    "sent_by": owners[n % len(owners)],
                    "sent_at": long_ago,
                    "status_changed_at": long_ago,
                    "valid_from": long_ago,
                    "valid_until": long_ago + timedelta(days=7) if status == "sent" else long_ago + timedelta(days=1),
                }
            )
        if invitations:
            session.execute(insert(Invitation), invitations)
        session.execute(
            insert(Application),
            [
                {
                    "id": base_app + n,
                    "workspace_id": ws,
                    "external_id": f"bench-app-{start_at + base_app + n}",
                    "source": "ats",
                    "stage_key": "imocha assessment",
                    "stage_name": "iMocha assessment",
                    "candidate_id": base_cand + n,
                    "job_id": job_ids[n % len(job_ids)],
                    "test_id": TEST_ID,
                    "test_name": TEST_NAME,
                    "owner_user_id": owners[n % len(owners)],
                    "status": status,
                    "current_invitation_id": base_inv + n if status != "needs_sending" else None,
                    "status_changed_at": long_ago,
                    "created_at": long_ago + timedelta(seconds=n),
                    "updated_at": long_ago + timedelta(seconds=n),
                }
                for n, status in enumerate(statuses)
            ],
        )
        links = [
            {"application_id": base_app + n, "invitation_id": base_inv + n, "test_id": TEST_ID, "live": True}
            for n, status in enumerate(statuses)
            if status != "needs_sending"
        ]
        if links:
            session.execute(insert(ApplicationInvitation), links)
        if cards:
            rows = []
            for n in n_ids:
                ts = fakes.slack.add_message(channel, text="card", user="UBOT") if fakes is not None else f"1700000000.{n:06d}"
                rows.append({"application_id": base_app + n, "channel_id": channel, "ts": ts, "in_dm": False})
            session.execute(insert(SlackCard), rows)
        if engine.dialect.name == "postgresql":  # explicit ids do not move PostgreSQL's sequences
            for table in ("candidates", "invitations", "applications"):
                session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    engine.dispose()
    ids = [base_app + n for n in n_ids]
    return Seeded(ids[:needs_sending], ids[needs_sending : needs_sending + sent], ids[needs_sending + sent :])


# -- setting the workspace up through Slack, as a person would ----------------------------------------------


def setup_through_slack(bot_url: str, fakes: Fakes, sender: Any = None) -> None:
    """`/imocha setup` + its modal with the fake iMocha's key, then `/imocha plan` saved (tests/wiring/conftest.py).

    `sender` is anything with SlackSender's `command` and `submit` (Socket Mode: bench/socket_ack.py).
    """
    import httpx

    from tests.fakes import slack_requests as sr

    with contextlib.nullcontext(sender) if sender is not None else sr.SlackSender(bot_url, SECRET) as sender:
        r = sender.command(team_id=TEAM, user_id=ADMIN, text="setup", response_url=fakes.slack.response_url(ADMIN))
        assert r.status_code == 200, r.text
        fakes.slack.wait_for_calls("views.open", 1)
        view_id = list(fakes.slack.views)[-1]
        r = sender.submit(
            team_id=TEAM,
            user_id=ADMIN,
            callback_id="imocha_setup",
            view_id=view_id,
            values={
                "api_key": {"api_key_input": sr.plain(IMOCHA_KEY)},
                "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
                "validity_days": {"validity_days_input": sr.number(7)},
                "gem_key": {"gem_key_input": sr.plain(None)},
            },
        )
        assert r.status_code == 200, r.text
        fakes.slack.wait_for(lambda s: any("connected" in json.dumps(v) for v in s.views.values()))
        r = sender.submit(
            team_id=TEAM,
            user_id=USERS[0],
            callback_id="imocha_plan",
            values={
                "job": {"job_input": sr.plain("Engineer, team 0")},
                "stage": {"stage_input": sr.plain("iMocha assessment")},
                "test": {"test_select": sr.external(str(TEST_ID), TEST_NAME)},
                "channel": {"channel_input": sr.conversation(CHANNEL)},
                "pass_mark": {"pass_mark_input": sr.number(60)},
                "share_scores": {"share_scores_input": sr.checkboxes()},
            },
        )
        assert r.status_code == 200 and "Plan saved" in r.text, r.text
    httpx.get(f"{bot_url}/healthz").raise_for_status()
    fakes.slack.reset_calls()


# -- the load (a child process) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One Slack request of a burst: its kind (for the report), its raw body, its content type."""

    kind: str
    body: str
    content_type: str


@dataclass(frozen=True)
class Result:
    kind: str
    url: str
    status: int
    seconds: float
    error: str | None = None
    sent_at: float = 0.0  # time.perf_counter() (CLOCK_MONOTONIC, the same in every process) when it was written


class _Connection:
    """One keep-alive HTTP/1.1 connection, spoken by hand: a request costs the load generator ~30 µs.

    httpx's AsyncClient cost ~2 ms of CPU per request here, and its tasks yield at every internal lock, so
    200 of them interleave and each request's clock ran while the client worked on the others: the
    client, not the bot, set the figures. Written by hand, all 200 requests leave within a few ms.
    """

    def __init__(self, base: str):
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        self.base, self.host, self.port = base, parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        assert self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def receive(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    return int(status_line.split()[1]), body
        return int(status_line.split()[1]), await self.reader.readexactly(int(headers.get("content-length", "0")))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _burst(urls: Sequence[str], requests: Sequence[Request], secret: str, timeout: float, spacing: float) -> list[Result]:
    from tests.fakes.slack_requests import sign

    connections = [_Connection(urls[i % len(urls)]) for i in range(len(requests))]
    try:
        # Open every connection first, so the burst times requests, not TCP handshakes.
        await asyncio.gather(*(c.open() for c in connections))
        for c in connections:
            c.send("GET", "/warm-up")
        await asyncio.gather(*(c.receive() for c in connections))
        await asyncio.sleep(0.3)
        signed = [sign(r.body, secret, content_type=r.content_type) for r in requests]
        bodies = [r.body.encode() for r in requests]

        first = time.perf_counter()

        async def one(n: int, c: _Connection, request: Request, body: bytes, headers: dict[str, str]) -> Result:
            if spacing:
                await asyncio.sleep(max(0.0, first + n * spacing - time.perf_counter()))
            started = time.perf_counter()
            c.send("POST", "/slack/events", body, headers)
            try:
                status, answer = await asyncio.wait_for(c.receive(), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                return Result(request.kind, c.base, 0, time.perf_counter() - started, f"{exc.__class__.__name__}: {exc}", started)
            elapsed = time.perf_counter() - started
            error = None if 200 <= status < 300 else answer[:200].decode("utf-8", "replace")
            return Result(request.kind, c.base, status, elapsed, error, started)

        # Each task writes its request before its first await, so all requests leave back to back.
        return list(
            await asyncio.gather(*(one(n, *args) for n, args in enumerate(zip(connections, requests, bodies, signed, strict=True))))
        )
    finally:
        for c in connections:
            c.close()


def _load_worker(conn: Connection) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        urls, requests, secret, timeout, spacing = message
        conn.send(asyncio.run(_burst(urls, requests, secret, timeout, spacing)))


class Loader:
    """Fires bursts of concurrent signed Slack requests from its own process."""

    def __init__(self) -> None:
        self._conn, child = SPAWN.Pipe()
        self._process = SPAWN.Process(target=_load_worker, args=(child,), daemon=True)
        self._process.start()

    def burst(self, urls: str | Sequence[str], requests: Sequence[Request], *, timeout: float = 10.0, spacing: float = 0.0) -> list[Result]:
        """All requests at once (or one every `spacing` s), dealt round-robin over `urls`; each timed from its send to its response."""
        self._conn.send(([urls] if isinstance(urls, str) else list(urls), list(requests), SECRET, timeout, spacing))
        results: list[Result] = self._conn.recv()
        return results

    def stop(self) -> None:
        self._conn.send(None)
        self._process.join(10)


# -- profiling ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def profiling(pid: int, output: str | None, *, rate: int = 100, idle: bool = True, gil: bool = False) -> Iterator[None]:
    """`py-spy record` the process while the block runs (collapsed stacks, per thread); no-op without `output`.

    `gil=True` samples only the thread holding the GIL: where the CPU of a single process goes.
    """
    if not output:
        yield
        return
    import signal
    import subprocess

    spy = Path(sys.executable).with_name("py-spy")
    command = [
        str(spy),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--threads",
        "--output",
        output,
        "--nonblocking",
    ]
    if idle and not gil:
        command.append("--idle")
    if gil:
        command.append("--gil")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        print(f"py-spy: collapsed stacks of pid {pid} in {output}")


# -- statistics ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile by the nearest-rank method (p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary(seconds: Iterable[float]) -> dict[str, float]:
    values = list(seconds)
    return {
        "n": len(values),
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": max(values) * 1000 if values else float("nan"),
        "mean": statistics.fmean(values) * 1000 if values else float("nan"),
    }


def line(label: str, results: Sequence[Result], width: int = 22) -> str:
    s = summary(r.seconds for r in results)
    bad = sum(1 for r in results if not 200 <= r.status < 300)
    over = sum(1 for r in results if r.seconds > 1.0)
    return (
        f"{label:<{width}} n={s['n']:>4}  p50 {s['p50']:7.1f}  p95 {s['p95']:7.1f}  p99 {s['p99']:7.1f}  "
        f"max {s['max']:7.1f} ms   >1s {over:>3}   non-2xx {bad:>3}"
    )


# -- the bot as `imocha-bot run` (a real subprocess, as production starts it) ----------------------------------


def command_database(url: str, fakes: Fakes, encryption_key: str, workdir: str) -> None:
    """A scratch database for `imocha-bot run`: PostgreSQL is dropped, created and migrated with
    `imocha-bot db upgrade` (run refuses a schema that is not at head); SQLite starts empty (run migrates it)."""
    import subprocess

    from sqlalchemy import make_url, text

    from store.db import make_engine

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        Path(parsed.database or "").unlink(missing_ok=True)
        return
    admin = make_engine(str(parsed.set(database="postgres").render_as_string(hide_password=False)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    env = bot_env(fakes, url, encryption_key)
    from tests.botproc import clean_env

    subprocess.run([*_cli(), "db", "upgrade"], cwd=workdir, env=clean_env(env), check=True, stdout=subprocess.DEVNULL)


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("imocha-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.runtime.cli"]


def bot_env(fakes: Fakes, database_url: str, encryption_key: str, **extra: str) -> dict[str, str]:
    """The environment `imocha-bot run` reads (SPEC §6), pointed at the fakes."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fakes.slack.api_url,
        "DATABASE_URL": database_url,
        "IMOCHA_BASE_URL": fakes.imocha.url,
        "ATS_WEBHOOK_SECRET": ATS_SECRET,
        "ENCRYPTION_KEY": encryption_key,
        **extra,
    }


class BotCommand:
    """`imocha-bot run --host 127.0.0.1 --port P` as a subprocess; its log (stderr) goes to a file.

    The log goes to a file, not a pipe: a pipe nobody reads fills (64 KiB) and then blocks the bot's
    logging, and one that is read costs this process CPU. `pid` is the bot's own process.
    """

    def __init__(
        self,
        fakes: Fakes,
        database_url: str,
        encryption_key: str,
        workdir: str,
        *,
        name: str = "bot",
        poll_seconds: float = 60,
        log_level: str = "INFO",
        extra_env: dict[str, str] | None = None,
    ):
        import subprocess

        import httpx

        from bot.runtime.serving import free_port
        from tests.botproc import clean_env

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(workdir) / f"{name}.log"
        env = bot_env(
            fakes, database_url, encryption_key, IMOCHA_POLL_SECONDS=f"{poll_seconds:g}", LOG_LEVEL=log_level, **(extra_env or {})
        )
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [*_cli(), "run", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=workdir,
            env=clean_env(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"imocha-bot run exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"imocha-bot run did not become healthy:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> int | None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except Exception:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


# -- a fake Slack that records each post when it is made, and answers 429 on purpose ----------------------------


@dataclass(frozen=True)
class Post:
    """One chat.postMessage the fake Slack accepted: when (time.time(), after its latency), where, what."""

    at: float
    channel: str
    thread_ts: str | None
    text: str


@dataclass(frozen=True)
class Limited:
    """One chat.postMessage the fake answered 429: when it arrived, its channel, the Retry-After given."""

    at: float
    channel: str
    retry_after: float


def recording_slack(*, ratelimit_every: int = 0, retry_after: int = 2) -> Any:
    """A `FakeSlack` that keeps every accepted chat.postMessage as a `Post` (timestamped when it is
    made, i.e. after the fake's latency), and with `ratelimit_every=N` answers every N-th
    chat.postMessage 429 with `Retry-After: retry_after` (`Limited`), like Slack's per-channel limit."""
    from tests.fakes.slack import FakeSlack, _Fault, _Team

    class RecordingSlack(FakeSlack):
        def __init__(self) -> None:
            super().__init__()
            self.posts: list[Post] = []
            self.limited: list[Limited] = []
            self.ratelimit_every = ratelimit_every
            self.retry_after = retry_after
            self._post_calls = 0

        def _take_fault(self, method: str) -> _Fault | None:
            # Called under the fake's lock right after it recorded the call, so the last call is this one.
            if method == "chat.postMessage" and self.ratelimit_every:
                self._post_calls += 1
                if self._post_calls % self.ratelimit_every == 0:
                    call = self._calls[-1]
                    self.limited.append(Limited(call.at, str(call.body.get("channel")), float(self.retry_after)))
                    return _Fault(429, 1, self.retry_after, "ratelimited", False)
            return super()._take_fault(method)

        def _chat_post_message(self, team: _Team, body: dict[str, Any]) -> dict[str, Any]:
            answer = super()._chat_post_message(team, body)
            self.posts.append(Post(time.time(), str(answer["channel"]), body.get("thread_ts") or None, str(body.get("text") or "")))
            return answer

        def recorded(self) -> tuple[list[Post], list[Limited]]:
            with self._lock:
                return list(self.posts), list(self.limited)

    return RecordingSlack()


# -- signed ATS webhooks (SPEC §4: POST /webhooks/ats), fired from a child process --------------------------------


def ats_event(n: int, *, job_id: str, job_name: str, recruiter: str | None = None) -> str:
    """The n-th generic ATS stage event; its candidate is "Drain candidate NNNN" (so a card names its event)."""
    data: dict[str, Any] = {
        "event": "application.stage_changed",
        "id": f"evt-drain-{n:05d}",
        "team_id": TEAM,
        "application": {"id": f"drain-app-{n:05d}"},
        "candidate": {"id": f"drain-cand-{n:05d}", "name": f"Drain candidate {n:04d}", "email": f"drain-{n:04d}@example.com"},
        "job": {"id": job_id, "name": job_name},
        "stage": {"id": "stage-imocha", "name": "iMocha assessment"},
    }
    if recruiter:
        data["recruiter"] = {"email": recruiter}
    return json.dumps(data)


def ats_headers(body: str) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(ATS_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Signature": f"sha256={digest}"}


@dataclass(frozen=True)
class Delivery:
    """One ATS webhook as the sender saw it (times are time.time())."""

    n: int
    url: str
    status: int
    sent_at: float
    answered_at: float
    body: str


async def _fire_ats(urls: Sequence[str], bodies: Sequence[str], concurrency: int) -> list[Delivery]:
    """POST the bodies in order: the n-th to `urls[n % len(urls)]`, each URL over `concurrency` keep-alive
    connections taking its events in turn (concurrency 1: one at a time per URL, strictly in order)."""
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in urls]
    for n in range(len(bodies)):
        queues[n % len(urls)].put_nowait(n)
    connections = [(_Connection(url), queues[u]) for u, url in enumerate(urls) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c, _ in connections))
    out: list[Delivery] = []

    async def worker(c: _Connection, queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            body = bodies[n].encode()
            sent = time.time()
            c.send("POST", "/webhooks/ats", body, ats_headers(bodies[n]))
            try:
                status, answer = await asyncio.wait_for(c.receive(), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                status, answer = 0, repr(exc).encode()
            out.append(Delivery(n, c.base, status, sent, time.time(), answer[:200].decode("utf-8", "replace")))

    try:
        await asyncio.gather(*(worker(c, q) for c, q in connections))
    finally:
        for c, _ in connections:
            c.close()
    return sorted(out, key=lambda d: d.n)


def _ats_worker(conn: Connection) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        urls, bodies, concurrency = message
        conn.send(asyncio.run(_fire_ats(urls, bodies, concurrency)))


class AtsSender:
    """Fires signed ATS webhooks from its own process (so the fakes' loop in this one is not slowed)."""

    def __init__(self) -> None:
        self._conn, child = SPAWN.Pipe()
        self._process = SPAWN.Process(target=_ats_worker, args=(child,), daemon=True)
        self._process.start()

    def start(self, urls: Sequence[str], bodies: Sequence[str], *, concurrency: int = 1) -> None:
        """Begin firing; `result()` waits for the answers."""
        self._conn.send((list(urls), list(bodies), concurrency))

    def result(self, timeout: float = 600) -> list[Delivery]:
        if not self._conn.poll(timeout):
            raise TimeoutError("the ATS sender did not finish")
        answer: list[Delivery] = self._conn.recv()
        return answer

    def stop(self) -> None:
        self._conn.send(None)
        self._process.join(10)
