"""Slack listeners (thin), Block Kit builders (pure), and the ID catalogue."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.runtime.services import Services


def register_all(app: App, services: Services) -> None:
    from handlers import cards, commands, home, workflow

    commands.register(app, services)
    cards.register(app, services)
    home.register(app, services)
    workflow.register(app, services)

    @app.error
    def on_error(error: Exception, body: dict[str, Any], logger: Any) -> None:
        # The one error boundary for listeners: log with what was being handled, never the payload's secrets.
        kind = body.get("type") or ("command" if "command" in body else "event")
        logger.error("listener failed on %s: %s: %s", kind, error.__class__.__name__, error, exc_info=error)
