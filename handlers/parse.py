"""Typed reading of Slack payloads: view state values, private metadata, the acting user and team."""

from __future__ import annotations

import json
from typing import Any


def state(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return ((view.get("state") or {}).get("values")) or {}


def value(view: dict[str, Any], block_id: str, action_id: str) -> Any:
    """The input's value whatever its element type (None when empty)."""
    leaf = state(view).get(block_id, {}).get(action_id) or {}
    for key in ("value", "selected_conversation", "selected_channel", "selected_user", "selected_date"):
        if key in leaf:
            return leaf[key]
    if "selected_option" in leaf:
        return leaf["selected_option"]
    if "selected_options" in leaf:
        return leaf["selected_options"]
    return None


def text(view: dict[str, Any], block_id: str, action_id: str) -> str:
    raw = value(view, block_id, action_id)
    return raw.strip() if isinstance(raw, str) else ""


def option(view: dict[str, Any], block_id: str, action_id: str) -> tuple[str, str] | None:
    """(value, label) of a selected option."""
    raw = value(view, block_id, action_id)
    if isinstance(raw, dict) and raw.get("value") is not None:
        return str(raw["value"]), str((raw.get("text") or {}).get("text") or raw["value"])
    return None


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def team_id(body: dict[str, Any], context: Any) -> str:
    return str(context.get("team_id") or (body.get("team") or {}).get("id") or body.get("team_id") or "")


def user_id(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(body.get("user_id") or "")


def int_or_none(raw: object) -> int | None:
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        return None
