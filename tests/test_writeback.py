"""Decisions written back to the ATS, on real databases, against the fake Greenhouse and fake Gem over real HTTP.

The services are the bot's own (Decisions, DecisionWriteback, the Slack outbox); no card is posted, so
the outbox's thread replies are read from its table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments import Assessments
from bot.assessments.decisions import Decisions
from bot.ats.gem import GemClient, GemClients, RateLimiter, RetryPolicy
from bot.ats.gem.poller import GemPoller
from bot.ats.greenhouse import HarvestClients, HarvestCredentials
from bot.ats.writeback import BACKOFF, DEFAULT_RETRY_AFTER, MAX_ATTEMPTS, DecisionWriteback
from bot.domain import Actor, Conflict
from bot.runtime.claims import ClaimKeeper
from bot.slack.access import Access
from bot.slack.gateway import SlackGateway
from bot.slack.outbox import SlackOutbox
from bot.workspace.crypto import SecretBox
from bot.workspace.settings import Workspaces
from handlers.blocks import SlackRenderer
from store.db import make_session_factory
from store.models import Application, AtsWriteback, AuditEntry, Candidate, Invitation, Job, OutboxMessage, Workspace
from tests.conftest import Clock
from tests.fakes.gem import GOOD_GEM_KEY, FakeGem, fake_gem  # noqa: F401 (fixture)
from tests.fakes.greenhouse import CLIENT_ID, CLIENT_SECRET, FakeHarvest, HarvestState, fake_harvest  # noqa: F401 (fixture)

TEAM = "T0WB"
RITA, MO = "URITA", "UMO"
SLACK_EMAILS = {RITA: "rita@example.com", MO: "mo@example.com"}


@dataclass
class World:
    sf: sessionmaker[Session]
    clock: Clock
    gh: HarvestState
    decisions: Decisions
    writeback: DecisionWriteback
    box: SecretBox
    workspace_id: int
    rita: int  # her Greenhouse user id
    job: dict[str, Any]
    emails: dict[str, str]
    harvest: dict[str, HarvestClients]  # "now": the clients the write-back uses (a test may swap them)

    def application(self, gh_app: int | str, *, source: str = "greenhouse", stage: str | None = "Assessment", candidate: str = "") -> int:
        """An application in review (42 / 50 on Python Developer), as a Greenhouse webhook would have made it."""
        with self.sf.begin() as session:
            job = session.scalars(select(Job).where(Job.workspace_id == self.workspace_id)).first()
            if job is None:
                job = Job(workspace_id=self.workspace_id, external_id=str(self.job["id"]), name="Designer")
            cand = Candidate(workspace_id=self.workspace_id, name="Ada Lovelace", email=f"ada+{gh_app}@example.com")
            session.add_all([job, cand])
            session.flush()
            inv = Invitation(
                workspace_id=self.workspace_id,
                imocha_id=int(str(gh_app)[-6:]) if str(gh_app).isdigit() else 77,
                test_id=1001,
                test_name="Python Developer",
                candidate_email=cand.email or "",
                candidate_name="Ada Lovelace",
                test_url="https://test.imocha.io/x",
                status="complete",
                candidate_points=42,
                total_points=50,
                percentage=84,
            )
            session.add(inv)
            session.flush()
            app = Application(
                workspace_id=self.workspace_id,
                external_id=str(gh_app),
                source=source,
                stage_key="assessment",
                stage_name="Assessment",
                external_stage_id=str(self.job["stage_ids"][stage]) if stage else None,
                external_candidate_id=candidate or None,
                candidate_id=cand.id,
                job_id=job.id,
                test_id=1001,
                test_name="Python Developer",
                owner_user_id=RITA,
                status="needs_review",
                current_invitation_id=inv.id,
            )
            session.add(app)
            session.flush()
            return app.id

    def rows(self) -> list[AtsWriteback]:
        with self.sf() as session:
            return list(session.scalars(select(AtsWriteback).order_by(AtsWriteback.id)))

    def replies(self) -> list[dict[str, Any]]:
        """The thread replies queued, as Slack would get them (the renderer words the service's facts)."""
        with self.sf() as session:
            rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "thread").order_by(OutboxMessage.id))
            rendered = [(m.payload, SlackRenderer().render(m.payload.get("template", "note"), None, m.payload)) for m in rows]
            return [{**payload, "text": message["blocks"][0]["text"]["text"]} for payload, message in rendered]  # the mrkdwn shown

    def later(self, **delta: float) -> None:
        self.clock.advance(**delta)
        self.writeback.run()


