"""The composition root: settings → engine → clients → services → Bolt app → scheduler → web app."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, ServerErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.assessments import Assessments
from bot.assessments.callbacks import CallbackHandler
from bot.assessments.decisions import Decisions
from bot.assessments.poller import StatusPoller
from bot.ats.events import EventDeliverer, build_deliverer
from bot.ats.gem import GemClient, GemClients
from bot.ats.gem.notes import WRITEBACK_CLAIMS
from bot.ats.gem.poller import GemPoller
from bot.ats.greenhouse import HarvestClients
from bot.ats.intake import Intake
from bot.ats.writeback import CLAIMS as WRITEBACK_QUEUE
from bot.ats.writeback import DecisionWriteback
from bot.digest import Digests
from bot.imocha import ImochaClient
from bot.runtime import metrics
from bot.runtime.claims import ClaimKeeper, claim_holder_id, process_holder_id
from bot.runtime.clock import system_clock
from bot.runtime.config import Settings
from bot.runtime.services import Services
from bot.runtime.web import FrontDoor, RouteServices, create_web_app
from bot.slack.access import Access
from bot.slack.acks import AckGate, WorkPool
from bot.slack.gateway import SlackGateway
from bot.slack.home import HomeQueue
from bot.slack.outbox import CLAIMS as OUTBOX_CLAIMS
from bot.slack.outbox import SlackOutbox
from bot.slack.outbox.lanes import LANE_THREAD, MAX_LANES
from bot.slack.socket_mode import SocketModeLink
from bot.slack.workflow_step import WorkflowStep
from bot.workspace.crypto import SecretBox, load_secret_box
from bot.workspace.plans import Plans
from bot.workspace.settings import Workspaces
from bot.workspace.setup import WorkspaceSetup
from store import repos
from store.db import make_engine, make_session_factory, ping

log = logging.getLogger("bot.runtime.app")

LISTENER_THREADS = 64


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    http: httpx.Client
    services: Services
    bolt: App | None
    web: FrontDoor
    callbacks: CallbackHandler
    scheduler: Any = None
    closers: list[Callable[[], Any]] = field(default_factory=list)
    gem_poller: GemPoller | None = None
    clock: Callable[[], datetime] = system_clock  # the one clock every service and the store were given
    events: EventDeliverer | None = None  # set when EVENTS_WEBHOOK_URL is
    claims: ClaimKeeper | None = None
    socket_link: SocketModeLink | None = None  # Socket Mode (SLACK_APP_TOKEN set); `connect()` opens it

    def close(self) -> None:
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                log.exception("error while shutting down")


def build_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    box: SecretBox | None = None,
    clock: Callable[[], datetime] = system_clock,
    imocha_transport: httpx.BaseTransport | None = None,
    gem_transport: httpx.BaseTransport | None = None,
    harvest_transport: httpx.BaseTransport | None = None,
    token_verification: bool = True,
    with_scheduler: bool = False,
    holder_id: str | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Runtime:
    """Settings → the foundation (store, vendor clients, ack gate) → services and claims → Bolt → jobs, link, web app."""
    base = _foundation(
        settings,
        engine=engine,
        box=box,
        clock=clock,
        imocha_transport=imocha_transport,
        gem_transport=gem_transport,
        harvest_transport=harvest_transport,
    )
    holder_id = holder_id or process_holder_id()
    core = _core(base, claim_holder_id(holder_id), monotonic)
    bolt = _bolt(base, core.services, token_verification)
    closers = _closers(base, core)
    events = _events(base, closers)
    scheduler = _scheduler(base, core, holder_id, events) if with_scheduler else None
    socket_link = _socket_link(base, bolt, monotonic)
    if scheduler is not None:
        closers.append(lambda: scheduler.shutdown(wait=True))
    if socket_link is not None:
        closers.append(socket_link.close)  # first to close: no new Slack requests while the rest shuts down
    web = create_web_app(
        _route_services(base, core, bolt, socket_link),
        # The process that runs the background jobs also watches for work whose holder died (first: the
        # test lists wait for iMocha).
        on_startup=([core.claims.start] if scheduler is not None else []) + [core.services.workspaces.warm_test_lists],
    )
    return Runtime(
        settings=settings,
        engine=base.engine,
        session_factory=base.session_factory,
        http=base.http,
        services=core.services,
        bolt=bolt,
        web=web,
        callbacks=core.callbacks,
        scheduler=scheduler,
        closers=closers,
        gem_poller=core.gem_poller,
        clock=clock,
        events=events,
        claims=core.claims,
        socket_link=socket_link,
    )


class _SlackTokens:
    """Which bot token a workspace's Slack calls use: its installation's (OAuth), or SLACK_BOT_TOKEN's; and
    the workspace that one token belongs to, asked of Slack once."""

    def __init__(self, settings: Settings, installation_store: Any | None):
        self.installation_store = installation_store
        self.single_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        self._api_url = settings.slack_api_url
        self._team: str | None = None
        self._lock = threading.Lock()

    def token_for(self, team_id: str) -> str | None:
        if self.installation_store is not None:
            bot = self.installation_store.find_bot(enterprise_id=None, team_id=team_id)
            return bot.bot_token if bot else None
        return self.single_token

    def default_team_id(self) -> str | None:
        if self.installation_store is not None:
            return None
        with self._lock:
            if self._team is None and self.single_token:
                self._team = str(WebClient(token=self.single_token, base_url=self._api_url).auth_test()["team_id"])
            return self._team


@dataclass(frozen=True)
class _Foundation:
    """What every service is built on: the store, the vendors' HTTP clients, Slack's tokens and gateway,
    and the ack gate their calls and transactions yield to."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    box: SecretBox
    clock: Callable[[], datetime]
    http: httpx.Client  # iMocha's
    gem_http: httpx.Client
    gem_clients: GemClients
    harvest_clients: HarvestClients
    harvest_https: list[httpx.Client]
    tokens: _SlackTokens
    gate: AckGate
    gateway: SlackGateway

    def imocha_client(self, key: str) -> ImochaClient:
        return ImochaClient(self.http, key, clock=self.clock)


