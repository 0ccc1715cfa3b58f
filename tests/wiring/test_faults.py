"""Faults between the bot and its dependencies: the database drops its connections or is unreachable,
Slack answers 5xx/429, iMocha rate limits or times out during cancel, re-attempt and polling.

Each test checks that state stays right, that the write lands exactly once after the fault clears,
and that the person who acted is told what happened.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import Engine, select, text, update

from bot.imocha import RetryPolicy
from bot.runtime.serving import ServerThread, free_port
from bot.runtime.web import RouteServices, create_web_app
from store.db import make_engine, ping
from store.models import Application, Invitation, OutboxMessage, Workspace
from tests.fakes import slack_requests as sr
from tests.wiring.conftest import CHANNEL, MEMBER, RECRUITER, TEAM, Bot, ats_event, create_plan, setup_workspace
from tests.wiring.helpers import (
    app_id_of,
    card,
    cards,
    click,
    complete,
    headline,
    new_card,
    poll,
    replies,
    said_to,
    sent_card,
    settle,
    submit_send,
    wait_headline,
)


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The iMocha client still makes every attempt; only its pauses between them (backoff, Retry-After) go."""
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rand: 0.0)
    monkeypatch.setattr(RetryPolicy, "honour", lambda self, retry_after: 0.0)


def _link_dms(bot: Bot, user: str = RECRUITER) -> int:
    return sum("Test link" in json.dumps(m.blocks) for m in bot.slack.dms_to(user))


def _quiet(bot: Bot, seconds: float = 0.3) -> None:
    time.sleep(seconds)
    bot.runtime.services.outbox.deliver()


def _pending(bot: Bot) -> list[tuple[str, str | None]]:
    with bot.runtime.session_factory() as session:
        return [
            (k, e) for k, e in session.execute(select(OutboxMessage.kind, OutboxMessage.last_error).where(OutboxMessage.done_at.is_(None)))
        ]


def _due_now(bot: Bot) -> None:
    """Move the outbox's clock past every postponed row (a 5xx is retried after 2, 4, 8… seconds)."""
    with bot.runtime.session_factory.begin() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.done_at.is_(None)).values(next_attempt_at=bot.runtime.clock()))


def _app_row(bot: Bot, app_id: int) -> tuple[str, str | None]:
    with bot.runtime.session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None
        return app.status, app.sending_by


def _no_duplicate_posts(bot: Bot, *channels: str) -> None:
    for channel in channels:
        seen = [(m.thread_ts, m.text, json.dumps(m.blocks)) for m in bot.slack.messages(channel)]
        assert len(seen) == len(set(seen)), f"a message was posted twice in {channel}"


def _dm_channel(bot: Bot, user: str) -> str:
    return "D" + user  # the fake's IM ids (tests.fakes.slack._im_id)


# ---------------------------------------------------------------------------------- the database


def _terminate_bot_connections(engine: Engine) -> int:
    """Kill every other connection to the test database, from a separate admin connection."""
    admin = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        admin.dispose()


