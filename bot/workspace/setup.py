"""`/imocha setup` as a use case: who may, the live checks of each key, and what is saved when one fails.

An admin (bot/slack/access.py) gives the iMocha key, optionally Gem's key and Greenhouse's Harvest
credentials. iMocha and Gem are checked first and either refusal saves nothing; Greenhouse is checked
last and its refusal keeps the rest (the keys checked above are saved, the Harvest credentials are not).
The answer is a `SetupOutcome` of facts; handlers/commands.py words it in the modal.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace

from bot import imocha
from bot.ats import gem, greenhouse
from bot.domain import Actor, DomainError
from bot.slack.access import Access
from bot.workspace.settings import SetupInput, Workspaces, WorkspaceSettings

log = logging.getLogger("bot.workspace.setup")


class SetupProblem(enum.StrEnum):
    IMOCHA_REJECTED = "imocha_rejected"
    IMOCHA_UNREACHABLE = "imocha_unreachable"
    GEM_REJECTED = "gem_rejected"
    GEM_UNREACHABLE = "gem_unreachable"
    HARVEST_REJECTED = "harvest_rejected"
    HARVEST_FORBIDDEN = "harvest_forbidden"  # accepted, but a scope is missing
    HARVEST_UNREACHABLE = "harvest_unreachable"


@dataclass(frozen=True)
class SetupOutcome:
    saved: bool  # the settings (all, or all but the Harvest credentials) were stored
    problem: SetupProblem | None = None
    detail: str = ""  # the failure's kind, or Greenhouse's own words for a missing scope
    tests: int | None = None  # how many tests the new iMocha key sees (None: the key is unchanged)


class WorkspaceSetup:
    def __init__(self, *, workspaces: Workspaces, access: Access):
        self._workspaces = workspaces
        self._access = access

    def allowed(self, team_id: str, actor: Actor) -> bool:
        """Whether `actor` may change the setup (the modal answers at once; `setup` checks again)."""
        return self._access.is_admin(team_id, actor.user_id)

    def current(self, team_id: str, actor: Actor) -> WorkspaceSettings:
        """The settings the setup modal opens with; only admins may open it."""
        self._access.require_admin(team_id, actor.user_id, "set up iMocha")
        return self._workspaces.settings(team_id)

    def start_picking_a_test(self, team_id: str, actor: Actor) -> None:
        """A member is about to choose an iMocha test (the plan and manual-send modals): iMocha must be set
        up, and the test list starts loading so the modal's picker finds it cached."""
        self._access.require_member(team_id, actor.user_id)
        if not self._workspaces.settings(team_id).has_imocha_key:
            raise DomainError("iMocha is not set up yet: an admin can run `/imocha setup` first.")
        self._workspaces.prefetch_tests(team_id)

    def setup(self, team_id: str, actor: Actor, data: SetupInput) -> SetupOutcome:
        """Check what changed live, then save; only workspace admins (and IMOCHA_ADMINS) may."""
        self._access.require_admin(team_id, actor.user_id, "change the iMocha setup")
        tests: int | None = None
        if data.api_key:
            try:
                tests = self._workspaces.check_key(data.api_key)
            except imocha.AuthError:
                log.info("workspace %s: setup by %s refused: iMocha rejected the key", team_id, actor.user_id)
                return SetupOutcome(False, SetupProblem.IMOCHA_REJECTED)
            except imocha.ImochaError as exc:
                return SetupOutcome(False, SetupProblem.IMOCHA_UNREACHABLE, exc.__class__.__name__)
        if data.gem_api_key:
            try:
                self._workspaces.check_gem_key(data.gem_api_key)
            except gem.GemAuthError:
                log.info("workspace %s: setup by %s refused: Gem rejected the key", team_id, actor.user_id)
                return SetupOutcome(False, SetupProblem.GEM_REJECTED)
            except (gem.GemError, DomainError) as exc:
                return SetupOutcome(False, SetupProblem.GEM_UNREACHABLE, exc.__class__.__name__)
        problem, detail = self._harvest_problem(team_id, actor, data.harvest) if data.harvest else (None, "")
        self._workspaces.save(team_id, actor.user_id, data if problem is None else replace(data, harvest=None))
        return SetupOutcome(True, problem, detail, tests)

    def _harvest_problem(self, team_id: str, actor: Actor, harvest: greenhouse.HarvestCredentials) -> tuple[SetupProblem | None, str]:
        try:
            self._workspaces.check_harvest(harvest)
        except greenhouse.HarvestAuthError:
            log.info("workspace %s: setup by %s: Greenhouse rejected the Harvest credentials", team_id, actor.user_id)
            return SetupProblem.HARVEST_REJECTED, ""
        except greenhouse.HarvestForbiddenError as exc:
            return SetupProblem.HARVEST_FORBIDDEN, exc.message
        except (greenhouse.HarvestError, DomainError) as exc:
            return SetupProblem.HARVEST_UNREACHABLE, exc.__class__.__name__
        return None, ""
