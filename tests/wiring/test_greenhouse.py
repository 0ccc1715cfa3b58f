"""Greenhouse's candidate_stage_change web hook over real HTTP, with payloads shaped like Greenhouse's documented sample."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from store.models import Application, Workspace
from tests.fakes import slack_requests as sr
from tests.fakes.greenhouse import CLIENT_ID, CLIENT_SECRET, FakeHarvest, fake_harvest  # noqa: F401 (fixture)
from tests.fakes.imocha import GOOD_KEY, PYTHON_TEST_ID, FakeImocha
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import ADMIN, CHANNEL, MEMBER, RECRUITER, TEAM, Bot, make_bot, setup_workspace
from tests.wiring.helpers import app_id_of, buttons, card, cards, click, complete, replies, said_to, settle, submit_send, wait_headline

GH_SECRET = "greenhouse-web-hook-secret-32-characters"

# The "Candidate stage change" sample from Greenhouse's web hook documentation
# (developers.greenhouse.io/webhooks.html, grnhse/greenhouse-api-docs source/includes/webhooks/_candidate_events.md).
SAMPLE: dict[str, Any] = {
    "action": "candidate_stage_change",
    "payload": {
        "application": {
            "id": 265277,
            "rejected_at": None,
            "prospect": False,
            "status": "active",
            "applied_at": "2013-03-22T00:00:00Z",
            "last_activity_at": "2015-02-09T16:38:36Z",
            "url": "https://app.greenhouse.io/people/265772?application_id= 265277",
            "source": {"id": 31, "name": "Agency"},
            "credited_to": {"id": 15, "email": "ada@example.com", "name": "Ada Lacey", "employee_id": "123ABC"},
            "rejection_reason": None,
            "rejection_details": None,
            "current_stage": {
                "id": 71416,
                "name": "Assessment",
                "interviews": [
                    {
                        "id": 113101,
                        "name": "Assessment",
                        "status": "to_be_scheduled",
                        "interview_kit": {
                            "url": "https://app.greenhouse.io/guides/113153/people/265772",
                            "content": "Assess their skills",
                            "questions": [],
                        },
                        "interviewers": [{"id": 2622, "display_name": "Carl Buddha", "status": "tentative"}],
                    }
                ],
            },
            "custom_fields": {"custom_application_field": {"name": "Custom Application Field", "type": "short_text", "value": "Example"}},
            "candidate": {
                "id": 265772,
                "first_name": "Giuseppe",
                "last_name": "Hurley",
                "title": "Great Person",
                "company": None,
                "created_at": "2013-10-04T01:24:44Z",
                "external_id": "241b399ce4b0fd1c84e5528d",
                "photo_url": None,
                "url": "https://app.greenhouse.io/people/265772",
                "is_private": False,
                "can_email": True,
                "phone_numbers": [{"value": "330-281-8004", "type": "home"}],
                "email_addresses": [{"value": "giuseppe.hurley@example.com", "type": "personal"}],
                "addresses": [{"value": "123 Fake St.", "type": "home"}],
                "website_addresses": [{"value": "ghurley.example.com", "type": "personal"}],
                "social_media_addresses": [{"value": "linkedin.example.com/ghurley"}],
                "educations": [
                    {
                        "school_name": "Harvard University",
                        "degree": "Bachelor's Degree",
                        "discipline": "Information Systems",
                        "start_date": "01/01/2012",
                        "end_date": "01/01/2016",
                    }
                ],
                "employments": [{"company_name": "Greenhouse", "title": "Engineer", "start_date": "01/01/2012", "end_date": "01/01/2016"}],
                "recruiter": {"id": 3128, "email": "alicia.flopple.3128@example.com", "name": "Alicia Flopple", "employee_id": "789GHI"},
                "coordinator": {"id": 3128, "email": "alicia.flopple.3128@example.com", "name": "Alicia Flopple", "employee_id": "789GHI"},
                "attachments": [
                    {"filename": "resume.pdf", "url": "https://prod-heroku.s3.amazonaws.com/...", "type": "resume"},
                    {"filename": "cover_letter.pdf", "url": "https://prod-heroku.s3.amazonaws.com/...", "type": "cover_letter"},
                    {"filename": "portfolio.pdf", "url": "https://prod-heroku.s3.amazonaws.com/...", "type": "attachment"},
                ],
                "tags": ["Import from Previous ATS"],
                "custom_fields": {"favorite_color": {"name": "Favorite Color", "type": "short_text", "value": "Blue"}},
            },
            "jobs": [
                {
                    "id": 3485,
                    "name": "Designer",
                    "requisition_id": None,
                    "notes": "Digital and print",
                    "confidential": False,
                    "job_post_id": 553282,
                    "status": "open",
                    "created_at": "2013-10-02T22:59:29Z",
                    "opened_at": "2015-01-23T00:25:04Z",
                    "closed_at": None,
                    "departments": [{"id": 237, "name": "Community", "external_id": "ex-dept-1"}],
                    "offices": [{"id": 54, "name": "New York", "location": "New York, NY", "external_id": "ex-office-1"}],
                    "custom_fields": {"employment_type": {"name": "Employment Type", "type": "single_select", "value": "Full Time"}},
                }
            ],
        }
    },
}

# What Greenhouse sends when a web hook is saved or updated.
PING: dict[str, Any] = {"action": "ping", "payload": {"web_hook_id": 12345}}


def encode(payload: dict[str, Any]) -> bytes:
    # Greenhouse escapes non-ASCII characters in the JSON it signs; json.dumps does the same by default.
    return json.dumps(payload).encode()


def signature(raw: bytes, secret: str = GH_SECRET) -> str:
    return "sha256 " + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def deliver(bot: Bot, raw: bytes, sig: str | None, *, event_id: str = "evt-1") -> httpx.Response:
    headers = {"Content-Type": "application/json", "User-Agent": "Greenhouse", "Greenhouse-Event-ID": event_id}
    if sig is not None:
        headers["Signature"] = sig
    return httpx.post(f"{bot.url}/webhooks/greenhouse", content=raw, headers=headers)


def make_plan(bot: Bot, *, job: str = "Designer", stage: str = "Assessment") -> None:
    r = bot.submit(
        RECRUITER,
        "imocha_plan",
        {
            "job": {"job_input": sr.plain(job)},
            "stage": {"stage_input": sr.plain(stage)},
            "test": {"test_select": sr.external(str(PYTHON_TEST_ID), "Python Developer")},
            "channel": {"channel_input": sr.conversation(CHANNEL)},
            "pass_mark": {"pass_mark_input": sr.number(None)},
            "share_scores": {"share_scores_input": sr.checkboxes()},
        },
    )
    assert r.status_code == 200 and "Plan saved" in r.text, r.text


def applications(bot: Bot) -> int:
    with bot.runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Application)) or 0)


@contextmanager
def running(engine: Engine, slack: FakeSlack, imocha: FakeImocha, **overrides: Any) -> Iterator[Bot]:
    bot = make_bot(engine, slack, imocha, **overrides)
    try:
        yield bot
    finally:
        bot.sender.close()
        bot.server.stop()
        bot.runtime.close()


@pytest.fixture
def gh_bot(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[Bot]:
    """A bot with Greenhouse intake enabled, on SQLite and PostgreSQL."""
    with running(engine, slack, fake_imocha, greenhouse_webhook_secret=GH_SECRET) as bot:
        yield bot


@pytest.fixture
def gh_bot_sqlite(sqlite_engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[Bot]:
    """The same on SQLite only, for checks that do not depend on the database."""
    with running(sqlite_engine, slack, fake_imocha, greenhouse_webhook_secret=GH_SECRET) as bot:
        yield bot


def test_the_documented_stage_change_sample_with_a_valid_signature_produces_one_card(gh_bot: Bot) -> None:
    setup_workspace(gh_bot)
    make_plan(gh_bot)  # job and stage as named in the sample: "Designer", "Assessment"
    # the sample's recruiter is a Slack user too: she owns the card
    gh_bot.slack.add_user("UALICIA", team_id=TEAM, email="alicia.flopple.3128@example.com")
    gh_bot.slack.add_member(CHANNEL, "UALICIA")
    raw = encode(SAMPLE)

    r = deliver(gh_bot, raw, signature(raw))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "application": "265277"}
    gh_bot.slack.wait_for(lambda s: len(s.top_level(CHANNEL)) == 1)
    card = json.dumps(gh_bot.slack.top_level(CHANNEL)[0].blocks)
    assert "Assessment needs sending" in card
    assert "Giuseppe Hurley" in card and "Designer" in card and "Send assessment" in card
    assert "<@UALICIA>" in card

    # Greenhouse retries a delivery it thinks failed: still one card, still 200
    again = deliver(gh_bot, raw, signature(raw), event_id="evt-1-retry")
    assert again.status_code == 200 and again.json()["status"] == "accepted"
    assert applications(gh_bot) == 1
    assert len(gh_bot.slack.top_level(CHANNEL)) == 1


def test_a_stage_without_a_plan_is_answered_200_and_ignored(gh_bot_sqlite: Bot) -> None:
    setup_workspace(gh_bot_sqlite)
    make_plan(gh_bot_sqlite)
    other = copy.deepcopy(SAMPLE)
    other["payload"]["application"]["current_stage"]["name"] = "Phone Screen"
    raw = encode(other)
    r = deliver(gh_bot_sqlite, raw, signature(raw))
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert applications(gh_bot_sqlite) == 0


@pytest.mark.parametrize(
    "payload",
    [PING, {"action": "new_candidate_application", "payload": SAMPLE["payload"]}],
    ids=["ping", "another-event"],
)
def test_a_signed_ping_or_other_event_is_answered_200_ignored(gh_bot_sqlite: Bot, payload: dict[str, Any]) -> None:
    raw = encode(payload)
    r = deliver(gh_bot_sqlite, raw, signature(raw))
    assert r.status_code == 200
    assert r.json() == {"status": "ignored"}
    assert applications(gh_bot_sqlite) == 0


def _tampered() -> tuple[bytes, str]:
    """The sample signed, then changed on the way (the stage renamed): the signature no longer matches."""
    raw = encode(SAMPLE)
    sig = signature(raw)
    return raw.replace(b'"name": "Assessment"', b'"name": "Offer"', 1), sig


@pytest.mark.parametrize(
    ("raw", "sig"),
    [
        (encode(SAMPLE), None),
        (encode(SAMPLE), ""),
        (encode(SAMPLE), signature(encode(SAMPLE), "some-other-secret")),
        (encode(SAMPLE), signature(encode(SAMPLE)).replace("sha256 ", "sha256=")),  # the generic ATS route's format
        (encode(SAMPLE), signature(encode(SAMPLE)).replace("sha256 ", "sha1 ")),
        _tampered(),
    ],
    ids=["missing", "empty", "wrong-secret", "wrong-format", "wrong-algorithm", "body-changed-after-signing"],
)
def test_a_bad_signature_is_refused_with_401_and_changes_nothing(gh_bot_sqlite: Bot, raw: bytes, sig: str | None) -> None:
    setup_workspace(gh_bot_sqlite)
    make_plan(gh_bot_sqlite)
    r = deliver(gh_bot_sqlite, raw, sig)
    assert r.status_code == 401
    assert applications(gh_bot_sqlite) == 0
    assert gh_bot_sqlite.slack.top_level(CHANNEL) == []


def test_the_route_answers_404_when_no_greenhouse_secret_is_set(sqlite_engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> None:
    with running(sqlite_engine, slack, fake_imocha) as bot:
        raw = encode(SAMPLE)
        assert deliver(bot, raw, signature(raw)).status_code == 404
        assert deliver(bot, encode(PING), signature(encode(PING))).status_code == 404


# -- decisions written back to Greenhouse (Harvest v3) -------------------------------------------------


@pytest.fixture
def gh_world(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha, fake_harvest: FakeHarvest) -> Iterator[Bot]:  # noqa: F811
    """A Greenhouse bot whose Harvest API is the fake, on SQLite and PostgreSQL."""
    with running(
        engine,
        slack,
        fake_imocha,
        greenhouse_webhook_secret=GH_SECRET,
        greenhouse_harvest_url=fake_harvest.url,
        greenhouse_auth_url=fake_harvest.url,
    ) as bot:
        yield bot


def submit_setup(bot: Bot, view_id: str, client_id: str | None, secret: str | None, *, key: str | None = GOOD_KEY) -> httpx.Response:
    return bot.submit(
        ADMIN,
        "imocha_setup",
        view_id=view_id,
        values={
            "api_key": {"api_key_input": sr.plain(key)},
            "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
            "validity_days": {"validity_days_input": sr.number(7)},
            "gem_key": {"gem_key_input": sr.plain(None)},
            "harvest_client_id": {"harvest_client_id_input": sr.plain(client_id)},
            "harvest_client_secret": {"harvest_client_secret_input": sr.plain(secret)},
        },
    )


def open_setup(bot: Bot) -> str:
    before = len(bot.slack.views)
    assert bot.command(ADMIN, "setup").status_code == 200
    bot.slack.wait_for(lambda s: len(s.views) > before)
    return list(bot.slack.views)[-1]


def test_setup_checks_the_harvest_credentials_live_keeps_the_rest_when_refused_and_stores_them_encrypted(
    gh_world: Bot,
    fake_harvest: FakeHarvest,  # noqa: F811
) -> None:
    bot = gh_world
    view_id = open_setup(bot)
    half = submit_setup(bot, view_id, None, CLIENT_SECRET)  # a secret without its client ID: refused in the form
    assert half.json()["errors"] == {"harvest_client_id": "Enter the client ID that goes with this secret."}

    assert "Checking the key" in submit_setup(bot, view_id, CLIENT_ID, "not-the-secret").text
    bot.slack.wait_for(lambda s: "Greenhouse rejected this Harvest client ID and secret" in json.dumps(s.views[view_id]))
    settings = bot.runtime.services.workspaces.settings(TEAM)
    assert settings.has_imocha_key and not settings.has_harvest  # the checked iMocha key was kept
    form = json.dumps(bot.slack.views[view_id])
    assert CLIENT_ID in form and "not-the-secret" not in form

    submit_setup(bot, view_id, CLIENT_ID, CLIENT_SECRET, key=None)
    bot.slack.wait_for(lambda s: "Greenhouse is connected" in json.dumps(s.views[view_id]))
    assert bot.runtime.services.workspaces.settings(TEAM).harvest_client_id == CLIENT_ID
    with bot.runtime.session_factory() as session:
        stored = session.scalar(select(Workspace.harvest_credentials_enc).where(Workspace.team_id == TEAM))
    assert stored and CLIENT_SECRET not in stored and CLIENT_ID not in stored
    assert [c.body for c in fake_harvest.state.calls_to("POST", "/token")] == [{"grant_type": "client_credentials"}] * 2

    # the form shows the stored client ID again; sent back unchanged with no secret, it keeps the credentials
    view_id = open_setup(bot)
    assert CLIENT_ID in json.dumps(bot.slack.views[view_id]) and CLIENT_SECRET not in json.dumps(bot.slack.views[view_id])
    submit_setup(bot, view_id, CLIENT_ID, None, key=None)
    bot.slack.wait_for(lambda s: "iMocha is connected" in json.dumps(s.views[view_id]))
    assert bot.runtime.services.workspaces.settings(TEAM).has_harvest
    assert fake_harvest.state.count("POST", "/token") == 2  # nothing new to check


def test_from_a_greenhouse_event_to_advance_written_back_to_greenhouse_as_the_person_who_clicked(
    gh_world: Bot,
    fake_harvest: FakeHarvest,  # noqa: F811
) -> None:
    """The journey: Harvest connected at setup, a stage change, the card, Send, the completion, Advance by a
    member Greenhouse does not know (a thread reply with Retry), then Retry by the card's owner once
    Greenhouse knows her: the application moves to the next stage once, as her."""
    bot, gh = gh_world, fake_harvest.state
    view_id = open_setup(bot)
    submit_setup(bot, view_id, CLIENT_ID, CLIENT_SECRET)
    bot.slack.wait_for(lambda s: "Greenhouse is connected" in json.dumps(s.views[view_id]))
    make_plan(bot)
    job = gh.add_job("Designer", ["Application Review", "Assessment", "Face to Face"])
    gh_app = gh.add_application(job, "Assessment")
    alicia = gh.add_user("Alicia Flopple", "alicia.flopple.3128@example.com")
    bot.slack.add_user("UALICIA", team_id=TEAM, email="alicia.flopple.3128@example.com")
    bot.slack.add_member(CHANNEL, "UALICIA")
    event = copy.deepcopy(SAMPLE)
    event["payload"]["application"]["id"] = gh_app
    event["payload"]["application"]["current_stage"]["id"] = job["stage_ids"]["Assessment"]
    raw = encode(event)
    assert deliver(bot, raw, signature(raw)).json() == {"status": "accepted", "application": str(gh_app)}
    settle(bot, lambda: len(cards(bot)) == 1)
    app_id = app_id_of(card(bot))
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    complete(bot, bot.imocha.state.invitations()[0].id)
    wait_headline(bot, "Assessment needs review")

    click(bot, MEMBER, "advance_candidate", app_id)  # Mo: a channel member with no Greenhouse account
    wait_headline(bot, "Advanced by")
    settle(bot, lambda: any(m.blocks and "Greenhouse was not updated" in json.dumps(m.blocks) for m in replies(bot)))
    [failure] = [m for m in replies(bot) if "Greenhouse was not updated" in json.dumps(m.blocks)]
    assert "mo@example.com" in json.dumps(failure.blocks) and buttons(failure) == ["Retry"]
    assert gh.writes == []

    def retry(user: str, rid: str) -> None:
        value = failure.blocks[-1]["elements"][0]["value"]  # type: ignore[index]
        r = bot.action(user, "retry_writeback", value, channel_id=CHANNEL, message_ts=failure.ts, response_url=bot.slack.response_url(rid))
        assert r.status_code == 200

    retry(MEMBER, "mo-retry")  # neither the owner nor an admin
    settle(bot, lambda: any("Only <@UALICIA> or a workspace admin" in t for t in said_to(bot, "mo-retry")))
    gh.user_emails.append({"id": 1, "user_id": alicia, "email": "mo@example.com", "verified": True})  # as if Mo's address were hers
    retry("UALICIA", "alicia-retry")
    settle(bot, lambda: bool(gh.writes) and any("after the retry" in (m.text or "") for m in replies(bot)))
    assert gh.writes == [("move", gh_app, alicia, {"from_stage_id": job["stage_ids"]["Assessment"]})]
    assert gh.stage_name(gh_app) == "Face to Face"
    retry("UALICIA", "again")
    settle(bot, lambda: any("Nothing to retry" in t for t in said_to(bot, "again")))
    assert len(gh.writes) == 1 and bot.slack.violations == []
