"""One weekly digest run for 200 plans with 10,000 applications: wall time, CPU and peak memory.

    .venv/bin/python bench/digest.py                     # SQLite in a temporary directory
    .venv/bin/python bench/digest.py --plans 200 --applications 10000
    .venv/bin/python bench/digest.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_digest

Seeds one workspace (Europe/Berlin) with `--plans` plans, each with its own hiring channel, and
`--applications` applications spread evenly over them, each with one invitation placed in the week
before the clock's Monday: all sent, most started, about 60% completed with a score, 10% expired,
some waiting for review. Then runs `bot.digest.Digests.run()` once at Monday 09:05, as the
`digest.weekly` job would, posting every digest with `files_upload_v2` to the fake Slack
(tests/fakes/slack.py) on loopback, in this process. Reports the time split into the figures (two
queries for all plans), rendering (matplotlib) and Slack uploads, the process's CPU time and its peak RSS; with `--heap`, the peak Python
heap during the run too (tracemalloc, which slows the run about threefold: take times from a run without it). The database is dropped and
recreated. A second run measures the no-op case (every week already done).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import backend, fresh_database, machine, sqlite_url

from bot.digest import Digests, DigestStats, this_monday
from bot.slack.gateway import SlackGateway
from handlers.digest import DigestRenderer
from store.db import make_engine, make_session_factory
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, Plan, Workspace
from tests.fakes.slack import FakeSlack

TEAM, TOKEN = "T0DIGEST", "xoxb-digest-bench"
BERLIN = ZoneInfo("Europe/Berlin")


class TimedRenderer(DigestRenderer):
    def __init__(self) -> None:
        self.seconds = 0.0
        self.charts = 0

    def chart(self, stats: DigestStats) -> bytes:
        started = time.perf_counter()
        try:
            return super().chart(stats)
        finally:
            self.seconds += time.perf_counter() - started
            self.charts += 1


def seed(url: str, plans: int, applications: int, monday: datetime, fake: FakeSlack) -> None:
    engine = make_engine(url)  # fresh_database made the tables
    sf = make_session_factory(engine, lambda: monday)
    rng = random.Random(16)
    week = monday - timedelta(days=7)
    with sf.begin() as session:
        ws = Workspace(team_id=TEAM, active=True, timezone="Europe/Berlin")
        session.add(ws)
        session.flush()
        job_rows, plan_rows = [], []
        for p in range(plans):
            job_rows.append({"workspace_id": ws.id, "external_id": f"job-{p}", "name": f"Job {p}"})
            channel = f"CJOB{p:04d}"
            fake.add_channel(channel, team_id=TEAM, name=f"hiring-{p}")
            plan_rows.append(
                {
                    "workspace_id": ws.id,
                    "job_key": f"job {p}",
                    "job_label": f"Job {p}",
                    "stage_key": "imocha assessment",
                    "stage_label": "iMocha assessment",
                    "test_id": 1001,
                    "test_name": "Python Developer",
                    "channel_id": channel,
                    "pass_mark": 60,
                    "share_scores_in_channel": p % 2 == 0,
                    "created_by": "UREC000",
                    "created_at": monday,
                    "updated_at": monday,
                }
            )
        session.execute(Job.__table__.insert(), job_rows)
        session.execute(Plan.__table__.insert(), plan_rows)
        job_ids = list(session.scalars(Job.__table__.select().with_only_columns(Job.id).order_by(Job.id)))
        plan_ids = list(session.scalars(Plan.__table__.select().with_only_columns(Plan.id).order_by(Plan.id)))
        candidates, apps, invitations, links = [], [], [], []
        for n in range(applications):
            p = n % plans
            sent = week + timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
            roll = rng.random()
            status, app_status, started, finished, pct = "pending", "sent", None, None, None
            if roll < 0.6:
                status, app_status = "complete", ("needs_review" if rng.random() < 0.3 else "reviewed")
                started = sent + timedelta(hours=rng.uniform(1, 30))
                finished = started + timedelta(minutes=rng.uniform(20, 90))
                pct = round(rng.uniform(20, 100), 1)
            elif roll < 0.7:
                status, app_status = "expired", "expired"
            elif roll < 0.85:
                status, app_status, started = "in_progress", "in_progress", sent + timedelta(hours=2)
            changed = finished or started or (sent + timedelta(days=1) if status == "expired" else sent)
            candidates.append({"id": n + 1, "workspace_id": ws.id, "name": f"Candidate {n}", "email": f"c{n}@example.com"})
            apps.append(
                {
                    "id": n + 1,
                    "workspace_id": ws.id,
                    "external_id": f"app-{n}",
                    "source": "ats",
                    "stage_key": "imocha assessment",
                    "stage_name": "iMocha assessment",
                    "candidate_id": n + 1,
                    "job_id": job_ids[p],
                    "plan_id": plan_ids[p],
                    "test_id": 1001,
                    "test_name": "Python Developer",
                    "pass_mark": 60,
                    "share_scores_in_channel": p % 2 == 0,
                    "owner_user_id": f"UREC{p % 40:03d}",
                    "status": app_status,
                    "status_reason": None,
                    "status_changed_at": changed,
                    "attempt": 1,
                    "created_at": sent,
                    "updated_at": changed,
                }
            )
            invitations.append(
                {
                    "id": n + 1,
                    "workspace_id": ws.id,
                    "imocha_id": 9_000_000 + n,
                    "test_id": 1001,
                    "test_name": "Python Developer",
                    "candidate_email": f"c{n}@example.com",
                    "candidate_name": f"Candidate {n}",
                    "test_url": "https://example.com/take",
                    "status": status,
                    "attempt": 1,
                    "percentage": pct,
                    "sent_at": sent,
                    "started_at": started,
                    "finished_at": finished,
                    "status_changed_at": changed,
                    "updated_at": changed,
                }
            )
            links.append(
                {"application_id": n + 1, "invitation_id": n + 1, "test_id": 1001, "live": True, "reused": False, "linked_at": sent}
            )
        session.execute(Candidate.__table__.insert(), candidates)
        session.execute(Invitation.__table__.insert(), invitations)
        session.execute(Application.__table__.insert(), apps)
        session.execute(ApplicationInvitation.__table__.insert(), links)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--database-url")
    parser.add_argument("--heap", action="store_true", help="trace the Python heap's peak (tracemalloc: makes the run ~3x slower)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        url = args.database_url or sqlite_url(tmp)
        fresh_database(url)
        fake.add_team(TEAM, TOKEN)
        fake.add_user("UREC000", team_id=TEAM, email="rec@example.com")
        now = datetime.combine(this_monday(datetime(2026, 11, 26, tzinfo=UTC), BERLIN) + timedelta(days=7), clock_time(9, 5), BERLIN)
        started = time.perf_counter()
        seed(url, args.plans, args.applications, now.astimezone(UTC), fake)
        print(
            f"{machine()}; {backend(url)}; seeded {args.plans} plans, {args.applications} applications in {time.perf_counter() - started:.1f}s"
        )

        engine = make_engine(url)
        sf = make_session_factory(engine, lambda: now.astimezone(UTC))
        renderer = TimedRenderer()
        gateway = SlackGateway(base_url=fake.api_url, token_for=lambda team: TOKEN)
        digests = Digests(session_factory=sf, gateway=gateway, renderer=renderer, clock=lambda: now.astimezone(UTC))
        figures_seconds: list[float] = []
        original = digests._figures

        def timed_figures(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                figures_seconds.append(time.perf_counter() - t)

        digests._figures = timed_figures  # type: ignore[method-assign]
        DigestRenderer().chart(DigestStats(0, "warm-up", "", "", now.date(), now.date(), "UTC", 1, 1, 1, 0, 1, 1, 70.0, 1.0, 60, (70.0,)))

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.heap:
            tracemalloc.start()
        cpu, wall = time.process_time(), time.perf_counter()
        posted = digests.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        _, heap_peak = tracemalloc.get_traced_memory() if args.heap else (0, 0)
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        uploads = fake.files()
        sizes = sorted(len(f.data or b"") for f in uploads)
        slack_seconds = wall - sum(figures_seconds) - renderer.seconds
        print(f"run: {posted} digests posted in {wall:.2f}s wall, {cpu:.2f}s CPU (this process, the fake Slack included)")
        print(f"  figures (2 queries for all {args.plans} plans): {sum(figures_seconds) * 1000:.0f} ms")
        print(f"  charts: {renderer.charts} in {renderer.seconds:.2f}s ({renderer.seconds / max(1, renderer.charts) * 1000:.0f} ms each)")
        print(f"  claims, uploads (3 Slack calls each) and bookkeeping: {slack_seconds:.2f}s")
        print(f"  PNG sizes: {sizes[0] / 1024:.0f}–{sizes[-1] / 1024:.0f} KiB" if sizes else "  no PNGs")
        if args.heap:
            print(f"  peak Python heap during the run (tracemalloc; times above are slowed by it): {heap_peak / 2**20:.1f} MiB")
        print(f"  peak RSS: {rss_before:.0f} MiB before the run, {rss_after:.0f} MiB after")
        print(f"  Slack violations: {len(fake.violations)}")

        wall = time.perf_counter()
        again = digests.run()
        print(f"second run (every week done): {again} posted in {(time.perf_counter() - wall) * 1000:.0f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
