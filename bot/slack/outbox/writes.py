"""The Slack calls behind the outbox's three kinds of row: the card, a reply in its thread, a DM.

Each call first takes its slot in Slack's rate budget (bot/slack/pacing.py, shared by the replicas),
waiting for it when it is close and postponing the row when it is not. A card is written by one
process at a time: a claim on its row (bot/runtime/claims.py) across replicas, a lock within this
process; no database lock is held during the Slack call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import ApplicationView
from bot.runtime.claims import ClaimKeeper, ClaimTable, claim_one, let_go
from bot.slack.gateway import SlackGateway
from bot.slack.outbox.rows import Row, retry_after
from bot.slack.pacing import LIMITS, SharedBudget, budget_key
from bot.views import application_view
from store import repos
from store.models import SlackCard

log = logging.getLogger("bot.slack.outbox")

Message = dict[str, Any]

CARD = "card"
THREAD = "thread"
DM = "dm"

CARD_CLAIMS = ClaimTable("slack_cards", SlackCard, SlackCard.held_by, SlackCard.held_until, SlackCard.id.is_not(None))
# Errors that mean "this channel will not take the card": fall back to the owner's DM.
CHANNEL_GONE = {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}


class Renderer(Protocol):
    """Turns values into Slack messages; implemented by handlers.blocks, injected by the composition root."""

    def card(self, view: ApplicationView) -> Message: ...

    def render(self, template: str, view: ApplicationView | None, payload: dict[str, Any]) -> Message: ...


class Postpone(Exception):
    """Not now: try the row again in `seconds` (its turn in the rate budget, or its card not posted yet)."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class LeaveForLane(Exception):
    """A card's first post: it goes out in its channel's lane, in order with the channel's other cards."""


class ClaimLost(Exception):
    """This process can no longer be sure of its claim: the write is left to whoever takes the row."""


