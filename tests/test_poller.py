"""The status poller against the fake iMocha over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments.poller import StatusPoller
from bot.imocha import ImochaClient
from bot.workspace.crypto import SecretBox
from bot.workspace.settings import Workspaces
from store.models import (
    Application,
    ApplicationInvitation,
    Candidate,
    Invitation,
    Job,
    OutboxMessage,
    Workspace,
)
from tests.conftest import Clock
from tests.fakes.imocha import GOOD_KEY, PYTHON_TEST_ID, FakeImocha, fake_imocha  # noqa: F401

pytestmark = pytest.mark.any_epoch  # time-dependent flows: see tests/conftest.py EPOCHS

WINDOW = "/v3/candidates/testattempts"
REPORTS = "/v3/reports"


@dataclass(frozen=True)
class Sent:
    application_id: int
    invitation_id: int
    imocha_id: int


class World:
    """One workspace with its iMocha key, a fake iMocha sharing the test clock, and helpers to seed it."""

    _numbers = itertools.count(1)

    def __init__(self, sf: sessionmaker[Session], clock: Clock, fake: FakeImocha, http: httpx.Client, team_id: str = "T1"):
        self.sf = sf
        self.clock = clock
        self.fake = fake
        self.http = http
        self.team_id = team_id
        self.box = SecretBox(Fernet.generate_key())
        with sf.begin() as session:
            ws = Workspace(team_id=team_id, imocha_key_enc=self.box.encrypt(GOOD_KEY), active=True)
            session.add(ws)
            session.flush()
            job = Job(workspace_id=ws.id, external_id="job-1", name="Backend Engineer")
            session.add(job)
            session.flush()
            self.workspace_id, self.job_id = ws.id, job.id

    def workspaces(self) -> Workspaces:
        return Workspaces(
            session_factory=self.sf,
            box=self.box,
            imocha_factory=lambda key: ImochaClient(self.http, key, sleep=lambda s: None, clock=self.clock),
            clock=self.clock,
        )

    def poller(self, **kwargs: Any) -> StatusPoller:
        return StatusPoller(self.sf, self.workspaces(), self.clock, **kwargs)

    def send(self, email: str | None = None, *, owner: str = "UOWNER", sent_at: datetime | None = None) -> Sent:
        """Invite through the fake's HTTP API and record the invitation as the bot's send would."""
        n = next(self._numbers)
        email = email or f"candidate{n}@example.com"
        answer = self.fake.invite(PYTHON_TEST_ID, email=email, name=f"Candidate {n}")
        now = self.clock()
        with self.sf.begin() as session:
            candidate = Candidate(workspace_id=self.workspace_id, name=f"Candidate {n}", email=email)
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
                test_id=PYTHON_TEST_ID,
                test_name="Python Developer",
                owner_user_id=owner,
                status="sent",
            )
            inv = Invitation(
                workspace_id=self.workspace_id,
                imocha_id=answer["testInvitationId"],
                test_id=PYTHON_TEST_ID,
                test_name="Python Developer",
                candidate_email=email,
                candidate_name=f"Candidate {n}",
                test_url=answer["testUrl"],
                status="pending",
                sent_at=sent_at or now,
                status_changed_at=now,
                valid_from=now,
                valid_until=now + timedelta(days=7),
            )
            session.add_all([app, inv])
            session.flush()
            app.current_invitation_id = inv.id
            session.add(ApplicationInvitation(application_id=app.id, invitation_id=inv.id, test_id=PYTHON_TEST_ID, live=True))
            return Sent(app.id, inv.id, inv.imocha_id)

    def app_status(self, sent: Sent) -> str:
        with self.sf() as session:
            app = session.get(Application, sent.application_id)
            assert app is not None
            return app.status

    def invitation(self, sent: Sent) -> Invitation:
        with self.sf() as session:
            inv = session.get(Invitation, sent.invitation_id)
            assert inv is not None
            return inv

    def checkpoint(self) -> datetime | None:
        with self.sf() as session:
            return session.scalar(select(Workspace.poll_checkpoint).where(Workspace.id == self.workspace_id))

    def outbox_keys(self, prefix: str) -> list[str]:
        with self.sf() as session:
            return list(session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.startswith(prefix))))

    def calls(self, path: str) -> int:
        return self.fake.state.count(path)


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: Clock, fake_imocha: FakeImocha) -> Iterator[World]:  # noqa: F811
    fake_imocha.reset(clock=clock)
    with ImochaClient.build_http(fake_imocha.url) as http:
        yield World(session_factory, clock, fake_imocha, http)


def test_completions_are_found_through_the_window_queries_with_one_report_each(world: World) -> None:
    done = [world.send(), world.send()]
    waiting = world.send()
    changes: list[int] = []
    poller = world.poller(after_change=lambda: changes.append(1))
    world.clock.advance(minutes=1)
    for sent in done:
        world.fake.state.complete(sent.imocha_id, points=40)
    world.clock.advance(minutes=2)
    world.fake.state.reset_calls()

    stats = poller.poll_workspace(world.workspace_id)

    assert stats.ok, stats.error
    assert (world.calls(WINDOW), world.calls(REPORTS)) == (3, 2)
    assert (stats.calls, stats.reports_read, stats.changed) == (5, 2, 2)
    assert [world.app_status(sent) for sent in done] == ["needs_review", "needs_review"]
    assert world.app_status(waiting) == "sent"
    inv = world.invitation(done[0])
    assert (inv.status, inv.candidate_points, inv.total_points, inv.percentage) == ("complete", 40, 50, 80)
    assert inv.report_url and inv.sections
    assert len(world.outbox_keys("completion:")) == 2
    assert len(world.outbox_keys("result:")) == 2  # the owner's DM
    assert changes == [1]
    assert world.checkpoint() == world.clock()


def test_a_quiet_cycle_makes_three_calls_and_already_closed_invitations_cost_nothing(world: World) -> None:
    sent = world.send()
    poller = world.poller()
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent.imocha_id)
    world.clock.advance(minutes=2)
    assert poller.poll_workspace(world.workspace_id).changed == 1
    world.fake.state.reset_calls()

    world.clock.advance(minutes=2)  # the completion is still inside the overlap, so iMocha lists it again
    stats = poller.poll_workspace(world.workspace_id)

    assert stats.ok
    assert (world.calls(WINDOW), world.calls(REPORTS), stats.changed) == (3, 0, 0)
    assert len(world.outbox_keys("completion:")) == 1


def test_unknown_invitation_ids_in_the_window_cost_nothing(world: World) -> None:
    mine = world.send()
    strangers = [world.fake.invite(PYTHON_TEST_ID, email=f"other{i}@example.com", name="Other")["testInvitationId"] for i in range(3)]
    world.clock.advance(minutes=1)
    world.fake.state.complete(strangers[0])
    world.fake.state.cancel(strangers[1])
    world.fake.state.expire(strangers[2])
    world.clock.advance(minutes=1)
    world.fake.state.reset_calls()

    stats = world.poller().poll_workspace(world.workspace_id)

    assert stats.ok
    assert (world.calls(WINDOW), world.calls(REPORTS), stats.changed) == (3, 0, 0)
    assert world.app_status(mine) == "sent"
    assert world.checkpoint() == world.clock()


def test_cancelled_and_expired_invitations_are_detected_without_reading_reports(world: World) -> None:
    cancelled, expired, left = world.send(), world.send(), world.send()
    world.clock.advance(minutes=1)
    world.fake.state.cancel(cancelled.imocha_id)
    world.fake.state.expire(expired.imocha_id)
    world.fake.state.leave(left.imocha_id, points=5)
    world.clock.advance(minutes=1)
    world.fake.state.reset_calls()

    stats = world.poller().poll_workspace(world.workspace_id)

    assert stats.ok
    assert (world.calls(WINDOW), world.calls(REPORTS)) == (3, 1)  # only "Test Left" has a report to read
    assert [world.app_status(s) for s in (cancelled, expired, left)] == ["cancelled", "expired", "left"]
    assert world.invitation(left).candidate_points == 5
    assert len(world.outbox_keys("status:")) == 3  # each announced once in the card's thread


def test_an_outage_in_the_middle_of_a_cycle_holds_the_checkpoint_and_the_change_is_found_once(world: World) -> None:
    a, b = world.send(), world.send()
    poller = world.poller()
    assert poller.poll_workspace(world.workspace_id).ok
    before = world.checkpoint()
    world.clock.advance(minutes=1)
    world.fake.state.complete(a.imocha_id)
    world.fake.state.complete(b.imocha_id)
    world.clock.advance(minutes=1)

    # The window calls answer; B's report fails on every retry.
    world.fake.state.fail_next(f"{REPORTS}/{b.imocha_id}", status=500, count=4)
    stats = poller.poll_workspace(world.workspace_id)
    assert stats.error and "ServerError" in stats.error
    assert (world.app_status(a), world.app_status(b)) == ("needs_review", "sent")
    assert world.checkpoint() == before

    # Then iMocha is down altogether: the cycle stops at the first call.
    world.clock.advance(minutes=5)
    world.fake.state.fail_next(WINDOW, status=503, count=4)
    world.fake.state.reset_calls()
    stats = poller.poll_workspace(world.workspace_id)
    assert stats.error and stats.calls == 1
    assert (world.calls(WINDOW), world.calls(REPORTS)) == (4, 0)  # the client's own retries of that one call
    assert world.checkpoint() == before

    # Recovery, long after the overlap: the window still starts at the old checkpoint.
    world.clock.advance(minutes=30)
    world.fake.state.reset_calls()
    stats = poller.poll_workspace(world.workspace_id)
    assert stats.ok and stats.changed == 1
    assert stats.window_start is not None and before is not None and stats.window_start < before
    assert (world.calls(WINDOW), world.calls(REPORTS)) == (3, 1)  # A is closed here: no second read
    assert (world.app_status(a), world.app_status(b)) == ("needs_review", "needs_review")
    assert world.checkpoint() == world.clock()
    keys = world.outbox_keys("completion:")
    assert sorted(key.split(":")[1] for key in keys) == sorted([str(a.application_id), str(b.application_id)])


def test_a_restart_finds_a_change_made_while_the_bot_was_down(world: World) -> None:
    sent = world.send()
    assert world.poller().poll_workspace(world.workspace_id).ok
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent.imocha_id)
    world.clock.advance(hours=3)  # down for three hours

    stats = world.poller().poll_workspace(world.workspace_id)  # a new process: nothing kept in memory

    assert stats.ok and stats.changed == 1
    assert world.app_status(sent) == "needs_review"


def test_the_first_poll_reaches_back_to_the_oldest_open_invitation(world: World) -> None:
    old = world.clock() - timedelta(days=3)
    world.send(sent_at=old)
    stats = world.poller().poll_workspace(world.workspace_id)
    assert stats.window_start == old
    assert stats.window_end == world.clock()


def test_a_rate_limit_stops_the_cycle_and_its_retry_after_is_honoured(world: World) -> None:
    world.send()
    poller = world.poller()
    world.fake.state.fail_next(WINDOW, status=429, retry_after=120, count=4)

    stats = poller.poll_workspace(world.workspace_id)
    assert stats.error and "RateLimitError" in stats.error and stats.calls == 1
    assert world.checkpoint() is None
    world.fake.state.reset_calls()

    world.clock.advance(seconds=60)
    stats = poller.poll_workspace(world.workspace_id)
    assert stats.error and "rate limited" in stats.error
    assert world.calls("/v3/") == 0

    world.clock.advance(seconds=61)
    assert poller.poll_workspace(world.workspace_id).ok
    assert world.calls(WINDOW) == 3


def test_the_sweep_catches_an_assessment_in_progress(world: World) -> None:
    started, waiting = world.send(), world.send()
    poller = world.poller()
    world.clock.advance(minutes=1)
    world.fake.state.start(started.imocha_id)
    world.clock.advance(minutes=1)
    assert poller.poll_workspace(world.workspace_id).changed == 0  # the window queries never show it
    world.fake.state.reset_calls()

    assert poller.sweep(world.workspace_id) == 1

    assert world.calls(REPORTS) == 2
    assert (world.app_status(started), world.app_status(waiting)) == ("in_progress", "sent")
    assert world.invitation(started).started_at == world.clock()
    assert world.invitation(waiting).last_checked_at == world.clock()


def test_the_sweep_reads_a_bounded_batch_oldest_checked_first(world: World) -> None:
    sent = [world.send() for _ in range(3)]
    poller = world.poller(sweep_batch=2)
    world.fake.state.reset_calls()

    poller.sweep(world.workspace_id)
    first = {s.imocha_id for s in sent if world.calls(f"{REPORTS}/{s.imocha_id}")}
    assert len(first) == 2
    world.clock.advance(minutes=1)
    world.fake.state.reset_calls()

    poller.sweep(world.workspace_id)
    second = {s.imocha_id for s in sent if world.calls(f"{REPORTS}/{s.imocha_id}")}
    assert len(second) == 2
    assert second - first  # the one never checked goes first


def test_a_late_in_progress_never_overwrites_complete(world: World) -> None:
    sent = world.send()
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent.imocha_id)
    world.clock.advance(minutes=1)
    stale = {"testInvitationId": sent.imocha_id, "testId": PYTHON_TEST_ID, "status": "In Progress", "totalTestPoints": 50}
    # The sweep reads the report while the candidate was still at it, and is slow to come back.
    world.fake.state.fail_next(f"{REPORTS}/{sent.imocha_id}", status=200, body=stale, delay=0.6)
    sweeper = world.poller()
    swept: list[int] = []
    thread = threading.Thread(target=lambda: swept.append(sweeper.sweep(world.workspace_id)))
    thread.start()
    deadline = time.monotonic() + 5
    while not world.calls(f"{REPORTS}/{sent.imocha_id}") and time.monotonic() < deadline:
        time.sleep(0.01)

    # Meanwhile the poll applies the completion...
    assert world.poller().poll_workspace(world.workspace_id).changed == 1
    # ...and then the sweep's stale "In Progress" arrives.
    thread.join(5)

    assert swept == [0]
    assert world.app_status(sent) == "needs_review"
    assert world.invitation(sent).status == "complete"
    assert world.outbox_keys("status:") == []  # no "in progress" notice either


def test_resync_asks_imocha_to_replay_open_invitations_and_polls_now(world: World) -> None:
    sent = [world.send() for _ in range(3)]
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent[0].imocha_id)
    world.clock.advance(minutes=1)
    world.fake.state.reset_calls()

    asked = world.poller().replay(world.team_id)

    assert asked == 3
    assert world.calls("/v3/callbacks/process") == 1
    replayed = next(c for c in world.fake.state.calls if c.path == "/v3/callbacks/process")
    assert sorted(replayed.json["testinvitationIds"]) == sorted(s.imocha_id for s in sent)
    assert (world.calls(WINDOW), world.calls(REPORTS)) == (3, 1)
    assert world.app_status(sent[0]) == "needs_review"


def test_poll_all_covers_every_active_workspace(world: World) -> None:
    sent = world.send()
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent.imocha_id)
    world.clock.advance(minutes=1)
    with world.sf.begin() as session:
        session.add(Workspace(team_id="T2", imocha_key_enc=world.box.encrypt(GOOD_KEY), active=True))
        session.add(Workspace(team_id="T3", active=True))  # not set up: not polled

    results = world.poller().poll_all()

    assert sorted(r.workspace_id for r in results) == [world.workspace_id, world.workspace_id + 1]
    assert all(r.ok for r in results)
    assert sum(r.changed for r in results) == 1
    assert world.calls(WINDOW) == 6


def test_a_big_cycle_is_applied_in_chunks_with_the_checkpoint_moved_last(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.assessments.poller

    monkeypatch.setattr(bot.assessments.poller, "APPLY_CHUNK", 2)
    sent = [world.send() for _ in range(5)]
    poller = world.poller(max_workers=2)
    assert poller.poll_workspace(world.workspace_id).ok
    before = world.checkpoint()
    world.clock.advance(minutes=1)
    for s in sent:
        world.fake.state.complete(s.imocha_id)
    world.clock.advance(minutes=1)
    world.fake.state.fail_next(f"{REPORTS}/{sent[-1].imocha_id}", status=502, count=4)

    stats = poller.poll_workspace(world.workspace_id)

    assert stats.error and stats.changed >= 2  # the chunks before the failure are kept
    assert world.checkpoint() == before
    stats = poller.poll_workspace(world.workspace_id)
    assert stats.ok and world.checkpoint() == world.clock()
    assert {world.app_status(s) for s in sent} == {"needs_review"}
    assert len(world.outbox_keys("completion:")) == 5


def test_an_unusable_report_does_not_freeze_the_checkpoint(world: World) -> None:
    sent = world.send()
    world.clock.advance(minutes=1)
    world.fake.state.complete(sent.imocha_id)
    world.clock.advance(minutes=1)
    world.fake.state.fail_next(f"{REPORTS}/{sent.imocha_id}", status=404)
    poller = world.poller()

    stats = poller.poll_workspace(world.workspace_id)

    assert stats.ok and stats.changed == 0
    assert world.checkpoint() == world.clock()
    assert poller.sweep(world.workspace_id) == 1  # the sweep reads it again later
    assert world.app_status(sent) == "needs_review"
