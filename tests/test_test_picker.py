"""The iMocha test list behind the test picker: served from the cache, one list call per period, never a long wait."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from bot.domain import ImochaUnavailable
from bot.imocha import ImochaConnectionError, Test
from bot.runtime.clock import system_clock
from bot.workspace.crypto import SecretBox
from bot.workspace.settings import TEST_CACHE_SECONDS, TEST_RETRY_SECONDS, SetupInput, Workspaces
from store.db import make_session_factory
from store.models import Workspace

TEAM = "T1"
EPOCH = datetime(2026, 11, 26, tzinfo=UTC)
PYTHON = Test(test_id=1001, name="Python Developer")


class SlowImocha:
    """Stands in for the iMocha client: `list_tests` waits for `gate` and counts its calls."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.entered = threading.Event()  # set once a list call is waiting at the gate
        self.fail = fail
        self.tests = [PYTHON]
        self._lock = threading.Lock()

    def list_tests(self) -> list[Test]:
        with self._lock:
            self.calls += 1
        self.entered.set()
        self.gate.wait(10)
        if self.fail:
            raise ImochaConnectionError("iMocha could not be reached")
        return list(self.tests)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Replicas:
    """Bot processes' `Workspaces` on one database with one configured workspace, one clock, each with its own iMocha."""

    def __init__(self, engine: Engine) -> None:
        self.box = SecretBox(Fernet.generate_key())
        self.clock = Clock()
        self.sf = make_session_factory(engine, self.wall)
        with self.sf.begin() as session:
            session.add(Workspace(team_id=TEAM, imocha_key_enc=self.box.encrypt("sandbox-key"), active=True))

    def new(self) -> tuple[Workspaces, SlowImocha]:
        imocha = SlowImocha()
        workspaces = Workspaces(
            session_factory=self.sf,
            box=self.box,
            imocha_factory=lambda key: imocha,  # type: ignore[arg-type,return-value]
            monotonic=self.clock,
            clock=self.wall,  # the shared list's age follows the same clock
        )
        return workspaces, imocha

    def wall(self) -> datetime:
        """The same clock as a datetime, for the database and the shared list's age."""
        return EPOCH + timedelta(seconds=self.clock.now)


@pytest.fixture
def world(engine: Engine) -> Any:
    replicas = Replicas(engine)
    workspaces, imocha = replicas.new()
    return workspaces, imocha, replicas.clock


def _loaded(workspaces: Workspaces, imocha: SlowImocha) -> None:
    imocha.gate.set()
    assert workspaces.tests(TEAM) == [PYTHON]  # joins the running load


def test_a_first_options_load_says_still_loading_when_imocha_is_slow_and_one_call_serves_every_keystroke(world: Any) -> None:
    workspaces, imocha, _clock = world

    answers = [workspaces.tests_for_picker(TEAM, wait=0.01) for _ in range(20)]

    assert answers == [None] * 20
    _loaded(workspaces, imocha)
    assert workspaces.tests_for_picker(TEAM, wait=0.01) == [PYTHON]
    assert imocha.calls == 1


def test_a_stale_test_list_is_still_served_while_one_refresh_runs_behind_it(world: Any) -> None:
    workspaces, imocha, clock = world
    _loaded(workspaces, imocha)
    imocha.gate.clear()
    clock.now += TEST_CACHE_SECONDS + 1

    answers = [workspaces.tests_for_picker(TEAM, wait=0.01) for _ in range(50)]

    assert answers == [[PYTHON]] * 50  # answered while the refresh is held up
    _loaded(workspaces, imocha)
    assert [workspaces.tests_for_picker(TEAM) for _ in range(50)] == [[PYTHON]] * 50
    assert imocha.calls == 2  # one refresh; fresh again, the next call is one cache period away


def test_a_failed_first_load_is_reported_and_not_retried_on_every_keystroke(world: Any) -> None:
    workspaces, imocha, clock = world
    imocha.fail = True
    imocha.gate.set()

    for _ in range(10):
        with pytest.raises(ImochaConnectionError):
            workspaces.tests_for_picker(TEAM, wait=5)
    assert imocha.calls == 1

    clock.now += TEST_RETRY_SECONDS + 1
    imocha.fail = False
    assert workspaces.tests_for_picker(TEAM, wait=5) == [PYTHON]
    assert imocha.calls == 2


