"""The weekly digest: the week's figures, once per plan and week, a real PNG over the fake Slack's upload endpoints."""

from __future__ import annotations

import io
import itertools
import os
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.digest import Digests, DigestStats, due_week, this_monday, week_bounds
from bot.slack.gateway import SlackGateway
from handlers.digest import DigestRenderer, build_digest_alt_text, build_digest_text
from store.models import Application, ApplicationInvitation, Candidate, Invitation, Job, Plan, WeeklyDigest, Workspace
from tests.conftest import Clock
from tests.fakes.slack import PNG_SIGNATURE, FakeSlack
from tests.fakes.test_fake_slack import TINY_PNG
from tests.wiring.conftest import BOT_TOKEN, CHANNEL, RECRUITER, TEAM, slack  # noqa: F401 (fixture)

pytestmark = pytest.mark.any_epoch  # weeks, "2 days waiting" and Monday 09:00 all come from the injected clock

BERLIN = ZoneInfo("Europe/Berlin")
_numbers = itertools.count(1)


class Seed:
    """A workspace in Berlin with one plan, and assessments placed in the week before the clock's next Monday."""

    def __init__(
        self, sf: sessionmaker[Session], clock: Clock, *, share: bool = False, channel: str | None = CHANNEL, weekly_digest: bool = True
    ):
        self.sf, self.clock = sf, clock
        # The digest is due next Monday 09:00 Berlin time; the week it covers starts the Monday before.
        self.monday = this_monday(clock.now, BERLIN) + timedelta(days=7)
        self.week_start = self.monday - timedelta(days=7)
        with sf.begin() as session:
            ws = Workspace(team_id=TEAM, active=True, timezone="Europe/Berlin")
            session.add(ws)
            session.flush()
            job = Job(workspace_id=ws.id, external_id="job-3", name="Backend Engineer")
            plan = Plan(
                workspace_id=ws.id,
                job_key="backend engineer",
                job_label="Backend Engineer",
                stage_key="imocha assessment",
                stage_label="iMocha assessment",
                test_id=1001,
                test_name="Python Developer",
                channel_id=channel,
                pass_mark=60,
                share_scores_in_channel=share,
                weekly_digest=weekly_digest,
                created_by=RECRUITER,
            )
            session.add_all([job, plan])
            session.flush()
            self.workspace_id, self.job_id, self.plan_id = ws.id, job.id, plan.id

    def at(self, day: int, hour: int = 10) -> datetime:
        """A moment in the covered week: day 0 is its Monday (Berlin)."""
        return datetime.combine(self.week_start + timedelta(days=day), time(hour), BERLIN).astimezone(UTC)

    def assessment(
        self,
        *,
        sent: datetime,
        status: str = "pending",
        app_status: str = "sent",
        started: datetime | None = None,
        finished: datetime | None = None,
        changed: datetime | None = None,
        percentage: float | None = None,
        name: str | None = None,
    ) -> None:
        n = next(_numbers)
        with self.sf.begin() as session:
            candidate = Candidate(workspace_id=self.workspace_id, name=name or f"Candidate {n}", email=f"c{n}@example.com")
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
                plan_id=self.plan_id,
                test_id=1001,
                test_name="Python Developer",
                pass_mark=60,
                owner_user_id=RECRUITER,
                status=app_status,
                status_changed_at=changed or finished or sent,
            )
            inv = Invitation(
                workspace_id=self.workspace_id,
                imocha_id=7_000_000 + n,
                test_id=1001,
                test_name="Python Developer",
                candidate_email=f"c{n}@example.com",
                candidate_name=candidate.name,
                test_url="https://example.com/take",
                status=status,
                sent_at=sent,
                started_at=started,
                finished_at=finished,
                status_changed_at=changed or finished or sent,
                percentage=percentage,
            )
            session.add_all([app, inv])
            session.flush()
            app.current_invitation_id = inv.id
            session.add(ApplicationInvitation(application_id=app.id, invitation_id=inv.id, test_id=1001, live=True))

    def busy_week(self) -> None:
        """Four sent, three started, two completed (80% and 40% against a 60% mark), one expired; two wait for review."""
        self.assessment(
            sent=self.at(0), status="complete", app_status="needs_review", started=self.at(1), finished=self.at(1, 12), percentage=80
        )
        self.assessment(sent=self.at(0), status="complete", app_status="reviewed", started=self.at(2), finished=self.at(3), percentage=40)
        self.assessment(sent=self.at(1), status="in_progress", app_status="in_progress", started=self.at(4))
        self.assessment(sent=self.at(2), status="expired", app_status="expired", changed=self.at(5))
        # Completed before this week, still waiting for review: listed with its owner, not counted.
        self.assessment(
            sent=self.at(-9),
            status="complete",
            app_status="needs_review",
            started=self.at(-8),
            finished=self.at(-3),
            percentage=91,
            name="Ada Lovelace",
        )

    def monday_at(self, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(self.monday, time(hour, minute), BERLIN).astimezone(UTC)


class QuickCharts(DigestRenderer):
    """The real text and alt text with a one-pixel PNG, for tests that look at everything but the picture."""

    def chart(self, stats: DigestStats) -> bytes:
        return TINY_PNG


def digests(sf: sessionmaker[Session], clock: Clock, slack: FakeSlack, *, charts: bool = False) -> Digests:  # noqa: F811
    gateway = SlackGateway(base_url=slack.api_url, token_for=lambda team: BOT_TOKEN)
    return Digests(session_factory=sf, gateway=gateway, renderer=DigestRenderer() if charts else QuickCharts(), clock=clock)


def assert_real_png(data: bytes, *, width: int) -> None:
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.size == (width, 400)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 20, "a blank or near-blank image"
    white = max(colours)  # the background
    assert white[0] < 0.97 * image.size[0] * image.size[1], "almost nothing drawn"


def test_the_weekly_digest_goes_out_once_after_monday_nine_with_a_png_chart(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock, share=True)
    seed.busy_week()
    service = digests(session_factory, clock, slack, charts=True)

    clock.now = seed.monday_at(8, 55)
    assert service.run() == 0
    clock.now = seed.monday_at(9, 5)
    assert service.run() == 1

    [upload] = slack.files(CHANNEL)
    assert upload.filename.endswith(".png")
    assert_real_png(upload.data or b"", width=1000)
    [message] = slack.messages(CHANNEL)
    assert message.files == [upload.id]
    text = message.text or ""
    assert "Sent *4* · Started *3* · Completed *2* · Expired *1*" in text
    assert "Pass rate: 50% (1 of 2, pass mark 60%)" in text
    assert "Median score: 60%" in text
    # Longest waiting first, with their owners mentioned.
    assert f"Waiting for review longer than 2 days: *2*\n    ◦ Ada Lovelace, 9 days — <@{RECRUITER}>\n    ◦ Candidate" in text
    alt = upload.alt_txt or ""
    assert "sent 4, started 3, completed 2, expired 1" in alt and "40–50%: 1" in alt and "80–90%: 1" in alt
    assert not slack.violations

    # Later runs, and a restarted process, find the week done.
    clock.advance(hours=3)
    assert service.run() == 0
    assert digests(session_factory, clock, slack).run() == 0
    assert len(slack.files(CHANNEL)) == 1
    # Sharing a file needs membership, which chat:write.public does not give: the bot joined once.
    assert slack.count("conversations.join") == 1


def test_two_replicas_running_the_job_together_post_one_digest(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock)
    seed.busy_week()
    clock.now = seed.monday_at(9, 30)
    replicas = [digests(session_factory, clock, slack) for _ in range(2)]
    posted: list[int] = []
    start = threading.Barrier(2)

    def run(service: Digests) -> None:
        start.wait()
        posted.append(service.run())

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(posted) == [0, 1]
    assert len(slack.files(CHANNEL)) == 1
    with session_factory() as session:
        assert session.scalars(select(WeeklyDigest.week)).all() == [seed.week_start.isoformat()]


def test_a_channel_digest_shows_counts_and_rates_but_no_score_when_the_plan_keeps_scores_private(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock, share=False)
    seed.busy_week()
    clock.now = seed.monday_at(10)

    assert digests(session_factory, clock, slack, charts=True).run() == 1

    [upload] = slack.files(CHANNEL)
    assert_real_png(upload.data or b"", width=600)  # the funnel only: no score distribution
    text, alt = slack.messages(CHANNEL)[0].text or "", upload.alt_txt or ""
    assert "Completed *2*" in text and "Pass rate: 50%" in text
    for leak in ("Median score", "80", "40%", "91"):
        assert leak not in text, leak
    assert "Score distribution" not in alt and "80" not in alt


def test_a_plan_without_a_channel_gets_the_full_digest_in_its_owners_dm(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock, share=False, channel=None)
    seed.busy_week()
    clock.now = seed.monday_at(10)

    assert digests(session_factory, clock, slack).run() == 1

    [dm] = slack.dms_to(RECRUITER)
    assert "Median score: 60%" in (dm.text or "")


def test_a_quiet_week_posts_nothing_and_is_not_looked_at_again(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock)
    seed.assessment(sent=seed.at(-10))  # the week before: not this digest's business
    clock.now = seed.monday_at(9, 10)

    assert digests(session_factory, clock, slack).run() == 0
    assert slack.count("files.getUploadURLExternal") == 0
    with session_factory() as session:
        row = session.scalars(select(WeeklyDigest)).one()
        assert row.done_at == clock.now and row.file_id is None


def test_a_digest_slack_refused_is_tried_again_later_and_then_posted_once(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock)
    seed.busy_week()
    clock.now = seed.monday_at(9, 10)
    service = digests(session_factory, clock, slack)
    slack.fail("files.completeUploadExternal", status=200, error="internal_error")

    assert service.run() == 0
    clock.advance(minutes=5)
    assert service.run() == 0  # backing off
    clock.advance(minutes=11)
    assert service.run() == 1
    assert service.run() == 0
    assert len(slack.messages(CHANNEL)) == 1


def test_a_plan_with_the_digest_off_gets_none(
    session_factory: sessionmaker[Session],
    clock: Clock,
    slack: FakeSlack,  # noqa: F811
) -> None:
    seed = Seed(session_factory, clock, weekly_digest=False)
    seed.busy_week()
    clock.now = seed.monday_at(9, 10)

    assert digests(session_factory, clock, slack).run() == 0
    assert slack.count("files.getUploadURLExternal") == 0


def test_the_plan_modal_turns_the_digest_off_with_a_tick() -> None:
    from bot.domain import PlanView
    from handlers import ids
    from handlers.blocks import build_plan_modal

    def digest_block(view: dict) -> dict:
        return next(b for b in view["blocks"] if b.get("block_id") == ids.DIGEST_BLOCK)

    fresh = digest_block(build_plan_modal())
    assert fresh["label"]["text"] == "Weekly digest" and fresh["optional"] and "initial_options" not in fresh["element"]
    plan = PlanView(1, "Job", "Stage", 1001, "Test", None, None, False, "U1", weekly_digest=False)
    assert digest_block(build_plan_modal(plan=plan))["element"]["initial_options"][0]["value"] == "off"


def test_digest_weeks_follow_the_workspace_zone_across_daylight_saving(clock: Clock) -> None:
    # Berlin leaves summer time on Sunday 25 October 2026: that week is 169 hours long.
    start, end = week_bounds(date(2026, 10, 19), BERLIN)
    assert start == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    # Monday 08:59 in Tokyo is still Sunday in UTC: not due; 09:00 is.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert due_week(datetime(2026, 11, 29, 23, 59, tzinfo=UTC), tokyo) is None
    assert due_week(datetime(2026, 11, 30, 0, 0, tzinfo=UTC), tokyo) == date(2026, 11, 23)
    # Whatever the epoch, "now" is inside the week this_monday names.
    monday = this_monday(clock.now, BERLIN)
    start, end = week_bounds(monday, BERLIN)
    assert start <= clock.now < end


def _stats(**changes: Any) -> DigestStats:
    """One plan's week of figures: Backend Engineer's Python Developer test, changed by `changes`."""
    base = DigestStats(
        plan_id=1,
        job_label="Backend Engineer",
        stage_label="iMocha assessment",
        test_name="Python Developer",
        week_start=date(2026, 11, 23),
        week_end=date(2026, 11, 30),
        timezone="Europe/Berlin",
        sent=14,
        started=11,
        completed=9,
        expired=2,
        passed=6,
        judged=9,
        median_score=68.0,
        median_hours_to_complete=30.5,
        pass_mark=60,
        scores=(35.0, 48.0, 58.0, 61.0, 66.0, 68.0, 74.0, 81.0, 92.0),
        shows_scores=True,
    )
    return replace(base, **changes)


def test_the_digest_text_and_alt_text_carry_the_same_numbers() -> None:
    stats = _stats(
        job_label="Data <Engineer>",
        test_name="SQL",
        timezone="UTC",
        sent=5,
        started=4,
        completed=3,
        expired=0,
        passed=2,
        judged=3,
        median_score=70.0,
        median_hours_to_complete=50.0,
        pass_mark=65,
        scores=(50.0, 70.0, 90.0),
    )
    text, alt = build_digest_text(stats), build_digest_alt_text(stats)
    assert "Data &lt;Engineer&gt;" in text
    assert "67% (2 of 3, pass mark 65%)" in text and "67% (2 of 3, pass mark 65%)" in alt
    assert "Median time from sent to completed: 2.1 days" in text and "2.1 days" in alt
    assert "Median score" not in build_digest_text(stats.hide_scores())
    assert "Score distribution" not in build_digest_alt_text(stats.hide_scores())


@pytest.mark.skipif(not os.environ.get("DIGEST_PNG_OUT"), reason="set DIGEST_PNG_OUT=path to render one for a person")
def test_render_a_digest_chart_for_a_person_to_look_at() -> None:
    stats = _stats()
    Path(os.environ["DIGEST_PNG_OUT"]).write_bytes(DigestRenderer().chart(stats))