class KeyedLocks:
    """One lock per key (here: per application), created on demand."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: int) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class SlackWrites:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: SlackGateway,
        renderer: Renderer,
        clock: Callable[[], datetime],
        claims: ClaimKeeper,
        budget: SharedBudget,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._sf = session_factory
        self._gateway = gateway
        self._renderer = renderer
        self._clock = clock
        self._claims = claims
        self._budget = budget
        self._sleep = sleep
        self._card_locks = KeyedLocks()
        self._last_card: dict[int, str] = {}  # what each card last showed, to skip no-op updates
        self._seen = threading.Lock()
        self._last_now: datetime | None = None

    def write(self, row: Row, *, max_wait: float, first_posts: bool, sure: Callable[[], bool]) -> None:
        """Make the row's Slack call. `max_wait`: seconds this caller may wait for a rate slot;
        `first_posts`: whether it may post a card for the first time; `sure`: whether its claims hold."""
        if row.kind == CARD:
            self._card(row.team_id, row.application_id, _Turn(max_wait, first_posts, sure))
        elif row.kind == THREAD:
            self._thread(row.team_id, row.application_id, row.payload, _Turn(max_wait, first_posts, sure))
        elif row.kind == DM:
            self._dm(row.team_id, row.application_id, row.payload, _Turn(max_wait, first_posts, sure))
        else:
            raise ValueError(f"unknown outbox kind {row.kind!r}")

    # -- pacing -------------------------------------------------------------------------------------

    def _pace(self, team_id: str, method: str, channel: str | None, turn: _Turn) -> str:
        """Take the call's slot in the shared budget, waiting for it if it is within the caller's wait."""
        key = budget_key(team_id, method, channel)
        slot = self._budget.reserve(key, LIMITS[method], max_wait=turn.max_wait if self.clock_moves() else 0.0)
        if not slot.taken:
            raise Postpone(slot.wait)
        if slot.wait > 0:
            self._sleep(slot.wait)
            if not turn.sure():
                raise ClaimLost()
        return key

    def clock_moves(self) -> bool:
        """Whether the injected clock moves on its own: a test's settable clock does not, and waiting for
        it would wait forever; then rows are postponed on that clock instead."""
        now = self._clock()
        with self._seen:
            moved, self._last_now = now != self._last_now, now
        return moved

    def _call(self, method: str, key: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                self._budget.hold(key, LIMITS[method], retry_after(exc))  # every replica waits out Slack's Retry-After
            raise

    # -- the three kinds ----------------------------------------------------------------------------

    def _view(self, application_id: int | None) -> tuple[ApplicationView | None, SlackCard | None]:
        if application_id is None:
            return None, None
        with self._sf() as session:
            return application_view(session, application_id, now=self._clock()), repos.card_for(session, application_id)

    def _card(self, team_id: str, application_id: int | None, turn: _Turn) -> None:
        """Post or update the card, holding its claim so that it is posted once and updates land in order."""
        if application_id is None:
            return
        with self._card_locks.hold(application_id):
            with self._sf() as session:
                card = repos.card_for(session, application_id)
            if card is None:
                return
            if not card.ts and not turn.first_posts:
                raise LeaveForLane()
            card_id = claim_one(self._sf, self._claims, CARD_CLAIMS, SlackCard.id == card.id, self._clock())
            if card_id is None:
                raise Postpone(1.0)  # another replica is writing this card right now
            try:
                self._post_or_update(team_id, application_id, turn)
            finally:
                let_go(self._sf, self._claims, CARD_CLAIMS, card_id)

    def _post_or_update(self, team_id: str, application_id: int, turn: _Turn) -> None:
        view, card = self._view(application_id)  # read again under the claim
        if view is None or card is None:
            return
        client = self._gateway.client(team_id)
        message = self._renderer.card(view)
        digest = hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()
        if card.ts:
            if self._last_card.get(application_id) == digest:
                return  # a queued update whose state the card already shows (it rendered late)
            key = self._pace(team_id, "chat.update", None, turn)
            self._call(
                "chat.update", key, client.chat_update, channel=card.channel_id, ts=card.ts, text=message["text"], blocks=message["blocks"]
            )
            self._remember(application_id, digest)
            return
        channel = card.channel_id
        if card.in_dm and channel[:1] in ("U", "W"):
            channel = self._gateway.dm_channel(team_id, channel)
        key = self._pace(team_id, "chat.postMessage", channel, turn)
        values: dict[str, Any] = {}
        try:
            response = self._call(
                "chat.postMessage", key, client.chat_postMessage, channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SlackApiError as exc:
            owner = view.owner_user_id
            if exc.response.get("error") not in CHANNEL_GONE or card.in_dm or not owner:
                raise
            log.warning(
                "card for application %s could not go to %s (%s); sending it to the owner's DM",
                application_id,
                channel,
                exc.response.get("error"),
            )
            channel = self._gateway.dm_channel(team_id, owner)
            key = self._pace(team_id, "chat.postMessage", channel, turn)
            response = self._call(
                "chat.postMessage", key, client.chat_postMessage, channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
            values["in_dm"] = True
        with self._sf.begin() as session:
            session.execute(
                update(SlackCard)
                .where(SlackCard.application_id == application_id)
                .values(channel_id=str(response["channel"]), ts=str(response["ts"]), **values)
            )
        self._remember(application_id, digest)

    def _remember(self, application_id: int, digest: str) -> None:
        if len(self._last_card) > 20_000:
            self._last_card.clear()
        self._last_card[application_id] = digest

    def _thread(self, team_id: str, application_id: int | None, payload: dict[str, Any], turn: _Turn) -> None:
        view, card = self._view(application_id)
        if view is None or card is None:
            return
        if not card.ts:
            raise Postpone(2.0)  # the card itself is not posted yet
        key = self._pace(team_id, "chat.postMessage", card.channel_id, turn)
        message = self._renderer.render(payload.get("template", "note"), view, payload)
        self._call(
            "chat.postMessage",
            key,
            self._gateway.client(team_id).chat_postMessage,
            channel=card.channel_id,
            thread_ts=card.ts,
            reply_broadcast=bool(payload.get("broadcast")) and not card.in_dm,
            unfurl_links=False,
            **message,
        )

    def _dm(self, team_id: str, application_id: int | None, payload: dict[str, Any], turn: _Turn) -> None:
        view, _card = self._view(application_id)
        channel = self._gateway.dm_channel(team_id, payload["user"])
        key = self._pace(team_id, "chat.postMessage", channel, turn)
        message = self._renderer.render(payload.get("template", "notice"), view, payload)
        self._call("chat.postMessage", key, self._gateway.client(team_id).chat_postMessage, channel=channel, unfurl_links=False, **message)


@dataclass(frozen=True)
class _Turn:
    """What one delivery may do: wait this long for a rate slot, post first cards, and whether its claims hold."""

    max_wait: float
    first_posts: bool
    sure: Callable[[], bool]
