"""Slack writes that must happen exactly once, at Slack's pace: stored with the state change, delivered here.

A row is queued in the transaction that changes the state it announces (a second row with the same
dedupe key is ignored), so a state change and its Slack writes are stored together or not at all. Each
row belongs to a lane: the channel it goes to (a user, for a DM). Lanes are delivered in parallel, up to
`MAX_LANES` at a time; within a lane, one process at a time (a claim on the lane, bot/runtime/claims.py)
sends the rows one after another in the order they were queued, each at the moment the channel's rate
budget allows (bot/slack/pacing.py, shared by the replicas), so a burst of cards reaches the channel at
Slack's one per second and in ATS order. A click's own writes (its card's update, the DM with the test
link) are delivered at once by `deliver(application_id=...)`, outside the lane; a card's first post
always waits for its lane. Rows are claimed and their outcomes recorded by compare-and-set
(bot/slack/outbox/rows.py); the Slack calls are bot/slack/outbox/writes.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.claims import ClaimKeeper, claim_holder_id
from bot.slack.gateway import SlackGateway, SlackUnavailable
from bot.slack.outbox.lanes import LANE_CLAIMS, LaneRunner
from bot.slack.outbox.rows import CLAIMS, OutboxRows, Row, retry_after
from bot.slack.outbox.writes import CARD, DM, THREAD, ClaimLost, LeaveForLane, Postpone, Renderer, SlackWrites
from bot.slack.pacing import SharedBudget
from store import repos
from store.models import OutboxMessage, SlackCard

log = logging.getLogger("bot.slack.outbox")

LANE_WAIT = 5.0  # seconds a lane may wait for its channel's next rate slot (it holds the channel)
CLICK_WAIT = 1.0  # seconds a click's own delivery may wait; beyond that its lane delivers the row
RATE_LIMIT_WAIT = 30.0  # a lane told 429 waits out a Retry-After up to this long, in place, keeping its order

SENT, LEFT, RETRY = "sent", "left", "retry"


class SlackOutbox:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: SlackGateway,
        renderer: Renderer,
        clock: Callable[[], datetime],
        on_error: Callable[[str], None] | None = None,
        claims: ClaimKeeper | None = None,
        budget: SharedBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        lane_pool: Executor | None = None,
    ):
        self._sf = session_factory
        self._clock = clock
        self._sleep = sleep
        self._claims = claims or ClaimKeeper(session_factory, holder=claim_holder_id(), clock=clock)
        self._rows = OutboxRows(session_factory, self._claims, clock)
        self._writes = SlackWrites(
            session_factory=session_factory,
            gateway=gateway,
            renderer=renderer,
            clock=clock,
            claims=self._claims,
            budget=budget or SharedBudget(session_factory, clock),
            sleep=sleep,
        )
        self._on_error = on_error or (lambda kind: None)
        self._lanes = LaneRunner(
            session_factory=session_factory,
            claims=self._claims,
            rows=self._rows,
            clock=clock,
            deliver=self._deliver_rows,
            executor=lane_pool,
        )

    # -- enqueue (inside the caller's transaction) ----------------------------------------------

    @staticmethod
    def row(
        *, workspace_id: int, kind: str, key: str, application_id: int | None = None, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "workspace_id": workspace_id,
            "kind": kind,
            "dedupe_key": key[:300],
            "application_id": application_id,
            "payload": payload or {},
            "attempts": 0,
            # lane: filled in by add/add_many; next_attempt_at: due at once, from the session's clock (store.models.stamp)
        }

    @staticmethod
    def add(
        session: Session,
        *,
        workspace_id: int,
        kind: str,
        key: str,
        application_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Queue one Slack write; a second add with the same key is ignored (that is the dedupe)."""
        row = SlackOutbox.row(workspace_id=workspace_id, kind=kind, key=key, application_id=application_id, payload=payload)
        _fill_lanes(session, [row])
        return repos.insert_ignore(session, OutboxMessage, row, ["dedupe_key"])

    @staticmethod
    def add_many(session: Session, rows: list[dict[str, Any]]) -> set[str]:
        """Queue many writes in one statement; returns the keys that were new."""
        _fill_lanes(session, rows)
        return set(repos.insert_many_ignore(session, OutboxMessage, rows, ["dedupe_key"], OutboxMessage.dedupe_key))

    # -- deliver --------------------------------------------------------------------------------

    def deliver(self, *, application_id: int | None = None, limit: int = 200) -> int:
        """Deliver what is due and wait for it; returns how many writes were sent.

        With `application_id`: that application's writes, at once (a click waits for them), but a card's
        first post goes out in its lane, after the cards queued before it. Without: every due lane."""
        if application_id is None:
            return self._lanes.run()
        left: list[Row] = []
        sent = self._deliver_rows(self._rows.claim(application_id=application_id, limit=limit), lease=None, left=left)
        lanes = {row.lane for row in left}
        return sent + (self._lanes.run(only=lanes) if lanes else 0)

    def kick(self) -> None:
        """Start delivering every due lane, without waiting (the scheduler, the poller, the callbacks)."""
        self._lanes.start()

    def deliver_later(self, *, application_id: int | None = None) -> None:
        """For intake: its new card goes out in its lane, without the caller waiting for the lane."""
        self.kick()

    def pending(self) -> int:
        return self._rows.pending()

    def close(self) -> None:
        """Stop taking lanes; lanes under way finish the row they are on."""
        self._lanes.close()

    # -- rows -----------------------------------------------------------------------------------

    def _deliver_rows(self, rows: list[Row], *, lease: int | None, left: list[Row] | None = None) -> int:
        sent = 0
        cards_done: set[int] = set()
        try:
            for row in rows:

                def sure(row: Row = row) -> bool:
                    return self._rows.holds(row) and (lease is None or self._lanes.holds(lease))

                if not sure():
                    # This process could not renew its claims lately, so another may have taken the row.
                    log.warning("outbox %s #%s left undelivered: this process's claim on it may have lapsed", row.kind, row.id)
                    continue
                if row.kind == CARD and row.application_id in cards_done:
                    self._rows.finish(row)  # coalesced: the card already shows the newest state
                    continue
                outcome = self._one(row, in_lane=lease is not None, sure=sure)
                if outcome == LEFT and left is not None:
                    left.append(row)
                if outcome == SENT:
                    sent += 1
                    if row.kind == CARD and row.application_id is not None:
                        cards_done.add(row.application_id)
        finally:
            for row in rows:
                self._rows.release(row)
        return sent

    def _one(self, row: Row, *, in_lane: bool, sure: Callable[[], bool]) -> str:
        """One row's Slack call and its recorded outcome. In a lane, a 429 is waited out in place
        (up to RATE_LIMIT_WAIT), so the lane's order holds."""
        for _ in range(3):
            try:
                self._writes.write(row, max_wait=LANE_WAIT if in_lane else CLICK_WAIT, first_posts=in_lane, sure=sure)
            except LeaveForLane:
                self._rows.leave(row)
                return LEFT
            except ClaimLost:
                log.warning("outbox %s #%s left undelivered: its claim lapsed while it waited for Slack's rate limit", row.kind, row.id)
                return LEFT
            except Postpone as later:
                self._rows.retry(row, None, delay=later.seconds, count_attempt=False)
                return RETRY
            except SlackApiError as exc:
                self._on_error(row.kind)
                wait = retry_after(exc)
                if exc.response.status_code == 429 and in_lane and wait <= RATE_LIMIT_WAIT and self._writes.clock_moves():
                    log.info("outbox lane: Slack said 429 for %s #%s; waiting %ss, then sending it again", row.kind, row.id, wait)
                    self._sleep(wait)
                    if sure():
                        continue
                    return LEFT
                self._rows.slack_refused(row, exc)
                return RETRY
            except SlackUnavailable as exc:
                self._rows.give_up(row, str(exc))
                return RETRY
            except Exception as exc:  # network errors and the like: retry with backoff
                log.warning("outbox %s #%s failed: %s: %s", row.kind, row.id, exc.__class__.__name__, exc, exc_info=log.isEnabledFor(10))
                self._on_error(row.kind)
                self._rows.retry(row, f"{exc.__class__.__name__}: {exc}")
                return RETRY
            self._rows.finish(row)
            return SENT
        self._rows.retry(row, "ratelimited", delay=1.0, count_attempt=False)
        return RETRY


def _fill_lanes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Each row's lane: its card's channel for a card or thread write, the user for a DM."""
    apps = {r["application_id"] for r in rows if r.get("lane") is None and r["kind"] != DM and r["application_id"]}
    channels: dict[int, str] = {}
    if apps:
        found = session.execute(select(SlackCard.application_id, SlackCard.channel_id).where(SlackCard.application_id.in_(apps)))
        channels = {app_id: channel for app_id, channel in found}
    for row in rows:
        if row.get("lane") is None:
            row["lane"] = (row["payload"] or {}).get("user") if row["kind"] == DM else channels.get(row["application_id"])


__all__ = ["CARD", "CLAIMS", "DM", "LANE_CLAIMS", "THREAD", "Renderer", "SlackOutbox"]
