"""Shared steps for the wiring tests: get a card into a state, click its buttons, read what Slack shows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes import slack_requests as sr
from tests.fakes.slack import Message
from tests.wiring.conftest import CHANNEL, RECRUITER, Bot, ats_event, create_plan, setup_workspace


def settle(bot: Bot, predicate: Callable[[], bool], timeout: float = 8.0, *, message: str = "") -> None:
    """Deliver the Slack outbox until `predicate()` holds (the scheduler's outbox job, run by hand).

    The outbox paces posts per channel, so a burst of thread replies is postponed by a second or two;
    in production the scheduler delivers them later, here this loop does.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        bot.runtime.services.outbox.deliver()
        time.sleep(0.05)


def cards(bot: Bot, channel: str = CHANNEL) -> list[Message]:
    """Top-level bot messages in the channel that are cards (not broadcast thread replies)."""
    return [m for m in bot.slack.messages(channel) if m.thread_ts is None]


def card(bot: Bot, channel: str = CHANNEL, index: int = 0) -> Message:
    found = cards(bot, channel)
    assert len(found) > index, [m.text for m in bot.slack.messages(channel)]
    return found[index]


def card_json(bot: Bot, channel: str = CHANNEL, index: int = 0) -> str:
    return json.dumps(card(bot, channel, index).blocks)


def headline(message: Message) -> str:
    """The card's first section text (the status headline, with its emoji)."""
    assert message.blocks
    return str(message.blocks[0]["text"]["text"])


def buttons(message: Message) -> list[str]:
    return [e["text"]["text"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"] if e.get("type") == "button"]


def replies(bot: Bot, channel: str = CHANNEL, index: int = 0) -> list[Message]:
    return bot.slack.thread(channel, card(bot, channel, index).ts)


def wait_headline(bot: Bot, text: str, *, channel: str = CHANNEL, index: int = 0, timeout: float = 8.0) -> Message:
    settle(
        bot,
        lambda: len(cards(bot, channel)) > index and text in headline(card(bot, channel, index)),
        timeout,
        message=f"card never said {text!r}; it says {[headline(m) for m in cards(bot, channel)]}",
    )
    return card(bot, channel, index)


def app_id_of(message: Message) -> int:
    for block in message.blocks or []:
        if block["type"] == "actions":
            return int(block["elements"][0]["value"])
    raise AssertionError("the card has no buttons")


def new_card(bot: Bot, *, app: str = "app-42", event_id: str | None = None, share: bool = False, plan: bool = True, **event: Any) -> int:
    """Set up the workspace and a plan (unless already done) and bring one application to the stage."""
    if plan:
        setup_workspace(bot)
        r = create_plan(bot, share=share)
        assert r.status_code == 200, r.text
    before = len(cards(bot))
    r = bot.ats(ats_event(app, event_id=event_id or f"evt-{app}", **event))
    assert r.status_code == 202, r.text
    settle(bot, lambda: len(cards(bot)) == before + 1)
    return app_id_of(card(bot, index=before))


def submit_send(bot: Bot, app_id: int, *, user: str = RECRUITER, use: str | None = None, **kw: Any) -> httpx.Response:
    values: dict[str, Any] = {"test": {"test_select": sr.external("1001", "Python Developer")}}
    if use is not None:
        values["use"] = {"use_input": sr.radio(use)}
    return bot.submit(user, "imocha_send_confirm", values, private_metadata=json.dumps({"application_id": app_id}), **kw)


def sent_card(bot: Bot, *, share: bool = False) -> tuple[int, int]:
    """A card in "Assessment sent": returns (application id, iMocha invitation id)."""
    app_id = new_card(bot, share=share)
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    # let the send's other writes land too (the thread note and the link DM), so tests start from quiet
    settle(bot, lambda: bool(replies(bot)) and any("Test link" in json.dumps(m.blocks) for m in bot.slack.dms_to(RECRUITER)))
    invitations = bot.imocha.state.invitations()
    assert len(invitations) == 1
    return app_id, invitations[0].id


def click(bot: Bot, user: str, action_id: str, app_id: int, *, index: int = 0, rid: str | None = None, **kw: Any) -> httpx.Response:
    """Click a card button, from the card in the hiring channel."""
    message = card(bot, index=index)
    kw.setdefault("channel_id", CHANNEL)
    kw.setdefault("message_ts", message.ts)
    kw.setdefault("response_url", bot.slack.response_url(rid or user))
    r = bot.action(user, action_id, str(app_id), **kw)
    assert r.status_code == 200, r.text
    return r


def said_to(bot: Bot, rid: str) -> list[str]:
    """Everything posted to a response_url (ephemeral answers) as text."""
    return [json.dumps(p.body) for p in bot.slack.responses_to(rid)]


def poll(bot: Bot) -> None:
    """One status poll cycle, as the scheduler would run it.

    iMocha's window query takes whole seconds, so a change in the current second is only seen by the
    next cycle (the window overlaps the last one); wait for the second to turn so one cycle sees it.
    """
    time.sleep(1.02 - time.time() % 1)
    poller = bot.runtime.services.poller
    stats = poller.poll_all()
    assert all(s.ok for s in stats), stats


def complete(bot: Bot, inv_id: int, *, points: float = 42, via: str = "callback") -> None:
    """The candidate finishes with `points` of 50; the bot hears of it by a poll or a callback."""
    finished = bot.imocha.state.complete(inv_id, points=points)
    if via == "poll":
        poll(bot)
    else:
        assert post_callback(bot, bot.imocha.state.callback_payload(finished)).status_code == 200


def post_callback(bot: Bot, payload: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(f"{bot.url}/webhooks/imocha", content=body, headers={"Content-Type": "application/json"})
