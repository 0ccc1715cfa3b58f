"""Gem ATS intake and write-back: the client and the poller against a fake Gem over real HTTP, on real databases."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments import lifecycle
from bot.ats import gem
from bot.ats.gem import GemClient, GemClients, RateLimiter, RetryPolicy
from bot.ats.gem import client as gem_client
from bot.ats.gem.notes import WRITEBACK_CLAIMS, WRITEBACK_MAX_ATTEMPTS
from bot.ats.gem.poller import GemPoller
from bot.ats.intake import Intake
from bot.domain import normalise_key
from bot.imocha import Report, Status
from bot.runtime.claims import ClaimKeeper
from bot.slack.access import Access
from bot.workspace.crypto import SecretBox
from bot.workspace.settings import Workspaces
from store.models import (
    Application,
    ApplicationInvitation,
    Candidate,
    GemApplication,
    GemWriteback,
    Invitation,
    OutboxMessage,
    Plan,
    Workspace,
)
from tests.conftest import Clock
from tests.fakes.gem import BAD_GEM_KEY, GOOD_GEM_KEY, FakeGem, GemState, fake_gem  # noqa: F401 (fixture)

pytestmark = pytest.mark.any_epoch  # time-dependent flows: see tests/conftest.py EPOCHS


def gem_time(moment: datetime) -> str:
    """A time as the Gem client sends it in query parameters."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


TEAM = "T0GEM"
CHANNEL = "CHIRING"
STAGES = ["Application Review", "Phone Screen", "iMocha assessment", "Onsite"]
SLACK_USERS = {"rita@example.com": "URITA"}


class FakeTime:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def clients(
    fake: FakeGem, *, page_size: int = 500, limiter: Any = None, retry: RetryPolicy | None = None
) -> tuple[GemClients, httpx.Client]:
    http = GemClient.build_http(fake.url)
    make_limiter = limiter or (lambda: RateLimiter(rate=1000, burst=1000))
    return (
        GemClients(
            http,
            limiter=make_limiter,
            page_size=page_size,
            sleep=lambda _s: None,
            retry=retry or RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
        ),
        http,
    )


@dataclass
class World:
    sf: sessionmaker[Session]
    clock: Clock
    gem: GemState
    poller: GemPoller
    workspace_id: int
    job: dict[str, Any]
    rita: str  # Gem user id of the job's recruiter

    def applications(self) -> list[Application]:
        with self.sf() as session:
            return list(session.scalars(select(Application).order_by(Application.id)).unique())

    def candidate(self, application: Application) -> Candidate:
        with self.sf() as session:
            found = session.get(Candidate, application.candidate_id)
            assert found is not None
            return found

    def workspace(self) -> Workspace:
        with self.sf() as session:
            found = session.get(Workspace, self.workspace_id)
            assert found is not None
            return found

    def add_applicant(
        self, first: str = "Ada", last: str = "Lovelace", emails: list[tuple[str, bool]] | None = None, stage: str = "Phone Screen"
    ) -> str:
        emails = [("ada@example.com", True)] if emails is None else emails
        cid = self.gem.add_candidate(first, last, emails)
        return self.gem.add_application(cid, self.job, stage)


def build_world(sf: sessionmaker[Session], clock: Clock, fake: FakeGem, **poller_options: Any) -> tuple[World, httpx.Client]:
    state = fake.reset(clock)
    box = SecretBox(Fernet.generate_key())
    rita = state.add_user("Rita Recruiter", "rita@example.com")
    state.add_user("Sam Admin", "sam@example.com", site_admin=True)
    job = state.add_job("Backend Engineer", stages=STAGES, recruiters=[rita])
    with sf.begin() as session:
        ws = Workspace(team_id=TEAM, gem_key_enc=box.encrypt(GOOD_GEM_KEY), default_channel_id=CHANNEL)
        session.add(ws)
        session.flush()
        session.add(
            Plan(
                workspace_id=ws.id,
                job_key=normalise_key("Backend Engineer"),
                job_label="Backend Engineer",
                stage_key=normalise_key("iMocha assessment"),
                stage_label="iMocha assessment",
                test_id=1001,
                test_name="Python Developer",
                channel_id=CHANNEL,
                pass_mark=60,
                created_by="UPLANNER",
            )
        )
        workspace_id = ws.id
    gem_clients, http = clients(fake, **poller_options.pop("client_options", {}))
    workspaces = Workspaces(session_factory=sf, box=box, imocha_factory=lambda key: None, gem_factory=gem_clients, clock=clock)  # type: ignore[arg-type,return-value]
    nobody_asked = Access(gateway=None, admin_ids=frozenset())  # type: ignore[arg-type]  # Gem intake acts for no Slack user
    intake = Intake(
        session_factory=sf,
        outbox=None,  # type: ignore[arg-type]
        user_by_email=lambda team, email: SLACK_USERS.get(email),
        default_team_id=lambda: TEAM,
        access=nobody_asked,
    )
    poller = GemPoller(
        sf, workspaces, gem_clients, intake, clock, user_by_email=lambda team, email: SLACK_USERS.get(email), **poller_options
    )
    return World(sf, clock, state, poller, workspace_id, job, rita), http


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: Clock, fake_gem: FakeGem) -> Iterator[World]:  # noqa: F811
    w, http = build_world(session_factory, clock, fake_gem)
    yield w
    http.close()


