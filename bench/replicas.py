"""Scale-out: two bot replicas on one PostgreSQL database, sharing nothing else, under bench/ack.py's bursts.

    .venv/bin/python bench/replicas.py
    .venv/bin/python bench/replicas.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_replicas --bursts 5

Starts two bot processes (each build_runtime + uvicorn, its own caches and pools) on the same
database and the same fakes, sets the workspace up through the first, then fires bench/ack.py's
bursts of 200 with the requests dealt alternately to the two replicas. Prints the latency per
replica for each burst and overall, and each replica's CPU time while a burst was answered. The
database is dropped and recreated (use a scratch one).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ack import MIX, build_burst, seed_for_bursts, wait_quiet
from common import (
    BotProcess,
    Fakes,
    Loader,
    Seeded,
    cpu_seconds,
    fresh_database,
    line,
    load_average,
    machine,
    setup_through_slack,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_replicas"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"a scratch PostgreSQL database (default {DEFAULT_URL})")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=3.0)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("replicas share a PostgreSQL database: pass a postgresql+psycopg:// URL")

    from cryptography.fernet import Fernet

    print(f"replicas: {machine()}; PostgreSQL; 2 replicas; {args.bursts} bursts of {sum(MIX.values())}, requests dealt alternately")
    fresh_database(args.database_url)
    fakes = Fakes()
    key = Fernet.generate_key().decode()  # the replicas share the database, so they share the encryption key
    bots = [BotProcess(fakes=fakes, database_url=args.database_url, encryption_key=key, holder_id=f"replica-{n}") for n in (1, 2)]
    loader = Loader()
    try:
        setup_through_slack(bots[0].url, fakes)
        clickable, per_burst = seed_for_bursts(args.database_url, fakes, args.bursts, MIX)
        warm = build_burst(fakes, clickable, Seeded([], [], []), {**{k: 0 for k in MIX}, "help": 20}, random.Random(0))
        loader.burst([b.url for b in bots], warm)
        fakes.slow_down()
        names = {b.url: f"replica {n}" for n, b in enumerate(bots, 1)}
        everything = []
        rng = random.Random(6)
        for n, mine in enumerate(per_burst, 1):
            requests = build_burst(fakes, clickable, mine, MIX, rng)
            before = [cpu_seconds(b.pid) for b in bots]
            results = loader.burst([b.url for b in bots], requests)
            used = [cpu_seconds(b.pid) - c for b, c in zip(bots, before, strict=True)]
            everything += results
            print(line(f"burst {n} (both)", results))
            for b in bots:
                print("  " + line(names[b.url], [r for r in results if r.url == b.url], width=20))
            print(f"  CPU while answering: {' / '.join(f'{u * 1000:.0f}' for u in used)} ms; load average {load_average()}")
            time.sleep(args.pause)
        print()
        for b in bots:
            print(line(f"all bursts, {names[b.url]}", [r for r in everything if r.url == b.url], width=26))
        print(line("all bursts, both", everything, width=26))
        wait_quiet(fakes, bots[0])
    finally:
        loader.stop()
        for b in bots:
            b.stop()
        fakes.stop()


if __name__ == "__main__":
    main()
