"""Cards at Slack's own pace (issue 17): a burst of ATS events reaches each channel at one card a second
after a short burst, channels in parallel, in ATS order, each card once, Retry-After waited out, and two
replicas spending one budget per channel. Real clock, the fake Slack over HTTP; timings from its log."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.runtime.app import build_runtime
from bot.runtime.serving import ServerThread
from tests.fakes.imocha import FakeImocha
from tests.fakes.slack import Call, FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.wiring.conftest import ADMIN, RECRUITER, SECRET, TEAM, Bot, ats_event, create_plan, make_bot, settings_for, setup_workspace


def event(i: int, job: str = "Backend Engineer") -> dict[str, Any]:
    body = ats_event(f"app-{i:03d}", event_id=f"evt-{i:03d}", email=f"c{i:03d}@example.com", job=job)
    body["candidate"] = {"id": f"cand-{i:03d}", "name": f"Candidate {i:03d}", "email": f"c{i:03d}@example.com"}
    return body


def add_channels(slack: FakeSlack, *channels: str) -> None:
    for channel in channels:
        slack.add_channel(channel, team_id=TEAM, name=channel.lower(), members=[ADMIN, RECRUITER])


def card_posts(slack: FakeSlack, channel: str) -> list[Call]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.body.get("channel") == channel and not c.body.get("thread_ts") and "Candidate" in str(c.body.get("text"))
    ]


def candidates(calls: list[Call]) -> list[str]:
    return [str(c.body["text"]).split("Candidate ")[1][:3] for c in calls]


def wait_for_cards(slack: FakeSlack, channel: str, n: int, timeout: float) -> list[Call]:
    deadline = time.monotonic() + timeout
    while len(card_posts(slack, channel)) < n:
        assert time.monotonic() < deadline, f"{len(card_posts(slack, channel))} of {n} cards reached {channel}"
        time.sleep(0.05)
    time.sleep(0.3)  # nothing more is coming
    return card_posts(slack, channel)


def sustained_rate(calls: list[Call], burst: int = 3) -> float:
    """Posts per second after the burst: from the last burst post to the last post."""
    return (len(calls) - burst) / (calls[-1].at - calls[burst - 1].at)


@pytest.fixture
def paced(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[Bot]:
    bot = make_bot(engine, slack, fake_imocha)
    setup_workspace(bot)
    yield bot
    bot.sender.close()
    bot.server.stop()
    bot.runtime.close()


def test_a_burst_into_one_channel_goes_at_one_card_a_second_in_ats_order_each_once(paced: Bot) -> None:
    add_channels(paced.slack, "CFLOOD")
    assert create_plan(paced, channel="CFLOOD").status_code == 200
    for i in range(10):
        assert paced.ats(event(i)).status_code in (200, 202)
    posts = wait_for_cards(paced.slack, "CFLOOD", 10, timeout=30)
    assert candidates(posts) == [f"{i:03d}" for i in range(10)]  # ATS order, none twice, none lost
    rate = sustained_rate(posts)
    # Slack's pace, neither well below nor above it. The fake logs arrivals, so a loaded machine's
    # scheduling jitter shows as a tenth of a second either way; a budget not kept would be 3/s here.
    assert 0.8 <= rate <= 1.2, rate
    assert paced.slack.violations == []


def test_channels_drain_in_parallel(paced: Bot) -> None:
    add_channels(paced.slack, "CLANE1", "CLANE2", "CLANE3")
    for n, channel in enumerate(("CLANE1", "CLANE2", "CLANE3")):
        assert create_plan(paced, job=f"Job {n}", channel=channel).status_code == 200
    for i in range(18):
        assert paced.ats(event(i, job=f"Job {i % 3}")).status_code in (200, 202)
    lanes = [wait_for_cards(paced.slack, channel, 6, timeout=30) for channel in ("CLANE1", "CLANE2", "CLANE3")]
    # Each channel's 4th to 6th cards wait about a second each for its budget. One channel at a time, a
    # channel would start only after the one before had finished; in parallel every channel has started
    # before any has finished (read from the fake's log, so a slow machine does not decide it).
    assert max(posts[0].at for posts in lanes) < min(posts[-1].at for posts in lanes)
    for n, posts in enumerate(lanes):
        assert candidates(posts) == [f"{i:03d}" for i in range(n, 18, 3)]


def test_a_429_is_waited_out_and_the_order_holds(paced: Bot) -> None:
    add_channels(paced.slack, "CLIMIT")
    assert create_plan(paced, channel="CLIMIT").status_code == 200
    for i in range(4):
        assert paced.ats(event(i)).status_code in (200, 202)
    wait_for_cards(paced.slack, "CLIMIT", 4, timeout=20)
    paced.slack.fail("chat.postMessage", status=429, retry_after=2)
    asked_at = time.time()
    for i in range(4, 7):
        assert paced.ats(event(i)).status_code in (200, 202)
    calls = wait_for_cards(paced.slack, "CLIMIT", 8, timeout=30)  # 7 cards and the refused call
    refused, *later = [c for c in calls if c.at > asked_at]
    assert candidates([refused]) == ["004"] and candidates(later) == ["004", "005", "006"]
    assert later[0].at - refused.at >= 2.0  # nothing went to Slack before Retry-After had passed
    assert all(b.at - a.at >= 0.8 for a, b in itertools.pairwise(later))  # a second apart, less arrival jitter
    shown = [str(m.text).split("Candidate ")[1][:3] for m in paced.slack.top_level("CLIMIT")]
    assert shown == [f"{i:03d}" for i in range(7)]  # in ATS order, each once


@pytest.fixture
def two_replicas(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[tuple[Bot, Bot]]:
    if engine.dialect.name != "postgresql":
        pytest.skip("several replicas are a PostgreSQL deployment")
    first = make_bot(engine, slack, fake_imocha, holder_id="replica-a")
    settings = settings_for(engine, slack, fake_imocha, encryption_key=first.runtime.settings.encryption_key.get_secret_value())  # type: ignore[union-attr]
    runtime = build_runtime(settings, holder_id="replica-b")
    server = ServerThread(runtime.web, lifespan="on").start()
    second = Bot(runtime, server, slack, fake_imocha, SlackSender(server.url, SECRET))
    setup_workspace(first)
    yield first, second
    for bot in (first, second):
        bot.sender.close()
        bot.server.stop()
        bot.runtime.close()


def test_two_replicas_spend_one_budget_per_channel_and_keep_the_order(two_replicas: tuple[Bot, Bot]) -> None:
    first, second = two_replicas
    add_channels(first.slack, "CSHARED")
    assert create_plan(first, channel="CSHARED").status_code == 200
    for i in range(10):
        assert (first if i % 2 else second).ats(event(i)).status_code in (200, 202)
    posts = wait_for_cards(first.slack, "CSHARED", 10, timeout=30)
    assert candidates(posts) == [f"{i:03d}" for i in range(10)]
    rate = sustained_rate(posts)
    assert 0.8 <= rate <= 1.2, rate  # one per second between them, not two (jitter as above)