def first_sync(world: World) -> None:
    stats = world.poller.poll_workspace(world.workspace_id)
    assert stats.ok and stats.baseline and stats.full_scan, stats
    assert world.applications() == []
    world.clock.advance(minutes=2)


# --------------------------------------------------------------------------------------------- client


def test_the_client_reads_bare_arrays_page_by_page_until_a_short_page_with_the_key_header(fake_gem: FakeGem, clock: Clock) -> None:  # noqa: F811
    state = fake_gem.reset(clock)
    job = state.add_job("Backend Engineer", stages=STAGES)
    ids = [state.add_application(state.add_candidate(f"C{n}", "X", []), job, "Phone Screen") for n in range(5)]
    gem_clients, http = clients(fake_gem, page_size=2)
    with http:
        apps = gem_clients(GOOD_GEM_KEY).applications(last_activity_after=clock() - timedelta(minutes=5))

    assert [a.id for a in apps] == ids
    assert apps[0].stage == gem.Ref(job["stage_ids"]["Phone Screen"], "Phone Screen")
    assert apps[0].jobs == (gem.Ref(job["id"], "Backend Engineer"),)
    calls = state.calls_to("GET", "/ats/v0/applications")
    assert [c.params["page"] for c in calls] == ["1", "2", "3"]  # 2 + 2 + 1: the short page ends it
    assert {c.params["per_page"] for c in calls} == {"2"}
    assert {c.params["status"] for c in calls} == {"active"}
    assert {c.params["last_activity_after"] for c in calls} == {gem_time(clock() - timedelta(minutes=5))}
    assert {c.api_key for c in calls} == {GOOD_GEM_KEY}


