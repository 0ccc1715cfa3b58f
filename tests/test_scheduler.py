"""The scheduler's job wrapper: database leases, the error boundary, and the job table. Nothing sleeps."""

from __future__ import annotations

import logging

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.scheduler import GEM, OUTBOX, POLL, REMINDERS, SWEEP, Scheduler
from store.models import Lease
from tests.conftest import Clock

pytestmark = pytest.mark.any_epoch  # time-dependent flows: see tests/conftest.py EPOCHS


class Counter:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self) -> None:
        self.runs += 1


def scheduler(sf: sessionmaker[Session], clock: Clock, holder: str, **jobs: Counter) -> Scheduler:
    return Scheduler(
        poll_seconds=120,
        jobs=jobs,  # short names ("poll") stand for the namespaced ids ("imocha.poll")
        session_factory=sf,
        holder_id=holder,
        clock=clock,
    )


def test_two_replicas_on_one_database_run_a_singleton_job_once(session_factory: sessionmaker[Session], clock: Clock) -> None:
    poll = Counter()
    a = scheduler(session_factory, clock, "replica-a", poll=poll)
    b = scheduler(session_factory, clock, "replica-b", poll=poll)

    assert a.run(POLL) is True
    assert b.run(POLL) is False
    clock.advance(seconds=120)
    assert (a.run(POLL), b.run(POLL)) == (True, False)  # the holder keeps its lease by renewing it
    assert poll.runs == 2


def test_another_replica_takes_over_when_the_holder_stops_renewing(session_factory: sessionmaker[Session], clock: Clock) -> None:
    poll = Counter()
    a = scheduler(session_factory, clock, "replica-a", poll=poll)
    b = scheduler(session_factory, clock, "replica-b", poll=poll)
    assert a.run(POLL)

    clock.advance(seconds=3 * 120 - 1)
    assert not b.run(POLL)
    clock.advance(seconds=2)  # three intervals without a renewal: replica-a is presumed gone
    assert b.run(POLL)
    assert not a.run(POLL)
    assert poll.runs == 2


def test_shutdown_hands_the_leases_back_at_once(session_factory: sessionmaker[Session], clock: Clock) -> None:
    a = scheduler(session_factory, clock, "replica-a", poll=Counter(), sweep=Counter())
    b = scheduler(session_factory, clock, "replica-b", poll=Counter(), sweep=Counter())
    assert a.run(POLL) and a.run(SWEEP)

    a.shutdown()

    assert b.run(POLL) and b.run(SWEEP)


def test_the_outbox_job_runs_on_every_replica_without_a_lease(session_factory: sessionmaker[Session], clock: Clock) -> None:
    outbox = Counter()
    a = scheduler(session_factory, clock, "replica-a", outbox=outbox)
    b = scheduler(session_factory, clock, "replica-b", outbox=outbox)

    assert a.run(OUTBOX) and b.run(OUTBOX)
    assert outbox.runs == 2
    with session_factory() as session:
        assert session.scalars(select(Lease)).all() == []


def test_a_failing_job_is_logged_with_its_name_and_never_raises(
    session_factory: sessionmaker[Session], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("iMocha said no")

    sched = scheduler(session_factory, clock, "replica-a")
    with caplog.at_level(logging.DEBUG, logger="bot.runtime.scheduler"):
        assert sched.run_job(REMINDERS, broken) is False
        assert sched.run_job(OUTBOX, lambda: None) is True

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"job {REMINDERS} failed"]
    assert errors[0].exc_info is not None and "iMocha said no" in str(errors[0].exc_info[1])
    assert any(r.levelno == logging.DEBUG and r.getMessage() == f"job {OUTBOX} started" for r in caplog.records)


def test_the_jobs_have_stable_ids_utc_intervals_and_safe_defaults(session_factory: sessionmaker[Session], clock: Clock) -> None:
    sched = scheduler(session_factory, clock, "replica-a", poll=Counter(), sweep=Counter(), reminders=Counter(), outbox=Counter())
    jobs = {job.id: job for job in sched.jobs()}

    assert set(jobs) == {POLL, SWEEP, REMINDERS, OUTBOX}  # gem.poll only when given
    seconds = {}
    for job_id, job in jobs.items():
        assert isinstance(job.trigger, IntervalTrigger)
        assert str(job.trigger.timezone) == "UTC"
        assert (job.coalesce, job.max_instances) == (True, 1)
        assert job.misfire_grace_time and job.misfire_grace_time >= 1
        seconds[job_id] = job.trigger.interval.total_seconds()
    assert seconds == {POLL: 120, SWEEP: 1200, REMINDERS: 3600, OUTBOX: 5}


def test_a_one_second_poll_keeps_the_sweep_at_a_minute(session_factory: sessionmaker[Session], clock: Clock) -> None:
    sched = Scheduler(
        poll_seconds=1,
        jobs={POLL: Counter(), SWEEP: Counter(), GEM: Counter()},
        session_factory=session_factory,
        holder_id="a",
        clock=clock,
    )
    assert sched.intervals == {POLL: 1, SWEEP: 60, GEM: 60}


def test_unknown_job_ids_are_refused(session_factory: sessionmaker[Session], clock: Clock) -> None:
    with pytest.raises(ValueError, match="unknown job ids"):
        Scheduler(poll_seconds=120, jobs={"imocha.pol": Counter()}, session_factory=session_factory, holder_id="a", clock=clock)


def test_the_scheduler_starts_and_shuts_down_cleanly(session_factory: sessionmaker[Session], clock: Clock) -> None:
    poll = Counter()
    sched = scheduler(session_factory, clock, "replica-a", poll=poll)
    sched.start()
    assert sched.running
    sched.shutdown(wait=True)
    assert not sched.running
    assert poll.runs == 0  # the first run is seconds away; the test never waits for it
