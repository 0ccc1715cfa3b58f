"""Workspace setup: the iMocha key (checked live, stored encrypted), defaults, and a cached test list."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crypto import SecretBox
from bot.domain import DomainError
from bot.gem import GemClient
from bot.imocha import ImochaClient, Test
from store import repos
from store.models import Workspace, utcnow

log = logging.getLogger("bot.workspaces")

TEST_CACHE_SECONDS = 60.0


class NotConfigured(DomainError):
    pass


@dataclass(frozen=True)
class WorkspaceSettings:
    team_id: str
    has_imocha_key: bool
    has_gem_key: bool
    default_channel_id: str | None
    validity_days: int
    reminder_days: int
    key_set_by: str | None


@dataclass(frozen=True)
class SetupInput:
    api_key: str | None  # None keeps the stored key
    default_channel_id: str | None
    validity_days: int
    gem_api_key: str | None = None


class Workspaces:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        box: SecretBox,
        imocha_factory: Callable[[str], ImochaClient],
        gem_factory: Callable[[str], GemClient] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._sf = session_factory
        self._box = box
        self._imocha_factory = imocha_factory
        self._gem_factory = gem_factory
        self._monotonic = monotonic
        self._tests: dict[str, tuple[float, list[Test]]] = {}
        self._test_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def ensure(self, team_id: str) -> int:
        with self._sf.begin() as session:
            return repos.ensure_workspace(session, team_id).id

    def settings(self, team_id: str) -> WorkspaceSettings:
        with self._sf() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is None:
                return WorkspaceSettings(team_id, False, False, None, 7, 3, None)
            return WorkspaceSettings(
                team_id=team_id,
                has_imocha_key=ws.imocha_key_enc is not None,
                has_gem_key=ws.gem_key_enc is not None,
                default_channel_id=ws.default_channel_id,
                validity_days=ws.validity_days,
                reminder_days=ws.reminder_days,
                key_set_by=ws.imocha_key_set_by,
            )

    def check_key(self, api_key: str) -> int:
        """One live iMocha call; returns the number of tests. Raises the client's AuthError on a bad key."""
        return self._imocha_factory(api_key).check_key()

    def check_gem_key(self, api_key: str) -> None:
        """One live Gem ATS call; raises the Gem client's GemAuthError when Gem refuses the key."""
        if self._gem_factory is None:
            raise NotConfigured("Gem ATS intake is not available in this deployment.")
        self._gem_factory(api_key).check_key()

    def save(self, team_id: str, user_id: str, data: SetupInput) -> None:
        """Store already-verified settings; the key is encrypted before it touches the database."""
        with self._sf.begin() as session:
            ws = repos.ensure_workspace(session, team_id)
            if data.api_key:
                ws.imocha_key_enc = self._box.encrypt(data.api_key)
                ws.imocha_key_set_by = user_id
                ws.imocha_key_set_at = utcnow()
            if data.gem_api_key:
                ws.gem_key_enc = self._box.encrypt(data.gem_api_key)
            ws.default_channel_id = data.default_channel_id
            ws.validity_days = data.validity_days
            ws.active = True
            repos.audit(
                session,
                workspace_id=ws.id,
                actor=user_id,
                action="setup",
                detail="iMocha key replaced" if data.api_key else "defaults changed",
            )
        self._tests.pop(team_id, None)
        log.info("workspace %s: setup saved by %s (key %s)", team_id, user_id, "replaced" if data.api_key else "kept")

    def imocha(self, team_id: str) -> ImochaClient:
        with self._sf() as session:
            key = session.scalar(select(Workspace.imocha_key_enc).where(Workspace.team_id == team_id))
        if key is None:
            raise NotConfigured("iMocha is not set up yet: an admin can run `/imocha setup`.")
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
        cached = self._tests.get(team_id)
        if cached and cached[0] > self._monotonic():
            return cached[1]
        with self._locks_guard:
            lock = self._test_locks.setdefault(team_id, threading.Lock())
        with lock:
            cached = self._tests.get(team_id)
            if cached and cached[0] > self._monotonic():
                return cached[1]
            tests = self.imocha(team_id).list_tests()
            self._tests[team_id] = (self._monotonic() + TEST_CACHE_SECONDS, tests)
            return tests

    def cached_tests(self, team_id: str) -> list[Test] | None:
        """The cached list even if stale, without calling iMocha (None when never loaded)."""
        cached = self._tests.get(team_id)
        return cached[1] if cached else None

    def deactivate(self, team_id: str) -> None:
        with self._sf.begin() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is not None:
                ws.active = False
                repos.audit(session, workspace_id=ws.id, actor="slack", action="uninstalled")
        self._tests.pop(team_id, None)
        log.info("workspace %s: uninstalled or tokens revoked; polling stopped", team_id)

    def active_workspaces(self) -> list[tuple[int, str]]:
        with self._sf() as session:
            rows = session.execute(
                select(Workspace.id, Workspace.team_id).where(Workspace.active.is_(True), Workspace.imocha_key_enc.is_not(None))
            )
            return list(rows)