def test_a_401_is_an_auth_error_with_a_clear_log_line_and_the_key_never_appears(
    fake_gem: FakeGem,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_gem.reset()
    gem_clients, http = clients(fake_gem)
    with http, caplog.at_level(logging.WARNING, logger="bot.ats.gem"), pytest.raises(gem.GemAuthError) as err:
        gem_clients(BAD_GEM_KEY).check_key()

    assert err.value.status_code == 401
    assert fake_gem.state.count("GET", "/ats/v0/users") == 1  # a refused key is not retried
    assert any("Gem refused the API key" in r.getMessage() for r in caplog.records)
    assert BAD_GEM_KEY not in caplog.text and BAD_GEM_KEY not in str(err.value)


def test_a_403_from_the_gateway_is_an_auth_error_too(fake_gem: FakeGem) -> None:  # noqa: F811
    fake_gem.reset().refused_status = 403
    gem_clients, http = clients(fake_gem)
    with http, pytest.raises(gem.GemAuthError):
        gem_clients(BAD_GEM_KEY).users()


def test_a_429_waits_as_retry_after_asks_for_every_user_of_the_key_then_succeeds(
    fake_gem: FakeGem,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = fake_gem.reset()
    state.add_user("Rita Recruiter", "rita@example.com")
    state.fail("GET", "/ats/v0/users", 429, headers={"Retry-After": "7"})
    time_ = FakeTime()
    gem_clients, http = clients(fake_gem, limiter=lambda: RateLimiter(rate=1000, burst=1000, clock=time_.monotonic, sleep=time_.sleep))
    with http, caplog.at_level(logging.WARNING, logger="bot.ats.gem"):
        users = gem_clients(GOOD_GEM_KEY).users()

    assert [u.email for u in users] == ["rita@example.com"]
    assert state.count("GET", "/ats/v0/users") == 2
    assert sum(time_.slept) == pytest.approx(7.0)
    assert any("Gem rate limit (HTTP 429)" in r.getMessage() and "Retry-After" in r.getMessage() for r in caplog.records)


def test_a_429_that_persists_is_a_rate_limit_error_carrying_retry_after(fake_gem: FakeGem) -> None:  # noqa: F811
    state = fake_gem.reset()
    state.fail("GET", "/ats/v0/users", 429, times=10, headers={"Retry-After": "3"})
    time_ = FakeTime()
    gem_clients, http = clients(fake_gem, limiter=lambda: RateLimiter(clock=time_.monotonic, sleep=time_.sleep))
    with http, pytest.raises(gem.GemRateLimitError) as err:
        gem_clients(GOOD_GEM_KEY).users()
    assert err.value.retry_after == 3.0
    assert state.count("GET", "/ats/v0/users") == 3  # the policy's max_attempts


def test_the_limiter_keeps_a_key_under_its_rate() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(rate=20, burst=5, clock=time_.monotonic, sleep=time_.sleep)
    for _ in range(45):
        with limiter.slot():
            pass
    # 5 at once, then 40 more at 20 per second.
    assert time_.now - 1000.0 == pytest.approx(2.0)


def test_a_note_is_not_resent_by_the_client_after_a_500(fake_gem: FakeGem) -> None:  # noqa: F811
    state = fake_gem.reset()
    cid = state.add_candidate("Ada", "Lovelace", [("ada@example.com", True)])
    state.fail("POST", "/ats/v0/candidates", 500)
    gem_clients, http = clients(fake_gem)
    with http, pytest.raises(gem.GemServerError):
        gem_clients(GOOD_GEM_KEY).add_note(cid, body="hello", user_id=None)
    # The 500 may have come after the note was stored: only the write-back's schedule tries again.
    assert state.count("POST") == 1


def test_a_candidate_with_several_emails_reads_as_primary_first() -> None:
    candidate = gem_client._parse_candidate(
        {
            "id": "Y2FuZGlkYXRlczox",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email_addresses": [
                {"type": "work", "value": "ada@analytical.example", "is_primary": False},
                {"type": "personal", "value": "ada@example.com", "is_primary": True},
            ],
        }
    )
    assert candidate.name == "Ada Lovelace"
    assert candidate.email_candidates == ["ada@example.com", "ada@analytical.example"]


# The bodies are pydantic models (bot/ats/gem/client.py, "Bodies"); these pin how leniently each field reads.


def test_an_application_reads_int_or_str_ids_null_or_missing_fields_and_ignores_extra_ones() -> None:
    app = gem_client._parse_application(
        {
            "id": 42,
            "candidate_id": " Y2FuZGlkYXRlczox ",
            "status": " Active ",
            "current_stage": {"id": 7, "name": " Phone Screen ", "entered_at": "?"},
            "jobs": [{"id": "am9iOjE=", "name": "Backend"}, {"id": None, "name": "no id"}, {"name": "none"}, "junk", 3, {"id": ""}],
            "last_activity_at": "2026-03-01T12:00:00",  # naive: UTC
            "deleted_at": "not a date",
            "source": {"id": "s", "public_name": "LinkedIn"},  # documented, not read
        }
    )
    assert app == gem.Application(
        id="42",
        candidate_id="Y2FuZGlkYXRlczox",
        status="active",
        stage=gem.Ref("7", "Phone Screen"),
        jobs=(gem.Ref("am9iOjE=", "Backend"),),
        last_activity_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
        deleted_at=None,
    )
    bare = gem_client._parse_application({"id": "a", "candidate_id": None, "status": None, "current_stage": {"id": ""}, "jobs": None})
    assert (bare.candidate_id, bare.status, bare.stage, bare.jobs) == (None, None, None, ())
    assert gem_client._parse_application({"id": "a", "candidate_id": "", "status": 3, "current_stage": "Onsite", "jobs": "x"}).jobs == ()


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (["not", "an", "object"], "application must be a JSON object, got list"),
        ({"name": "no id"}, "application id: Field required"),
        ({"id": None}, "application id: must be an id, got None"),
        ({"id": True}, "application id: must be an id, got True"),
        ({"id": 1.5}, "application id: must be an id, got 1.5"),
        ({"id": "  "}, "application id: must be an id"),
        ({"id": "a", "candidate_id": " "}, "application candidate_id: must be an id"),
        ({"id": "a", "current_stage": {"id": False}}, "application current_stage.id: must be an id, got False"),
        ({"id": "a", "jobs": [{"id": [1]}]}, "application jobs.0.id: must be an id"),
        ({"id": "a", "jobs": 5}, "application jobs: must be a JSON array, got int"),
    ],
)
def test_a_malformed_application_is_a_value_error_naming_the_field(item: object, problem: str) -> None:
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(").replace("[", r"\[")):
        gem_client._parse_application(item)


def test_a_malformed_item_in_a_page_is_a_protocol_error_and_so_is_a_malformed_candidate() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ats/v0/applications":
            return httpx.Response(200, json=[{"id": "a1"}, {"id": {"nested": 1}}])
        return httpx.Response(200, json={"first_name": "Ada"})

    client = GemClient(httpx.Client(base_url="https://gem.test", transport=httpx.MockTransport(answer)), GOOD_GEM_KEY)
    with pytest.raises(gem.GemProtocolError, match=r"unexpected item in Gem GET /ats/v0/applications: application id: must be an id"):
        client.applications()
    with pytest.raises(gem.GemProtocolError, match=r"unexpected response from Gem GET /ats/v0/candidates/c1: candidate id: Field required"):
        client.candidate("c1")


def test_a_candidates_emails_may_be_bare_strings_and_blank_ones_are_skipped() -> None:
    candidate = gem_client._parse_candidate(
        {
            "id": 5,
            "first_name": None,
            "last_name": " Lovelace ",
            "email_addresses": [
                " ada@example.com ",
                {"value": "ada@work.example", "is_primary": "true", "type": " work "},  # only JSON true is primary
                {"value": "  ", "is_primary": True},
                {"value": None},
                "",
                7,
            ],
        }
    )
    assert (candidate.id, candidate.name) == ("5", "Lovelace")
    assert candidate.emails == (gem.EmailAddress("ada@example.com", False), gem.EmailAddress("ada@work.example", False, "work"))
    assert gem_client._parse_candidate({"id": "c", "email_addresses": None}).emails == ()


def test_a_lone_email_where_the_list_belongs_is_one_address_not_its_characters() -> None:
    lone = gem_client._parse_candidate({"id": "c", "email_addresses": "ada@example.com"})
    assert lone.emails == (gem.EmailAddress("ada@example.com", False),)
    one = gem_client._parse_candidate({"id": "c", "email_addresses": {"value": "ada@example.com", "is_primary": True}})
    assert one.emails == (gem.EmailAddress("ada@example.com", True),)
    assert gem_client._parse_candidate({"id": "c", "email_addresses": ""}).emails == ()


def test_a_jobs_hiring_team_reads_user_ids_and_anything_else_is_nobody() -> None:
    team = {"recruiters": [{"id": 11, "name": "Rita"}, {"name": "no id"}, "junk"], "coordinators": {"id": "x"}, "sourcers": [{"id": "s"}]}
    assert gem_client._parse_job({"id": "j", "name": " Backend ", "hiring_team": team}) == gem.Job("j", "Backend", ("11",), ())
    assert gem_client._parse_job({"id": "j", "hiring_team": None}) == gem.Job("j", "", (), ())
    assert gem_client._parse_job({"id": "j", "hiring_team": ["x"]}) == gem.Job("j", "", (), ())
    with pytest.raises(ValueError, match=r"job hiring_team.recruiters.0.id: must be an id"):
        gem_client._parse_job({"id": "j", "hiring_team": {"recruiters": [{"id": True}]}})


def test_a_users_email_name_and_flags_read_from_what_gem_sends() -> None:
    user = gem_client._parse_user(
        {"id": "u", "first_name": "Rita", "last_name": " Ng ", "emails": [{"email": " "}, {"value": "rita@example.com"}]}
    )
    assert user == gem.User("u", "Rita Ng", "rita@example.com", disabled=False, site_admin=False)
    primary = gem_client._parse_user({"id": 3, "name": "Rita", "primary_email_address": "r@example.com", "emails": 3, "site_admin": True})
    assert primary == gem.User("3", "Rita", "r@example.com", disabled=False, site_admin=True)  # `emails` unread: no error
    assert gem_client._parse_user({"id": "u", "emails": ["", " x@example.com "]}).email == "x@example.com"
    assert gem_client._parse_user({"id": "u", "deleted_at": "2026-01-01T00:00:00Z"}).disabled is True
    assert gem_client._parse_user({"id": "u", "disabled": 1, "deleted_at": None, "site_admin": "yes"}) == gem.User(
        "u", "", None, False, False
    )
    with pytest.raises(ValueError, match="user emails must be a JSON array"):
        gem_client._parse_user({"id": "u", "emails": 3})


def test_a_job_stages_priority_is_an_integer_or_none_and_a_notes_id_is_optional() -> None:
    assert gem_client._parse_job_stage({"id": "s", "name": "Onsite", "job_id": 9, "priority": 2}) == gem.JobStage("s", "Onsite", "9", 2)
    for priority in (True, "2", 2.0, None):
        assert gem_client._parse_job_stage({"id": "s", "priority": priority, "job_id": ""}) == gem.JobStage("s", "", None, None)
    assert gem_client._parse_note({"id": 12, "body": "hi"}) == gem.Note("12")
    assert gem_client._parse_note({"id": ""}) == gem_client._parse_note(None) == gem_client._parse_note(["x"]) == gem.Note(None)


# --------------------------------------------------------------------------------------------- intake


def test_a_stage_move_into_a_planned_stage_is_detected_once(world: World) -> None:
    app_id = world.add_applicant()
    first_sync(world)

    world.gem.move(app_id, "iMocha assessment")
    stats = world.poller.poll_workspace(world.workspace_id)

    assert stats.ok and not stats.full_scan and (stats.moved, stats.matched, stats.created) == (1, 1, 1)
    [app] = world.applications()
    assert (app.source, app.external_id, app.stage_name, app.status) == ("gem", app_id, "iMocha assessment", "needs_sending")
    assert app.test_name == "Python Developer" and app.owner_user_id == "URITA"  # the job's recruiter, matched in Slack
    assert app.external_candidate_id == world.gem.applications[app_id]["candidate_id"]
    assert world.candidate(app).email == "ada@example.com"
    with world.sf() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "card")) == 1
        assert session.scalar(select(GemApplication.stage_id)) == world.job["stage_ids"]["iMocha assessment"]

    world.clock.advance(minutes=2)
    again = world.poller.poll_workspace(world.workspace_id)
    assert again.ok and (again.moved, again.created) == (0, 0)
    assert len(world.applications()) == 1


def test_the_same_application_seen_again_creates_nothing_new(world: World) -> None:
    app_id = world.add_applicant()
    first_sync(world)
    world.gem.move(app_id, "iMocha assessment")
    world.poller.poll_workspace(world.workspace_id)

    # The hourly full scan reads it again; then it leaves the stage and comes back.
    world.clock.advance(hours=2)
    scan = world.poller.poll_workspace(world.workspace_id)
    assert scan.ok and scan.full_scan and scan.seen == 1 and scan.created == 0
    world.gem.move(app_id, "Onsite")
    world.clock.advance(minutes=2)
    world.poller.poll_workspace(world.workspace_id)
    world.gem.move(app_id, "iMocha assessment")
    world.clock.advance(minutes=2)
    back = world.poller.poll_workspace(world.workspace_id)

    assert back.ok and back.matched == 1 and back.created == 0
    assert len(world.applications()) == 1
    with world.sf() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "card")) == 1


