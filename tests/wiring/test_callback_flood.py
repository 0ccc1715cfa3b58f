"""A flood on the unauthenticated `/webhooks/imocha` cannot become an iMocha flood (bot/assessments/callbacks.py ReportGate).

Over real HTTP against the sandbox, on SQLite and PostgreSQL: repeated callbacks for one invitation
share report reads, and past the caps they are answered 200 and left to the status poller.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.assessments.callbacks import CallbackLimits, ReportGate
from tests.wiring.conftest import Bot
from tests.wiring.helpers import post_callback, sent_card, settle, wait_headline


class Seconds:
    """A monotonic clock for the gate that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reads(bot: Bot, inv_id: int) -> int:
    return bot.imocha.state.count(f"/reports/{inv_id}")


def completed(bot: Bot) -> tuple[int, dict[str, object]]:
    """A sent card whose candidate has finished in iMocha; returns the invitation and its callback payload."""
    _app_id, inv_id = sent_card(bot)
    finished = bot.imocha.state.complete(inv_id, points=42)
    bot.imocha.state.reset_calls()
    return inv_id, bot.imocha.state.callback_payload(finished)


def settled(bot: Bot, inv_id: int, expected: int) -> None:
    """Wait for `expected` report reads, then a little longer to see that no more follow."""
    settle(bot, lambda: reads(bot, inv_id) >= expected, message=f"expected {expected} report reads")
    time.sleep(0.3)
    assert reads(bot, inv_id) == expected


def test_twenty_callbacks_at_once_for_one_invitation_share_one_read_and_the_result_still_arrives(bot: Bot) -> None:
    inv_id, payload = completed(bot)
    bot.imocha.state.latency = 1.0  # the first read is still in flight while the others arrive

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post_callback(bot, payload).status_code, range(20)))
    assert answers == [200] * 20

    wait_headline(bot, "Assessment needs review", timeout=10)
    bot.imocha.state.latency = 0.0
    time.sleep(0.5)
    # One read, and at most one more for the callbacks that came in while it ran.
    assert 1 <= reads(bot, inv_id) <= 2


@pytest.mark.parametrize(
    ("limits", "cap"),
    [
        pytest.param(CallbackLimits(window=60, per_invitation=3, overall=100), "per invitation", id="per invitation"),
        pytest.param(CallbackLimits(window=60, per_invitation=100, overall=3), "overall", id="overall"),
    ],
)
def test_callbacks_past_a_cap_are_answered_and_left_to_the_poller_with_one_log_line_per_window(
    bot: Bot, caplog: pytest.LogCaptureFixture, limits: CallbackLimits, cap: str
) -> None:
    seconds = Seconds()
    bot.runtime.callbacks.gate = ReportGate(limits, monotonic=seconds)
    inv_id, payload = completed(bot)

    with caplog.at_level(logging.WARNING, logger="bot.assessments.callbacks"):
        for n in range(1, 4):
            assert post_callback(bot, payload).status_code == 200
            settled(bot, inv_id, n)
        wait_headline(bot, "Assessment needs review")
        for _ in range(5):
            assert post_callback(bot, payload).status_code == 200
        settled(bot, inv_id, 3)

        seconds.now += 61  # the window has moved on: a read is allowed again
        assert post_callback(bot, payload).status_code == 200
        settled(bot, inv_id, 4)

    said = [r.getMessage() for r in caplog.records if "left to the status poller" in r.getMessage()]
    assert len(said) == 1, said
    assert f"over the {cap} cap" in said[0] and "1 left to the status poller" in said[0]
