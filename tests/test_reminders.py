"""Reminders: untouched and expiring assessments nudge their owner once a day per kind."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments.reminders import Reminders
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, OutboxMessage, Reminder, Workspace
from tests.conftest import Clock

pytestmark = pytest.mark.any_epoch  # time-dependent flows: see tests/conftest.py EPOCHS

_numbers = itertools.count(1)


class Seed:
    def __init__(self, sf: sessionmaker[Session], clock: Clock, *, reminder_days: int = 3):
        self.sf = sf
        self.clock = clock
        with sf.begin() as session:
            ws = Workspace(team_id=f"T{next(_numbers)}", active=True, reminder_days=reminder_days)
            session.add(ws)
            session.flush()
            job = Job(workspace_id=ws.id, external_id="job-1", name="Backend Engineer")
            session.add(job)
            session.flush()
            self.workspace_id, self.job_id = ws.id, job.id

    def assessment(
        self,
        *,
        sent_days_ago: float,
        valid_for: timedelta = timedelta(days=7),
        status: str = "pending",
        app_status: str = "sent",
        owner: str | None = "UOWNER",
        sent_by: str | None = "USENDER",
    ) -> int:
        n = next(_numbers)
        sent_at = self.clock() - timedelta(days=sent_days_ago)
        with self.sf.begin() as session:
            candidate = Candidate(workspace_id=self.workspace_id, name=f"Candidate {n}", email=f"c{n}@example.com")
            session.add(candidate)
            session.flush()
            app = Application(
                workspace_id=self.workspace_id,
                external_id=f"app-{n}",
                source="ats",
                stage_key="imocha assessment",
                stage_name="iMocha assessment",
                candidate_id=candidate.id,
                job_id=self.job_id,
                test_id=1001,
                test_name="Python Developer",
                owner_user_id=owner,
                status=app_status,
            )
            inv = Invitation(
                workspace_id=self.workspace_id,
                imocha_id=5_000_000 + n,
                test_id=1001,
                test_name="Python Developer",
                candidate_email=f"c{n}@example.com",
                candidate_name=f"Candidate {n}",
                test_url="https://example.com/take",
                status=status,
                sent_by=sent_by,
                sent_at=sent_at,
                started_at=sent_at + timedelta(hours=1) if status != "pending" else None,
                valid_from=sent_at,
                valid_until=sent_at + valid_for,
            )
            session.add_all([app, inv])
            session.flush()
            app.current_invitation_id = inv.id
            session.add(ApplicationInvitation(application_id=app.id, invitation_id=inv.id, test_id=1001, live=True))
            return inv.id


def dms(sf: sessionmaker[Session]) -> list[tuple[str, int | None, dict[str, object]]]:
    with sf() as session:
        rows = session.execute(select(OutboxMessage.kind, OutboxMessage.application_id, OutboxMessage.payload).order_by(OutboxMessage.id))
        return [(kind, app_id, dict(payload)) for kind, app_id, payload in rows]


@pytest.fixture
def seed(session_factory: sessionmaker[Session], clock: Clock) -> Seed:
    return Seed(session_factory, clock)


def test_an_untouched_assessment_reminds_its_owner_once_a_day(session_factory: sessionmaker[Session], clock: Clock, seed: Seed) -> None:
    seed.assessment(sent_days_ago=3)
    reminders = Reminders(session_factory, clock)

    assert reminders.run() == 1
    assert dms(session_factory) == [("dm", 1, {"template": "reminder", "user": "UOWNER", "kind": "untouched"})]
    clock.advance(hours=1)
    assert reminders.run() == 0  # the hourly job, later the same day
    clock.advance(days=1)
    assert reminders.run() == 1  # a new day, still untouched
    with session_factory() as session:
        assert len(session.scalars(select(Reminder)).all()) == 2


def test_a_recent_assessment_gets_no_reminder_until_the_workspace_reminder_days_pass(
    session_factory: sessionmaker[Session], clock: Clock
) -> None:
    default = Seed(session_factory, clock)
    default.assessment(sent_days_ago=2.9)
    eager = Seed(session_factory, clock, reminder_days=1)
    eager.assessment(sent_days_ago=1)

    assert Reminders(session_factory, clock).run() == 1
    [(_kind, app_id, _payload)] = dms(session_factory)
    with session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None and app.workspace_id == eager.workspace_id


def test_a_started_or_closed_assessment_gets_no_reminder(session_factory: sessionmaker[Session], clock: Clock, seed: Seed) -> None:
    seed.assessment(sent_days_ago=5, status="in_progress", app_status="in_progress", valid_for=timedelta(days=5, hours=2))
    seed.assessment(sent_days_ago=5, status="cancelled", app_status="cancelled")
    seed.assessment(sent_days_ago=8, status="expired", app_status="expired")

    assert Reminders(session_factory, clock).run() == 0
    assert dms(session_factory) == []


def test_an_assessment_expiring_within_a_day_gets_one_expiring_reminder(
    session_factory: sessionmaker[Session], clock: Clock, seed: Seed
) -> None:
    seed.assessment(sent_days_ago=1, valid_for=timedelta(days=1, hours=10))  # expires in 10 hours
    seed.assessment(sent_days_ago=1, valid_for=timedelta(days=2, hours=1))  # in 25 hours: not yet
    reminders = Reminders(session_factory, clock)

    assert reminders.run() == 1
    assert [payload["kind"] for _kind, _app, payload in dms(session_factory)] == ["expiring"]
    clock.advance(hours=2)
    assert reminders.run() == 1  # the second one now expires within 24 hours
    clock.advance(hours=1)
    assert reminders.run() == 0
    assert [payload["kind"] for _kind, _app, payload in dms(session_factory)] == ["expiring", "expiring"]


def test_an_untouched_assessment_about_to_expire_gets_one_dm_not_two(
    session_factory: sessionmaker[Session], clock: Clock, seed: Seed
) -> None:
    seed.assessment(sent_days_ago=6.5)  # untouched for days, and expires in 12 hours

    assert Reminders(session_factory, clock).run() == 1
    assert [payload["kind"] for _kind, _app, payload in dms(session_factory)] == ["expiring"]


def test_the_sender_is_reminded_when_the_card_has_no_owner(session_factory: sessionmaker[Session], clock: Clock, seed: Seed) -> None:
    seed.assessment(sent_days_ago=4, owner=None, sent_by="USENDER")
    seed.assessment(sent_days_ago=4, owner=None, sent_by=None)

    assert Reminders(session_factory, clock).run() == 1
    assert [payload["user"] for _kind, _app, payload in dms(session_factory)] == ["USENDER"]


def test_the_reminder_queries_do_not_grow_with_the_number_of_assessments(
    session_factory: sessionmaker[Session], clock: Clock, seed: Seed
) -> None:
    for _ in range(12):
        seed.assessment(sent_days_ago=1)  # open, nothing due
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = session_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert Reminders(session_factory, clock).run() == 0
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3
