"""`imocha-bot`: run, db upgrade, check, sandbox."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.runtime.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    import uvicorn
    from sqlalchemy import Engine

    from bot.runtime.app import Runtime
    from bot.workspace.crypto import SecretBox

log = logging.getLogger("bot.runtime.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imocha-bot", description="Run iMocha skills assessments from Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)")
    # Every interface: Slack, the ATS and iMocha must reach the bot, and containers need it (README, Deployment).
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    run.add_argument("--port", type=int, default=None)
    db = sub.add_parser("db", help="database commands")
    db.add_argument("action", choices=["upgrade"])
    sub.add_parser("check", help="verify configuration, Slack, database and each workspace's iMocha key")
    events = sub.add_parser("events", help="outgoing events (EVENTS_WEBHOOK_URL)")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    replay = events_sub.add_parser("replay", help="send again, in order, the events of every change since a time")
    replay.add_argument("--since", required=True, type=_iso_time, help="ISO 8601 time, e.g. 2026-12-01T00:00:00Z")
    replay.add_argument("--until", type=_iso_time, default=None, help="ISO 8601 time (default: now)")
    sandbox = sub.add_parser("sandbox", help="a local iMocha-compatible API with a candidate page")
    # Loopback only: the sandbox takes any sandbox- key and its operator page has no login.
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    sandbox.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            return _sandbox(args.host, args.port)
        settings = load_settings()
        from bot.runtime import logs

        logs.configure(settings.log_level, settings.log_format)
        if args.command == "db":
            return _db_upgrade(settings)
        if args.command == "events":
            return _events_replay(settings, args.since, args.until)
        if args.command == "check":
            from bot.runtime.check import run_check

            return run_check(settings)
        return _run(settings, args.host, args.port or settings.port)
    except ConfigError as exc:
        print(f"imocha-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _iso_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _events_replay(settings: Settings, since: datetime, until: datetime | None) -> int:
    from bot.ats.events import build_deliverer
    from bot.runtime.clock import system_clock
    from bot.runtime.preflight import open_database
    from store.db import make_session_factory

    if not settings.events_webhook_url or settings.events_webhook_secret is None:
        raise ConfigError("EVENTS_WEBHOOK_URL is not set: there is nowhere to replay events to")
    engine = open_database(settings)
    deliverer, http = build_deliverer(
        settings.events_webhook_url,
        settings.events_webhook_secret.get_secret_value(),
        make_session_factory(engine, system_clock),
        system_clock,
    )
    with http:
        delivered, failed = deliverer.replay(since, until)
    engine.dispose()
    print(f"replayed {delivered + failed} events to {settings.events_webhook_url}: {delivered} delivered, {failed} failed")
    return 1 if failed else 0


SANDBOX_EXTRA = "pip install 'imocha-slack-bot[sandbox]'"


def _sandbox(host: str, port: int) -> int:
    try:
        import reportlab  # noqa: F401  (the sandbox's report PDFs; the one thing its extra adds)
    except ImportError:
        print(f"imocha-bot: the sandbox is an optional extra; install it with: {SANDBOX_EXTRA}", file=sys.stderr)
        return 2
    from bot.runtime import logs
    from bot.sandbox import serve

    # The sandbox needs no configuration, but logs as the bot does when .env says how.
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
    except ConfigError:
        logs.configure("INFO", "text")
    _check_port(host, port, variable="--port")
    _catch_uvicorn_reraise()
    serve(host=host, port=port)
    return 0


def _catch_uvicorn_reraise() -> None:
    # uvicorn handles SIGTERM/SIGINT itself (stop accepting, finish in-flight requests) and re-raises the
    # signal afterwards; a no-op handler lets that re-raise land here, so clean-up runs and the exit is 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)


def _db_upgrade(settings: Settings) -> int:
    from bot.runtime.preflight import open_database

    engine = open_database(settings)
    try:
        before, after = _migrate(engine, settings)
    finally:
        engine.dispose()
    print(f"database schema at revision {after}" + (f" (upgraded from {before or 'empty'})" if before != after else " (up to date)"))
    return 0


def _migrate(engine: Engine, settings: Settings) -> tuple[str | None, str | None]:
    """Apply pending migrations; the revisions before and after."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.runtime.preflight import database_error
    from store.db import current_revision, upgrade

    try:
        before = current_revision(engine)
        upgrade(engine)
        return before, current_revision(engine)
    except SQLAlchemyError as exc:
        raise database_error(settings, exc) from None


