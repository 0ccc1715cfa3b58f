"""Gem ATS through the whole bot over real HTTP: the key checked at setup, cards from Gem stage moves, notes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from store.models import Workspace
from tests.fakes import slack_requests as sr
from tests.fakes.gem import BAD_GEM_KEY, GOOD_GEM_KEY, FakeGem, GemState, fake_gem  # noqa: F401 (fixture)
from tests.fakes.imocha import GOOD_KEY, FakeImocha
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import ADMIN, CHANNEL, RECRUITER, TEAM, Bot, create_plan, make_bot
from tests.wiring.helpers import app_id_of, buttons, card, card_json, cards, complete, settle, submit_send, wait_headline


@pytest.fixture
def gem_bot(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha, fake_gem: FakeGem) -> Iterator[Bot]:  # noqa: F811
    b = make_bot(engine, slack, fake_imocha, gem_base_url=fake_gem.url)
    yield b
    b.sender.close()
    b.server.stop()
    b.runtime.close()


def submit_setup(bot: Bot, view_id: str, gem_key: str | None) -> None:
    r = bot.submit(
        ADMIN,
        "imocha_setup",
        view_id=view_id,
        values={
            "api_key": {"api_key_input": sr.plain(GOOD_KEY)},
            "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
            "validity_days": {"validity_days_input": sr.number(7)},
            "gem_key": {"gem_key_input": sr.plain(gem_key)},
        },
    )
    assert r.status_code == 200 and "Checking the key" in r.text, r.text


def open_setup(bot: Bot) -> str:
    assert bot.command(ADMIN, "setup").status_code == 200
    bot.slack.wait_for_calls("views.open", 1)
    return list(bot.slack.views)[-1]


def connect_gem(bot: Bot) -> None:
    view_id = open_setup(bot)
    submit_setup(bot, view_id, GOOD_GEM_KEY)
    bot.slack.wait_for(lambda s: "Gem is connected" in json.dumps(s.views[view_id]))
    bot.slack.reset_calls()


def stored_gem_key(bot: Bot) -> str | None:
    with bot.runtime.session_factory() as session:
        return session.scalar(select(Workspace.gem_key_enc).where(Workspace.team_id == TEAM))


def test_setup_refuses_a_gem_key_that_gem_rejects_and_saves_one_it_accepts(gem_bot: Bot, fake_gem: FakeGem) -> None:  # noqa: F811
    view_id = open_setup(gem_bot)
    submit_setup(gem_bot, view_id, BAD_GEM_KEY)
    gem_bot.slack.wait_for(lambda s: "Gem rejected this API key" in json.dumps(s.views[view_id]))
    settings = gem_bot.runtime.services.workspaces.settings(TEAM)
    assert not settings.has_gem_key and not settings.has_imocha_key  # nothing saved
    assert fake_gem.state.calls_to("GET", "/ats/v0/users")[0].api_key == BAD_GEM_KEY

    submit_setup(gem_bot, view_id, GOOD_GEM_KEY)
    gem_bot.slack.wait_for(lambda s: "Gem is connected" in json.dumps(s.views[view_id]))
    assert gem_bot.runtime.services.workspaces.settings(TEAM).has_gem_key
    stored = stored_gem_key(gem_bot)
    assert stored is not None and GOOD_GEM_KEY not in stored  # encrypted at rest
    assert gem_bot.slack.violations == []


def gem_account(state: GemState) -> dict[str, Any]:
    rita = state.add_user("Rita Recruiter", "rita@example.com")
    return state.add_job("Backend Engineer", stages=["Phone Screen", "iMocha assessment", "Onsite"], recruiters=[rita])


def poll_gem(bot: Bot) -> None:
    assert bot.runtime.gem_poller is not None
    stats = bot.runtime.gem_poller.poll_all()
    assert stats and all(s.ok for s in stats), stats


def test_a_gem_candidate_without_email_gets_a_card_that_says_so_with_no_send_button(gem_bot: Bot, fake_gem: FakeGem) -> None:  # noqa: F811
    connect_gem(gem_bot)
    assert create_plan(gem_bot).status_code == 200
    job = gem_account(fake_gem.state)
    grace = fake_gem.state.add_application(fake_gem.state.add_candidate("Grace", "Hopper", []), job, "Phone Screen")
    poll_gem(gem_bot)  # the first sync: stages recorded, no cards
    assert cards(gem_bot) == []

    fake_gem.state.move(grace, "iMocha assessment")
    poll_gem(gem_bot)

    settle(gem_bot, lambda: len(cards(gem_bot)) == 1)
    text = card_json(gem_bot)
    assert "Grace Hopper" in text and "Assessment needs sending" in text
    assert "no email address" in text
    assert "Send assessment" not in buttons(card(gem_bot))
    assert f"<@{RECRUITER}>" in text  # the job's recruiter in Gem, matched to Slack by email
    poll_gem(gem_bot)
    assert len(cards(gem_bot)) == 1
    assert gem_bot.slack.violations == []


def test_a_gem_applicant_is_sent_the_test_and_the_result_goes_back_to_gem_as_one_note(gem_bot: Bot, fake_gem: FakeGem) -> None:  # noqa: F811
    connect_gem(gem_bot)
    assert create_plan(gem_bot).status_code == 200
    job = gem_account(fake_gem.state)
    candidate = fake_gem.state.add_candidate("Ada", "Lovelace", [("ada@work.example", False), ("ada@example.com", True)])
    ada = fake_gem.state.add_application(candidate, job, "Phone Screen")
    poll_gem(gem_bot)
    fake_gem.state.move(ada, "iMocha assessment")
    poll_gem(gem_bot)
    settle(gem_bot, lambda: len(cards(gem_bot)) == 1)
    assert "ada@example.com" in card_json(gem_bot)

    app_id = app_id_of(card(gem_bot))
    assert submit_send(gem_bot, app_id).status_code == 200
    wait_headline(gem_bot, "Assessment sent")
    [invitation] = gem_bot.imocha.state.invitations()
    complete(gem_bot, invitation.id, via="poll")
    wait_headline(gem_bot, "Assessment needs review")

    assert gem_bot.runtime.gem_poller is not None
    assert gem_bot.runtime.gem_poller.write_back() == 1
    assert gem_bot.runtime.gem_poller.write_back() == 0
    [note] = fake_gem.state.notes
    assert note["candidate_id"] == candidate
    assert "Python Developer" in note["body"] and "42 / 50 points (84%)" in note["body"] and "Passed" in note["body"]


def test_the_gem_poll_job_runs_through_the_scheduler_wrapper(gem_bot: Bot, fake_gem: FakeGem) -> None:  # noqa: F811
    from bot.runtime.app import build_scheduler
    from bot.runtime.clock import system_clock
    from bot.runtime.scheduler import GEM

    connect_gem(gem_bot)
    gem_account(fake_gem.state)
    runtime = gem_bot.runtime
    sched = build_scheduler(
        runtime.settings,
        runtime.services,
        runtime.services.poller,
        runtime.session_factory,
        system_clock,
        "replica-a",
        gem_poller=runtime.gem_poller,
    )
    try:
        assert GEM in {job.id for job in sched.jobs()}
        assert sched.run(GEM) is True
    finally:
        sched.shutdown()
    assert fake_gem.state.count("GET", "/ats/v0/applications") == 1
    with runtime.session_factory() as session:
        assert session.scalar(select(Workspace.gem_checkpoint).where(Workspace.team_id == TEAM)) is not None