def build(
    sf: sessionmaker[Session], clock: Clock, fake: FakeHarvest, gem_fake: FakeGem, *, immediate: bool = True
) -> tuple[World, list[Any]]:
    state = fake.reset(clock)
    gem_fake.reset(clock)
    rita = state.add_user("Rita Recruiter", "rita@example.com")
    job = state.add_job("Designer", ["Application Review", "Assessment", "Onsite"])
    box = SecretBox(Fernet.generate_key())
    with sf.begin() as session:
        ws = Workspace(
            team_id=TEAM,
            harvest_credentials_enc=box.encrypt(HarvestCredentials(CLIENT_ID, CLIENT_SECRET).to_json()),
            gem_key_enc=box.encrypt(GOOD_GEM_KEY),
        )
        session.add(ws)
        session.flush()
        workspace_id = ws.id
    harvest, https = HarvestClients.build(fake.url, fake.url, clock=clock, sleep=lambda _s: None)
    gem_http = GemClient.build_http(gem_fake.url)
    gem_clients = GemClients(
        gem_http, limiter=lambda: RateLimiter(rate=1000, burst=1000), sleep=lambda _s: None, retry=RetryPolicy(max_attempts=1)
    )
    workspaces = Workspaces(
        session_factory=sf,
        box=box,
        imocha_factory=lambda key: None,
        gem_factory=gem_clients,
        harvest_factory=harvest,
        clock=clock,  # type: ignore[arg-type,return-value]
    )
    # No Slack token: no card exists, so the outbox finishes its rows without calling Slack.
    outbox = SlackOutbox(
        session_factory=sf,
        gateway=SlackGateway(base_url="http://127.0.0.1:9/", token_for=lambda team: None),
        renderer=SlackRenderer(),
        clock=clock,
    )
    emails = dict(SLACK_EMAILS)
    # Who may decide is the services' own check (bot/slack/access.py); both deciders are IMOCHA_ADMINS here, so no Slack call
    deciders = Access(gateway=None, admin_ids=frozenset({RITA, MO}))  # type: ignore[arg-type]
    claims = ClaimKeeper(sf, holder="test-holder", clock=clock)
    reach = {"now": harvest}
    intake: Any = None  # the Gem poller only names notes' authors here; it polls nothing
    writeback = DecisionWriteback(
        session_factory=sf,
        workspaces=workspaces,
        harvest_clients=lambda creds: reach["now"](creds),
        gem_clients=gem_clients,
        slack_email=lambda team, user: emails.get(user),
        clock=clock,
        access=deciders,
        gem_author=GemPoller(sf, workspaces, gem_clients, intake, clock).note_author,
        claims=claims,
    )
    assessments = Assessments(session_factory=sf, workspaces=workspaces, outbox=outbox, clock=clock, callback_url=None, access=deciders)
    decisions = Decisions(
        session_factory=sf, assessments=assessments, outbox=outbox, clock=clock, writeback=writeback if immediate else None
    )
    return World(sf, clock, state, decisions, writeback, box, workspace_id, rita, job, emails, reach), [*https, gem_http, claims]


def close(closers: list[Any]) -> None:
    for closer in closers:
        closer.stop() if isinstance(closer, ClaimKeeper) else closer.close()


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: Clock, fake_harvest: FakeHarvest, fake_gem: FakeGem) -> Iterator[World]:  # noqa: F811
    """On SQLite and PostgreSQL."""
    w, closers = build(session_factory, clock, fake_harvest, fake_gem)
    yield w
    close(closers)