def _foundation(
    settings: Settings,
    *,
    engine: Engine | None,
    box: SecretBox | None,
    clock: Callable[[], datetime],
    imocha_transport: httpx.BaseTransport | None,
    gem_transport: httpx.BaseTransport | None,
    harvest_transport: httpx.BaseTransport | None,
) -> _Foundation:
    engine = engine or make_engine(settings.database_url)
    session_factory = make_session_factory(engine, clock)
    box = box or load_secret_box(settings)
    http = ImochaClient.build_http(settings.imocha_base_url, transport=imocha_transport)
    gem_http = GemClient.build_http(settings.gem_base_url, transport=gem_transport)
    gem_secret = settings.gem_application_secret.get_secret_value() if settings.gem_application_secret else None
    harvest_clients, harvest_https = HarvestClients.build(
        settings.greenhouse_harvest_url, settings.greenhouse_auth_url, transport=harvest_transport, clock=clock
    )
    installation_store = None
    if settings.oauth_enabled:
        from bot.slack.oauth import EncryptedInstallationStore

        installation_store = EncryptedInstallationStore(client_id=str(settings.slack_client_id), engine=engine, box=box)
    tokens = _SlackTokens(settings, installation_store)

    # Acks first (bot/slack/acks.py): work-pool tasks wait while Slack requests are answered, and yield again
    # before each iMocha and Slack call and each database transaction they start.
    gate = AckGate(max_wait=0.5, step_wait=0.2, defer_gc=True)
    http.event_hooks["request"].append(gate.yield_to_acks)
    gate.watch_sessions(session_factory)
    return _Foundation(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        box=box,
        clock=clock,
        http=http,
        gem_http=gem_http,
        gem_clients=GemClients(gem_http, application_secret=gem_secret, clock=clock),
        harvest_clients=harvest_clients,
        harvest_https=harvest_https,
        tokens=tokens,
        gate=gate,
        gateway=SlackGateway(base_url=settings.slack_api_url, token_for=tokens.token_for, before_call=gate.yield_to_acks),
    )


@dataclass(frozen=True)
class _Core:
    """The services, the claims their queued work is taken under, and the two services outside `Services`."""

    claims: ClaimKeeper
    services: Services
    gem_poller: GemPoller
    callbacks: CallbackHandler


