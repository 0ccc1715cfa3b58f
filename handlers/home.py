"""App Home (the queue), the iMocha test picker's options, and uninstall events."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.listener.builtins import TokenRevocationListeners
from slack_sdk import WebClient

from bot.digest import DigestStats
from bot.domain import Actor, DomainError, ImochaUnavailable, normalise_key
from bot.runtime.services import Services
from handlers import blocks, ids, parse
from handlers.after_ack import after_ack
from handlers.digest import build_week_line

log = logging.getLogger("handlers.home")


def publish_home(services: Services, client: WebClient, team: str, user: str, page: int = 0) -> None:
    data = services.home.for_user(team, user, page=page)
    settings = services.workspaces.settings(team)
    week: dict[str, list[DigestStats]] = {}
    if services.digests is not None:
        for stats in services.digests.figures(team):
            if stats.active or stats.waiting:
                week.setdefault(normalise_key(stats.job_label), []).append(stats)
    view = blocks.build_home(
        week={job: build_week_line(figures) for job, figures in week.items()},
        jobs=data.jobs,
        total=data.total,
        shown=data.shown,
        page=data.page,
        configured=settings.has_imocha_key,
        is_admin=settings.has_imocha_key or services.setup.allowed(team, Actor(user)),
    )
    client.views_publish(user_id=user, view=view)


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        team, user = str(context.team_id), str(event.get("user"))
        after_ack(services, "app_home_opened", lambda: publish_home(services, client, team, user))

    @app.action(ids.HOME_REFRESH)
    def refresh(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        after_ack(services, "Refresh", lambda: publish_home(services, client, team, user))

    @app.action(ids.HOME_MORE)
    def more(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        page = min(parse.int_or_none(action.get("value")) or 0, 80)
        team, user = parse.team_id(body, context), parse.user_id(body)
        after_ack(services, "Show more", lambda: publish_home(services, client, team, user, page=page))

    @app.options(ids.TEST_INPUT)
    def test_options(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        team = parse.team_id(body, context)
        query = str(body.get("value") or "").strip().casefold()
        try:
            tests = services.workspaces.test_options(team)
        except DomainError as exc:
            log.warning("test list for %s failed: %s", team, exc.kind if isinstance(exc, ImochaUnavailable) else exc.__class__.__name__)
            ack(options=[{"text": blocks.plain("Couldn't load tests from iMocha; try again", 75), "value": "unavailable"}])
            return
        if tests is None:
            ack(options=[{"text": blocks.plain("Still loading tests from iMocha… type another letter", 75), "value": "loading"}])
            return
        matches = [t for t in tests if query in t.name.casefold() or query == str(t.test_id)][:100]
        ack(options=[{"text": blocks.plain(blocks.clip(t.name, 75), 75), "value": str(t.test_id)} for t in matches])

    # Our listeners replace Bolt's built-in ones, so they also drop the stored tokens (OAuth mode).
    revocation = TokenRevocationListeners(app.installation_store) if app.installation_store is not None else None

    @app.event("app_uninstalled")
    def uninstalled(context: BoltContext) -> None:
        def forget() -> None:
            services.workspaces.deactivate(str(context.team_id))
            if revocation is not None:
                revocation.handle_app_uninstalled_events(context)

        after_ack(services, "app_uninstalled", forget)

    @app.event("tokens_revoked")
    def revoked(event: dict[str, Any], context: BoltContext) -> None:
        def forget() -> None:
            if (event.get("tokens") or {}).get("bot"):
                services.workspaces.deactivate(str(context.team_id))
            if revocation is not None:
                revocation.handle_tokens_revoked_events(event, context)

        after_ack(services, "tokens_revoked", forget)