def test_the_slack_layer_gets_a_failed_load_as_a_domain_error_naming_its_kind(world: Any) -> None:
    workspaces, imocha, _clock = world
    imocha.fail = True
    imocha.gate.set()

    with pytest.raises(ImochaUnavailable) as raised:
        workspaces.test_options(TEAM)
    assert raised.value.kind == "ImochaConnectionError"
    assert imocha.calls == 1


def test_a_new_key_drops_the_cached_list_and_starts_loading_the_new_one(world: Any) -> None:
    workspaces, imocha, _clock = world
    _loaded(workspaces, imocha)

    workspaces.save(TEAM, "UADMIN", SetupInput(api_key="sandbox-other-key", default_channel_id=None, validity_days=7))

    assert workspaces.tests(TEAM) == [PYTHON]
    assert imocha.calls == 2


def test_start_up_loads_each_active_workspace_list_so_the_first_picker_needs_no_wait(world: Any) -> None:
    workspaces, imocha, _clock = world
    imocha.gate.set()

    workspaces.warm_test_lists().join(5)

    assert imocha.calls == 1
    assert workspaces.tests_for_picker(TEAM, wait=0) == [PYTHON]  # from the cache, at once
    assert imocha.calls == 1


def test_a_failed_start_up_load_is_logged_and_remembered_like_any_failed_load(world: Any, caplog: pytest.LogCaptureFixture) -> None:
    workspaces, imocha, _clock = world
    imocha.fail = True
    imocha.gate.set()

    workspaces.warm_test_lists().join(5)

    assert imocha.calls == 1
    assert f"workspace {TEAM}: loading the iMocha test list failed: ImochaConnectionError" in caplog.text
    with pytest.raises(ImochaConnectionError):  # the picker says so, without another call, until the retry time
        workspaces.tests_for_picker(TEAM, wait=0)
    assert imocha.calls == 1


@pytest.fixture
def two_replicas(engine: Engine) -> Any:
    """Two bot processes' Workspaces on one database, each with its own iMocha stand-in, one clock."""
    replicas = Replicas(engine)
    (a, imocha_a), (b, imocha_b) = replicas.new(), replicas.new()
    imocha_a.gate.set()
    imocha_b.gate.set()
    return (a, imocha_a), (b, imocha_b), replicas.clock


def test_a_replica_takes_the_list_another_replica_loaded_instead_of_calling_imocha(two_replicas: Any) -> None:
    (a, imocha_a), (b, imocha_b), clock = two_replicas
    assert a.tests(TEAM) == [PYTHON] and imocha_a.calls == 1

    clock.now += TEST_CACHE_SECONDS / 2
    assert b.tests_for_picker(TEAM) == [PYTHON]
    assert imocha_b.calls == 0

    # b took it for the rest of a's period only; after that the next load asks iMocha again
    clock.now += TEST_CACHE_SECONDS / 2 + 1
    b.tests_for_picker(TEAM)
    assert b.tests(TEAM) == [PYTHON]
    assert imocha_b.calls == 1


def test_a_new_key_empties_the_shared_list_and_a_load_under_the_old_key_does_not_refill_it(two_replicas: Any, engine: Engine) -> None:
    (a, imocha_a), (b, imocha_b), _clock = two_replicas
    new_keys_test = Test(test_id=2002, name="SQL Basics")
    imocha_b.tests = [new_keys_test]
    imocha_a.gate.clear()
    loading = a._test_lists._load(TEAM)  # under the old key; iMocha has not answered yet
    assert imocha_a.entered.wait(5)  # a has read the old key before b replaces it

    b.save(TEAM, "UADMIN", SetupInput(api_key="sandbox-new-key", default_channel_id=None, validity_days=7))
    assert b.tests(TEAM) == [new_keys_test]  # b's save started a load under the new key
    imocha_a.gate.set()
    assert loading.result(5) == [PYTHON]  # a's own (now outdated) load finishes...

    with make_session_factory(engine, system_clock)() as session:
        shared = session.query(Workspace).filter_by(team_id=TEAM).one().tests_cache
    assert shared == [{"test_id": 2002, "name": "SQL Basics", "duration": None, "status": None}]  # ...but is not shared