def _core(base: _Foundation, holder: str, monotonic: Callable[[], float]) -> _Core:
    # Claims on Slack writes and Gem notes, renewed while this process lives (bot/runtime/claims.py); work a dead
    # process claimed is resumed here, on a thread that lets the acks go first.
    claims = ClaimKeeper(
        base.session_factory,
        holder=holder,
        clock=base.clock,
        executor=WorkPool(max_workers=1, gate=base.gate, thread_name_prefix="claims"),
    )
    services, gem_poller, writeback = _services(base, claims)
    claims.recover_with(OUTBOX_CLAIMS, services.outbox.kick)
    claims.recover_with(WRITEBACK_CLAIMS, gem_poller.write_back)
    claims.recover_with(WRITEBACK_QUEUE, writeback.run)
    callbacks = CallbackHandler(
        session_factory=base.session_factory,
        workspaces=services.workspaces,
        clock=base.clock,
        after_change=services.outbox.kick,
        monotonic=monotonic,
    )
    return _Core(claims, services, gem_poller, callbacks)


def _services(base: _Foundation, claims: ClaimKeeper) -> tuple[Services, GemPoller, DecisionWriteback]:
    """The services the listeners, the routes and the jobs call; and the Gem poller and the write-back,
    whose claims the keeper resumes."""
    from handlers.digest import DigestRenderer

    sf, clock, gateway, settings = base.session_factory, base.clock, base.gateway, base.settings
    outbox = _outbox(base, claims)
    workspaces = Workspaces(
        session_factory=sf,
        box=base.box,
        imocha_factory=base.imocha_client,
        gem_factory=base.gem_clients,
        harvest_factory=base.harvest_clients,
        clock=clock,
    )
    access = Access(gateway=gateway, admin_ids=settings.admin_ids)
    plans = Plans(session_factory=sf, access=access)
    intake = Intake(
        session_factory=sf, outbox=outbox, user_by_email=gateway.user_by_email, default_team_id=base.tokens.default_team_id, access=access
    )
    assessments = Assessments(
        session_factory=sf, workspaces=workspaces, outbox=outbox, clock=clock, callback_url=settings.callback_url, access=access
    )
    poller = StatusPoller(sf, workspaces, clock, max_workers=8, after_change=outbox.kick, access=access)
    gem_poller = GemPoller(
        sf, workspaces, base.gem_clients, intake, clock, deliver=outbox.deliver_later, user_by_email=gateway.user_by_email, claims=claims
    )
    writeback = _writeback(base, workspaces, access, outbox, gem_poller, claims)
    services = Services(
        settings=settings,
        workspaces=workspaces,
        setup=WorkspaceSetup(workspaces=workspaces, access=access),
        plans=plans,
        intake=intake,
        assessments=assessments,
        decisions=Decisions(session_factory=sf, assessments=assessments, outbox=outbox, clock=clock, writeback=writeback),
        outbox=outbox,
        gateway=gateway,
        access=access,
        poller=poller,
        home=HomeQueue(session_factory=sf, access=access),
        # bench/ack.py: more threads slowed the acks; the gate holds the work back while acks are due (bot/slack/acks.py)
        background=WorkPool(max_workers=8, gate=base.gate),
        digests=Digests(session_factory=sf, gateway=gateway, renderer=DigestRenderer(), clock=clock, access=access),
        workflow_step=WorkflowStep(
            workspaces=workspaces, plans=plans, intake=intake, assessments=assessments, outbox=outbox, gateway=gateway
        ),
        writeback=writeback,
    )
    return services, gem_poller, writeback


def _outbox(base: _Foundation, claims: ClaimKeeper) -> SlackOutbox:
    from handlers.blocks import SlackRenderer

    return SlackOutbox(
        session_factory=base.session_factory,
        gateway=base.gateway,
        renderer=SlackRenderer(),
        clock=base.clock,
        on_error=lambda kind: metrics.SLACK_ERRORS.labels(kind=kind).inc(),
        claims=claims,
        # channels drained in parallel; each lane's thread lets the acks go first, like the work pool
        lane_pool=WorkPool(max_workers=MAX_LANES, gate=base.gate, thread_name_prefix=LANE_THREAD),
    )


