"""The Workflow Builder step "Send iMocha assessment" (Bolt's app.function): ack, send after the ack, complete or fail."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext, Complete, Fail

from bot.domain import DomainError
from bot.runtime.services import Services
from handlers import ids, parse
from handlers.after_ack import after_ack

log = logging.getLogger("handlers.workflow")


def register(app: App, services: Services) -> None:
    @app.function(ids.SEND_FUNCTION)  # acked by Bolt before this runs
    def send_assessment(event: dict[str, Any], inputs: dict[str, Any], complete: Complete, fail: Fail, context: BoltContext) -> None:
        team = parse.team_id(event, context)
        execution_id = str(event.get("function_execution_id") or "")

        def run() -> None:
            step = services.workflow_step
            if step is None:
                fail("The iMocha bot cannot run this step right now.")
                return
            try:
                outputs = step.send(team, execution_id, inputs)
            except DomainError as exc:
                log.info("workflow step %s failed: %s", execution_id, exc)
                fail(str(exc))
                return
            complete(outputs=outputs.as_dict())

        after_ack(services, "the workflow step", run)
