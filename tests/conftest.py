"""Shared fixtures: real databases (SQLite always, PostgreSQL when reachable; required in CI)."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.models import Base


def pytest_configure(config: pytest.Config) -> None:
    """TEST_WALL_CLOCK=2030-12-31T23:58:00+00:00 runs the suite as if the machine's date were that (time-machine,
    ticking), to show that no test depends on today's date. Python subprocesses (the real bot in
    test_crash and test_process, the CLI tests) move with it through tests/wall_clock/sitecustomize.py."""
    wall = os.environ.get("TEST_WALL_CLOCK")
    if wall:
        import time

        import time_machine

        offset = datetime.fromisoformat(wall).timestamp() - time.time()
        os.environ["TEST_WALL_CLOCK_OFFSET"] = str(offset)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent / "wall_clock"), os.environ.get("PYTHONPATH")]))
        traveller = time_machine.travel(time.time() + offset, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def migrations_head() -> str:
    """The newest Alembic revision in store/migrations."""
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_SESSION_URL: str | None = None
_pg_engine: Engine | None = None
_pg_error: str | None = None


def _postgres() -> Engine:
    """A private database for this pytest session (parallel runs never collide); fail in CI, skip elsewhere."""
    global _pg_engine, _pg_error, PG_SESSION_URL
    if _pg_engine is None and _pg_error is None:
        try:
            admin = make_engine(PG_URL, pool_size=1, isolation_level="AUTOCOMMIT")
            name = f"imocha_test_{os.getpid()}"
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            PG_SESSION_URL = str(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
            engine = make_engine(PG_SESSION_URL, pool_size=25)
            Base.metadata.create_all(engine)
            _pg_engine = engine
            atexit.register(_drop_session_database, name)
        except Exception as exc:
            _pg_error = f"PostgreSQL at {PG_URL} is unreachable: {exc.__class__.__name__}"
    if _pg_engine is None:
        if os.environ.get("CI") == "true":
            pytest.fail(_pg_error or "PostgreSQL unavailable", pytrace=False)
        pytest.skip(_pg_error or "PostgreSQL unavailable")
    return _pg_engine


def _drop_session_database(name: str) -> None:
    if _pg_engine is not None:
        _pg_engine.dispose()
    try:
        admin = make_engine(PG_URL, pool_size=1, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    except Exception:
        pass


def _truncate(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A fresh, empty database per test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        Base.metadata.create_all(eng)
        yield eng
        eng.dispose()
    else:
        eng = _postgres()
        _truncate(eng)
        yield eng
        _truncate(eng)


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine, clock: Clock) -> sessionmaker[Session]:
    return make_session_factory(engine, clock)


# The test clock's starting points. Every test starts at TEST_EPOCH, whatever the machine's date. Tests
# marked `any_epoch` (the time-dependent flows: outbox retries, Gem write-back, reminders, expiry,
# leases, poll checkpoints) run again with the clock decades before and after any plausible wall
# clock, so a timestamp taken from the wall clock instead of the injected one (a model default, a
# direct datetime.now) puts "now" on the wrong side of a due time and fails them (issue 13).
TEST_EPOCH = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
EPOCHS = {
    "epoch2026": TEST_EPOCH,
    "epoch1999": datetime(1999, 3, 1, 9, 0, tzinfo=UTC),  # before the wall clock (and before 2000-01-01 sentinels)
    "epoch2099": datetime(2099, 6, 1, 9, 0, tzinfo=UTC),  # after it
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "clock" in metafunc.fixturenames and metafunc.definition.get_closest_marker("any_epoch"):
        metafunc.parametrize("clock", list(EPOCHS.values()), ids=list(EPOCHS), indirect=True)


class Clock:
    """A settable UTC clock for services and fakes."""

    def __init__(self, now: datetime | None = None):
        self.now = now or TEST_EPOCH

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    return Clock(getattr(request, "param", None))
