"""The Workflow Builder step over real HTTP: a signed function_executed event in, functions.complete* out."""

from __future__ import annotations

import itertools
import json
from typing import Any

from sqlalchemy import Engine

from bot.domain import Actor
from bot.workspace.plans import PlanInput
from bot.workspace.settings import SetupInput
from handlers import ids
from tests.fakes import slack_requests as sr
from tests.fakes.imocha import GOOD_KEY, PYTHON_TEST_ID, FakeImocha
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.wiring.conftest import ADMIN, CHANNEL, RECRUITER, TEAM, Bot, create_plan, make_bot, setup_workspace
from tests.wiring.helpers import settle
from tests.wiring.test_manifest_types import manifest_function

_executions = itertools.count(1)


def function_event(slack: FakeSlack, inputs: dict[str, Any], execution_id: str) -> dict[str, Any]:
    """Workflow Builder runs the step: the event carries the execution's own token, as Slack's does."""
    function = manifest_function()
    outputs = {name: spec["type"] for name, spec in function["output_parameters"]["properties"].items()}
    token = slack.start_function(TEAM, execution_id, outputs=outputs)
    declared = function["input_parameters"]["properties"]
    assert set(inputs) <= set(declared), "inputs the manifest does not declare"
    return {
        "type": "function_executed",
        "function": {"id": "Fn0001", "callback_id": ids.SEND_FUNCTION, "title": function["title"], "type": "app"},
        "inputs": inputs,
        "function_execution_id": execution_id,
        "workflow_execution_id": f"Wx{execution_id}",
        "event_ts": "1700000000.000100",
        "bot_access_token": token,
    }


def run_step(bot: Bot, inputs: dict[str, Any], *, execution_id: str | None = None) -> tuple[str, Any]:
    execution_id = execution_id or f"Fx{next(_executions):06d}"
    r = bot.sender.event(team_id=TEAM, event=function_event(bot.slack, inputs, execution_id))
    assert r.status_code == 200, r.text
    settle(bot, lambda: bot.slack.execution(execution_id) is not None, timeout=10)
    result = bot.slack.execution(execution_id)
    assert result is not None
    return result


def inputs(**overrides: Any) -> dict[str, Any]:
    values = {"candidate_name": "Ada Lovelace", "candidate_email": "ada@example.com", "job": "Backend Engineer", "sent_by": RECRUITER}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_the_step_sends_through_the_plan_and_completes_with_the_link_the_card_and_the_status(bot: Bot) -> None:
    setup_workspace(bot)
    assert create_plan(bot).status_code == 200

    kind, outputs = run_step(bot, inputs(), execution_id="FxSEND1")

    assert kind == "success", outputs
    assert len(bot.imocha.state.invitations()) == 1
    assert outputs["status"] == "sent"
    assert outputs["test_link"].startswith(f"{bot.imocha.url}/take/")
    [card] = [m for m in bot.slack.top_level(CHANNEL) if m.blocks]
    assert outputs["card_permalink"].endswith(f"/archives/{CHANNEL}/p{card.ts.replace('.', '')}")
    settle(bot, lambda: any("Test link" in str(m.blocks) for m in bot.slack.dms_to(RECRUITER)))
    assert not bot.slack.violations

    # Slack redelivers the event (or the workflow runs again for Ada): no second invitation or card.
    kind, again = run_step(bot, inputs(), execution_id="FxSEND2")
    assert kind == "success" and again == outputs
    assert len(bot.imocha.state.invitations()) == 1
    assert len([m for m in bot.slack.top_level(CHANNEL) if m.blocks]) == 1


def test_the_step_takes_a_test_id_when_no_plan_matches_and_posts_the_card_where_it_is_told(bot: Bot) -> None:
    setup_workspace(bot)
    bot.slack.add_channel("CWORKFLOW", team_id=TEAM, name="workflow-hiring", members=[RECRUITER])

    kind, outputs = run_step(bot, inputs(job="Data Engineer", test_id=str(PYTHON_TEST_ID), channel="CWORKFLOW"))

    assert kind == "success", outputs
    assert outputs["status"] == "sent" and outputs["test_link"].startswith("http")
    assert "/archives/CWORKFLOW/" in outputs["card_permalink"]
    assert [m for m in bot.slack.top_level("CWORKFLOW") if m.blocks] and not bot.slack.top_level(CHANNEL)


def test_the_step_fails_with_words_a_workflow_author_understands(bot: Bot) -> None:
    kind, message = run_step(bot, inputs())
    assert (kind, message) == ("error", "iMocha is not set up in this workspace: an admin has to run /imocha setup first.")

    setup_workspace(bot)
    kind, message = run_step(bot, inputs(candidate_email="not-an-email"))
    assert kind == "error" and "not a valid email address" in message
    kind, message = run_step(bot, inputs(job="Data Engineer"))
    assert kind == "error" and "No interview plan matches the job" in message
    kind, message = run_step(bot, inputs(job="Data Engineer", test_id="999999"))
    assert kind == "error" and "iMocha has no test 999999" in message
    assert bot.imocha.state.invitations() == []


def test_the_manifest_declares_the_steps_inputs_and_outputs() -> None:
    function = manifest_function()
    assert function["title"] == "Send iMocha assessment"
    props = function["input_parameters"]["properties"]
    assert list(props) == ["candidate_name", "candidate_email", "job", "test_id", "sent_by", "channel"]
    assert props["sent_by"]["type"] == "slack#/types/user_id" and props["channel"]["type"] == "slack#/types/channel_id"
    assert set(function["input_parameters"]["required"]) == {"candidate_name", "candidate_email", "job", "sent_by"}
    assert list(function["output_parameters"]["properties"]) == ["test_link", "card_permalink", "status"]


def test_the_step_runs_over_socket_mode_too(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> None:
    with FakeSocketMode() as socket_server:
        bot = make_bot(engine, slack, fake_imocha, socket_mode=socket_server)
        try:
            services = bot.runtime.services
            services.workspaces.save(TEAM, ADMIN, SetupInput(api_key=GOOD_KEY, default_channel_id=None, validity_days=7))
            plan = PlanInput("Backend Engineer", "iMocha assessment", PYTHON_TEST_ID, "Python Developer", CHANNEL, 60, False)
            services.plans.save(TEAM, Actor(RECRUITER), plan)

            delivery = socket_server.deliver(
                "events_api", json.loads(sr.event_callback(team_id=TEAM, event=function_event(slack, inputs(), "FxSOCKET")))
            )

            delivery.wait_ack()
            settle(bot, lambda: slack.execution("FxSOCKET") is not None, timeout=10)
            kind, outputs = slack.execution("FxSOCKET") or ("", {})
            assert kind == "success" and outputs["status"] == "sent", outputs
            assert f"/archives/{CHANNEL}/" in outputs["card_permalink"]
            assert not slack.violations
        finally:
            bot.sender.close()
            bot.server.stop()
            bot.runtime.close()
