"""Work a listener does after its `ack()`, run on the services' work pool instead of Bolt's listener threads."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.runtime.services import Services

log = logging.getLogger("handlers")


def after_ack(services: Services, what: str, work: Callable[[], object]) -> None:
    """Run `work` on the work pool, so that answering Slack only waits for parsing and `ack()`.

    Bolt answers a request when its listener returns (`process_before_response=True` in bot/runtime/app.py),
    so work that waits on iMocha (seconds), Slack or the database must not run in the listener. This
    is also that work's error boundary (it logs as `@app.error` does).
    """

    def run() -> None:
        try:
            work()
        except Exception as exc:
            log.error("listener failed after its ack on %s: %s: %s", what, exc.__class__.__name__, exc, exc_info=exc)

    services.background.submit(run)
