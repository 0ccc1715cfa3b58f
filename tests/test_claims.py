"""Claims on Slack writes, two replicas on one real database: a slow live holder keeps its rows, a dead one's
are resumed by the other within seconds, a holder that cannot renew stops, and each write happens once.

The replicas share a settable clock; their claim keepers read a monotonic clock tied to it, so a test
moves time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime.claims import CLAIM_TTL, ClaimKeeper
from bot.slack.outbox import CLAIMS, DM, SlackOutbox
from store import repos
from store.models import OutboxMessage
from tests.conftest import Clock

TEAM = "T0CLAIMS"


@dataclass
class Posts:
    """What reached "Slack": (replica, text), in order."""

    made: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def texts(self) -> list[str]:
        with self.lock:
            return [text for _who, text in self.made]


class FakeClient:
    def __init__(self, name: str, posts: Posts):
        self.name = name
        self.posts = posts
        self.before_post: Callable[[str], None] | None = None  # runs as the call is in flight

    def chat_postMessage(self, *, channel: str, text: str, **_: Any) -> dict[str, str]:
        if self.before_post is not None:
            self.before_post(text)
        with self.posts.lock:
            self.posts.made.append((self.name, text))
        return {"channel": channel, "ts": "1.000100"}


class FakeGateway:
    def __init__(self, client: FakeClient):
        self._client = client

    def client(self, team_id: str) -> FakeClient:
        return self._client

    def dm_channel(self, team_id: str, user_id: str) -> str:
        return "D" + user_id


class Renderer:
    def card(self, view: Any) -> dict[str, Any]:
        raise AssertionError("no cards here")

    def render(self, template: str, view: Any, payload: dict[str, Any]) -> dict[str, Any]:
        return {"text": payload["text"], "blocks": []}


@dataclass
class Replica:
    name: str
    outbox: SlackOutbox
    claims: ClaimKeeper
    client: FakeClient


@pytest.fixture
def posts() -> Posts:
    return Posts()


@pytest.fixture
def replicas(session_factory: sessionmaker[Session], clock: Clock, posts: Posts) -> Iterator[tuple[Replica, Replica]]:
    made = []
    for name in ("a", "b"):
        claims = ClaimKeeper(session_factory, holder=f"replica-{name}", clock=clock, monotonic=lambda: clock().timestamp())
        client = FakeClient(name, posts)
        outbox = SlackOutbox(
            session_factory=session_factory,
            gateway=FakeGateway(client),  # type: ignore[arg-type]
            renderer=Renderer(),
            clock=clock,
            claims=claims,
        )
        claims.recover_with(CLAIMS, outbox.deliver)
        made.append(Replica(name, outbox, claims, client))
    yield made[0], made[1]
    for replica in made:
        replica.claims.stop()


def queue(session_factory: sessionmaker[Session], *texts: str) -> None:
    with session_factory.begin() as session:
        ws = repos.ensure_workspace(session, TEAM)
        for text in texts:
            SlackOutbox.add(session, workspace_id=ws.id, kind=DM, key=f"dm:{text}", payload={"user": "UOWNER", "text": text})


def rows(session_factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with session_factory() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_slow_live_holder_keeps_its_claim_and_the_other_replica_never_sends_the_write(
    session_factory: sessionmaker[Session], clock: Clock, posts: Posts, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    queue(session_factory, "score for the owner")
    tries = []

    def slow_call(_text: str) -> None:
        # the call takes twice the claim's lifetime; A renews as it waits, B tries all along
        for _ in range(6):
            clock.advance(seconds=1)
            a.claims.beat()
            tries.append(b.outbox.deliver())

    a.client.before_post = slow_call
    assert a.outbox.deliver() == 1
    assert tries == [0] * 6
    assert posts.made == [("a", "score for the owner")]
    [row] = rows(session_factory)
    assert row.done_at == clock() and row.claimed_by is None and row.claimed_until is None and row.attempts == 0
    clock.advance(seconds=10)
    assert b.outbox.deliver() == 0 and a.outbox.deliver() == 0


def test_a_dead_holders_write_is_resumed_by_the_watching_replica_within_seconds_and_recorded_once(
    session_factory: sessionmaker[Session], clock: Clock, posts: Posts, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    queue(session_factory, "score for the owner")
    resumed_after: list[float] = []

    def die(_text: str) -> None:
        a.claims.stop()  # A's process dies as its call starts: nobody renews its claim
        b.claims.start()  # B watches for lapsed claims, as a served bot does
        started = clock()
        [claimed] = rows(session_factory)
        assert claimed.claimed_by == "replica-a"
        for _ in range(20):
            clock.advance(seconds=0.5)
            deadline = time.monotonic() + 2
            while not posts.made and time.monotonic() < deadline and clock() - started > CLAIM_TTL:
                time.sleep(0.01)  # B's watcher thread ticks twice a second
            if posts.made:
                resumed_after.append((clock() - started).total_seconds())
                break
        raise RuntimeError("the process is gone; this call never reached Slack")

    a.client.before_post = die
    assert a.outbox.deliver() == 0
    assert posts.made == [("b", "score for the owner")]
    assert resumed_after and resumed_after[0] <= CLAIM_TTL.total_seconds() + 1
    deadline = time.monotonic() + 2
    while rows(session_factory)[0].done_at is None and time.monotonic() < deadline:
        time.sleep(0.01)  # B records it on its own thread
    [row] = rows(session_factory)
    # recorded done once, by B; A's failed call recorded nothing
    assert row.done_at is not None and row.claimed_by is None and row.attempts == 0 and row.last_error is None
    clock.advance(seconds=30)
    assert b.outbox.deliver() == 0
    assert len(posts.made) == 1


def test_a_holder_that_cannot_renew_stops_before_its_claim_lapses_and_the_other_replica_takes_the_rest(
    session_factory: sessionmaker[Session],
    clock: Clock,
    posts: Posts,
    replicas: tuple[Replica, Replica],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = replicas
    queue(session_factory, "first", "second")

    def database_gone() -> None:
        raise ConnectionError("the database does not answer this process")

    def stalls(text: str) -> None:
        if text == "first":
            clock.advance(seconds=2.5)  # past the TTL less the fence margin, without a renewal
            a.client.before_post = None

    monkeypatch.setattr(a.claims, "_renew", database_gone)
    a.client.before_post = stalls
    assert a.outbox.deliver() == 1  # "first" was under way; "second" is left alone
    assert posts.texts() == ["first"]
    assert b.outbox.deliver() == 0  # A's claim on "second" has not lapsed yet
    clock.advance(seconds=1)
    assert b.outbox.deliver() == 1
    assert posts.made == [("a", "first"), ("b", "second")]
    assert all(row.done_at is not None and row.claimed_by is None for row in rows(session_factory))


def test_one_process_never_hands_a_row_it_is_delivering_to_a_second_delivery(
    session_factory: sessionmaker[Session], clock: Clock, posts: Posts, replicas: tuple[Replica, Replica]
) -> None:
    a, _b = replicas
    queue(session_factory, "only once")
    again = []

    def lagging(_text: str) -> None:
        clock.advance(seconds=5)  # the database claim lapsed (renewals lagged) while the call runs
        again.append(a.outbox.deliver())  # another thread of the same process delivers meanwhile

    a.client.before_post = lagging
    assert a.outbox.deliver() == 1
    assert again == [0]
    assert posts.made == [("a", "only once")]
    assert rows(session_factory)[0].done_at is not None


def test_a_claim_keeper_refuses_a_ttl_too_short_for_its_renewals(session_factory: sessionmaker[Session], clock: Clock) -> None:
    with pytest.raises(ValueError):
        ClaimKeeper(session_factory, holder="x", clock=clock, ttl=timedelta(seconds=1), renew_every=1.0)
