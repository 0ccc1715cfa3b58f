"""Background jobs (poller, sweep, interrupted sends, reminders, Slack outbox, Gem, weekly digest, ATS write-back): APScheduler 3 behind this one module."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.clock import system_clock
from bot.runtime.logs import new_request_id
from store import repos

log = logging.getLogger("bot.runtime.scheduler")

POLL = "imocha.poll"
SWEEP = "imocha.sweep"
RECOVER_SENDS = "imocha.recover_sends"
REMINDERS = "imocha.reminders"
OUTBOX = "slack.outbox"
GEM = "gem.poll"
EVENTS = "events.deliver"
DIGEST = "digest.weekly"
WRITEBACK = "ats.writeback"
JOB_IDS = (POLL, SWEEP, RECOVER_SENDS, REMINDERS, OUTBOX, GEM, EVENTS, DIGEST, WRITEBACK)
# The composition root may name jobs by their short names too.
SHORT_NAMES = {
    "poll": POLL,
    "sweep": SWEEP,
    "recover_sends": RECOVER_SENDS,
    "reminders": REMINDERS,
    "outbox": OUTBOX,
    "gem": GEM,
    "events": EVENTS,
    "digest": DIGEST,
    "writeback": WRITEBACK,
}
# Jobs one replica at a time may run. The outbox and the ATS write-back need no lease: each of their
# rows is claimed. Events
# take the lease so that one replica sends them, in order.
SINGLETONS = frozenset({POLL, SWEEP, RECOVER_SENDS, REMINDERS, GEM, EVENTS, DIGEST})

OUTBOX_SECONDS = 5.0
EVENTS_SECONDS = 5.0
WRITEBACK_SECONDS = 10.0  # decisions are written at once; this job retries and resumes
REMINDER_SECONDS = 3600.0  # hourly; the per-day dedupe keeps it to one reminder a day
# Every 10 minutes: a digest goes out at most this long after Monday 09:00 in its workspace's zone (or
# as soon as a replica is up, if none was then); the unique (plan, week) row keeps it to one a week.
DIGEST_SECONDS = 600.0
MIN_SWEEP_SECONDS = 60.0
# Sends interrupted by a crash are finished once their lock (LOCK_SECONDS, 2 min) has lapsed; a minute
# between looks keeps the wait after that short.
RECOVER_SENDS_SECONDS = 60.0
MIN_GEM_SECONDS = 60.0
# A lease outlives three missed runs before another replica takes over, and never less than this, so a
# long cycle of a fast job (IMOCHA_POLL_SECONDS=1) does not let a second replica in halfway through.
MIN_LEASE_SECONDS = 30.0
FIRST_RUN_DELAY = 5.0  # seconds after start(): a restart catches up at once


def intervals(poll_seconds: float) -> dict[str, float]:
    """Seconds between runs of each job for a given IMOCHA_POLL_SECONDS."""
    return {
        POLL: poll_seconds,
        SWEEP: max(MIN_SWEEP_SECONDS, 10 * poll_seconds),
        RECOVER_SENDS: RECOVER_SENDS_SECONDS,
        REMINDERS: REMINDER_SECONDS,
        OUTBOX: OUTBOX_SECONDS,
        GEM: max(MIN_GEM_SECONDS, poll_seconds),
        EVENTS: EVENTS_SECONDS,
        DIGEST: DIGEST_SECONDS,
        WRITEBACK: WRITEBACK_SECONDS,
    }


class Scheduler:
    def __init__(
        self,
        *,
        poll_seconds: float,
        jobs: Mapping[str, Callable[[], object]],
        session_factory: sessionmaker[Session],
        holder_id: str,
        clock: Callable[[], datetime],
        around: Callable[[], AbstractContextManager[None]] = nullcontext,
    ):
        unknown = set(jobs) - set(JOB_IDS) - set(SHORT_NAMES)
        if unknown:
            raise ValueError(f"unknown job ids {sorted(unknown)}; known: {', '.join(JOB_IDS)}")
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self._jobs = {SHORT_NAMES.get(name, name): fn for name, fn in jobs.items()}
        self._sf = session_factory
        self._holder = holder_id
        self._clock = clock
        # Each job runs inside `around()`: the composition root passes the ack gate's work(), so the
        # jobs' iMocha and Slack calls and transactions let Slack's acks go first (bot/slack/acks.py).
        self._around = around
        self.intervals = {job_id: seconds for job_id, seconds in intervals(poll_seconds).items() if job_id in self._jobs}
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        # APScheduler keeps its own timeline on the wall clock (it compares next_run_time with
        # datetime.now itself), so the first run is placed on that timeline. `clock` is the domain's
        # time (leases); it never decides when APScheduler fires.
        first_run = system_clock()
        for job_id, fn in self._jobs.items():
            seconds = self.intervals[job_id]
            self._scheduler.add_job(
                self.run_job,
                IntervalTrigger(seconds=seconds, timezone=UTC),
                args=(job_id, fn),
                id=job_id,
                name=job_id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                # A run late by up to one interval still happens (once, thanks to coalesce).
                misfire_grace_time=max(1, math.ceil(seconds)),
                next_run_time=first_run + timedelta(seconds=min(seconds, FIRST_RUN_DELAY)),
            )

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._scheduler.start()
        log.info(
            "scheduler started (%s) as %s",
            ", ".join(f"{job_id} every {seconds:g}s" for job_id, seconds in self.intervals.items()),
            self._holder,
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop the jobs (waiting for running ones when `wait`) and hand the leases back at once."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        names = [job_id for job_id in self._jobs if job_id in SINGLETONS]
        if not names:
            return
        try:
            # A second in the past: acquire_lease takes a lease only once it expired strictly before now.
            expired = self._clock() - timedelta(seconds=1)
            with self._sf.begin() as session:
                for name in names:
                    repos.release_lease(session, name, self._holder, expired)
        except Exception:
            log.exception("could not release the scheduler's leases; they expire on their own")

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def jobs(self) -> list[Job]:
        return list(self._scheduler.get_jobs())

    # -- running one job ------------------------------------------------------------------------------

    def run(self, job_id: str) -> bool:
        """Run a registered job now, through the same wrapper the scheduler uses."""
        job_id = SHORT_NAMES.get(job_id, job_id)
        return self.run_job(job_id, self._jobs[job_id])

    def run_job(self, name: str, fn: Callable[[], object]) -> bool:
        """The error boundary of background work: lease, logs, and never an exception.

        Returns True when `fn` ran to the end; False when another replica holds the lease or it failed.
        """
        new_request_id(f"job-{name.rsplit('.', 1)[-1]}")
        try:
            if name in SINGLETONS and not self._lease(name):
                log.debug("job %s skipped: another replica holds its lease", name)
                return False
            log.debug("job %s started", name)
            started = time.monotonic()
            with self._around():
                fn()
            elapsed = time.monotonic() - started
            log.debug("job %s finished in %.2fs", name, elapsed)
            if name in SINGLETONS:
                self._lease(name)  # renew: the lease counts from the end of a long run
            return True
        except Exception:
            log.exception("job %s failed", name)
            return False

    def _lease(self, name: str) -> bool:
        now = self._clock()
        ttl = max(MIN_LEASE_SECONDS, 3 * self.intervals.get(name, MIN_LEASE_SECONDS))
        with self._sf.begin() as session:
            return repos.acquire_lease(session, name, self._holder, now, now + timedelta(seconds=ttl))
