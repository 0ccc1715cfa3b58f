"""Slack writes that must happen exactly once: stored with the state change, delivered and retried here.

A row is queued in the transaction that changes the state it announces (a second row with the same
dedupe key is ignored), so a state change and its Slack writes are stored together or not at all.
Delivering claims due rows for this process (bot/runtime/claims.py: the claim is renewed while the process
works and lapses 3 s after it dies, when another process resumes it), makes each row's Slack call
only while the claim is sure, and records the outcome (done, retry later, given up) by
compare-and-set on the claim, so a row is delivered by one process at a time and recorded done once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import ApplicationView
from bot.runtime.claims import ClaimKeeper, ClaimTable, claim_holder_id
from bot.slack.gateway import SlackGateway, SlackUnavailable
from bot.views import application_view
from store import repos
from store.models import OutboxMessage, SlackCard, Workspace

log = logging.getLogger("bot.slack.outbox")

Message = dict[str, Any]

CARD = "card"
THREAD = "thread"
DM = "dm"

MAX_ATTEMPTS = 12
CLAIMS = ClaimTable("slack_outbox", OutboxMessage, OutboxMessage.claimed_by, OutboxMessage.claimed_until, OutboxMessage.done_at.is_(None))
# Errors that mean "this channel will not take the card": fall back to the owner's DM.
CHANNEL_GONE = {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
PERMANENT = {"invalid_blocks", "msg_too_long", "no_text", "invalid_arguments", "user_not_found", "account_inactive"}


class Renderer(Protocol):
    """Turns values into Slack messages; implemented by handlers.blocks, injected by the composition root."""

    def card(self, view: ApplicationView) -> Message: ...

    def render(self, template: str, view: ApplicationView | None, payload: dict[str, Any]) -> Message: ...


class ChannelPacer:
    """A token bucket per channel, so bursts of posts stay inside chat.postMessage's 1/s/channel limit."""

    def __init__(self, rate: float = 1.0, burst: int = 3, clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, channel: str) -> float:
        """0 and a token taken when a post may go now; otherwise the seconds to wait."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(channel, (float(self._burst), now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1:
                self._buckets[channel] = (tokens - 1, now)
                return 0.0
            self._buckets[channel] = (tokens, now)
            return (1 - tokens) / self._rate


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


class SlackOutbox:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: SlackGateway,
        renderer: Renderer,
        clock: Callable[[], datetime],
        pacer: ChannelPacer | None = None,
        on_error: Callable[[str], None] | None = None,
        claims: ClaimKeeper | None = None,
    ):
        self._sf = session_factory
        self._claims = claims or ClaimKeeper(session_factory, holder=claim_holder_id(), clock=clock)
        self._gateway = gateway
        self._renderer = renderer
        self._clock = clock
        self._pacer = pacer or ChannelPacer()
        self._card_locks = KeyedLocks()
        self._last_card: dict[int, str] = {}  # what each card last showed, to skip no-op updates
        self._on_error = on_error or (lambda kind: None)

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
            # next_attempt_at: due at once, stamped from the session's clock (store.models.stamp)
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
        return repos.insert_ignore(session, OutboxMessage, row, ["dedupe_key"])

    @staticmethod
    def add_many(session: Session, rows: list[dict[str, Any]]) -> set[str]:
        """Queue many writes in one statement; returns the keys that were new."""
        return set(repos.insert_many_ignore(session, OutboxMessage, rows, ["dedupe_key"], OutboxMessage.dedupe_key))

    # -- deliver --------------------------------------------------------------------------------

    def deliver(self, *, application_id: int | None = None, limit: int = 200) -> int:
        """Deliver due messages (optionally only one application's); returns how many were sent."""
        rows = self._claim(application_id, limit)
        try:
            return self._deliver_rows(rows)
        finally:
            for row in rows:
                self._claims.release(CLAIMS, row[0])

    def _deliver_rows(self, rows: list[tuple[int, str, int | None, str, dict[str, Any]]]) -> int:
        sent = 0
        cards_done: set[int] = set()
        for row_id, kind, app_id, team_id, payload in rows:
            if not self._claims.holds(CLAIMS, row_id):
                # This process could not renew the claim lately, so another may have taken the row.
                log.warning("outbox %s #%s left undelivered: this process's claim on it may have lapsed", kind, row_id)
                continue
            if kind == CARD and app_id in cards_done:
                self._finish(row_id)  # coalesced: the card already shows the newest state
                continue
            try:
                if kind == CARD:
                    self._deliver_card(team_id, app_id)
                    if app_id is not None:
                        cards_done.add(app_id)
                elif kind == THREAD:
                    self._deliver_thread(team_id, app_id, payload)
                elif kind == DM:
                    self._deliver_dm(team_id, app_id, payload)
                else:
                    raise ValueError(f"unknown outbox kind {kind!r}")
            except _Postpone as wait:
                self._retry(row_id, None, delay=wait.seconds, count_attempt=False)
            except SlackApiError as exc:
                self._on_slack_error(row_id, kind, exc)
            except SlackUnavailable as exc:
                self._give_up(row_id, str(exc))
            except Exception as exc:  # network errors and the like: retry with backoff
                log.warning("outbox %s #%s failed: %s: %s", kind, row_id, exc.__class__.__name__, exc, exc_info=log.isEnabledFor(10))
                self._on_error(kind)
                self._retry(row_id, f"{exc.__class__.__name__}: {exc}")
            else:
                self._finish(row_id)
                sent += 1
            finally:
                self._claims.release(CLAIMS, row_id)
        return sent

    def pending(self) -> int:
        with self._sf() as session:
            return len(session.scalars(select(OutboxMessage.id).where(OutboxMessage.done_at.is_(None))).all())

    def _claim(self, application_id: int | None, limit: int) -> list[tuple[int, str, int | None, str, dict[str, Any]]]:
        since = self._claims.mark()
        now = self._clock()
        with self._sf.begin() as session:
            due = (
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.done_at.is_(None),
                    OutboxMessage.next_attempt_at <= now,
                    or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            if application_id is not None:
                due = due.where(OutboxMessage.application_id == application_id)
            ids = list(session.scalars(due))
            if not ids:
                return []
            claimed = set(
                session.scalars(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id.in_(ids),
                        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
                    )
                    .values(claimed_by=self._claims.holder, claimed_until=self._claims.expiry(now))
                    .returning(OutboxMessage.id)
                )
            )
            rows = session.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.kind,
                    OutboxMessage.application_id,
                    Workspace.team_id,
                    OutboxMessage.payload,
                )
                .join(Workspace, Workspace.id == OutboxMessage.workspace_id)
                .where(OutboxMessage.id.in_(claimed))
                .order_by(OutboxMessage.id)
            )
            found = [(r[0], r[1], r[2], r[3], dict(r[4] or {})) for r in rows]
        mine = set(self._claims.take(CLAIMS, [r[0] for r in found], since))
        return [r for r in found if r[0] in mine]

    def _mine(self) -> Any:
        """Rows this process still holds: outcomes are recorded by compare-and-set on the claim."""
        return (OutboxMessage.claimed_by == self._claims.holder) & OutboxMessage.done_at.is_(None)

    def _finish(self, row_id: int) -> None:
        with self._sf.begin() as session:
            result: Any = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id, self._mine())
                .values(done_at=self._clock(), claimed_by=None, claimed_until=None, last_error=None)
            )
        if result.rowcount != 1:
            log.error("outbox #%s was delivered, but another process had taken it over: it may show twice in Slack", row_id)

    def _retry(self, row_id: int, error: str | None, *, delay: float | None = None, count_attempt: bool = True) -> None:
        with self._sf.begin() as session:
            row = session.get(OutboxMessage, row_id, with_for_update=True)
            if row is None or row.claimed_by != self._claims.holder or row.done_at is not None:
                return  # taken over meanwhile: its new holder records the outcome
            if count_attempt:
                row.attempts += 1
            row.claimed_by = None
            row.claimed_until = None
            if row.attempts >= MAX_ATTEMPTS:
                row.done_at = self._clock()
                row.last_error = f"gave up after {row.attempts} attempts: {error}"
                log.error("outbox %s #%s gave up: %s", row.kind, row_id, error)
                return
            wait = delay if delay is not None else min(2**row.attempts, 300)
            row.next_attempt_at = self._clock() + timedelta(seconds=wait)
            if error:
                row.last_error = error

    def _give_up(self, row_id: int, error: str) -> None:
        log.error("outbox #%s dropped: %s", row_id, error)
        with self._sf.begin() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id, self._mine())
                .values(done_at=self._clock(), claimed_by=None, claimed_until=None, last_error=f"dropped: {error}")
            )

    def _on_slack_error(self, row_id: int, kind: str, exc: SlackApiError) -> None:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"http_{status}")
        self._on_error(kind)
        if status == 429:
            retry_after = _retry_after(exc)
            log.info("outbox %s #%s rate limited by Slack; retrying in %ss", kind, row_id, retry_after)
            self._retry(row_id, "ratelimited", delay=retry_after, count_attempt=False)
        elif error in PERMANENT:
            log.error("outbox %s #%s refused by Slack: %s %s", kind, row_id, error, exc.response.get("response_metadata"))
            self._give_up(row_id, error)
        else:
            log.warning("outbox %s #%s Slack error %s (HTTP %s); will retry", kind, row_id, error, status)
            self._retry(row_id, error)

    # -- the three kinds ------------------------------------------------------------------------

    def _view(self, application_id: int | None) -> tuple[ApplicationView | None, SlackCard | None]:
        if application_id is None:
            return None, None
        with self._sf() as session:
            return application_view(session, application_id, now=self._clock()), repos.card_for(session, application_id)

    def _deliver_card(self, team_id: str, application_id: int | None) -> None:
        """Post or update the card; one deliverer per application at a time, so a card is posted once
        and updates land in order (a lock in this process; on PostgreSQL also the card's row lock,
        which covers other replicas)."""
        if application_id is None:
            return
        with self._card_locks.hold(application_id):
            if self._sf.kw["bind"].dialect.name != "postgresql":
                self._post_or_update(team_id, application_id, None)
                return
            with self._sf.begin() as session:
                session.execute(select(SlackCard.id).where(SlackCard.application_id == application_id).with_for_update())
                self._post_or_update(team_id, application_id, session)

    def _post_or_update(self, team_id: str, application_id: int, locked: Session | None) -> None:
        def save(**values: Any) -> None:
            stmt = update(SlackCard).where(SlackCard.application_id == application_id).values(**values)
            if locked is not None:
                locked.execute(stmt)
                return
            with self._sf.begin() as session:
                session.execute(stmt)

        if locked is not None:
            view, card = application_view(locked, application_id, now=self._clock()), repos.card_for(locked, application_id)
        else:
            view, card = self._view(application_id)
        if view is None or card is None:
            return
        client = self._gateway.client(team_id)
        message = self._renderer.card(view)
        digest = hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()
        if card.ts:
            if self._last_card.get(application_id) == digest:
                return  # a queued update whose state the card already shows (it rendered late)
            client.chat_update(channel=card.channel_id, ts=card.ts, text=message["text"], blocks=message["blocks"])
            self._remember(application_id, digest)
            return
        channel = card.channel_id
        if card.in_dm and channel[:1] in ("U", "W"):
            channel = self._gateway.dm_channel(team_id, channel)
        self._pace(channel)
        try:
            response = client.chat_postMessage(channel=channel, unfurl_links=False, unfurl_media=False, **message)
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
            response = client.chat_postMessage(channel=channel, unfurl_links=False, unfurl_media=False, **message)
            save(in_dm=True)
        save(channel_id=str(response["channel"]), ts=str(response["ts"]))
        self._remember(application_id, digest)

    def _remember(self, application_id: int, digest: str) -> None:
        if len(self._last_card) > 20_000:
            self._last_card.clear()
        self._last_card[application_id] = digest

    def _deliver_thread(self, team_id: str, application_id: int | None, payload: dict[str, Any]) -> None:
        view, card = self._view(application_id)
        if view is None or card is None:
            return
        if not card.ts:
            raise _Postpone(2.0)  # the card itself is not posted yet
        self._pace(card.channel_id)
        message = self._renderer.render(payload.get("template", "note"), view, payload)
        self._gateway.client(team_id).chat_postMessage(
            channel=card.channel_id,
            thread_ts=card.ts,
            reply_broadcast=bool(payload.get("broadcast")) and not card.in_dm,
            unfurl_links=False,
            **message,
        )

    def _deliver_dm(self, team_id: str, application_id: int | None, payload: dict[str, Any]) -> None:
        view, _card = self._view(application_id)
        user = payload["user"]
        channel = self._gateway.dm_channel(team_id, user)
        self._pace(channel)
        message = self._renderer.render(payload.get("template", "notice"), view, payload)
        self._gateway.client(team_id).chat_postMessage(channel=channel, unfurl_links=False, **message)

    def _pace(self, channel: str) -> None:
        wait = self._pacer.wait_time(channel)
        if wait > 0:
            raise _Postpone(wait)


class _Postpone(Exception):
    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


def _retry_after(exc: SlackApiError) -> float:
    try:
        return max(1.0, float(exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or 1))
    except (TypeError, ValueError):
        return 1.0
