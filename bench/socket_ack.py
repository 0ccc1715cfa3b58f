"""Ack latency over Socket Mode: bench/ack.py's bursts of 200 as envelopes on the bot's WebSocket.

    .venv/bin/python bench/socket_ack.py                    # SQLite, 5 bursts of 200
    .venv/bin/python bench/socket_ack.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_ack

The same bot, fakes, seeding and burst mix as bench/ack.py (fake Slack 100 ms a call, fake iMocha
2 s), with SLACK_APP_TOKEN set: the fake Web API's apps.connections.open hands the bot the URL of
the fake Socket Mode server (tests/fakes/socket_mode.py), which runs in its own process and is the
load generator. A burst writes the 200 envelopes back to back on the one connection; each is timed
from just before its frame is written to when its ack is read (both on CLOCK_MONOTONIC). An
envelope without an ack within 10 s counts as a failure. Prints what bench/ack.py prints per burst.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ack import MIX, build_burst, run_bursts, seed_for_bursts, wait_quiet
from common import (
    SPAWN,
    BotProcess,
    Fakes,
    Request,
    Result,
    Seeded,
    backend,
    fresh_database,
    machine,
    profiling,
    setup_through_slack,
    sqlite_url,
    summary,
)

APP_TOKEN = "xapp-1-A0BENCH-socket"


def envelope(request: Request) -> tuple[str, dict[str, Any]]:
    """A Slack request body (as bench/ack.py builds it) as a Socket Mode envelope's type and payload."""
    from tests.fakes.socket_mode import form_fields, interactive_payload

    if request.content_type.endswith("json"):
        return "events_api", json.loads(request.body)
    if request.body.startswith("payload="):
        return "interactive", interactive_payload(request.body)
    return "slash_commands", form_fields(request.body)


def _serve(conn: Connection) -> None:
    """The fake Socket Mode server, in its own process, taking commands from the orchestrator."""
    from tests.fakes.socket_mode import FakeSocketMode

    server = FakeSocketMode(check_tickets=False).start()
    conn.send(server.url)
    while True:
        message = conn.recv()
        if message is None:
            server.stop()
            return
        command, arg = message
        try:
            if command == "wait_connected":
                server.wait_connected(timeout=arg)
                conn.send(True)
            elif command == "send":
                kind, payload = arg
                ack = server.deliver(kind, payload).wait_ack(10)
                conn.send(ack.payload)
            elif command == "burst":
                requests, timeout = arg
                deliveries = server.deliver_many([envelope(r) for r in requests])
                deadline = time.monotonic() + timeout
                for d in deliveries:
                    d.acked.wait(max(0.0, deadline - time.monotonic()))
                results = []
                for r, d in zip(requests, deliveries, strict=True):
                    if d.acked.is_set():
                        results.append(Result(r.kind, "socket", 200, d.acks[0].at - d.sent_at, None, d.sent_at))
                    else:
                        results.append(Result(r.kind, "socket", 0, timeout, f"no ack within {timeout:g} s", d.sent_at))
                conn.send(results)
            elif command == "problems":
                conn.send(list(server.problems))
            else:
                conn.send(ValueError(f"unknown command {command!r}"))
        except Exception as exc:  # report to the orchestrator instead of dying silently
            conn.send(exc)


class SocketLoader:
    """The fake Socket Mode server as a load generator in its own process; `burst()` as in common.Loader."""

    def __init__(self) -> None:
        self._conn, child = SPAWN.Pipe()
        self._process = SPAWN.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def ask(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def burst(self, urls: str | Sequence[str], requests: Sequence[Request], *, timeout: float = 10.0) -> list[Result]:
        results: list[Result] = self.ask("burst", (list(requests), timeout))
        return results

    def stop(self) -> None:
        self._conn.send(None)
        self._process.join(10)


class RemoteSender:
    """SlackSender's `command` and `submit`, sent as envelopes through the loader (for setup_through_slack)."""

    def __init__(self, loader: SocketLoader):
        self.loader = loader

    def _send(self, kind: str, payload: dict[str, Any]) -> Any:
        import httpx

        answer = self.loader.ask("send", (kind, payload))
        return httpx.Response(200, json=answer) if answer is not None else httpx.Response(200)

    def command(self, **kwargs: Any) -> Any:
        from tests.fakes import slack_requests as sr
        from tests.fakes.socket_mode import form_fields

        return self._send("slash_commands", form_fields(sr.slash_command(**kwargs)))

    def submit(self, **kwargs: Any) -> Any:
        from tests.fakes import slack_requests as sr
        from tests.fakes.socket_mode import interactive_payload

        return self._send("interactive", interactive_payload(sr.view_submission(**kwargs)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL of a scratch database (default: SQLite in a temporary directory)")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between bursts")
    parser.add_argument("--per-kind", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--py-spy", metavar="FILE", help="record the bot with py-spy during the bursts")
    parser.add_argument("--gil", action="store_true", help="with --py-spy: sample only the thread holding the GIL, at 500 Hz")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    tmp = tempfile.TemporaryDirectory(prefix="bench-socket-ack-")
    url = args.database_url or sqlite_url(tmp.name)
    print(f"ack latency over Socket Mode: {machine()}; {backend(url)}; {args.bursts} bursts of {sum(MIX.values())}")
    fresh_database(url)
    fakes = Fakes()
    loader = SocketLoader()
    fakes.slack.add_app_token(APP_TOKEN)
    fakes.slack.use_socket_mode(types.SimpleNamespace(issue_url=lambda: loader.url))
    bot = BotProcess(fakes=fakes, database_url=url, encryption_key=Fernet.generate_key().decode(), app_token=APP_TOKEN)
    try:
        loader.ask("wait_connected", 10)
        setup_through_slack(bot.url, fakes, sender=RemoteSender(loader))
        clickable, per_burst = seed_for_bursts(url, fakes, args.bursts, MIX)
        loader.burst(bot.url, build_burst(fakes, clickable, Seeded([], [], []), {**{k: 0 for k in MIX}, "help": 20}, random.Random(0)))
        fakes.slow_down()
        print(f"bot pid {bot.pid}; fake Slack {fakes.slack_latency * 1000:g} ms, fake iMocha {fakes.imocha_latency * 1000:g} ms\n")
        with profiling(bot.pid, args.py_spy, gil=args.gil, rate=500 if args.gil else 100):
            everything = run_bursts(bot.url, fakes, loader, clickable, per_burst, args, bots=[bot])  # type: ignore[arg-type]
        s = summary(r.seconds for r in everything)
        bad = sum(1 for r in everything if not 200 <= r.status < 300)
        print(
            f"\nall bursts: {len(everything)} envelopes  p50 {s['p50']:.1f}  p95 {s['p95']:.1f}  p99 {s['p99']:.1f}  max {s['max']:.1f} ms  "
            f">1s {sum(1 for r in everything if r.seconds > 1)}  not acked {bad}"
        )
        problems = loader.ask("problems")
        print(f"fake Socket Mode server's problems: {problems[:5] or 'none'}")
        wait_quiet(fakes, bot)
        print(f"\nbot RSS now/peak: {'/'.join(f'{v:.0f}' for v in bot.ask('rss'))} MB")
    finally:
        loader.stop()
        bot.stop()
        fakes.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
