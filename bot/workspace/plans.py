"""Interview plans: which iMocha test a job's stage uses, where its cards go, and its pass mark."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import Actor, Conflict, NotAllowed, NotFound, PlanView, normalise_key
from bot.slack.access import Access
from store import repos
from store.models import Plan

DEFAULT_STAGE = "iMocha assessment"


@dataclass(frozen=True)
class PlanInput:
    job: str
    stage: str
    test_id: int
    test_name: str
    channel_id: str | None
    pass_mark: int | None
    share_scores_in_channel: bool
    weekly_digest: bool = True


def plan_view(plan: Plan) -> PlanView:
    return PlanView(
        id=plan.id,
        job_label=plan.job_label,
        stage_label=plan.stage_label,
        test_id=plan.test_id,
        test_name=plan.test_name,
        channel_id=plan.channel_id,
        pass_mark=plan.pass_mark,
        share_scores_in_channel=plan.share_scores_in_channel,
        created_by=plan.created_by,
        weekly_digest=plan.weekly_digest,
    )


class Plans:
    def __init__(self, *, session_factory: sessionmaker[Session], access: Access):
        self._sf = session_factory
        self._access = access

    def list(self, team_id: str, actor: Actor) -> list[PlanView]:
        """The workspace's plans, for any full member (`/imocha plans`, the Workflow Builder step)."""
        self._access.require_member(team_id, actor.user_id)
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            return [] if ws is None else [plan_view(p) for p in repos.plans_for(session, ws.id)]

    def for_edit(self, team_id: str, actor: Actor, plan_id: int) -> PlanView:
        """A plan to fill the edit modal with: asked before the form opens, so a refusal costs no typing."""
        self._access.require_member(team_id, actor.user_id)
        with self._sf() as session:
            plan = self._plan(session, team_id, plan_id)
            self._require_owner(team_id, actor, plan, "edit")
            return plan_view(plan)

    def save(self, team_id: str, actor: Actor, data: PlanInput, *, plan_id: int | None = None) -> PlanView:
        """Create a plan (any full member), or edit one (its creator or an admin). A duplicate job+stage is refused."""
        self._access.require_member(team_id, actor.user_id)
        user_id = actor.user_id
        try:
            with self._sf.begin() as session:
                ws = repos.ensure_workspace(session, team_id)
                if plan_id is None:
                    plan = Plan(workspace_id=ws.id, created_by=user_id)
                    session.add(plan)
                else:
                    plan = self._plan(session, team_id, plan_id)
                    self._require_owner(team_id, actor, plan, "edit")
                plan.job_key = normalise_key(data.job)
                plan.job_label = " ".join(data.job.split())
                plan.stage_key = normalise_key(data.stage)
                plan.stage_label = " ".join(data.stage.split())
                plan.test_id = data.test_id
                plan.test_name = data.test_name
                plan.channel_id = data.channel_id
                plan.pass_mark = data.pass_mark
                plan.share_scores_in_channel = data.share_scores_in_channel
                plan.weekly_digest = data.weekly_digest
                session.flush()
                repos.audit(
                    session,
                    workspace_id=ws.id,
                    actor=user_id,
                    action="plan_created" if plan_id is None else "plan_edited",
                    detail=f"{plan.job_label} / {plan.stage_label} → {plan.test_name}",
                )
                return plan_view(plan)
        except IntegrityError:
            raise Conflict(
                f"A plan for “{data.job.strip()}” at stage “{data.stage.strip()}” already exists: edit it from `/imocha plans`."
            ) from None

    def remove(self, team_id: str, actor: Actor, plan_id: int) -> PlanView:
        """Remove a plan (its creator or an admin); existing cards stay."""
        self._access.require_member(team_id, actor.user_id)
        user_id = actor.user_id
        with self._sf.begin() as session:
            plan = self._plan(session, team_id, plan_id)
            self._require_owner(team_id, actor, plan, "remove")
            view = plan_view(plan)
            repos.audit(
                session,
                workspace_id=plan.workspace_id,
                actor=user_id,
                action="plan_removed",
                detail=f"{plan.job_label} / {plan.stage_label}",
            )
            session.delete(plan)
            return view

    def _require_owner(self, team_id: str, actor: Actor, plan: Plan, verb: str) -> None:
        if plan.created_by != actor.user_id and not self._access.is_admin(team_id, actor.user_id):
            raise NotAllowed(f"Only the plan's creator or an admin can {verb} it.")

    @staticmethod
    def _plan(session: Session, team_id: str, plan_id: int) -> Plan:
        ws = repos.workspace_by_team(session, team_id)
        plan = session.get(Plan, plan_id)
        if ws is None or plan is None or plan.workspace_id != ws.id:
            raise NotFound("That plan no longer exists.")
        return plan
