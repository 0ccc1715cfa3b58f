"""The one place that reads the wall clock; everything else is given a clock by the composition root.

Services, the store's column defaults (store.models.stamp), the iMocha client's Retry-After arithmetic
and the sandbox all take a `Clock`. Only `bot.runtime.app.build_runtime` (and the CLI entry points that build a
runtime or the sandbox) pass `system_clock`; tests pass a settable clock. tests/test_clock.py fails if
any other module reads the wall clock directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, in UTC: the production clock."""
    return datetime.now(UTC)