def _writeback(
    base: _Foundation, workspaces: Workspaces, access: Access, outbox: SlackOutbox, gem_poller: GemPoller, claims: ClaimKeeper
) -> DecisionWriteback:
    # Decisions written back to Greenhouse (as the Greenhouse user with the clicker's Slack email) and Gem.
    gateway = base.gateway
    return DecisionWriteback(
        session_factory=base.session_factory,
        workspaces=workspaces,
        harvest_clients=base.harvest_clients,
        gem_clients=base.gem_clients,
        slack_email=lambda team, user: gateway.user(team, user).email,
        clock=base.clock,
        access=access,
        deliver_slack=outbox.deliver,
        gem_author=gem_poller.note_author,
        claims=claims,
        gem_holds=gem_poller.holds,  # one Gem 429 pauses polling and every Gem write of the workspace
    )


def _closers(base: _Foundation, core: _Core) -> list[Callable[[], Any]]:
    # Closed in reverse: the scheduler's jobs and the work pool finish, then the claims stop, then the engine.
    services = core.services
    return [
        base.http.close,
        base.gem_http.close,
        *(client.close for client in base.harvest_https),
        base.engine.dispose,
        core.claims.stop,
        services.outbox.close,  # lanes finish the row they are on while their claims are still renewed
        lambda: services.background.shutdown(wait=True),
        services.workspaces.close,  # a test-list load still writing its cache finishes first
    ]


def _events(base: _Foundation, closers: list[Callable[[], Any]]) -> EventDeliverer | None:
    """The outgoing events webhook, when EVENTS_WEBHOOK_URL and its secret are set (its client closes last)."""
    settings = base.settings
    if not (settings.events_webhook_url and settings.events_webhook_secret):
        return None
    events, events_http = build_deliverer(
        settings.events_webhook_url, settings.events_webhook_secret.get_secret_value(), base.session_factory, base.clock
    )
    closers.insert(0, events_http.close)
    return events


def _bolt(base: _Foundation, services: Services, token_verification: bool) -> App:
    """Bolt and its listeners; with SLACK_BOT_TOKEN, the token's workspace is made known at once."""
    tokens = base.tokens
    bolt = build_bolt(
        base.settings, services, installation_store=tokens.installation_store, engine=base.engine, token_verification=token_verification
    )
    if tokens.installation_store is None and tokens.single_token and token_verification:
        team = tokens.default_team_id()
        if team:
            services.workspaces.ensure(team)
    return bolt


def _scheduler(base: _Foundation, core: _Core, holder_id: str, events: EventDeliverer | None) -> Any:
    services = core.services
    return build_scheduler(
        base.settings,
        services,
        services.poller,
        base.session_factory,
        base.clock,
        holder_id,
        gem_poller=core.gem_poller,
        events=events,
        gate=base.gate,
    )


def _socket_link(base: _Foundation, bolt: App, monotonic: Callable[[], float]) -> SocketModeLink | None:
    """The Socket Mode link, in Socket Mode (SLACK_APP_TOKEN set); the CLI opens it with its `connect()`."""
    settings = base.settings
    if not (settings.socket_mode and settings.slack_app_token is not None):
        return None
    return SocketModeLink(bolt, app_token=settings.slack_app_token.get_secret_value(), gate=base.gate, monotonic=monotonic)


def _route_services(base: _Foundation, core: _Core, bolt: App, socket_link: SocketModeLink | None) -> RouteServices:
    """What the web routes need; in Socket Mode Slack's requests arrive over the link, not at /slack/events."""
    settings = base.settings
    engine = base.engine
    return RouteServices(
        bolt=bolt if not settings.socket_mode else None,
        signing_secret=settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret and not settings.socket_mode
        else None,
        intake=core.services.intake,
        outbox=core.services.outbox,
        callbacks=core.callbacks,
        ping_db=lambda: ping(engine),
        ats_secret=settings.ats_webhook_secret.get_secret_value() if settings.ats_webhook_secret else None,
        greenhouse_secret=settings.greenhouse_webhook_secret.get_secret_value() if settings.greenhouse_webhook_secret else None,
        greenhouse_team=base.tokens.default_team_id,
        oauth_enabled=settings.oauth_enabled,
        gate=base.gate,
        socket_status=socket_link.status if socket_link is not None else None,
    )