@pytest.fixture
def sqlite_world(sqlite_engine: Engine, clock: Clock, fake_harvest: FakeHarvest, fake_gem: FakeGem) -> Iterator[World]:  # noqa: F811
    """On SQLite only, for tables of cases the database plays no part in."""
    w, closers = build(make_session_factory(sqlite_engine, clock), clock, fake_harvest, fake_gem)
    yield w
    close(closers)


def test_an_advance_is_queued_with_the_decision_and_written_once_as_the_deciders_greenhouse_user(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)

    world.decisions.advance(TEAM, app_id, Actor(RITA))

    stage_ids = world.job["stage_ids"]
    assert world.gh.writes == [("move", gh_app, world.rita, {"from_stage_id": stage_ids["Assessment"]})]
    assert world.gh.stage_name(gh_app) == "Onsite"
    [row] = world.rows()
    assert (row.target, row.action, row.outcome, row.attempts) == ("greenhouse", "advance", "written", 1)
    assert row.payload["to_stage_id"] == stage_ids["Onsite"]
    with world.sf() as session:
        decided = session.scalars(select(AuditEntry).where(AuditEntry.action == "decided")).one()
    assert row.audit_id == decided.id  # one row per recorded decision
    world.later(hours=2)
    assert len(world.gh.writes) == 1
    assert not [r for r in world.replies() if r.get("template") == "writeback_failed"]


def test_a_decision_undone_before_it_was_tried_is_cancelled_and_never_reaches_greenhouse(
    session_factory: sessionmaker[Session],
    clock: Clock,
    fake_harvest: FakeHarvest,  # noqa: F811
    fake_gem: FakeGem,  # noqa: F811
) -> None:
    w, closers = build(session_factory, clock, fake_harvest, fake_gem, immediate=False)  # as if the job had not run yet
    try:
        gh_app = w.gh.add_application(w.job, "Assessment")
        app_id = w.application(gh_app)
        w.decisions.reject(TEAM, app_id, Actor(RITA))
        clock.advance(minutes=3)
        w.decisions.undo(TEAM, app_id, Actor(MO))
        w.writeback.run()
        assert [(r.action, r.outcome) for r in w.rows()] == [("reject", "cancelled")]
        assert w.gh.writes == [] and w.gh.count("POST", "/v3/") == 0
    finally:
        close(closers)


@pytest.mark.any_epoch  # time-dependent: see tests/conftest.py EPOCHS
def test_an_undo_after_the_write_moves_the_application_back_or_unrejects_it_as_the_undoer(world: World) -> None:
    mo = world.gh.add_user("Mo Member", "mo.m@example.com", secondary=["mo@example.com"])
    stage_ids = world.job["stage_ids"]
    advanced = world.gh.add_application(world.job, "Assessment")
    rejected = world.gh.add_application(world.job, "Assessment")
    first, second = world.application(advanced), world.application(rejected)

    world.decisions.advance(TEAM, first, Actor(RITA))
    world.decisions.reject(TEAM, second, Actor(RITA))
    world.clock.advance(minutes=9)
    world.decisions.undo(TEAM, first, Actor(MO))
    world.decisions.undo(TEAM, second, Actor(MO))

    assert world.gh.writes == [
        ("move", advanced, world.rita, {"from_stage_id": stage_ids["Assessment"]}),
        ("reject", rejected, world.rita, {"rejection_reason_id": 303, "notes": world.gh.writes[1][3]["notes"]}),
        ("move", advanced, mo, {"from_stage_id": stage_ids["Onsite"], "to_stage_id": stage_ids["Assessment"]}),
        ("unreject", rejected, mo, {}),
    ]
    assert "Python Developer: 42 / 50 points, 84%" in world.gh.writes[1][3]["notes"]  # the reason "Lacking skill(s)…"
    assert world.gh.stage_name(advanced) == "Assessment" and world.gh.applications[rejected]["status"] == "active"
    assert [(r.action, r.outcome) for r in world.rows()] == [
        ("advance", "written"),
        ("reject", "written"),
        ("undo_advance", "written"),
        ("undo_reject", "written"),
    ]


