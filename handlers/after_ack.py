"""Work a listener does after its `ack()`, run on the services' work pool instead of Bolt's listener threads."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.services import Services

log = logging.getLogger("handlers")


def after_ack(services: Services, what: str, work: Callable[[], object]) -> None:
    """Run `work` on the work pool, so that Bolt's listener threads only parse and acknowledge.

    Bolt runs every listener on one bounded pool, and the HTTP thread waits for `ack()` there: work that
    waits on iMocha (seconds), Slack or the database on those threads queues the next requests' acks
    behind it, past Slack's 3 seconds. This is also that work's error boundary (it logs as `@app.error` does).
    """

    def run() -> None:
        try:
            work()
        except Exception as exc:
            log.error("listener failed after its ack on %s: %s: %s", what, exc.__class__.__name__, exc, exc_info=exc)

    services.background.submit(run)