def test_a_move_missed_by_the_incremental_window_is_caught_by_the_full_scan(world: World) -> None:
    app_id = world.add_applicant()
    first_sync(world)
    world.clock.advance(minutes=20)
    assert world.poller.poll_workspace(world.workspace_id).ok

    # Gem does not (or may not) touch last_activity_at on a stage move.
    world.gem.move(app_id, "iMocha assessment", touch=False)
    world.clock.advance(minutes=5)
    world.gem.reset_calls()
    missed = world.poller.poll_workspace(world.workspace_id)
    assert missed.ok and not missed.full_scan and missed.seen == 0
    assert world.applications() == []
    [call] = world.gem.calls_to("GET", "/ats/v0/applications")
    # the last poll's checkpoint (5 minutes ago) minus 10 minutes overlap
    assert call.params["last_activity_after"] == gem_time(world.clock() - timedelta(minutes=5 + 10))

    world.clock.advance(hours=1)
    world.gem.reset_calls()
    scan = world.poller.poll_workspace(world.workspace_id)
    assert scan.ok and scan.full_scan and scan.created == 1
    assert "last_activity_after" not in world.gem.calls_to("GET", "/ats/v0/applications")[0].params
    assert [a.external_id for a in world.applications()] == [app_id]
    assert world.workspace().gem_full_scan_at == world.clock()


