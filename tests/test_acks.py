"""The work pool lets Slack's acks go first (bot/slack/acks.py)."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from sqlalchemy import Engine, text

from bot.runtime.clock import system_clock
from bot.runtime.logs import new_request_id, request_id
from bot.slack.acks import AckGate, WorkPool
from store.db import make_session_factory


def test_work_waits_while_a_request_is_being_answered_and_starts_when_it_is() -> None:
    gate = AckGate(max_wait=5)
    started = threading.Event()
    with WorkPool(max_workers=2, gate=gate) as pool:
        with gate.request():
            assert gate.answering == 1
            done = pool.submit(started.set)
            assert not started.wait(0.2), "work ran while an ack was due"
        assert gate.answering == 0
        done.result(timeout=2)
        assert started.is_set()


def test_a_steady_stream_of_requests_delays_work_by_max_wait_at_most() -> None:
    gate = AckGate(max_wait=0.2)
    with WorkPool(max_workers=1, gate=gate) as pool, gate.request():
        began = time.monotonic()
        finished_at = pool.submit(time.monotonic).result(timeout=2)
        assert 0.15 <= finished_at - began < 1.5


def test_nested_requests_count_until_the_last_answer() -> None:
    gate = AckGate(max_wait=1)
    with gate.request(), gate.request():
        assert gate.answering == 2
    assert gate.answering == 0
    assert gate.wait_idle() == 0.0


def test_work_keeps_the_request_id_and_its_errors_reach_the_future() -> None:
    rid = new_request_id("slack")
    with WorkPool(max_workers=1, gate=AckGate()) as pool:
        assert pool.submit(request_id.get).result(timeout=2) == rid
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(timeout=2)


def test_a_negative_max_wait_is_refused() -> None:
    with pytest.raises(ValueError):
        AckGate(max_wait=-1)


def test_garbage_collection_waits_until_no_request_is_being_answered() -> None:
    gate = AckGate(defer_gc=True, gc_max_deferral=60)
    assert gc.isenabled()
    with gate.request():
        assert not gc.isenabled()
        with gate.request():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_steady_stream_of_requests_cannot_put_garbage_collection_off_for_good() -> None:
    gate = AckGate(defer_gc=True, gc_max_deferral=0.05)
    with gate.request():
        assert not gc.isenabled()
        time.sleep(0.1)
        with gate.request():  # a new request after the longest deferral turns it back on
            assert gc.isenabled()
    assert gc.isenabled()


def test_the_gate_leaves_a_collector_someone_else_switched_off_alone() -> None:
    gate = AckGate(defer_gc=True)
    gc.disable()
    try:
        with gate.request():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_work_yields_to_acks_as_it_begins_a_database_transaction(engine: Engine) -> None:
    gate = AckGate(max_wait=0, step_wait=0.3)
    sessions = make_session_factory(engine, system_clock)
    gate.watch_sessions(sessions)

    def begin_a_transaction() -> float:
        began = time.monotonic()
        with sessions.begin() as session:
            session.execute(text("SELECT 1"))
        return time.monotonic() - began

    with WorkPool(max_workers=1, gate=gate) as pool, gate.request():
        waited_in_work = pool.submit(begin_a_transaction).result(timeout=5)
        waited_elsewhere = begin_a_transaction()  # not a work-pool thread: an ack's own read never waits
    assert waited_in_work >= 0.25
    assert waited_elsewhere < 0.25
