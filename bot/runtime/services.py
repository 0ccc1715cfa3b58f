"""The bundle of services the Slack listeners and web routes are given by the composition root."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from bot.assessments import Assessments
from bot.assessments.decisions import Decisions
from bot.assessments.poller import StatusPoller
from bot.ats.intake import Intake
from bot.ats.writeback import DecisionWriteback
from bot.digest import Digests
from bot.runtime.config import Settings
from bot.slack.access import Access
from bot.slack.gateway import SlackGateway
from bot.slack.home import HomeQueue
from bot.slack.outbox import SlackOutbox
from bot.slack.workflow_step import WorkflowStep
from bot.workspace.plans import Plans
from bot.workspace.settings import Workspaces
from bot.workspace.setup import WorkspaceSetup


@dataclass(frozen=True)
class Services:
    """Built once by bot/runtime/app.py's build_runtime and never changed after."""

    settings: Settings
    workspaces: Workspaces
    setup: WorkspaceSetup
    plans: Plans
    intake: Intake
    assessments: Assessments
    decisions: Decisions
    outbox: SlackOutbox
    gateway: SlackGateway
    access: Access
    home: HomeQueue
    poller: StatusPoller
    background: Executor
    digests: Digests | None = None
    workflow_step: WorkflowStep | None = None
    writeback: DecisionWriteback | None = None  # decisions written back to Greenhouse / Gem