def test_the_journey_survives_the_database_dropping_every_connection_between_steps(bot: Bot, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("terminating server connections is a PostgreSQL fault")
    setup_workspace(bot)
    assert _terminate_bot_connections(engine) >= 1
    assert create_plan(bot).status_code == 200

    _terminate_bot_connections(engine)
    r = bot.ats(ats_event("app-42", event_id="evt-db-1"))
    assert r.status_code == 202, r.text
    settle(bot, lambda: len(cards(bot)) == 1)
    app_id = app_id_of(card(bot))

    _terminate_bot_connections(engine)
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    settle(bot, lambda: _link_dms(bot) == 1)

    # a job (the poll) right after the connections went
    inv_id = bot.imocha.state.invitations()[0].id
    bot.imocha.state.complete(inv_id, points=42)
    _terminate_bot_connections(engine)
    poll(bot)
    wait_headline(bot, "Assessment needs review")

    _terminate_bot_connections(engine)
    assert httpx.get(f"{bot.url}/healthz").status_code == 200
    _quiet(bot)
    assert len(cards(bot)) == 1
    assert len(bot.imocha.state.invitations()) == 1
    assert _link_dms(bot) == 1
    assert sum("completed" in (m.text or "") for m in replies(bot)) == 1
    _no_duplicate_posts(bot, CHANNEL, _dm_channel(bot, RECRUITER))
    assert bot.slack.violations == []


def test_healthz_answers_503_while_the_database_is_unreachable_and_200_again_after(bot: Bot, engine: Engine) -> None:
    down = {"now": True}
    unreachable = make_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone", pool_size=1, connect_args={"connect_timeout": 2}
    )

    def ping_db() -> None:
        ping(unreachable if down["now"] else engine)

    runtime = bot.runtime
    web = create_web_app(
        RouteServices(
            bolt=runtime.bolt,
            signing_secret="unused",
            intake=runtime.services.intake,
            outbox=runtime.services.outbox,
            callbacks=runtime.callbacks,
            ping_db=ping_db,
            ats_secret=None,
            greenhouse_secret=None,
            greenhouse_team=lambda: None,
        )
    )
    server = ServerThread(web).start()
    try:
        r = httpx.get(f"{server.url}/healthz", timeout=10)
        assert r.status_code == 503
        assert r.json() == {"status": "error", "db": "unreachable"}
        assert "postgres" not in r.text and "5432" not in r.text
        down["now"] = False
        r = httpx.get(f"{server.url}/healthz", timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok", "db": "ok"}
    finally:
        server.stop()
        unreachable.dispose()


# ---------------------------------------------------------------------------------- Slack faults


def test_a_slack_5xx_on_the_card_post_keeps_the_card_queued_and_posts_it_once(bot: Bot) -> None:
    setup_workspace(bot)
    assert create_plan(bot).status_code == 200
    bot.slack.fail("chat.postMessage", status=500, count=1)
    assert bot.ats(ats_event("app-42", event_id="evt-5xx")).status_code == 202
    bot.slack.wait_for(lambda _s: ("card", "internal_error") in _pending(bot), message="the refused card post was not kept")
    assert cards(bot) == []

    bot.runtime.services.outbox.deliver()  # not yet: the row waits its backoff
    assert cards(bot) == []
    _due_now(bot)
    settle(bot, lambda: len(cards(bot)) == 1)
    _quiet(bot)
    assert len(cards(bot)) == 1
    assert bot.slack.count("chat.postMessage") == 2  # the refused post and the one that landed
    assert _pending(bot) == []


def test_a_slack_429_on_a_thread_note_and_a_5xx_on_the_card_update_each_land_once(bot: Bot) -> None:
    app_id, _inv_id = sent_card(bot)
    bot.slack.reset_calls()
    bot.slack.fail("chat.update", status=503, count=1)
    bot.slack.fail("chat.postMessage", status=429, retry_after=1, count=1)

    click(bot, RECRUITER, "cancel_invitation", app_id)
    bot.slack.wait_for(lambda _s: len(_pending(bot)) == 2, message=f"both refused writes should wait: {_pending(bot)}")
    assert "Assessment sent" in headline(card(bot))  # the update was refused
    assert _app_row(bot, app_id) == ("cancelled", None)  # the state changed once, whatever Slack said

    time.sleep(1.05)  # Slack's Retry-After for the note
    _due_now(bot)  # and the update's backoff
    wait_headline(bot, "Assessment cancelled")
    settle(bot, lambda: any("cancelled the invitation" in (m.text or "") for m in replies(bot)))
    _quiet(bot)
    assert sum("cancelled the invitation" in (m.text or "") for m in replies(bot)) == 1
    assert sum("Assessment cancelled" in json.dumps(c.body.get("blocks")) for c in bot.slack.calls_to("chat.update")) == 2
    assert _pending(bot) == []
    assert bot.imocha.state.count("/cancel", "POST") == 1
    _no_duplicate_posts(bot, CHANNEL)


def test_a_slack_5xx_on_the_link_dm_is_retried_and_the_recruiter_gets_one_link(bot: Bot) -> None:
    app_id = new_card(bot)
    bot.slack.fail("chat.postMessage", status=502, count=1, empty_body=True)
    # the first postMessage after the send is the thread note or the DM; fail them both once
    bot.slack.fail("chat.postMessage", status=500, count=1)
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    for _ in range(3):
        _due_now(bot)
        bot.runtime.services.outbox.deliver()
        time.sleep(0.4)
    settle(bot, lambda: _link_dms(bot) == 1 and any("sent Python Developer" in (m.text or "") for m in replies(bot)))
    _quiet(bot)
    assert _link_dms(bot) == 1
    assert sum("sent Python Developer" in (m.text or "") for m in replies(bot)) == 1
    assert len(bot.imocha.state.invitations()) == 1
    _no_duplicate_posts(bot, CHANNEL, _dm_channel(bot, RECRUITER))


@pytest.mark.parametrize("status", [500, 429])
def test_app_home_publish_is_retried_once_after_a_slack_5xx_or_429(bot: Bot, status: int) -> None:
    setup_workspace(bot)
    bot.slack.reset_calls()
    bot.slack.fail("views.publish", status=status, count=1, retry_after=1)
    event = sr.event_callback(team_id=TEAM, event=sr.app_home_opened(user_id=RECRUITER), event_id=f"Ev-home-{status}")
    assert bot.sender.post(event, content_type=sr.JSON).status_code == 200
    calls = bot.slack.wait_for_calls("views.publish", 2, timeout=10)
    assert bot.slack.published_home(RECRUITER) is not None  # the Home tab is not left stale
    time.sleep(0.3)
    assert bot.slack.count("views.publish") == 2
    if status == 429:
        assert calls[1].at - calls[0].at >= 0.9  # Retry-After was honoured


def test_a_slack_5xx_on_the_send_modal_open_is_retried_once_and_the_modal_opens(bot: Bot) -> None:
    """views.open failing once (a Send click): Bolt's client retries it; no state changes before the submit."""
    app_id = new_card(bot)
    before = _app_row(bot, app_id)
    bot.slack.reset_calls()
    bot.slack.fail("views.open", status=500, count=1)
    click(bot, RECRUITER, "send_assessment", app_id, trigger_id="trig-5xx")
    bot.slack.wait_for_calls("views.open", 2)
    bot.slack.wait_for(lambda s: any(v.get("callback_id") == "imocha_send_confirm" for v in s.opened_views()))
    assert _app_row(bot, app_id) == before
    assert bot.imocha.state.invitations() == []


# ---------------------------------------------------------------------------------- iMocha faults


def _imocha_fault(bot: Bot, path: str, kind: str) -> None:
    """Make the next call (all the client's attempts) to `path` fail with `kind`: 429 or a timeout."""
    attempts = RetryPolicy().max_attempts
    if kind == "429":
        bot.imocha.state.fail_next(path, status=429, count=attempts, retry_after=1)
    else:
        bot.runtime.http.timeout = httpx.Timeout(0.2)
        bot.imocha.state.fail_next(path, status=504, count=attempts, delay=0.5)  # answers after the bot gave up


def _clear(bot: Bot) -> None:
    bot.runtime.http.timeout = httpx.Timeout(10.0)


WORDS = {"429": "iMocha is rate limiting us", "timeout": "iMocha could not be reached"}


@pytest.mark.parametrize("kind", ["429", "timeout"])
def test_imocha_fault_during_cancel_tells_the_clicker_keeps_the_assessment_and_the_retry_cancels(bot: Bot, kind: str) -> None:
    app_id, inv_id = sent_card(bot)
    _imocha_fault(bot, "/cancel", kind)
    click(bot, RECRUITER, "cancel_invitation", app_id, rid="cancel-1")
    settle(bot, lambda: any(WORDS[kind] in s for s in said_to(bot, "cancel-1")), timeout=10)
    assert any("Not cancelled" in s for s in said_to(bot, "cancel-1"))
    settle(bot, lambda: any("tried: cancelled" in (m.text or "") for m in replies(bot)))
    assert _app_row(bot, app_id) == ("sent", None)  # unchanged, and the action lock released
    assert "Assessment sent" in headline(card(bot))
    assert bot.imocha.state.invitation(inv_id).status == "Pending"

    _clear(bot)
    click(bot, RECRUITER, "cancel_invitation", app_id, rid="cancel-2")
    wait_headline(bot, "Assessment cancelled")
    assert bot.imocha.state.invitation(inv_id).status == "Cancelled"
    assert _app_row(bot, app_id) == ("cancelled", None)
    settle(bot, lambda: any("cancelled the invitation" in (m.text or "") for m in replies(bot)))
    _quiet(bot)
    assert said_to(bot, "cancel-2") == []
    assert sum("cancelled the invitation" in (m.text or "") for m in replies(bot)) == 1
    _no_duplicate_posts(bot, CHANNEL)


@pytest.mark.parametrize("kind", ["429", "timeout"])
def test_imocha_fault_during_reattempt_tells_the_clicker_keeps_the_result_and_the_retry_reopens(bot: Bot, kind: str) -> None:
    app_id, inv_id = sent_card(bot, share=True)
    complete(bot, inv_id)
    wait_headline(bot, "Assessment needs review")
    _imocha_fault(bot, "/reattempt", kind)
    click(bot, MEMBER, "allow_reattempt", app_id, rid="again-1")
    settle(bot, lambda: any(WORDS[kind] in s for s in said_to(bot, "again-1")), timeout=10)
    assert _app_row(bot, app_id) == ("needs_review", None)
    assert "needs review" in headline(card(bot))
    assert len(bot.imocha.state.invitations()) == 1

    _clear(bot)
    click(bot, MEMBER, "allow_reattempt", app_id, rid="again-2")
    wait_headline(bot, "Assessment sent")
    assert len(bot.imocha.state.invitations()) == 2
    _quiet(bot)
    assert said_to(bot, "again-2") == []
    assert len(cards(bot)) == 1


@pytest.mark.parametrize("kind", ["429", "timeout"])
def test_imocha_fault_during_polling_keeps_the_checkpoint_and_the_next_poll_sees_the_completion_once(bot: Bot, kind: str) -> None:
    app_id, inv_id = sent_card(bot)
    poll(bot)  # a first, clean cycle sets the checkpoint
    with bot.runtime.session_factory() as session:
        checkpoint = session.scalar(select(Workspace.poll_checkpoint))
    assert checkpoint is not None
    bot.imocha.state.complete(inv_id, points=40)
    _imocha_fault(bot, "/testattempts" if kind == "429" else "/reports/", kind)
    time.sleep(1.02 - time.time() % 1)

    stats = bot.runtime.services.poller.poll_all()
    assert [s.ok for s in stats] == [False]
    assert ("Rate" in (stats[0].error or "")) if kind == "429" else ("Connection" in (stats[0].error or ""))
    with bot.runtime.session_factory() as session:
        assert session.scalar(select(Workspace.poll_checkpoint)) == checkpoint  # the window is read again
        assert session.scalar(select(Invitation.status)) == "pending"
    assert "Assessment sent" in headline(card(bot))

    _clear(bot)
    if kind == "429":
        bot.runtime.services.poller.holds.clear()  # iMocha's Retry-After has passed
    poll(bot)
    wait_headline(bot, "Assessment needs review")
    settle(bot, lambda: any("completed" in (m.text or "") for m in replies(bot)))
    poll(bot)
    _quiet(bot)
    assert sum("completed" in (m.text or "") for m in replies(bot)) == 1
    assert _app_row(bot, app_id)[0] == "needs_review"
    _no_duplicate_posts(bot, CHANNEL, _dm_channel(bot, RECRUITER))
