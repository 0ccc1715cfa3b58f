"""Slack's rate budgets (bot/slack/pacing.py): the arithmetic, the budget the replicas share, the local one."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.pacing import LIMITS, MAX_AHEAD, Limit, LocalBudget, SharedBudget, budget_key, next_slot, spend
from tests.conftest import Clock

POST = LIMITS["chat.postMessage"]


def test_the_table_holds_slacks_published_limits() -> None:
    assert (POST.scope, POST.per_second, POST.burst) == ("channel", 1.0, 3)
    assert LIMITS["chat.update"].per_second * 60 == pytest.approx(50)  # Tier 3
    assert LIMITS["chat.postEphemeral"].per_second * 60 == pytest.approx(100)  # Tier 4
    assert LIMITS["views.publish"].per_second * 60 == pytest.approx(100)  # Tier 4
    assert budget_key("T1", "chat.postMessage", "C1") == "T1/C1"
    assert budget_key("T1", "chat.update", "C1") == "T1/chat.update"  # per workspace, whatever the channel
    with pytest.raises(ValueError, match="per channel"):
        budget_key("T1", "chat.postMessage")


def test_a_burst_goes_at_once_then_one_call_per_interval_exactly() -> None:
    tat, now, slots = 100.0, 100.0, []
    for _ in range(8):
        at = next_slot(tat, now, POST)
        slots.append(at - now)
        tat = spend(tat, at, POST)
    assert slots == [0, 0, 0, 1, 2, 3, 4, 5]  # 3 back to back, then exactly 1 per second: not below Slack's pace
    # a quiet spell refills the burst, and never more than the burst
    assert next_slot(tat, now + 60, POST) == now + 60
    assert spend(tat, now + 60, POST) == now + 61


def reserve_all(budget: SharedBudget, key: str, limit: Limit, n: int, max_wait: float = 100.0) -> list[float]:
    return [budget.reserve(key, limit, max_wait=max_wait).wait for _ in range(n)]


def test_two_replicas_spend_one_budget_per_channel(session_factory: sessionmaker[Session], clock: Clock) -> None:
    a, b = SharedBudget(session_factory, clock), SharedBudget(session_factory, clock)
    waits = [(a if i % 2 else b).reserve("T1/C1", POST, max_wait=100).wait for i in range(6)]
    assert waits == [0, 0, 0, 1, 2, 3]  # together, not 2 per second
    assert a.reserve("T1/C2", POST, max_wait=100).wait == 0  # another channel has its own budget


def test_a_slot_too_far_away_is_not_taken(session_factory: sessionmaker[Session], clock: Clock) -> None:
    budget = SharedBudget(session_factory, clock)
    reserve_all(budget, "T1/C1", POST, 3)
    far = budget.reserve("T1/C1", POST, max_wait=0.5)
    assert not far.taken and far.wait == pytest.approx(1.0)
    assert budget.reserve("T1/C1", POST, max_wait=1.0).wait == pytest.approx(1.0)  # the refusal took nothing
    clock.advance(seconds=10)
    assert budget.reserve("T1/C1", POST, max_wait=0).taken


def test_retry_after_holds_the_budget_for_every_replica(session_factory: sessionmaker[Session], clock: Clock) -> None:
    a, b = SharedBudget(session_factory, clock), SharedBudget(session_factory, clock)
    a.reserve("T1/C1", POST, max_wait=0)
    a.hold("T1/C1", POST, 7)
    slot = b.reserve("T1/C1", POST, max_wait=0)
    assert not slot.taken and slot.wait == pytest.approx(7.0)
    a.hold("T1/C2", POST, 3)  # a budget never used before
    assert b.reserve("T1/C2", POST, max_wait=0).wait == pytest.approx(3.0)


def test_a_budget_written_by_a_fast_clock_does_not_stop_the_channel(session_factory: sessionmaker[Session], clock: Clock) -> None:
    fast = Clock(clock.now)
    fast.advance(seconds=MAX_AHEAD + 65)  # a replica whose clock runs two minutes ahead
    reserve_all(SharedBudget(session_factory, fast), "T1/C1", POST, 3)
    assert SharedBudget(session_factory, clock).reserve("T1/C1", POST, max_wait=0).taken


def test_concurrent_reservations_never_share_a_slot(session_factory: sessionmaker[Session], clock: Clock) -> None:
    budgets = [SharedBudget(session_factory, clock) for _ in range(4)]
    waits: list[float] = []
    lock = threading.Lock()

    def spend_ten(budget: SharedBudget) -> None:
        for _ in range(10):
            slot = budget.reserve("T1/C1", POST, max_wait=1000)
            assert slot.taken
            with lock:
                waits.append(round(slot.wait, 6))

    threads = [threading.Thread(target=spend_ten, args=(b,)) for b in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0, 0, 0, *range(1, 38)]  # 40 distinct slots: burst of 3, then one a second


def test_the_local_budget_sleeps_until_the_slot_and_never_longer_than_its_cap() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    publish = LIMITS["views.publish"]
    budget = LocalBudget(max_wait=2.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(publish.burst):
        assert budget.wait_for("T1/views.publish", publish) == 0
    assert budget.wait_for("T1/views.publish", publish) == pytest.approx(0.6)  # 100 a minute
    assert slept == [pytest.approx(0.6)]
    assert budget.wait_for("T2/views.publish", publish) == 0  # another workspace
    tight = LocalBudget(max_wait=0.1, monotonic=lambda: 0.0, sleep=lambda s: None)
    for _ in range(20):
        assert tight.wait_for("T1/chat.postEphemeral", LIMITS["chat.postEphemeral"]) <= 0.1


def test_the_durable_queues_back_off_by_doubling_up_to_a_cap_and_retry_after_wins() -> None:
    from bot.runtime.backoff import Backoff

    backoff = Backoff(first=5.0, cap=30.0)
    assert [backoff.after(n) for n in (1, 2, 3, 4, 5)] == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert backoff.after(0) == 5.0  # nothing failed yet counts as the first
    assert backoff.after(3, retry_after=7.5) == 7.5
    with pytest.raises(ValueError):
        Backoff(first=10.0, cap=5.0)
