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

from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("bot.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imocha-bot", description="Run iMocha skills assessments from Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)")
    run.add_argument("--host", default="0.0.0.0")
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
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            from bot import logs
            from bot.sandbox import serve

            logs.configure("INFO", "text")
            serve(host=args.host, port=args.port)
            return 0
        settings = load_settings()
        from bot import logs

        logs.configure(settings.log_level, settings.log_format)
        if args.command == "db":
            return _db_upgrade(settings)
        if args.command == "events":
            return _events_replay(settings, args.since, args.until)
        if args.command == "check":
            from bot.check import run_check

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
    from bot.clock import system_clock
    from bot.events import build_deliverer
    from store.db import make_engine, make_session_factory

    if not settings.events_webhook_url or settings.events_webhook_secret is None:
        raise ConfigError("EVENTS_WEBHOOK_URL is not set: there is nowhere to replay events to")
    engine = make_engine(settings.database_url)
    _require_db(engine, settings)
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


def _db_upgrade(settings: Settings) -> int:
    from store.db import current_revision, make_engine, upgrade

    engine = make_engine(settings.database_url)
    _require_db(engine, settings)
    upgrade(engine)
    print(f"database is at revision {current_revision(engine)}")
    return 0


def _require_db(engine: object, settings: Settings) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import ping

    try:
        ping(engine)  # type: ignore[arg-type]
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"DATABASE_URL: the database does not answer ({exc.__class__.__name__}: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0][:160]})"
        ) from None


def _run(settings: Settings, host: str, port: int) -> int:
    import uvicorn
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    from bot.app import build_runtime
    from store.db import current_revision, head_revision, make_engine, upgrade

    settings.require_slack()
    _check_port(host, port)
    engine = make_engine(settings.database_url)
    _require_db(engine, settings)
    if settings.is_sqlite:
        upgrade(engine)
    elif current_revision(engine) != head_revision(engine):
        raise ConfigError("DATABASE_URL: the schema is not up to date; run `imocha-bot db upgrade` first")
    if settings.public_url_is_insecure:
        log.warning("PUBLIC_URL is plain http and not loopback: iMocha needs https for callbacks in production")
    try:
        runtime = build_runtime(settings, engine=engine, with_scheduler=True)
    except (BoltError, SlackApiError) as exc:
        raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.web, host=host, port=port, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=20
        )
    )
    stopped: list[str] = []
    link = runtime.socket_link
    if link is not None:
        from bot.socket_mode import SocketModeStopped

        def stop(reason: str) -> None:  # the link logged why; serve nothing more
            stopped.append(reason)
            server.should_exit = True

        link.stop_listeners.append(stop)
        try:
            if link.connect(timeout=10):
                log.info("connected to Slack over Socket Mode")
            else:
                log.warning("Socket Mode is not connected yet: still trying (GET /healthz says 503 after 30 s down)")
        except SocketModeStopped as exc:
            runtime.close()
            raise ConfigError(str(exc)) from None
    if runtime.scheduler is not None:
        runtime.scheduler.start()
    mode = "Socket Mode" if link is not None else "HTTP mode (POST /slack/events)"
    log.info("imocha-bot serving on http://%s:%s in %s; database %s", host, port, mode, engine.url.render_as_string(hide_password=True))
    # uvicorn handles SIGTERM/SIGINT itself (stop accepting, finish in-flight requests) and re-raises the
    # signal afterwards; a no-op handler lets that re-raise land here so the clean-up below runs.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    finally:
        log.info("shutting down: stopping the scheduler and closing clients")
        runtime.close()
    return 1 if stopped else 0


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
            raise ConfigError(f"PORT {port} on {host} {reason}; pick another with --port or PORT") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
