"""Poll cost: one status-poller cycle over many open invitations against the fake iMocha on loopback.

    .venv/bin/python bench/poll.py                                   # 10,000 open, 100 completions, SQLite
    .venv/bin/python bench/poll.py --completions 1000 --latency 0.05 # issue 6's target case
    .venv/bin/python bench/poll.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_poll

Prints iMocha calls per cycle, wall time, database statements per cycle (a `before_cursor_execute`
listener; an executemany counts once) and peak RSS. The fake iMocha and the seeding run in their own
processes, so the peak RSS is the poller's process alone. The database is emptied and recreated.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

API_KEY = "sandbox-bench-key"
TEST_ID = 1001


# -- the fake iMocha, in a child process ------------------------------------------------------------


def serve_fake(conn: Connection) -> None:
    """Run the sandbox API on a free port and answer control messages until told to stop."""
    from bot.runtime.serving import ServerThread, free_port
    from bot.sandbox.api import create_app
    from bot.sandbox.state import ImochaState

    port = free_port()
    state = ImochaState(base_url=f"http://127.0.0.1:{port}")
    state.callbacks_enabled = False
    state.add_test(TEST_ID, "Python Developer", [("Python basics", 30), ("Problem solving", 20)], duration=40)
    server = ServerThread(create_app(state), port=port).start()
    conn.send(server.url)
    while True:
        command, arg = conn.recv()
        if command == "seed":
            ids = [state.invite(TEST_ID, email=f"candidate{i}@example.com", name=f"Candidate {i}")[0].id for i in range(arg)]
            conn.send(ids)
        elif command == "complete":
            for inv_id in arg:
                state.complete(inv_id)
            conn.send(len(arg))
        elif command == "latency":
            state.latency = arg
            conn.send(arg)
        elif command == "calls":
            conn.send(Counter(call.path.rsplit("/", 1)[0] if "/reports/" in call.path else call.path for call in state.calls))
        elif command == "reset_calls":
            state.reset_calls()
            conn.send(None)
        elif command == "stop":
            server.stop()
            conn.send(None)
            return


class Fake:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=serve_fake, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def ask(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        return self._conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._process.join(10)


# -- seeding the bot's database, in a child process ------------------------------------------------


def seed_database(url: str, imocha_ids: list[int], key_token: str) -> None:
    """Bulk-insert one workspace with an open, sent application per iMocha invitation."""
    from sqlalchemy import insert

    from bot.runtime.clock import system_clock
    from store.db import make_engine, make_session_factory
    from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, Workspace

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import fresh_database

    fresh_database(url)  # drops and recreates the tables; creates a missing PostgreSQL database
    engine = make_engine(url)
    sf = make_session_factory(engine, system_clock)
    now = system_clock()
    sent = now - timedelta(days=1)
    with sf.begin() as session:
        session.execute(
            insert(Workspace),
            [{"id": 1, "team_id": "TBENCH", "active": True, "imocha_key_enc": key_token, "poll_checkpoint": now - timedelta(minutes=2)}],
        )
        session.execute(insert(Job), [{"id": 1, "workspace_id": 1, "external_id": "job-1", "name": "Backend Engineer"}])
        rows = range(1, len(imocha_ids) + 1)
        session.execute(
            insert(Candidate),
            [{"id": n, "workspace_id": 1, "name": f"Candidate {n}", "email": f"candidate{n - 1}@example.com"} for n in rows],
        )
        session.execute(
            insert(Invitation),
            [
                {
                    "id": n,
                    "workspace_id": 1,
                    "imocha_id": imocha_id,
                    "test_id": TEST_ID,
                    "test_name": "Python Developer",
                    "candidate_email": f"candidate{n - 1}@example.com",
                    "candidate_name": f"Candidate {n}",
                    "test_url": "http://127.0.0.1/take",
                    "status": "pending",
                    "sent_at": sent,
                    "status_changed_at": sent,
                    "valid_from": sent,
                    "valid_until": sent + timedelta(days=7),
                }
                for n, imocha_id in zip(rows, imocha_ids, strict=True)
            ],
        )
        session.execute(
            insert(Application),
            [
                {
                    "id": n,
                    "workspace_id": 1,
                    "external_id": f"app-{n}",
                    "source": "ats",
                    "stage_key": "imocha assessment",
                    "stage_name": "iMocha assessment",
                    "candidate_id": n,
                    "job_id": 1,
                    "test_id": TEST_ID,
                    "test_name": "Python Developer",
                    "owner_user_id": "UOWNER",
                    "status": "sent",
                    "current_invitation_id": n,
                    "status_changed_at": sent,
                }
                for n in rows
            ],
        )
        session.execute(
            insert(ApplicationInvitation),
            [{"application_id": n, "invitation_id": n, "test_id": TEST_ID, "live": True} for n in rows],
        )
    engine.dispose()


# -- the measured process ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--open", type=int, default=10_000, help="open invitations (default 10000)")
    parser.add_argument("--completions", type=int, default=100, help="invitations completing in the cycle (default 100)")
    parser.add_argument("--latency", type=float, default=0.0, help="fake iMocha latency per call, seconds (default 0)")
    parser.add_argument("--workers", type=int, default=4, help="report reads in parallel (StatusPoller max_workers)")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    from bot.workspace.crypto import SecretBox

    box = SecretBox(Fernet.generate_key())
    tmp = tempfile.TemporaryDirectory(prefix="bench-poll-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"

    fake = Fake()
    try:
        started = time.monotonic()
        imocha_ids: list[int] = fake.ask("seed", args.open)
        ctx = multiprocessing.get_context("spawn")
        seeder = ctx.Process(target=seed_database, args=(url, imocha_ids, box.encrypt(API_KEY)))
        seeder.start()
        seeder.join()
        if seeder.exitcode != 0:
            raise SystemExit("seeding the database failed")
        print(f"seeded {args.open:,} open invitations in {time.monotonic() - started:.1f}s ({_backend(url)})")
        step = max(1, args.open // max(1, args.completions))
        fake.ask("complete", imocha_ids[::step][: args.completions])
        time.sleep(1.1)  # the window ends on a whole second: let the completions fall before it
        fake.ask("latency", args.latency)
        run_cycles(args, url, box, fake)
    finally:
        fake.stop()
        tmp.cleanup()


def run_cycles(args: argparse.Namespace, url: str, box: Any, fake: Fake) -> None:
    import httpx
    from sqlalchemy import event

    from bot.assessments.poller import StatusPoller
    from bot.imocha import ImochaClient
    from bot.runtime.clock import system_clock
    from bot.workspace.settings import Workspaces
    from store.db import make_engine, make_session_factory

    engine = make_engine(url)
    statements: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb not in ("BEGIN", "PRAGMA"):
            statements[verb] += 1

    sf = make_session_factory(engine, system_clock)
    http = ImochaClient.build_http(fake.url, timeout=httpx.Timeout(30.0))
    workspaces = Workspaces(session_factory=sf, box=box, imocha_factory=lambda key: ImochaClient(http, key), clock=system_clock)
    poller = StatusPoller(sf, workspaces, system_clock, max_workers=args.workers)

    def measure(label: str, run: Any) -> Any:
        statements.clear()
        fake.ask("reset_calls")
        started = time.monotonic()
        result = run()
        wall = time.monotonic() - started
        calls = fake.ask("calls")
        total = sum(statements.values())
        detail = ", ".join(f"{verb} {n}" for verb, n in sorted(statements.items()))
        print(f"\n{label}")
        print(f"  iMocha calls         {sum(calls.values()):>8,}   ({_calls(calls)})")
        print(f"  wall time            {wall:>8.2f} s")
        print(f"  database statements  {total:>8,}   ({detail})")
        print(f"  peak RSS             {_peak_rss_mb():>8.1f} MB")
        return result

    latency = f"iMocha latency {args.latency * 1000:g} ms"
    stats = measure(
        f"poll cycle: {args.open:,} open invitations, {args.completions:,} completions, {latency}, "
        f"{args.workers} report workers, {_backend(url)}",
        lambda: poller.poll_workspace(1),
    )
    if not stats.ok:
        raise SystemExit(f"the cycle failed: {stats.error}")
    print(f"  changed              {stats.changed:>8,}   applications")
    measure("quiet cycle right after (nothing new; the completions are still inside the overlap)", lambda: poller.poll_workspace(1))
    measure("sweep (one batch of 50 reports)", lambda: poller.sweep(1))
    http.close()
    engine.dispose()


def _calls(calls: Counter[str]) -> str:
    names = {"/v3/candidates/testattempts": "window", "/v3/reports": "reports", "/v3/callbacks/process": "replay"}
    return ", ".join(f"{names.get(path, path)} {n:,}" for path, n in sorted(calls.items())) or "none"


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


if __name__ == "__main__":
    main()
