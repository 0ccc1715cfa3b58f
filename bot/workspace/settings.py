"""Workspace setup: the iMocha key (checked live, stored encrypted), defaults, and a cached test list."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.ats.gem import GemClient
from bot.ats.greenhouse import HarvestClient, HarvestCredentials
from bot.domain import ImochaUnavailable
from bot.imocha import ImochaClient, ImochaError, Test
from bot.workspace.crypto import SecretBox
from bot.workspace.test_lists import (  # noqa: F401 (the cache's names are still imported from here)
    NOT_SET_UP,
    PICKER_WAIT_SECONDS,
    TEST_CACHE_SECONDS,
    TEST_RETRY_SECONDS,
    NotConfigured,
    TestListCache,
)
from store import repos
from store.models import Workspace

log = logging.getLogger("bot.workspace.settings")


@dataclass(frozen=True)
class WorkspaceSettings:
    team_id: str
    has_imocha_key: bool
    has_gem_key: bool
    default_channel_id: str | None
    validity_days: int
    reminder_days: int
    key_set_by: str | None
    has_harvest: bool = False  # Greenhouse Harvest credentials are stored (decisions are written back)
    harvest_client_id: str | None = None  # not a secret: shown in the setup modal so the admin knows which


@dataclass(frozen=True)
class SetupInput:
    api_key: str | None  # None keeps the stored key
    default_channel_id: str | None
    validity_days: int
    gem_api_key: str | None = None
    timezone: str | None = None  # the admin's zone; the first one saved is the workspace's (the digest's Monday 09:00)
    harvest: HarvestCredentials | None = None  # None keeps the stored credentials


class Workspaces:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        box: SecretBox,
        imocha_factory: Callable[[str], ImochaClient],
        gem_factory: Callable[[str], GemClient] | None = None,
        harvest_factory: Callable[[HarvestCredentials], HarvestClient] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime],
    ):
        self._sf = session_factory
        self._box = box
        self._imocha_factory = imocha_factory
        self._gem_factory = gem_factory
        self._harvest_factory = harvest_factory
        self._monotonic = monotonic
        self._clock = clock
        self._test_lists = TestListCache(
            session_factory=session_factory, box=box, imocha_factory=imocha_factory, monotonic=monotonic, clock=clock
        )

    def ensure(self, team_id: str) -> int:
        with self._sf.begin() as session:
            return repos.ensure_workspace(session, team_id).id

    def settings(self, team_id: str) -> WorkspaceSettings:
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                return WorkspaceSettings(team_id, False, False, None, 7, 3, None)
            harvest = self._harvest(ws.harvest_credentials_enc)
            return WorkspaceSettings(
                team_id=team_id,
                has_imocha_key=ws.imocha_key_enc is not None,
                has_gem_key=ws.gem_key_enc is not None,
                default_channel_id=ws.default_channel_id,
                validity_days=ws.validity_days,
                reminder_days=ws.reminder_days,
                key_set_by=ws.imocha_key_set_by,
                has_harvest=harvest is not None,
                harvest_client_id=harvest.client_id if harvest else None,
            )

    def check_key(self, api_key: str) -> int:
        """One live iMocha call; returns the number of tests. Raises the client's AuthError on a bad key."""
        return self._imocha_factory(api_key).check_key()

    def check_gem_key(self, api_key: str) -> None:
        """One live Gem ATS call; raises the Gem client's GemAuthError when Gem refuses the key."""
        if self._gem_factory is None:
            raise NotConfigured("Gem ATS intake is not available in this deployment.")
        self._gem_factory(api_key).check_key()

    def check_harvest(self, credentials: HarvestCredentials) -> None:
        """A live Harvest v3 token and user-list read; raises the client's HarvestAuthError or
        HarvestForbiddenError when Greenhouse refuses the credentials or a scope is missing."""
        if self._harvest_factory is None:
            raise NotConfigured("Greenhouse write-back is not available in this deployment.")
        self._harvest_factory(credentials).check()

    def harvest_credentials(self, workspace_id: int) -> HarvestCredentials | None:
        with self._sf() as session:
            raw = session.scalar(select(Workspace.harvest_credentials_enc).where(Workspace.id == workspace_id))
        return self._harvest(raw)

    def _harvest(self, encrypted: str | None) -> HarvestCredentials | None:
        return None if encrypted is None else HarvestCredentials.from_json(self._box.decrypt(encrypted))

    def save(self, team_id: str, user_id: str, data: SetupInput) -> None:
        """Store already-verified settings; the key is encrypted before it touches the database."""
        with self._sf.begin() as session:
            ws = repos.ensure_workspace(session, team_id)
            if data.api_key:
                ws.imocha_key_enc = self._box.encrypt(data.api_key)
                ws.imocha_key_set_by = user_id
                ws.imocha_key_set_at = self._clock()
                ws.tests_cache = ws.tests_loaded_at = None  # the old key's tests
            if data.gem_api_key:
                ws.gem_key_enc = self._box.encrypt(data.gem_api_key)
            if data.harvest is not None:
                ws.harvest_credentials_enc = self._box.encrypt(data.harvest.to_json())
            ws.default_channel_id = data.default_channel_id
            ws.validity_days = data.validity_days
            if data.timezone and not ws.timezone:
                ws.timezone = data.timezone
            ws.active = True
            repos.audit(
                session,
                workspace_id=ws.id,
                actor=user_id,
                action="setup",
                detail=", ".join(
                    part
                    for part, changed in (
                        ("iMocha key replaced", data.api_key),
                        ("Gem key replaced", data.gem_api_key),
                        ("Harvest credentials replaced", data.harvest),
                    )
                    if changed
                )
                or "defaults changed",
            )
        if data.api_key:
            self._test_lists.forget(team_id)
            self.prefetch_tests(team_id)  # the first options load in the plan modal then comes from the cache
        log.info("workspace %s: setup saved by %s (key %s)", team_id, user_id, "replaced" if data.api_key else "kept")

    def imocha(self, team_id: str) -> ImochaClient:
        with self._sf() as session:
            key = session.scalar(select(Workspace.imocha_key_enc).where(Workspace.team_id == team_id))
        if key is None:
            raise NotConfigured(NOT_SET_UP)
        return self._imocha_factory(self._box.decrypt(key))

    def imocha_by_id(self, workspace_id: int) -> ImochaClient | None:
        with self._sf() as session:
            key = session.scalar(select(Workspace.imocha_key_enc).where(Workspace.id == workspace_id))
        return None if key is None else self._imocha_factory(self._box.decrypt(key))

    def gem_key(self, workspace_id: int) -> str | None:
        with self._sf() as session:
            key = session.scalar(select(Workspace.gem_key_enc).where(Workspace.id == workspace_id))
        return None if key is None else self._box.decrypt(key)

    def tests(self, team_id: str) -> list[Test]:
        """The workspace's iMocha tests, from a short-lived cache; concurrent misses make one call."""
        return self._test_lists.tests(team_id)

    def tests_for_picker(self, team_id: str, *, wait: float = PICKER_WAIT_SECONDS) -> list[Test] | None:
        """The test list for an options load, which must be answered at once (see TestListCache)."""
        return self._test_lists.tests_for_picker(team_id, wait=wait)

    def test_options(self, team_id: str) -> list[Test] | None:
        """`tests_for_picker` for the Slack layer: iMocha's failure comes back as ImochaUnavailable."""
        try:
            return self.tests_for_picker(team_id)
        except ImochaError as exc:
            kind = exc.__class__.__name__
            raise ImochaUnavailable(f"iMocha's tests could not be loaded ({kind}).", kind=kind) from None

    def prefetch_tests(self, team_id: str) -> None:
        """Start loading the test list unless it is fresh: a modal with the test picker is opening."""
        self._test_lists.prefetch(team_id)

    def warm_test_lists(self, timeout: float = 30.0) -> threading.Thread:
        """Load every active workspace's test list at start-up, on a thread of its own (see TestListCache)."""
        return self._test_lists.warm(lambda: [team for _ws_id, team in self.active_workspaces()], timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` for test-list loads still running, so none writes after the engine closes."""
        self._test_lists.close(timeout)

    def cached_tests(self, team_id: str) -> list[Test] | None:
        """The cached list even if stale, without calling iMocha (None when never loaded)."""
        return self._test_lists.cached(team_id)

    def deactivate(self, team_id: str) -> None:
        with self._sf.begin() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is not None:
                ws.active = False
                repos.audit(session, workspace_id=ws.id, actor="slack", action="uninstalled")
        self._test_lists.forget(team_id)
        log.info("workspace %s: uninstalled or tokens revoked; polling stopped", team_id)

    def active_workspaces(self) -> list[tuple[int, str]]:
        with self._sf() as session:
            rows = session.execute(
                select(Workspace.id, Workspace.team_id).where(Workspace.active.is_(True), Workspace.imocha_key_enc.is_not(None))
            )
            return list(rows)
