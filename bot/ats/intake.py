"""Intake: an ATS says an application reached a stage; if a plan matches, create one card, idempotently."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import Actor, AppStatus, DomainError, normalise_key
from bot.slack.access import Access
from bot.slack.gateway import SlackUnavailable
from bot.slack.outbox import CARD, SlackOutbox
from store import repos
from store.models import Application, Candidate, Job, Plan, SlackCard, WebhookDelivery, Workspace

log = logging.getLogger("bot.ats.intake")

EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def valid_email(value: str) -> bool:
    return len(value) <= 320 and EMAIL.match(value) is not None


@dataclass(frozen=True)
class IntakeEvent:
    source: str  # ats | greenhouse | gem | manual
    team_id: str | None
    application_id: str
    candidate_name: str
    candidate_email: str | None
    job_id: str | None
    job_name: str
    stage_name: str
    delivery_id: str | None = None
    candidate_id: str | None = None
    recruiter_email: str | None = None
    owner_user_id: str | None = None  # set for manual sends: the runner owns the card
    card_channel_id: str | None = None  # where the card goes instead of the plan's channel (the workflow step's input)
    stage_id: str | None = None  # the ATS's id of the stage (Greenhouse: where a decision's Advance moves from)


@dataclass(frozen=True)
class IntakeResult:
    accepted: bool
    application_id: int | None = None
    external_id: str | None = None
    created: bool = False
    reason: str | None = None


class UnknownWorkspace(DomainError):
    pass


class Intake:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        outbox: SlackOutbox,
        user_by_email: Callable[[str, str], str | None],
        default_team_id: Callable[[], str | None],
        access: Access,
    ):
        self._sf = session_factory
        self._access = access
        self._outbox = outbox
        self._user_by_email = user_by_email
        self._default_team_id = default_team_id

    def receive_manual(
        self,
        team_id: str,
        actor: Actor,
        *,
        name: str,
        email: str,
        job: str,
        test_id: int,
        test_name: str,
        channel_id: str | None = None,
    ) -> IntakeResult:
        """`/imocha send` (or the Workflow Builder step): the runner, a full member, owns the card; a plan
        for the job is used when one exists."""
        self._access.require_member(team_id, actor.user_id)
        user_id = actor.user_id
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                raise UnknownWorkspace("iMocha is not set up yet: an admin can run `/imocha setup`.")
            plan = repos.find_plan_for_job(session, ws.id, normalise_key(job))
            plan_id = plan.id if plan else None
            stage = plan.stage_label if plan else "Manual send"
        event = IntakeEvent(
            source="manual",
            team_id=team_id,
            application_id=f"manual:{email.strip().lower()}:{normalise_key(job)}:{test_id}",
            candidate_name=name,
            candidate_email=email,
            job_id=None,
            job_name=job,
            stage_name=stage,
            owner_user_id=user_id,
            card_channel_id=channel_id,
        )
        with self._sf.begin() as session:
            return self._record(session, team_id, plan_id, user_id, event, test=(test_id, test_name))

    def receive(self, event: IntakeEvent) -> IntakeResult:
        team_id = event.team_id or self._default_team_id()
        if not team_id:
            raise UnknownWorkspace("team_id is required: this bot serves several workspaces")
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None or not ws.active:
                raise UnknownWorkspace(f"workspace {team_id} has not installed the bot")
            if event.delivery_id:
                seen = session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.source == event.source, WebhookDelivery.delivery_id == event.delivery_id)
                ).one_or_none()
                if seen is not None and seen.application_id is not None:
                    return IntakeResult(True, seen.application_id, event.application_id, created=False)
            plan = repos.find_plan(
                session,
                ws.id,
                [normalise_key(event.job_id or ""), normalise_key(event.job_name)],
                normalise_key(event.stage_name),
            )
            if plan is None:
                return IntakeResult(False, reason=f"no plan for job “{event.job_name}” at stage “{event.stage_name}”")
            plan_created_by, plan_id = plan.created_by, plan.id
        owner = event.owner_user_id or self._recruiter(team_id, event.recruiter_email) or plan_created_by
        with self._sf.begin() as session:
            result = self._record(session, team_id, plan_id, owner, event)
        return result  # the caller delivers the queued card (after its HTTP answer, for webhooks)

    def _recruiter(self, team_id: str, email: str | None) -> str | None:
        if not email:
            return None
        try:
            return self._user_by_email(team_id, email)
        except (SlackApiError, SlackUnavailable) as exc:
            log.info("recruiter lookup failed (%s); the plan's creator owns the card", exc.__class__.__name__)
            return None

    def _record(
        self,
        session: Session,
        team_id: str,
        plan_id: int | None,
        owner: str,
        event: IntakeEvent,
        *,
        test: tuple[int, str] | None = None,
    ) -> IntakeResult:
        ws = repos.ensure_workspace(session, team_id)
        plan = repos.find_plan_by_id(session, ws.id, plan_id) if plan_id is not None else None
        if plan is None and test is None:
            return IntakeResult(False, reason="the matching plan was just removed")
        test_id, test_name = test if test is not None else (plan.test_id, plan.test_name)  # type: ignore[union-attr]
        candidate = _candidate(session, ws.id, event)
        job = _job(session, ws.id, event)
        stage_key = normalise_key(event.stage_name)
        created = repos.insert_ignore(
            session,
            Application,
            {
                "workspace_id": ws.id,
                "external_id": event.application_id,
                "source": event.source,
                "stage_key": stage_key,
                "stage_name": " ".join(event.stage_name.split()),
                "external_stage_id": event.stage_id,
                "candidate_id": candidate.id,
                "job_id": job.id,
                "plan_id": plan.id if plan else None,
                "test_id": test_id,
                "test_name": test_name,
                "pass_mark": plan.pass_mark if plan else None,
                "share_scores_in_channel": plan.share_scores_in_channel if plan else False,
                "owner_user_id": owner,
                "status": AppStatus.NEEDS_SENDING.value,
                "attempt": 1,
                "external_candidate_id": event.candidate_id,
            },
            ["workspace_id", "external_id", "stage_key"],
        )
        app_id = session.scalars(
            select(Application.id).where(
                Application.workspace_id == ws.id,
                Application.external_id == event.application_id,
                Application.stage_key == stage_key,
            )
        ).one()
        if event.delivery_id:
            repos.insert_ignore(
                session,
                WebhookDelivery,
                {"source": event.source, "delivery_id": event.delivery_id, "application_id": app_id},
                ["source", "delivery_id"],
            )
        if created:
            _queue_first_card(session, ws, plan, owner, event, app_id)
        return IntakeResult(True, app_id, event.application_id, created=created)


def _candidate(session: Session, workspace_id: int, event: IntakeEvent) -> Candidate:
    """The workspace's candidate with the event's email, or a new one (a candidate without an email is always new)."""
    email = event.candidate_email.strip().lower() if event.candidate_email else None
    candidate = repos.candidate_by_email(session, workspace_id, email) if email else None
    if candidate is None:
        candidate = Candidate(workspace_id=workspace_id, name=event.candidate_name.strip(), email=email, external_id=event.candidate_id)
        session.add(candidate)
        session.flush()
    return candidate


def _job(session: Session, workspace_id: int, event: IntakeEvent) -> Job:
    """The event's job, added on first sight (by its ATS id, else by its normalised name)."""
    job_external = event.job_id or f"name:{normalise_key(event.job_name)}"
    repos.insert_ignore(
        session,
        Job,
        {"workspace_id": workspace_id, "external_id": job_external, "name": event.job_name.strip()},
        ["workspace_id", "external_id"],
    )
    job = session.scalars(select(Job).where(Job.workspace_id == workspace_id, Job.external_id == job_external)).one()
    return job


def _queue_first_card(session: Session, ws: Workspace, plan: Plan | None, owner: str, event: IntakeEvent, app_id: int) -> None:
    """A new application's card (in the event's, the plan's or the default channel, else the owner's DM) and its audit entry."""
    channel = event.card_channel_id or (plan.channel_id if plan else None) or ws.default_channel_id
    in_dm = channel is None
    session.add(SlackCard(application_id=app_id, channel_id=channel or owner, in_dm=in_dm))
    SlackOutbox.add(session, workspace_id=ws.id, kind=CARD, key=f"card:{app_id}:created", application_id=app_id)
    repos.audit(
        session,
        workspace_id=ws.id,
        actor=event.source,
        action="received",
        application_id=app_id,
        detail=f"{event.job_name} / {event.stage_name}",
    )
    log.info(
        "application %s (%s) reached %s: card queued for %s",
        event.application_id,
        event.source,
        event.stage_name,
        "DM" if in_dm else channel,
    )
