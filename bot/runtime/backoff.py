"""The retry schedule of the durable work queues.

Four tables hold work that must reach another system: the Slack outbox (bot/slack/outbox/rows.py),
the ATS decision write-back (bot/ats/writeback/), Gem score notes (bot/ats/gem/notes.py) and the
outgoing events (bot/ats/events.py). They share the claim protocol (claims.py) and this schedule;
each keeps its own table, order and give-up rule, because those differ by what the work is (a card in
channel order, a decision that must tell the clicker it failed, an event retried for 24 hours).

A delay after a failure doubles from `first`, up to `cap`; a `Retry-After` from the other side wins.
In-request retries of one vendor call (bot/vendors/http.py) add jitter and are a different thing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float  # seconds after the first failure
    cap: float  # never longer than this

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"a backoff needs 0 < first <= cap, not {self.first} and {self.cap}")

    def after(self, failures: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait after `failures` failures in a row (1 for the first), or Retry-After if given."""
        if retry_after is not None:
            return retry_after
        return min(self.cap, self.first * 2 ** max(0, failures - 1))


__all__ = ["Backoff"]