def _run(settings: Settings, host: str, port: int) -> int:
    from bot.runtime import preflight
    from bot.workspace.crypto import SecretBox, load_secret_box

    # Local checks first, then Slack, then the database: a start that fails on Slack leaves no file behind.
    settings.require_slack()
    _check_port(host, port)
    if settings.encryption_key is not None:
        SecretBox(settings.encryption_key.get_secret_value())  # a malformed key stops here
    slack = preflight.check_slack(settings)
    engine = preflight.open_database(settings)
    schema = _schema(settings, engine)
    box = load_secret_box(settings)
    if settings.public_url_is_insecure:
        log.warning("PUBLIC_URL is plain http and not loopback: iMocha needs https for callbacks in production")
    runtime = _build_runtime(settings, engine, box)
    server = _server(runtime, host, port)
    stopped: list[str] = []
    link = runtime.socket_link
    if link is not None:
        _connect_socket_mode(runtime, server, stopped)
    mode = (
        "Socket Mode (Slack requests arrive over the WebSocket)"
        if link is not None
        else "HTTP mode (Slack sends requests to POST /slack/events)"
    )
    log.info("Slack: %s; %s", slack, mode)
    log.info("database %s: %s", preflight.show_database(engine), schema)
    if runtime.scheduler is not None:
        runtime.scheduler.start()
    log.info("listening on %s: %s", _where(host, port), _routes(settings))
    _catch_uvicorn_reraise()
    try:
        server.run()
    finally:
        log.info("shutting down: stopping the scheduler and closing clients")
        runtime.close()
    return 1 if stopped else 0


def _schema(settings: Settings, engine: Engine) -> str:
    """The schema line of the start-up log: SQLite is migrated here; another database must be at head already."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.runtime import preflight
    from store.db import current_revision, head_revision

    if settings.is_sqlite:
        before, revision = _migrate(engine, settings)
        schema = f"schema at revision {revision}" + (f" (upgraded from {before or 'empty'})" if before != revision else "")
    else:
        try:
            revision, head = current_revision(engine), head_revision(engine)
        except SQLAlchemyError as exc:
            raise preflight.database_error(settings, exc) from None
        if revision != head:
            raise ConfigError(f"DATABASE_URL: the schema is at {revision or 'nothing'}, not {head}; run `imocha-bot db upgrade` first")
        schema = f"schema at revision {revision}"
    return schema


def _server(runtime: Runtime, host: str, port: int) -> uvicorn.Server:
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            runtime.web,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # uvicorn's own warnings go through bot/runtime/logs.py's format, not a second one
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=20,
        )
    )


def _connect_socket_mode(runtime: Runtime, server: uvicorn.Server, stopped: list[str]) -> None:
    """Connect the Socket Mode link before serving; a link that stops later ends the server (`stopped` says why)."""
    from bot.slack.socket_mode import SocketModeStopped

    link = runtime.socket_link
    assert link is not None

    def stop(reason: str) -> None:  # the link logged why; serve nothing more
        stopped.append(reason)
        server.should_exit = True

    link.stop_listeners.append(stop)
    try:
        connected = link.connect(timeout=10)
    except SocketModeStopped as exc:
        runtime.close()
        raise ConfigError(str(exc)) from None
    if not connected:
        # Never connected at all is a start-up failure; once up, the link reconnects by itself.
        runtime.close()
        raise ConfigError(
            "SLACK_APP_TOKEN: Slack accepted the app token, but the Socket Mode WebSocket could not be opened within 10 s;"
            " allow outbound WebSocket (wss://) connections to Slack, then start again"
        )


def _build_runtime(settings: Settings, engine: Engine, box: SecretBox) -> Runtime:
    """The composition root, with Slack's refusals and outages (after the check above passed) as one line."""
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    from bot.runtime import preflight
    from bot.runtime.app import build_runtime

    try:
        return build_runtime(settings, engine=engine, box=box, with_scheduler=True)
    except SlackApiError as exc:
        raise preflight.slack_api_error(settings, exc) from None
    except BoltError as exc:
        raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({str(exc).splitlines()[0][:120]})") from None
    except preflight.NETWORK_ERRORS as exc:
        raise preflight.slack_unreachable(settings, exc) from None


def _where(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        return f"http://{host or '0.0.0.0'}:{port} (every interface; http://127.0.0.1:{port} from this machine)"
    return f"http://{host}:{port}"


def _routes(settings: Settings) -> str:
    def webhook(path: str, secret: object, variable: str) -> str:
        return path if secret is not None else f"{path} off (set {variable})"

    routes = ["POST /slack/events"] if not settings.socket_mode else []
    if settings.oauth_enabled:
        routes.append("GET /slack/install")
    routes += [
        webhook("/webhooks/ats", settings.ats_webhook_secret, "ATS_WEBHOOK_SECRET"),
        webhook("/webhooks/greenhouse", settings.greenhouse_webhook_secret, "GREENHOUSE_WEBHOOK_SECRET"),
        "/webhooks/imocha",
        "/healthz",
        "/metrics",
    ]
    return ", ".join(routes)


def _check_port(host: str, port: int, *, variable: str = "PORT") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"--host {host} is not an address of this machine ({exc.strerror}); use 0.0.0.0 (every interface) or 127.0.0.1"
                ) from None
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
            raise ConfigError(
                f"{variable} {port} on {host} {reason}; pick another with --port" + (" or PORT" if variable == "PORT" else "")
            ) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