def test_a_move_made_in_greenhouse_meanwhile_is_not_made_again_nor_taken_back(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    world.gh.applications[gh_app]["current_stage_id"] = world.job["stage_ids"]["Onsite"]  # a recruiter moved her by hand

    world.decisions.advance(TEAM, app_id, Actor(RITA))
    world.decisions.undo(TEAM, app_id, Actor(RITA))

    assert world.gh.writes == []
    assert [(r.action, r.outcome) for r in world.rows()] == [("advance", "already"), ("undo_advance", "not_needed")]
    assert world.gh.stage_name(gh_app) == "Onsite"


def test_a_write_whose_answer_was_lost_is_recorded_as_written_without_a_second_write(world: World) -> None:
    """The process sent the move and died before recording it: the next one sees Greenhouse's state."""
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    world.gh.fail("POST", f"/v3/applications/{gh_app}/move", 503)  # the answer: a 503 after the move landed
    world.decisions.advance(TEAM, app_id, Actor(RITA))
    with world.sf.begin() as session:  # as the dying process left it: the write sent, the outcome unknown
        row = session.scalars(select(AtsWriteback)).one()
        row.payload = {**row.payload, "posted": True}
    world.gh.applications[gh_app]["current_stage_id"] = world.job["stage_ids"]["Onsite"]

    world.later(minutes=1)

    [row] = world.rows()
    assert (row.outcome, row.payload["to_stage_id"]) == ("written", world.job["stage_ids"]["Onsite"])
    assert world.gh.writes == []  # the only move was the one that "landed"; none was sent again
    world.decisions.undo(TEAM, app_id, Actor(RITA))  # and it is ours, so Undo takes it back
    assert world.gh.stage_name(gh_app) == "Assessment"


@pytest.mark.any_epoch  # time-dependent: see tests/conftest.py EPOCHS
def test_transient_errors_back_off_and_a_429_waits_as_asked_then_the_write_happens_once(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    move = f"/v3/applications/{gh_app}/move"
    world.gh.fail("POST", move, 503)
    world.decisions.advance(TEAM, app_id, Actor(RITA))
    [row] = world.rows()
    assert (row.outcome, row.attempts, row.next_attempt_at) == (None, 1, world.clock() + BACKOFF)
    assert "503" in (row.last_error or "") or "Server error" in (row.last_error or "")

    world.gh.fail("POST", move, 429, times=3, headers={"Retry-After": "120"})
    world.later(seconds=29)
    assert world.gh.count("POST", move) == 1  # not due yet
    world.later(seconds=1)
    [row] = world.rows()
    assert (row.attempts, row.next_attempt_at) == (2, world.clock() + timedelta(seconds=120))
    world.later(seconds=60)
    assert world.gh.count("POST", move) == 2
    world.gh.faults.clear()
    world.later(seconds=60)
    assert [(r.outcome, r.attempts) for r in world.rows()] == [("written", 3)]
    assert len(world.gh.writes) == 1


@pytest.mark.any_epoch  # time-dependent: see tests/conftest.py EPOCHS
def test_greenhouse_failing_for_an_hour_is_given_up_visibly(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    world.gh.fail("GET", "/v3/applications", 502, times=100)
    world.decisions.advance(TEAM, app_id, Actor(RITA))
    for _ in range(MAX_ATTEMPTS):
        world.later(minutes=31)
    [row] = world.rows()
    assert (row.outcome, row.attempts) == ("failed", MAX_ATTEMPTS)
    [reply] = [r for r in world.replies() if r.get("template") == "writeback_failed"]
    assert "Greenhouse was not updated" in reply["text"] and f"through {MAX_ATTEMPTS} attempts" in reply["text"]


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        ("no_user", "no active Greenhouse user has the email rita@example.com"),
        ("no_email", "Slack gave no email address for <@URITA>"),
        ("bad_secret", "refused the workspace's Harvest credentials"),
        ("no_scope", "harvest:applications:move"),
        ("deleted", "Greenhouse has no application"),
        ("rejected", "the application is rejected in Greenhouse, so it was not advanced"),
    ],
)
def test_an_error_asking_again_cannot_fix_fails_at_once_with_a_thread_reply_and_retry_writes_it_once_fixed(
    sqlite_world: World, breakage: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = sqlite_world
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    saved = dict(world.gh.applications[gh_app])
    breaks: dict[str, Any] = {
        "no_user": lambda: world.gh.users[world.rita].update(deactivated=True),
        "no_email": lambda: world.emails.pop(RITA),
        "bad_secret": lambda: world.gh.credentials[CLIENT_ID].update(secret="rotated-in-greenhouse"),
        "no_scope": lambda: world.gh.credentials[CLIENT_ID]["scopes"].discard("harvest:applications:move"),
        "deleted": lambda: world.gh.applications.pop(gh_app),
        "rejected": lambda: world.gh.applications[gh_app].update(status="rejected"),
    }
    breaks[breakage]()

    with caplog.at_level(logging.INFO):
        world.decisions.advance(TEAM, app_id, Actor(RITA))

    [row] = world.rows()
    assert (row.outcome, row.attempts) == ("failed", 1) and world.gh.writes == []
    failures = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(("bot.ats.writeback", "bot.ats.greenhouse"))
    ]
    assert [(r.name, r.levelname) for r in failures] == [("bot.ats.writeback", "ERROR")]  # one line per failure
    assert words.split(" (")[0][:30] in failures[0].getMessage() and f"write-back #{row.id} failed" in failures[0].getMessage()
    [reply] = [r for r in world.replies() if r.get("template") == "writeback_failed"]
    assert words in reply["text"] and reply["writeback_id"] == row.id and "*Retry*" in reply["text"]
    with world.sf() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "writeback")).one()
    assert audit.outcome == "failed" and words.replace("<@URITA>", "URITA") in (audit.detail or "")  # the audit names the user id

    # fixed in Greenhouse (or Slack), then Retry
    world.gh.users[world.rita]["deactivated"] = False
    world.emails[RITA] = "rita@example.com"
    world.gh.credentials[CLIENT_ID].update(secret=CLIENT_SECRET)
    world.gh.credentials[CLIENT_ID]["scopes"].add("harvest:applications:move")
    world.gh.applications[gh_app] = saved
    assert "Greenhouse again" in world.writeback.retry(TEAM, row.id, Actor(RITA))
    world.writeback.deliver(application_id=app_id)
    assert [(r.outcome, r.payload.get("round")) for r in world.rows()] == [("written", 1)]
    assert len(world.gh.writes) == 1
    assert any("after the retry" in r["text"] for r in world.replies())
    with pytest.raises(Conflict, match="Nothing to retry"):
        world.writeback.retry(TEAM, row.id, Actor(RITA))


