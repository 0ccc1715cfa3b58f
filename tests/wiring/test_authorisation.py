"""Who may act is decided in the services, so every way in meets the same rule: a card's button, the
Workflow Builder step, and any caller of the services (an events replay, a future API) alike."""

from __future__ import annotations

import pytest

from bot.domain import Actor, AppStatus, DomainError, NotAllowed
from bot.workspace.plans import PlanInput
from tests.fakes.imocha import PYTHON_TEST_ID
from tests.wiring.conftest import ADMIN, CHANNEL, GUEST, MEMBER, OUTSIDER, RECRUITER, TEAM, Bot, setup_workspace
from tests.wiring.helpers import new_card, sent_card
from tests.wiring.test_workflow_step import inputs, run_step


def test_a_service_call_by_someone_who_cannot_see_the_card_changes_nothing(bot: Bot) -> None:
    services = bot.runtime.services
    app_id, _inv = sent_card(bot)
    invitations = len(bot.imocha.state.invitations())

    for user in (OUTSIDER, GUEST):  # not in the hiring channel; a guest
        with pytest.raises(NotAllowed):
            services.assessments.cancel(TEAM, app_id, Actor(user))
        with pytest.raises(NotAllowed):
            services.assessments.resend(TEAM, app_id, Actor(user))
        with pytest.raises(NotAllowed):
            services.assessments.view_for(TEAM, app_id, Actor(user))
    assert services.assessments.view(TEAM, app_id).status == AppStatus.SENT
    assert len(bot.imocha.state.invitations()) == invitations

    # A member of the card's channel may; so may an admin who is not in it.
    assert services.assessments.view_for(TEAM, app_id, Actor(MEMBER)).id == app_id
    assert services.assessments.cancel(TEAM, app_id, Actor(ADMIN)).ok
    assert services.assessments.view(TEAM, app_id).status == AppStatus.CANCELLED


def test_send_refuses_an_outsider_before_calling_imocha(bot: Bot) -> None:
    app_id = new_card(bot)
    with pytest.raises(NotAllowed):
        bot.runtime.services.assessments.send(TEAM, app_id, Actor(OUTSIDER), test_id=PYTHON_TEST_ID)
    assert bot.imocha.state.invitations() == []
    assert bot.runtime.services.assessments.view(TEAM, app_id).status == AppStatus.NEEDS_SENDING


def test_plans_are_for_full_members_and_edited_by_their_creator_or_an_admin(bot: Bot) -> None:
    setup_workspace(bot)
    plans = bot.runtime.services.plans
    data = PlanInput(
        job="Backend Engineer",
        stage="iMocha assessment",
        test_id=PYTHON_TEST_ID,
        test_name="Python",
        channel_id=CHANNEL,
        pass_mark=None,
        share_scores_in_channel=False,
    )
    with pytest.raises(NotAllowed):
        plans.save(TEAM, Actor(GUEST), data)
    plan = plans.save(TEAM, Actor(RECRUITER), data)
    with pytest.raises(NotAllowed):
        plans.save(TEAM, Actor(MEMBER), data, plan_id=plan.id)
    with pytest.raises(NotAllowed):
        plans.remove(TEAM, Actor(MEMBER), plan.id)
    with pytest.raises(NotAllowed):  # refused when the edit form would open, before any typing
        plans.for_edit(TEAM, Actor(MEMBER), plan.id)
    with pytest.raises(NotAllowed):
        plans.list(TEAM, Actor(GUEST))
    assert [p.id for p in plans.list(TEAM, Actor(MEMBER))] == [plan.id]
    assert plans.for_edit(TEAM, Actor(ADMIN), plan.id).job_label == "Backend Engineer"
    assert plans.save(TEAM, Actor(ADMIN), data, plan_id=plan.id).id == plan.id
    assert plans.remove(TEAM, Actor(RECRUITER), plan.id).id == plan.id


def test_the_workflow_step_refuses_a_guest_as_sent_by_before_any_card(bot: Bot) -> None:
    setup_workspace(bot)
    kind, message = run_step(bot, inputs(sent_by=GUEST, test_id=str(PYTHON_TEST_ID)))
    assert kind == "error" and "guests can't use iMocha assessments" in message
    assert bot.imocha.state.invitations() == []
    assert not [m for m in bot.slack.top_level(CHANNEL) if m.blocks]


def test_resync_and_the_digest_on_demand_are_for_admins_whoever_calls(bot: Bot) -> None:
    setup_workspace(bot)
    services = bot.runtime.services
    assert services.digests is not None
    started: list[str] = []
    with pytest.raises(NotAllowed):
        services.poller.resync(TEAM, Actor(MEMBER), started=lambda: started.append(MEMBER))
    with pytest.raises(NotAllowed):
        services.digests.post_current_week(TEAM, Actor(MEMBER))
    assert started == []  # refused before anyone is told it began, and before iMocha is asked
    assert services.poller.resync(TEAM, Actor(ADMIN), started=lambda: started.append(ADMIN)) == 0
    assert started == [ADMIN]
    assert services.digests.post_current_week(TEAM, Actor(ADMIN)) == 0


def test_the_setup_form_is_for_admins_and_the_test_pickers_for_members_of_a_set_up_workspace(bot: Bot) -> None:
    setup = bot.runtime.services.setup
    with pytest.raises(DomainError, match="not set up yet"):
        setup.start_picking_a_test(TEAM, Actor(RECRUITER))
    setup_workspace(bot)
    with pytest.raises(NotAllowed):
        setup.current(TEAM, Actor(RECRUITER))
    assert setup.current(TEAM, Actor(ADMIN)).has_imocha_key
    with pytest.raises(NotAllowed):
        setup.start_picking_a_test(TEAM, Actor(GUEST))
    setup.start_picking_a_test(TEAM, Actor(RECRUITER))
