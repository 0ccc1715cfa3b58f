"""Workspace setup: the iMocha key (checked live, stored encrypted), defaults, and a cached test list."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.crypto import SecretBox
from bot.domain import DomainError
from bot.gem import GemClient
from bot.greenhouse import HarvestClient, HarvestCredentials
from bot.imocha import ImochaClient, Test
from store import repos
from store.models import Workspace

log = logging.getLogger("bot.workspaces")

TEST_CACHE_SECONDS = 60.0
# An options load waits this long for a first test list, then answers "still loading" (Slack allows 3 s).
PICKER_WAIT_SECONDS = 0.8
# After a failed list call, the next one waits this long (typing must not turn into calls to iMocha).
TEST_RETRY_SECONDS = 15.0


class NotConfigured(DomainError):
    pass


NOT_SET_UP = "iMocha is not set up yet: an admin can run `/imocha setup`."


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
        self._tests: dict[str, tuple[float, list[Test]]] = {}  # team -> (fresh until, tests), kept when stale
        self._loads: dict[str, Future[list[Test]]] = {}  # the one list call running per team
        self._failed: dict[str, tuple[float, Exception]] = {}  # team -> (retry after, error) with nothing cached
        self._generation: dict[str, int] = {}  # bumped when the key changes: a load started before is dropped
        self._loads_guard = threading.Lock()
        # Test-list loads run here, at most one per team and a few at once: a burst of pickers across
        # many workspaces queues its loads instead of starting a thread each.
        self._loader = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tests")

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
            self._forget_tests(team_id)
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
        cached = self._tests.get(team_id)
        if cached and cached[0] > self._monotonic():
            return cached[1]
        return self._load_tests(team_id).result()

    def tests_for_picker(self, team_id: str, *, wait: float = PICKER_WAIT_SECONDS) -> list[Test] | None:
        """The test list for an options load, which must be answered at once (Slack allows 3 s).

        A stale list is still returned, and one refresh starts behind it: one iMocha call per cache
        period whatever the typing rate. With no list yet, this waits up to `wait` for the one load
        and returns None if it is still running; the load's error is raised (and remembered for a while).
        """
        cached = self._tests.get(team_id)
        if cached is not None:
            if cached[0] <= self._monotonic():
                self._load_tests(team_id)
            return cached[1]
        failed = self._failed.get(team_id)
        if failed is not None and failed[0] > self._monotonic():
            raise failed[1]
        try:
            return self._load_tests(team_id).result(timeout=wait)
        except FutureTimeout:
            return None

    def prefetch_tests(self, team_id: str) -> None:
        """Start loading the test list unless it is fresh: a modal with the test picker is opening."""
        cached = self._tests.get(team_id)
        if cached is None or cached[0] <= self._monotonic():
            self._load_tests(team_id)

    def warm_test_lists(self, timeout: float = 30.0) -> threading.Thread:
        """Load every active workspace's test list, one iMocha call at a time, on a thread of its own.

        Run at start-up, so that the first test pickers after a restart, or on a new replica, come
        from the cache instead of waiting for iMocha. A failure is logged and skipped.
        """

        def run() -> None:
            try:
                teams = [team for _ws_id, team in self.active_workspaces()]
            except Exception as exc:
                log.warning("test lists not loaded at start-up: database unavailable (%s)", exc.__class__.__name__)
                return
            for team in teams:
                try:
                    self._load_tests(team).result(timeout)
                except TimeoutError:
                    log.warning("workspace %s: iMocha's test list took over %.0f s at start-up; going on", team, timeout)
                except Exception:
                    pass  # _run_load logged it; the picker retries after TEST_RETRY_SECONDS

        thread = threading.Thread(target=run, name="warm-tests", daemon=True)
        thread.start()
        return thread

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` for test-list loads still running, so none writes after the engine closes."""
        with self._loads_guard:
            running = list(self._loads.values())
        not_done = wait(running, timeout=timeout).not_done
        if not_done:
            log.warning("shutting down with %d iMocha test-list load(s) still running after %.0f s", len(not_done), timeout)
        self._loader.shutdown(wait=False, cancel_futures=True)

    def cached_tests(self, team_id: str) -> list[Test] | None:
        """The cached list even if stale, without calling iMocha (None when never loaded)."""
        cached = self._tests.get(team_id)
        return cached[1] if cached else None

    def _load_tests(self, team_id: str) -> Future[list[Test]]:
        """The running list call for the team, or a new one on its own thread."""
        with self._loads_guard:
            running = self._loads.get(team_id)
            if running is not None:
                return running
            future: Future[list[Test]] = Future()
            self._loads[team_id] = future
            generation = self._generation.get(team_id, 0)
        self._loader.submit(self._run_load, team_id, future, generation)
        return future

    def _run_load(self, team_id: str, future: Future[list[Test]], generation: int) -> None:
        try:
            tests, fresh_for = self._list_tests(team_id)
        except Exception as exc:
            log.warning("workspace %s: loading the iMocha test list failed: %s", team_id, exc.__class__.__name__)
            with self._loads_guard:
                if self._generation.get(team_id, 0) == generation:
                    retry = self._monotonic() + TEST_RETRY_SECONDS
                    cached = self._tests.get(team_id)
                    if cached is not None:
                        self._tests[team_id] = (retry, cached[1])  # keep serving the stale list; retry later
                    else:
                        self._failed[team_id] = (retry, exc)
                if self._loads.get(team_id) is future:
                    del self._loads[team_id]
            future.set_exception(exc)
            return
        with self._loads_guard:
            if self._generation.get(team_id, 0) == generation:
                self._tests[team_id] = (self._monotonic() + fresh_for, tests)
                self._failed.pop(team_id, None)
            if self._loads.get(team_id) is future:
                del self._loads[team_id]
        future.set_result(tests)

    def _list_tests(self, team_id: str) -> tuple[list[Test], float]:
        """The test list and for how long it is fresh: the one another replica (or this process, before a
        restart) loaded less than TEST_CACHE_SECONDS ago, kept in the workspace row; else iMocha's."""
        with self._sf() as session:
            row = session.execute(
                select(Workspace.imocha_key_enc, Workspace.tests_cache, Workspace.tests_loaded_at).where(Workspace.team_id == team_id)
            ).first()
        if row is None or row.imocha_key_enc is None:
            raise NotConfigured(NOT_SET_UP)
        if row.tests_cache is not None and row.tests_loaded_at is not None:
            age = (self._clock() - row.tests_loaded_at).total_seconds()
            if 0 <= age < TEST_CACHE_SECONDS:
                try:
                    return [_test_from_row(t) for t in row.tests_cache], TEST_CACHE_SECONDS - age
                except (TypeError, KeyError, ValueError):
                    log.warning("workspace %s: the shared test list is unreadable; asking iMocha", team_id)
        tests = self._imocha_factory(self._box.decrypt(row.imocha_key_enc)).list_tests()
        rows = [{"test_id": t.test_id, "name": t.name, "duration": t.duration, "status": t.status} for t in tests]
        try:
            with self._sf.begin() as session:
                # Only under the key it was loaded with: a key saved meanwhile has emptied the cache.
                session.execute(
                    update(Workspace)
                    .where(Workspace.team_id == team_id, Workspace.imocha_key_enc == row.imocha_key_enc)
                    .values(tests_cache=rows, tests_loaded_at=self._clock())
                )
        except Exception as exc:
            log.warning("workspace %s: sharing the test list with other replicas failed (%s)", team_id, exc.__class__.__name__)
        return tests, TEST_CACHE_SECONDS

    def _forget_tests(self, team_id: str) -> None:
        with self._loads_guard:
            self._tests.pop(team_id, None)
            self._failed.pop(team_id, None)
            self._loads.pop(team_id, None)
            self._generation[team_id] = self._generation.get(team_id, 0) + 1

    def deactivate(self, team_id: str) -> None:
        with self._sf.begin() as session:
            ws = repos.workspace_by_team(session, team_id)
            if ws is not None:
                ws.active = False
                repos.audit(session, workspace_id=ws.id, actor="slack", action="uninstalled")
        self._forget_tests(team_id)
        log.info("workspace %s: uninstalled or tokens revoked; polling stopped", team_id)

    def active_workspaces(self) -> list[tuple[int, str]]:
        with self._sf() as session:
            rows = session.execute(
                select(Workspace.id, Workspace.team_id).where(Workspace.active.is_(True), Workspace.imocha_key_enc.is_not(None))
            )
            return list(rows)


def _test_from_row(row: dict[str, Any]) -> Test:
    duration, status = row.get("duration"), row.get("status")
    return Test(
        test_id=int(row["test_id"]),
        name=str(row["name"]),
        duration=int(duration) if duration is not None else None,
        status=str(status) if status is not None else None,
    )
