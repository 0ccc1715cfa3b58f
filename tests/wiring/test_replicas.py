"""Two replicas on one PostgreSQL database: one poller at a time, and each result posted once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from bot.runtime.app import build_runtime
from bot.runtime.serving import ServerThread
from tests.conftest import Clock
from tests.fakes.imocha import FakeImocha
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.wiring.conftest import RECRUITER, SECRET, Bot, make_bot, settings_for
from tests.wiring.helpers import card_json, replies, sent_card, settle


@pytest.fixture
def replicas(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[tuple[Bot, Bot, Clock]]:
    if engine.dialect.name != "postgresql":
        pytest.skip("several replicas are a PostgreSQL deployment")
    clock = Clock(datetime.now(UTC))
    first = make_bot(engine, slack, fake_imocha, clock=clock, with_scheduler=True, holder_id="replica-a")
    settings = settings_for(engine, slack, fake_imocha, encryption_key=first.runtime.settings.encryption_key.get_secret_value())  # type: ignore[union-attr]
    second_runtime = build_runtime(settings, clock=clock, with_scheduler=True, holder_id="replica-b")
    second_server = ServerThread(second_runtime.web, lifespan="on").start()
    second = Bot(second_runtime, second_server, slack, fake_imocha, SlackSender(second_server.url, SECRET))
    yield first, second, clock
    for bot in (first, second):
        bot.sender.close()
        bot.server.stop()
        bot.runtime.close()


def test_two_replicas_poll_one_at_a_time_and_post_each_completion_once(replicas: tuple[Bot, Bot, Clock]) -> None:
    first, second, clock = replicas
    _app_id, inv_id = sent_card(first)
    first.imocha.state.complete(inv_id, points=42)
    time.sleep(1.02 - time.time() % 1)
    clock.now = datetime.now(UTC)

    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def run(name: str, bot: Bot) -> None:
        barrier.wait()
        results[name] = bot.runtime.scheduler.run("poll")

    threads = [threading.Thread(target=run, args=(n, b)) for n, b in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True]  # the lease let exactly one replica poll

    # both replicas deliver the outbox at once: the completion notice still goes out once
    done = threading.Event()

    def drain(bot: Bot) -> None:
        while not done.is_set():
            bot.runtime.scheduler.run("outbox")
            time.sleep(0.05)

    drains = [threading.Thread(target=drain, args=(b,)) for b in (first, second)]
    for t in drains:
        t.start()
    try:
        settle(
            first,
            lambda: "Assessment needs review" in card_json(first) and any("completed" in (m.text or "") for m in replies(first)),
            timeout=20,
        )
        time.sleep(1.5)
    finally:
        done.set()
        for t in drains:
            t.join()
    notices = [m for m in replies(first) if "completed" in (m.text or "")]
    assert len(notices) == 1
    owner_dms = [m for m in first.slack.dms_to(RECRUITER) if "completed" in (m.text or "")]
    assert len(owner_dms) == 1


def test_a_dead_replicas_lease_expires_and_the_other_takes_over(replicas: tuple[Bot, Bot, Clock]) -> None:
    first, second, clock = replicas
    assert first.runtime.scheduler.run("poll") is True
    assert second.runtime.scheduler.run("poll") is False
    # replica A dies without releasing its lease; after the lease time the other one polls
    clock.advance(minutes=10)
    assert second.runtime.scheduler.run("poll") is True
    assert first.runtime.scheduler.run("poll") is False