def test_a_failed_write_back_is_not_retried_once_the_decision_was_undone(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    world.emails.pop(RITA)
    world.decisions.advance(TEAM, app_id, Actor(RITA))
    [forward] = world.rows()
    world.decisions.undo(TEAM, app_id, Actor(MO))  # the reverse reads Greenhouse, finds nothing to take back, and needs no user
    assert [(r.action, r.outcome) for r in world.rows()] == [("advance", "failed"), ("undo_advance", "not_needed")]
    with pytest.raises(Conflict, match="later decision or undo replaced"):
        world.writeback.retry(TEAM, forward.id, Actor(RITA))


def test_an_applications_writes_go_in_order_the_undo_waiting_for_its_decision(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    world.gh.fail("POST", f"/v3/applications/{gh_app}/move", 500)
    world.decisions.advance(TEAM, app_id, Actor(RITA))  # tried once, failed: pending, not cancellable
    world.decisions.undo(TEAM, app_id, Actor(RITA))
    assert [(r.action, r.outcome) for r in world.rows()] == [("advance", None), ("undo_advance", None)]
    assert world.gh.writes == []  # the reverse did not run ahead of its decision
    world.later(seconds=31)
    assert [(r.action, r.outcome) for r in world.rows()] == [("advance", "written"), ("undo_advance", "written")]
    assert [w[0] for w in world.gh.writes] == ["move", "move"] and world.gh.stage_name(gh_app) == "Assessment"


def test_a_gem_decision_and_its_undo_are_notes_on_the_candidate_never_written_twice(world: World, fake_gem: FakeGem) -> None:  # noqa: F811
    gem = fake_gem.state
    mo = gem.add_user("Mo Member", "mo@example.com")
    candidate = gem.add_candidate("Ada", "Lovelace", [("ada@example.com", True)])
    app_id = world.application("gem-app-1", source="gem", stage=None, candidate=candidate)

    world.decisions.advance(TEAM, app_id, Actor(MO))
    world.decisions.undo(TEAM, app_id, Actor(MO))

    first, second = gem.notes
    assert first["candidate_id"] == candidate and first["user_id"] == mo and first["visibility"] == "private"
    assert "Advanced in Slack by mo@example.com after the iMocha assessment (Python Developer: 42 / 50 points, 84%)" in first["body"]
    assert "move the application to the next stage in Gem" in first["body"]
    assert "decision to advance this candidate was undone" in second["body"]

    # a note whose writer was interrupted mid-call is reported, not sent again
    world.decisions.reject(TEAM, app_id, Actor(MO))
    gem.fail("POST", "/ats/v0/candidates", 500)
    world.decisions.undo(TEAM, app_id, Actor(MO))
    with world.sf.begin() as session:
        session.scalars(select(AtsWriteback).order_by(AtsWriteback.id.desc())).first().payload = {"posted": True}  # type: ignore[union-attr]
    world.later(minutes=1)
    assert len(gem.notes) == 3
    assert world.rows()[-1].outcome == "failed"
    [reply] = [r for r in world.replies() if r.get("template") == "writeback_failed"]
    assert "Gem was not updated" in reply["text"] and "may be there already" in reply["text"]


def test_an_application_from_another_source_or_a_workspace_without_the_ats_queues_nothing(world: World) -> None:
    manual = world.application("manual:ada", source="manual")
    world.decisions.advance(TEAM, manual, Actor(RITA))
    with world.sf.begin() as session:
        ws = session.get(Workspace, world.workspace_id)
        assert ws is not None
        ws.harvest_credentials_enc = None
    gh_app = world.gh.add_application(world.job, "Assessment")
    world.decisions.advance(TEAM, world.application(gh_app), Actor(RITA))
    assert world.rows() == [] and world.gh.count("POST", "/v3/") == 0


def test_greenhouse_out_of_reach_is_retried_not_failed(world: World) -> None:
    gh_app = world.gh.add_application(world.job, "Assessment")
    app_id = world.application(gh_app)
    reachable = world.harvest["now"]
    world.harvest["now"], https = HarvestClients.build("http://127.0.0.1:9", "http://127.0.0.1:9", clock=world.clock, sleep=lambda _s: None)
    try:
        world.decisions.advance(TEAM, app_id, Actor(RITA))
        [row] = world.rows()
        assert (row.outcome, row.attempts) == (None, 1) and "could not reach Greenhouse" in (row.last_error or "")
    finally:
        for http in https:
            http.close()
    world.harvest["now"] = reachable
    world.later(seconds=31)
    assert [r.outcome for r in world.rows()] == ["written"]


def test_a_429_holds_only_that_ats_and_gems_hold_is_the_one_the_gem_poller_keeps() -> None:
    from datetime import UTC

    from bot.ats.writeback import GEM, GREENHOUSE, RateLimits
    from bot.vendors.pacing import Holds

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    poller_holds = Holds()
    limits = RateLimits(lambda: now, gem_holds=poller_holds)
    assert limits.pause(GREENHOUSE, 1, 30) == timedelta(seconds=30)
    assert limits.until(GREENHOUSE, 1) == now + timedelta(seconds=30)
    assert limits.until(GEM, 1) is None  # a Greenhouse 429 does not hold Gem's notes
    limits.pause(GEM, 1, None)  # no Retry-After: the default
    assert poller_holds.until(1, now) == now + DEFAULT_RETRY_AFTER  # the Gem poller skips the workspace too
    assert limits.until(GEM, 2) is None
