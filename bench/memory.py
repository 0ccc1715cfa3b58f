"""Peak RSS of the bot process serving 10,000 open invitations, through a poll cycle and bursts of requests.

    .venv/bin/python bench/memory.py                          # SQLite, 10,000 open, 100 completing
    .venv/bin/python bench/memory.py --open 10000 --completions 1000
    .venv/bin/python bench/memory.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_memory

The bot runs in its own process (bench/common.py::BotProcess), as in production; 10,000 sent
applications with open iMocha invitations and cards are bulk-inserted through store.models (and
created in the fake iMocha). Then, step by step: one status-poll cycle (`StatusPoller.poll_all`,
with `completions` of them finished in iMocha, their cards and notices delivered), bursts of 200
Slack requests (bench/ack.py's mix) and the work after them. Prints the bot's RSS after each step
and its peak (VmHWM). The database is dropped and recreated.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ack import MIX, build_burst, seed_for_bursts, wait_quiet
from common import BotProcess, Fakes, Loader, backend, fresh_database, line, machine, seed_applications, setup_through_slack, sqlite_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL of a scratch database (default: SQLite in a temporary directory)")
    parser.add_argument("--open", type=int, default=10_000, help="open invitations (default 10000)")
    parser.add_argument("--completions", type=int, default=100, help="invitations finishing before the poll cycle (default 100)")
    parser.add_argument("--bursts", type=int, default=3)
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    tmp = tempfile.TemporaryDirectory(prefix="bench-memory-")
    url = args.database_url or sqlite_url(tmp.name)
    print(f"memory: {machine()}; {backend(url)}; {args.open:,} open invitations, {args.completions:,} completing")
    fresh_database(url)
    fakes = Fakes(slack_latency=0.1, imocha_latency=0.05)
    bot = BotProcess(fakes=fakes, database_url=url, encryption_key=Fernet.generate_key().decode())
    loader = Loader()

    def rss(step: str) -> None:
        current, peak = bot.ask("rss")
        print(f"  {step:<58} RSS {current:6.1f} MB   peak {peak:6.1f} MB   threads {bot.ask('threads')}")

    try:
        rss("started (build_runtime + uvicorn)")
        setup_through_slack(bot.url, fakes)
        started = time.monotonic()
        seeded = seed_applications(url, fakes, sent=args.open, jobs=20)
        clickable, per_burst = seed_for_bursts(url, fakes, args.bursts, MIX)
        print(f"  seeded {args.open:,} open invitations (and cards) in {time.monotonic() - started:.1f} s")
        rss("set up through Slack, database seeded")
        done = seeded.sent[:: max(1, len(seeded.sent) // max(1, args.completions))][: args.completions]
        imocha_ids = _imocha_ids(url, done)
        for inv_id in imocha_ids:
            fakes.imocha.state.complete(inv_id, points=40)
        time.sleep(1.1)  # iMocha's window query takes whole seconds
        fakes.slow_down()
        cycle = bot.ask("poll", timeout=900)
        print(f"  poll cycle: {cycle['seconds']:.1f} s; {cycle['stats']}")
        rss("after the poll cycle (and its card updates and notices)")
        bot.ask("deliver", 1000, timeout=900)
        rss("after delivering the outbox")
        for b, mine in enumerate(per_burst):
            results = loader.burst(bot.url, build_burst(fakes, clickable, mine, MIX, random.Random(b)))
            print("  " + line(f"burst {b + 1}", results))
        wait_quiet(fakes, bot)
        rss(f"after {args.bursts} bursts of {sum(MIX.values())} requests and their work")
        cycle = bot.ask("poll", timeout=900)
        rss("after a second poll cycle")
        _current, peak = bot.ask("rss")
        print(f"\npeak RSS of the bot process: {peak:.1f} MB   [target <= 150 MB]")
    finally:
        loader.stop()
        bot.stop()
        fakes.stop()
        tmp.cleanup()


def _imocha_ids(url: str, application_ids: list[int]) -> list[int]:
    from sqlalchemy import select

    from store.db import make_engine
    from store.models import Application, Invitation

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Invitation.imocha_id)
            .join(Application, Application.current_invitation_id == Invitation.id)
            .where(Application.id.in_(application_ids))
        )
        found = [int(r[0]) for r in rows]
    engine.dispose()
    return found


if __name__ == "__main__":
    main()