def test_a_candidate_with_several_emails_gets_the_primary_one(world: World) -> None:
    app_id = world.add_applicant(emails=[("ada@analytical.example", False), ("ada@example.com", True), ("ada@old.example", False)])
    first_sync(world)
    world.gem.move(app_id, "iMocha assessment")
    world.poller.poll_workspace(world.workspace_id)

    [app] = world.applications()
    assert world.candidate(app).email == "ada@example.com"


def test_a_candidate_with_no_email_gets_a_card_without_crashing(world: World) -> None:
    app_id = world.add_applicant(first="Grace", last="Hopper", emails=[])
    first_sync(world)
    world.gem.move(app_id, "iMocha assessment")
    stats = world.poller.poll_workspace(world.workspace_id)

    assert stats.ok and stats.created == 1
    [app] = world.applications()
    candidate = world.candidate(app)
    assert (candidate.name, candidate.email) == ("Grace Hopper", None)


def test_a_stage_chosen_by_id_takes_the_jobs_plan(world: World) -> None:
    renamed = world.job["stage_ids"]["Onsite"]
    with world.sf.begin() as session:
        ws = session.get(Workspace, world.workspace_id)
        assert ws is not None
        ws.gem_stage_ids = [renamed]
    app_id = world.add_applicant()
    first_sync(world)
    world.gem.move(app_id, "Onsite")
    world.poller.poll_workspace(world.workspace_id)

    [app] = world.applications()
    assert (app.stage_name, app.test_name) == ("iMocha assessment", "Python Developer")


