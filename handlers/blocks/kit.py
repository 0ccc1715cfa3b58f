"""The small Block Kit helpers every surface builds with: escaping and clipping text, text objects,
section, context, button and confirm, modal inputs, and the Slack date. Pure; imports no other module
of handlers.blocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers import ids

Block = dict[str, Any]
Message = dict[str, Any]


def esc(value: object) -> str:
    """Escape user data for mrkdwn, so `<!channel>` in a candidate's name pings nobody."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": mrkdwn(text), **extra}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t, 2000) for t in texts[:10] if t]}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: dict[str, Any] | None = None, url: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    if url:
        element["url"] = url[:3000]
    return element


def confirm(title: str, text: str, yes: str) -> dict[str, Any]:
    return {"title": plain(title, 100), "text": mrkdwn(text, 300), "confirm": plain(yes, 30), "deny": plain("Not now", 30)}


def _date(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{value:%Y-%m-%d %H:%M} UTC>"


# -- modals and their inputs --------------------------------------------------------------------


def _modal(callback_id: str, title: str, blocks: list[Block], *, submit: str | None = "Save", metadata: str = "") -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, 24),
        "close": plain("Cancel" if submit else "Close", 24),
        "blocks": blocks,
        "private_metadata": metadata[:3000],
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view


def text_input(
    block_id: str,
    action_id: str,
    label: str,
    *,
    optional: bool = False,
    initial: str | None = None,
    placeholder: str | None = None,
    hint: str | None = None,
    max_length: int = 200,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000), "optional": optional, "element": element}
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def test_select(*, initial: tuple[int, str] | None = None, label: str = "iMocha test") -> Block:
    element: dict[str, Any] = {
        "type": "external_select",
        "action_id": ids.TEST_INPUT,
        "placeholder": plain("Search your iMocha tests", 150),
        "min_query_length": 0,
    }
    if initial:
        element["initial_option"] = {"text": plain(clip(initial[1], 75), 75), "value": str(initial[0])}
    return {"type": "input", "block_id": ids.TEST_BLOCK, "label": plain(label), "element": element}


def channel_select(block_id: str, action_id: str, label: str, *, initial: str | None) -> Block:
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": action_id,
        "placeholder": plain("Pick a channel", 150),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if initial:
        element["initial_conversation"] = initial
    return {"type": "input", "block_id": block_id, "label": plain(label), "optional": True, "element": element}


def whole_number(action_id: str, low: int, high: int, *, initial: int | None = None) -> dict[str, Any]:
    """A `number_input` element for a whole number from `low` to `high`."""
    element: dict[str, Any] = {
        "type": "number_input",
        "action_id": action_id,
        "is_decimal_allowed": False,
        "min_value": str(low),
        "max_value": str(high),
    }
    if initial is not None:
        element["initial_value"] = str(initial)
    return element
