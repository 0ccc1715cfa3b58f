"""The bundle of services the Slack listeners and web routes are given by the composition root."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from bot.access import Access
from bot.assessments import Assessments
from bot.config import Settings
from bot.decisions import Decisions
from bot.digest import Digests
from bot.home import HomeQueue
from bot.intake import Intake
from bot.outbox import SlackOutbox
from bot.plans import Plans
from bot.poller import StatusPoller
from bot.setup import WorkspaceSetup
from bot.slack_gateway import SlackGateway
from bot.workflow_step import WorkflowStep
from bot.workspaces import Workspaces
from bot.writeback import DecisionWriteback


@dataclass(frozen=True)
class Services:
    """Built once by bot/app.py's build_runtime and never changed after."""

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