def test_no_card_for_the_first_sync_or_a_move_into_an_unplanned_stage(world: World) -> None:
    world.add_applicant(stage="iMocha assessment")  # already there when Gem was connected: the first sync records it
    app_id = world.add_applicant(first="Grace", emails=[("grace@example.com", True)])
    first_sync(world)
    world.gem.move(app_id, "Onsite")
    stats = world.poller.poll_workspace(world.workspace_id)
    assert stats.ok and (stats.moved, stats.matched) == (1, 0)
    assert world.applications() == []
    assert world.gem.count("GET", "/ats/v0/candidates") == 0


def test_the_checkpoint_moves_only_after_a_successful_cycle(world: World, caplog: pytest.LogCaptureFixture) -> None:
    app_id = world.add_applicant()
    first_sync(world)
    before = world.workspace().gem_checkpoint
    world.gem.move(app_id, "iMocha assessment")
    world.gem.fail("GET", "/ats/v0/candidates", 503, times=3)  # every retry of the candidate read

    with caplog.at_level(logging.WARNING, logger="bot.ats.gem"):
        stats = world.poller.poll_workspace(world.workspace_id)
    assert not stats.ok and stats.failed == 1
    assert world.workspace().gem_checkpoint == before
    assert world.applications() == []
    assert any("checkpoint kept" in r.getMessage() for r in caplog.records)

    world.clock.advance(minutes=2)
    stats = world.poller.poll_workspace(world.workspace_id)
    assert stats.ok and stats.created == 1
    assert world.workspace().gem_checkpoint == world.clock()


