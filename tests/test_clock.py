"""One clock: every time the product stores or compares comes from the clock the composition root injects.

How a bypass is found, so the search can be repeated (issue 13):
- the source scan below lists every read of the wall clock in bot/, handlers/ and store/
  (`datetime.now`, `datetime.utcnow`, `date.today`, `time.time`, `system_clock`) and allows only the
  places named in ALLOWED_WALL_CLOCK, each with its reason;
- the metadata check finds any datetime column whose default or onupdate is not `store.models.stamp`;
- a statement run on an engine without a clock fails (MissingClock), so a forgotten clock is loud;
- the time-dependent unit tests (Gem write-back, reminders, expiry and checkpoints, leases) carry
  `any_epoch` and run with the test clock in 1999 and 2099 (tests/conftest.py EPOCHS), and the
  journey below runs end to end with the bot's and iMocha's clock there, through a Slack 5xx retry:
  a time stamped from the wall clock lands on the wrong side of "now" and they fail.
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from store.db import make_session_factory
from store.models import AuditEntry, Base, MissingClock, Workspace, stamp
from tests.conftest import EPOCHS
from tests.fakes.imocha import FakeImocha, ManualClock, fake_imocha  # noqa: F401 (fixture)
from tests.wiring.conftest import (
    slack,  # noqa: F401 (fixture)
)

ROOT = Path(__file__).resolve().parents[1]

WALL_CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time"), ("time", "time_ns")}

# Where the wall clock may be read, and why. Anything else reads the injected clock.
ALLOWED_WALL_CLOCK = {
    "bot/runtime/clock.py": "defines system_clock, the production clock",
    "bot/runtime/app.py": "the composition root: build_runtime's default clock",
    "bot/runtime/check.py": "`imocha-bot check` is its own composition root (a one-shot CLI command)",
    "bot/runtime/cli.py": "`imocha-bot events replay` is its own composition root (a one-shot CLI command)",
    "bot/runtime/scheduler.py": "APScheduler fires on its own wall-clock timeline; the domain clock only decides leases",
    "bot/vendors/http.py": "default time base of a vendor client's real `sleep` for Retry-After dates; build_runtime passes its clock",
    "bot/sandbox/state.py": "the sandbox is a separate iMocha with its own clock (tests pass theirs)",
}


def _wall_clock_reads() -> dict[str, list[int]]:
    """Lines that read the wall clock (`datetime.now`, `time.time`, ...) or name `system_clock`, per file."""
    found: dict[str, list[int]] = {}
    for folder in ("bot", "handlers", "store"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("store/migrations/"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                wall = (
                    (
                        isinstance(node, ast.Attribute)
                        and isinstance(node.value, ast.Name)
                        and (node.value.id, node.attr) in WALL_CLOCK_CALLS
                    )
                    or (isinstance(node, ast.Name) and node.id == "system_clock")
                    or (isinstance(node, ast.ImportFrom) and any(alias.name in {"now", "utcnow", "today"} for alias in node.names))
                )
                if wall:
                    found.setdefault(rel, []).append(node.lineno)
    return found


def test_only_the_named_places_read_the_wall_clock() -> None:
    reads = _wall_clock_reads()
    unexpected = {path: lines for path, lines in reads.items() if path not in ALLOWED_WALL_CLOCK}
    assert unexpected == {}, "read the injected clock instead (or add the place to ALLOWED_WALL_CLOCK with its reason)"
    assert "bot/runtime/clock.py" in reads  # the scan itself works


def test_every_stored_time_defaults_to_the_injected_clock_or_to_nothing() -> None:
    wrong = []
    for table in Base.metadata.sorted_tables:
        if table.name.startswith("slack_") and table.name not in {"slack_cards", "slack_outbox"}:
            continue  # slack_sdk's own OAuth tables: never compared by the bot
        for column in table.columns:
            if column.type.python_type is not datetime:
                continue
            for kind in ("default", "onupdate"):
                value = getattr(column, kind)
                if value is not None and getattr(value, "arg", None).__name__ != stamp.__name__:  # type: ignore[union-attr]
                    wrong.append(f"{table.name}.{column.name} {kind}")
    assert wrong == []


def test_a_statement_without_a_clock_fails_instead_of_reading_the_wall_clock(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, pytest.raises(StatementError, match="make_session_factory") as raised:
        session.add(Workspace(team_id="T1"))
        session.flush()
    assert isinstance(raised.value.orig, MissingClock)


@pytest.mark.parametrize("epoch", ["epoch1999", "epoch2099"])
def test_the_store_stamps_rows_with_the_injected_clock(engine: Engine, epoch: str) -> None:
    clock = ManualClock(EPOCHS[epoch])
    sf = make_session_factory(engine, clock)
    with sf.begin() as session:
        ws = Workspace(team_id="T1")
        session.add(ws)
        session.flush()
        session.add(AuditEntry(workspace_id=ws.id, actor="system", action="test"))
    with sf() as session:
        assert session.scalar(select(Workspace.created_at)) == clock.now
        assert session.scalar(select(AuditEntry.created_at)) == clock.now
