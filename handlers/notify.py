"""Telling the person who acted what happened, when there is no modal or card to show it."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.runtime.services import Services

log = logging.getLogger("handlers")


def tell(services: Services, team_id: str, user_id: str, text: str, *, respond: Any = None) -> None:
    """An ephemeral answer through response_url when there is one, else a DM."""
    try:
        if respond is not None and getattr(respond, "response_url", None):
            respond(text=text, response_type="ephemeral", replace_original=False)
            return
        channel = services.gateway.dm_channel(team_id, user_id)
        services.gateway.client(team_id).chat_postMessage(channel=channel, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", user_id, exc.response.get("error"))
