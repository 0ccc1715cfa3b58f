"""The workspaces' iMocha test lists: a stale-while-revalidate cache with one load per team at a time.

A list is fresh for TEST_CACHE_SECONDS; a stale one is still served while one refresh runs behind it,
and the list is shared with other replicas through the workspace row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import DomainError
from bot.imocha import ImochaClient, Test
from bot.workspace.crypto import SecretBox
from store.models import Workspace

log = logging.getLogger("bot.workspace.settings")  # the lines kept the logger they had in bot/workspace/settings.py

TEST_CACHE_SECONDS = 60.0
# An options load waits this long for a first test list, then answers "still loading" (Slack allows 3 s).
PICKER_WAIT_SECONDS = 0.8
# After a failed list call, the next one waits this long (typing must not turn into calls to iMocha).
TEST_RETRY_SECONDS = 15.0


class NotConfigured(DomainError):
    pass


NOT_SET_UP = "iMocha is not set up yet: an admin can run `/imocha setup`."


class TestListCache:
    """The iMocha test list per team: cached, loaded on a small pool, at most one load per team."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        box: SecretBox,
        imocha_factory: Callable[[str], ImochaClient],
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime],
    ):
        self._sf = session_factory
        self._box = box
        self._imocha_factory = imocha_factory
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

    def tests(self, team_id: str) -> list[Test]:
        """The workspace's iMocha tests, from a short-lived cache; concurrent misses make one call."""
        cached = self._tests.get(team_id)
        if cached and cached[0] > self._monotonic():
            return cached[1]
        return self._load(team_id).result()

    def tests_for_picker(self, team_id: str, *, wait: float = PICKER_WAIT_SECONDS) -> list[Test] | None:
        """The test list for an options load, which must be answered at once (Slack allows 3 s).

        A stale list is still returned, and one refresh starts behind it: one iMocha call per cache
        period whatever the typing rate. With no list yet, this waits up to `wait` for the one load
        and returns None if it is still running; the load's error is raised (and remembered for a while).
        """
        cached = self._tests.get(team_id)
        if cached is not None:
            if cached[0] <= self._monotonic():
                self._load(team_id)
            return cached[1]
        failed = self._failed.get(team_id)
        if failed is not None and failed[0] > self._monotonic():
            raise failed[1]
        try:
            return self._load(team_id).result(timeout=wait)
        except FutureTimeout:
            return None

    def prefetch(self, team_id: str) -> None:
        """Start loading the test list unless it is fresh: a modal with the test picker is opening."""
        cached = self._tests.get(team_id)
        if cached is None or cached[0] <= self._monotonic():
            self._load(team_id)

    def warm(self, active_teams: Callable[[], list[str]], timeout: float = 30.0) -> threading.Thread:
        """Load every active workspace's test list, one iMocha call at a time, on a thread of its own.

        Run at start-up, so that the first test pickers after a restart, or on a new replica, come
        from the cache instead of waiting for iMocha. A failure is logged and skipped.
        """

        def run() -> None:
            try:
                teams = active_teams()
            except Exception as exc:
                log.warning("test lists not loaded at start-up: database unavailable (%s)", exc.__class__.__name__)
                return
            for team in teams:
                try:
                    self._load(team).result(timeout)
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

    def cached(self, team_id: str) -> list[Test] | None:
        """The cached list even if stale, without calling iMocha (None when never loaded)."""
        cached = self._tests.get(team_id)
        return cached[1] if cached else None

    def _load(self, team_id: str) -> Future[list[Test]]:
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

    def forget(self, team_id: str) -> None:
        with self._loads_guard:
            self._tests.pop(team_id, None)
            self._failed.pop(team_id, None)
            self._loads.pop(team_id, None)
            self._generation[team_id] = self._generation.get(team_id, 0) + 1


def _test_from_row(row: dict[str, Any]) -> Test:
    duration, status = row.get("duration"), row.get("status")
    return Test(
        test_id=int(row["test_id"]),
        name=str(row["name"]),
        duration=int(duration) if duration is not None else None,
        status=str(status) if status is not None else None,
    )
