"""ReportGate (bot/assessments/callbacks.py) on its own: the rules the callback flood tests drive over HTTP."""

from __future__ import annotations

from bot.assessments.callbacks import CallbackLimits, ReportGate


class Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_callbacks_during_a_read_fold_into_one_more_read_after_it() -> None:
    gate = ReportGate(CallbackLimits(per_invitation=10), monotonic=Seconds())

    assert gate.enter(7)
    assert not gate.enter(7) and not gate.enter(7)  # two callbacks while the read runs
    assert gate.enter(8)  # another invitation is not held up
    assert gate.again(7)  # one more read for both of them
    assert not gate.again(7)
    gate.leave(7)
    assert gate.enter(7)


def test_a_clock_that_jumps_back_shortens_the_window_instead_of_closing_the_gate() -> None:
    seconds = Seconds()
    gate = ReportGate(CallbackLimits(window=60, per_invitation=2), monotonic=seconds)
    for _ in range(2):
        assert gate.enter(7)
        gate.leave(7)
    assert not gate.enter(7)

    seconds.now -= 3600
    assert gate.enter(7)
