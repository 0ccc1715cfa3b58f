"""The Workflow Builder step "Send iMocha assessment": the same intake and send as `/imocha send`, for a workflow."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.assessments import Assessments
from bot.ats.intake import Intake, valid_email
from bot.domain import Actor, AppStatus, DomainError, normalise_key
from bot.imocha import ImochaError
from bot.slack.gateway import SlackGateway
from bot.slack.outbox import SlackOutbox
from bot.workspace.plans import Plans
from bot.workspace.settings import Workspaces

log = logging.getLogger("bot.slack.workflow_step")

# The step's inputs and outputs: the manifest's `functions.send_imocha_assessment` declares the same names.
INPUTS = ("candidate_name", "candidate_email", "job", "test_id", "sent_by", "channel")
OUTPUTS = ("test_link", "card_permalink", "status")
DONE = {AppStatus.SENT, AppStatus.IN_PROGRESS, AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED}


class StepFailed(DomainError):
    """The step cannot run; the message is for the workflow's author (Workflow Builder shows it)."""


@dataclass(frozen=True)
class StepOutputs:
    test_link: str
    card_permalink: str
    status: str

    def as_dict(self) -> dict[str, str]:
        return {"test_link": self.test_link, "card_permalink": self.card_permalink, "status": self.status}


class WorkflowStep:
    def __init__(
        self,
        *,
        workspaces: Workspaces,
        plans: Plans,
        intake: Intake,
        assessments: Assessments,
        outbox: SlackOutbox,
        gateway: SlackGateway,
    ):
        self._workspaces = workspaces
        self._plans = plans
        self._intake = intake
        self._assessments = assessments
        self._outbox = outbox
        self._gateway = gateway

    def send(self, team_id: str, execution_id: str, inputs: Mapping[str, Any]) -> StepOutputs:
        """Card, invitation and DM, as `/imocha send` and its confirm would make them.

        Idempotent: a redelivered execution (or a second one for the same candidate, job and test) finds
        the same application, which is sent once; the outputs describe it as it stands.
        """
        name = str(inputs.get("candidate_name") or "").strip()
        email = str(inputs.get("candidate_email") or "").strip()
        job = str(inputs.get("job") or "").strip()
        user = str(inputs.get("sent_by") or "").strip()
        channel = str(inputs.get("channel") or "").strip() or None
        if not name or len(name) > 200:
            raise StepFailed("The candidate's name is missing: map “Candidate name” to a value in the workflow.")
        if not valid_email(email):
            raise StepFailed(f"“{email[:100]}” is not a valid email address for the candidate.")
        if not job or len(job) > 200:
            raise StepFailed("The job is missing: map “Job” to a plan's job or any job title.")
        if not user.startswith(("U", "W")):
            raise StepFailed("“Sent by” must be a Slack user (for example, the person who used the workflow).")
        if channel is not None and not channel.startswith(("C", "G")):
            raise StepFailed("“Channel for the card” must be a channel; leave it empty for the plan's hiring channel.")
        if not self._workspaces.settings(team_id).has_imocha_key:
            raise StepFailed("iMocha is not set up in this workspace: an admin has to run /imocha setup first.")
        test_id, test_name = self._test(team_id, Actor(user), job, inputs.get("test_id"))
        log.info("workflow step %s: sending test %s for %s", execution_id, test_id, job)
        intake = self._intake.receive_manual(
            team_id, Actor(user), name=name, email=email, job=job, test_id=test_id, test_name=test_name, channel_id=channel
        )
        assert intake.application_id is not None
        application_id = intake.application_id
        self._outbox.deliver(application_id=application_id)  # the card first, so the outputs can link to it
        view = self._assessments.view(team_id, application_id)
        if view.status in (AppStatus.NEEDS_SENDING, AppStatus.SEND_FAILED):
            self._assessments.send(team_id, application_id, Actor(user), test_id=test_id, test_name=test_name)
            self._outbox.deliver(application_id=application_id)
            view = self._assessments.view(team_id, application_id)
        if view.status == AppStatus.SEND_FAILED:
            raise StepFailed(f"iMocha refused the invitation: {view.status_reason or 'no reason given'}.")
        link = view.invitation.test_url if view.invitation and view.status in DONE else ""
        return StepOutputs(test_link=link, card_permalink=self._permalink(team_id, view.card_channel_id, view.card_ts), status=view.status)

    def _test(self, team_id: str, actor: Actor, job: str, raw: Any) -> tuple[int, str]:
        if raw in (None, ""):
            plan = next((p for p in self._plans.list(team_id, actor) if normalise_key(p.job_label) == normalise_key(job)), None)
            if plan is None:
                raise StepFailed(f"No interview plan matches the job “{job[:100]}”: give the step an iMocha test id.")
            return plan.test_id, plan.test_name
        try:
            test_id = int(str(raw).strip())
        except ValueError:
            raise StepFailed(f"“{str(raw)[:50]}” is not an iMocha test id (a number).") from None
        try:
            tests = self._workspaces.tests(team_id)
        except ImochaError as exc:
            raise StepFailed(f"iMocha could not be asked for its tests ({exc.__class__.__name__}); try again.") from None
        found = next((t for t in tests if t.test_id == test_id), None)
        if found is None:
            raise StepFailed(f"iMocha has no test {test_id} for this workspace's key.")
        return found.test_id, found.name

    def _permalink(self, team_id: str, channel: str | None, ts: str | None) -> str:
        if not channel or not ts:
            return ""
        try:
            return str(self._gateway.client(team_id).chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except SlackApiError as exc:
            log.warning("no permalink for the card %s/%s: %s", channel, ts, exc.response.get("error"))
            return ""