def test_a_refused_key_stops_the_workspace_with_a_clear_message_until_retried(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.add_applicant()
    world.gem.keys.clear()  # the admin revoked the key in Gem
    with caplog.at_level(logging.WARNING, logger="bot.ats.gem"):
        stats = world.poller.poll_workspace(world.workspace_id)
    assert stats.error == "Gem refused the API key (HTTP 401)"
    assert any("Gem refused its API key" in r.getMessage() and "/imocha setup" in r.getMessage() for r in caplog.records)
    assert world.workspace().gem_checkpoint is None

    world.gem.reset_calls()
    world.clock.advance(minutes=2)
    assert world.poller.poll_workspace(world.workspace_id).skipped == "Gem refused this key"
    assert world.gem.calls == []

    world.gem.keys.add(GOOD_GEM_KEY)
    world.clock.advance(minutes=15)
    assert world.poller.poll_workspace(world.workspace_id).ok


def test_a_rate_limited_workspace_backs_off_for_retry_after(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.gem.fail("GET", "/ats/v0/applications", 429, times=3, headers={"Retry-After": "0"})
    with caplog.at_level(logging.WARNING, logger="bot.ats.gem"):
        stats = world.poller.poll_workspace(world.workspace_id)
    assert stats.error == "Gem rate limit (HTTP 429)"
    assert any("rate-limiting" in r.getMessage() and "checkpoint kept" in r.getMessage() for r in caplog.records)

    world.gem.reset_calls()
    world.clock.advance(seconds=30)
    assert world.poller.poll_workspace(world.workspace_id).skipped is not None  # Retry-After 0 → the 60 s default
    assert world.gem.calls == []
    world.clock.advance(seconds=31)
    assert world.poller.poll_workspace(world.workspace_id).ok


def test_candidates_are_read_with_bounded_concurrency(session_factory: sessionmaker[Session], clock: Clock, fake_gem: FakeGem) -> None:  # noqa: F811
    w, http = build_world(
        session_factory,
        clock,
        fake_gem,
        max_workers=4,
        client_options={"limiter": lambda: RateLimiter(rate=1000, burst=1000, max_in_flight=2)},
    )
    with http:
        ids = [w.add_applicant(first=f"C{n}", emails=[(f"c{n}@example.com", True)]) for n in range(6)]
        first_sync(w)
        for app_id in ids:
            w.gem.move(app_id, "iMocha assessment")
        w.gem.latency = 0.05
        w.gem.max_in_flight = 0
        stats = w.poller.poll_workspace(w.workspace_id)

    assert stats.ok and stats.created == 6
    assert 1 <= w.gem.max_in_flight <= 2


# ----------------------------------------------------------------------------------------- write-back


def complete(world: World, *, imocha_id: int = 555) -> None:
    """The assessment of the one Gem application completes, seen twice (a poll and a callback racing)."""
    [app] = world.applications()
    with world.sf.begin() as session:
        inv = Invitation(
            workspace_id=world.workspace_id,
            imocha_id=imocha_id,
            test_id=1001,
            test_name="Python Developer",
            candidate_email="ada@example.com",
            candidate_name="Ada Lovelace",
            test_url="https://test.imocha.io/x",
            status=Status.PENDING.value,
        )
        session.add(inv)
        session.flush()
        session.add(ApplicationInvitation(application_id=app.id, invitation_id=inv.id, test_id=1001))
        row = session.get(Application, app.id)
        assert row is not None
        row.current_invitation_id, row.status = inv.id, "sent"
    report = Report(
        invitation_id=imocha_id,
        test_id=1001,
        test_name="Python Developer",
        email="ada@example.com",
        candidate_name="Ada Lovelace",
        status=Status.COMPLETE,
        candidate_points=42,
        total_points=50,
        percentage=84,
        performance_category="Expert",
        pdf_url="https://reports.imocha.example/555.pdf",
        attempted_on=None,
        sections=(),
    )
    for _ in range(2):
        with world.sf.begin() as session:
            lifecycle.observe(session, world.workspace_id, [lifecycle.Observation(imocha_id, Status.COMPLETE, report)], world.clock())


def intake_one(world: World) -> str:
    app_id = world.add_applicant()
    first_sync(world)
    world.gem.move(app_id, "iMocha assessment")
    assert world.poller.poll_workspace(world.workspace_id).created == 1
    return str(world.gem.applications[app_id]["candidate_id"])


def test_the_result_is_written_to_the_candidate_once_per_completion(world: World) -> None:
    candidate_id = intake_one(world)
    assert world.poller.write_back() == 0  # nothing completed yet
    complete(world)

    assert world.poller.write_back() == 1
    world.clock.advance(hours=2)
    assert world.poller.write_back() == 0

    [note] = world.gem.notes
    assert note["candidate_id"] == candidate_id
    assert note["user_id"] == world.rita and note["visibility"] == "private"
    body = note["body"]
    assert "iMocha assessment completed: Python Developer" in body
    assert "Score: 42 / 50 points (84%)" in body
    assert "Result: Passed (pass mark 60%)" in body
    assert "Performance category: Expert" in body
    assert "iMocha report: https://reports.imocha.example/555.pdf" in body
    with world.sf() as session:
        [wb] = session.scalars(select(GemWriteback)).all()
        assert wb.done_at == world.clock() - timedelta(hours=2) and wb.attempts == 1


def test_a_note_that_failed_with_a_500_is_retried_later_and_written_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    intake_one(world)
    complete(world)
    world.gem.fail("POST", "/ats/v0/candidates", 500)

    with caplog.at_level(logging.WARNING, logger="bot.ats.gem"):
        assert world.poller.write_back() == 0
    assert world.gem.notes == []
    assert any("Gem note" in r.getMessage() and "GemServerError" in r.getMessage() for r in caplog.records)
    with world.sf() as session:
        [wb] = session.scalars(select(GemWriteback)).all()
        assert wb.attempts == 1 and wb.done_at is None and "GemServerError" in (wb.last_error or "")

    assert world.poller.write_back() == 0  # not due yet: backoff
    world.clock.advance(minutes=2)
    assert world.poller.write_back() == 1
    assert len(world.gem.notes) == 1
    world.clock.advance(hours=1)
    assert world.poller.write_back() == 0 and len(world.gem.notes) == 1


def test_a_note_for_a_candidate_gem_no_longer_has_is_given_up(world: World, caplog: pytest.LogCaptureFixture) -> None:
    candidate_id = intake_one(world)
    complete(world)
    del world.gem.candidates[candidate_id]

    with caplog.at_level(logging.ERROR, logger="bot.ats.gem"):
        assert world.poller.write_back() == 0
    assert any("given up" in r.getMessage() for r in caplog.records)
    with world.sf() as session:
        [wb] = session.scalars(select(GemWriteback)).all()
        assert wb.attempts == WRITEBACK_MAX_ATTEMPTS and wb.done_at is None
    world.clock.advance(days=1)
    world.gem.reset_calls()
    assert world.poller.write_back() == 0
    assert world.gem.count("POST") == 0


def test_a_rate_limited_note_waits_without_using_an_attempt(world: World) -> None:
    intake_one(world)
    complete(world)
    world.gem.fail("POST", "/ats/v0/candidates", 429, times=3, headers={"Retry-After": "0"})

    assert world.poller.write_back() == 0
    with world.sf() as session:
        [wb] = session.scalars(select(GemWriteback)).all()
        assert wb.attempts == 0 and wb.next_attempt_at == world.clock() + timedelta(seconds=60)
    world.clock.advance(seconds=61)
    assert world.poller.write_back() == 1


# -------------------------------------------------------------------------------- write-back claims


def claimed_by_another(world: World, holder: str, *, lapses_in: timedelta) -> None:
    """The note is claimed by another process, its claim lapsing `lapses_in` from now unless renewed."""
    with world.sf.begin() as session:
        wb = session.scalars(select(GemWriteback)).one()
        wb.claimed_by, wb.next_attempt_at = holder, world.clock() + lapses_in


def test_a_note_claimed_by_a_dead_process_is_written_by_a_watching_one_within_seconds_once(
    session_factory: sessionmaker[Session],
    clock: Clock,
    fake_gem: FakeGem,  # noqa: F811
) -> None:
    claims = ClaimKeeper(session_factory, holder="replica-b", clock=clock, monotonic=lambda: clock().timestamp())
    world, http = build_world(session_factory, clock, fake_gem, claims=claims)
    try:
        intake_one(world)
        complete(world)
        claimed_by_another(world, "replica-a", lapses_in=timedelta(seconds=2))  # A claimed the note, then died
        assert world.poller.write_back() == 0  # A's claim still stands
        claims.recover_with(WRITEBACK_CLAIMS, world.poller.write_back)
        claims.start()
        clock.advance(seconds=3)  # A never renewed: its claim lapsed

        def recorded() -> GemWriteback:
            with world.sf() as session:
                return session.scalars(select(GemWriteback)).one()

        deadline = time.monotonic() + 3
        while recorded().done_at is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the watcher ticks twice a second
        assert len(world.gem.notes) == 1
        wb = recorded()
        assert wb.done_at == clock() and wb.claimed_by is None and wb.attempts == 1
        clock.advance(hours=1)
        assert world.poller.write_back() == 0 and len(world.gem.notes) == 1
    finally:
        claims.stop()
        http.close()


def test_a_note_whose_claim_lapsed_while_its_holder_was_slow_is_left_to_the_new_holder(
    session_factory: sessionmaker[Session],
    clock: Clock,
    fake_gem: FakeGem,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claims = ClaimKeeper(session_factory, holder="replica-a", clock=clock, monotonic=lambda: clock().timestamp())
    world, http = build_world(session_factory, clock, fake_gem, claims=claims)
    try:
        intake_one(world)
        complete(world)
        claimed_by_another(world, "nobody", lapses_in=timedelta(seconds=-1))  # due (and its old claim lapsed)
        author = world.rita

        def stalled(*_args: Any) -> str:
            clock.advance(seconds=4)  # the process did not renew for long enough that its claim lapsed
            claimed_by_another(world, "replica-b", lapses_in=timedelta(seconds=3))  # and B claims the note
            return author

        monkeypatch.setattr(claims, "_renew", lambda: None)  # this process cannot renew
        monkeypatch.setattr(world.poller.directory, "score_note_author", stalled)
        assert world.poller.write_back() == 0
        assert world.gem.notes == []  # A did not write it: B holds it now
        with world.sf() as session:
            wb = session.scalars(select(GemWriteback)).one()
            assert wb.claimed_by == "replica-b" and wb.done_at is None and wb.attempts == 0
    finally:
        claims.stop()
        http.close()