def build_bolt(settings: Settings, services: Services, *, installation_store: Any, engine: Engine, token_verification: bool) -> App:
    from handlers import register_all

    # Bolt's client only opens, updates and publishes views (idempotent), so a 5xx or 429 is retried
    # once: an unretried views.publish left App Home stale with nobody told.
    client = WebClient(
        base_url=settings.slack_api_url,
        token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token and installation_store is None else None,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=1),
        ],
    )
    common: dict[str, Any] = {
        "signing_secret": settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "socket-mode",
        "client": client,
        "listener_executor": ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt"),
        # Listeners run on the request's own thread and Bolt answers when they return: each one acks and
        # hands anything slow to services.background (handlers/after_ack.py). Bolt's other mode runs them
        # on listener_executor and polls for the ack every 10 ms: a thread hop, 10 ms and 0.8 ms of CPU more.
        "process_before_response": True,
        # bot/runtime/web.py checks each request's signature before Bolt sees it, and hands Bolt the body it
        # parsed (no raw body to check again).
        "request_verification_enabled": False,
        "raise_error_for_unhandled_request": False,
    }
    with _hidden_from_bolt():
        app = _bolt_app(settings, common, installation_store=installation_store, engine=engine, token_verification=token_verification)

    @app.middleware
    def skip_slack_retries(request: Any, next: Callable[[], BoltResponse]) -> BoltResponse:
        # Slack redelivers events it thinks timed out; the first delivery is already being handled.
        if request.headers.get("x-slack-retry-num"):
            return BoltResponse(status=200, body="")
        return next()

    register_all(app, services)
    return app


@contextmanager
def _hidden_from_bolt() -> Iterator[None]:
    """Hide the Slack variables from Bolt's constructor, which reads them by itself when present.

    Settings already gave it the client (token and base URL) and OAuth settings: with SLACK_BOT_TOKEN in
    the environment too, Bolt warned "As you gave `client` as well, `token` will be unused" on every start.
    """
    hidden = {name: os.environ.pop(name) for name in ("SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET") if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


def _bolt_app(settings: Settings, common: dict[str, Any], *, installation_store: Any, engine: Engine, token_verification: bool) -> App:
    if installation_store is not None:
        from slack_bolt.oauth.oauth_settings import OAuthSettings
        from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

        from bot.slack.oauth import BOT_SCOPES

        state_store = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine)
        return App(
            oauth_settings=OAuthSettings(
                client_id=str(settings.slack_client_id),
                client_secret=settings.slack_client_secret.get_secret_value() if settings.slack_client_secret else "",
                scopes=BOT_SCOPES,
                installation_store=installation_store,
                state_store=state_store,
                redirect_uri=f"{settings.public_url}/slack/oauth_redirect" if settings.public_url else None,
            ),
            installation_store=installation_store,
            **common,
        )
    return App(token_verification_enabled=token_verification, **common)


def build_scheduler(
    settings: Settings,
    services: Services,
    poller: Any,
    session_factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    holder_id: str | None,
    *,
    gem_poller: GemPoller | None = None,
    events: EventDeliverer | None = None,
    gate: AckGate | None = None,
) -> Any:
    from bot.assessments.reminders import Reminders
    from bot.runtime.scheduler import Scheduler

    reminders = Reminders(session_factory, clock)
    jobs = {
        "poll": poller.poll_all,
        "sweep": poller.sweep,
        "recover_sends": services.assessments.recover_stuck_sends,
        "reminders": reminders.run,
        "outbox": services.outbox.kick,  # lanes run on the outbox's own threads, at Slack's pace
    }
    if services.writeback is not None:
        jobs["writeback"] = services.writeback.run
    if gem_poller is not None:
        jobs["gem"] = gem_poller.run
    if events is not None:
        jobs["events"] = events.run
    if services.digests is not None:
        jobs["digest"] = services.digests.run
    return Scheduler(
        poll_seconds=settings.imocha_poll_seconds,
        jobs=jobs,
        session_factory=session_factory,
        holder_id=holder_id or process_holder_id(),
        clock=clock,
        around=gate.work if gate is not None else nullcontext,
    )


__all__ = ["Runtime", "build_runtime", "repos"]
