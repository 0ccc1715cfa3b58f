"""App Home for a user with 2,000 applications: time the data and the view, check Slack's 100-block limit.

    .venv/bin/python bench/home.py                     # 2,000 of the user's own, 1,000 in a channel they are not in
    .venv/bin/python bench/home.py --applications 10000
    .venv/bin/python bench/home.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_home

Times what `handlers/home.py::publish_home` does before `views.publish`: `HomeQueue.for_user` (the
database reads, and `conversations.members` for the card channels, cached for 60 s) and
`handlers.blocks.build_home`. The first call runs with cold caches (the fake Slack answers after
100 ms); then the median and max of 20 warm calls, and the "Show more" pages. The view is checked
against Slack's limits with tests/fakes/blockkit.py. The database is dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OTHER_CHANNEL,
    TEAM,
    USERS,
    Fakes,
    backend,
    bot_options,
    bot_settings,
    fresh_database,
    machine,
    seed_applications,
    sqlite_url,
)

USER = USERS[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL of a scratch database (default: SQLite in a temporary directory)")
    parser.add_argument("--applications", type=int, default=2000, help="the user's applications (default 2000)")
    parser.add_argument("--others", type=int, default=1000, help="other people's applications in a channel the user is not in")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    from bot.runtime.app import build_runtime
    from handlers import blocks
    from tests.fakes.blockkit import validate_view

    tmp = tempfile.TemporaryDirectory(prefix="bench-home-")
    url = args.database_url or sqlite_url(tmp.name)
    print(f"App Home: {machine()}; {backend(url)}; {args.applications:,} applications of {USER}, {args.others:,} of others elsewhere")
    fresh_database(url)
    fakes = Fakes()
    runtime = build_runtime(bot_settings(bot_options(fakes, url, Fernet.generate_key().decode())))
    try:
        third = args.applications // 3
        started = time.monotonic()
        seed_applications(
            url,
            fakes,
            needs_sending=third,
            sent=third,
            expired=args.applications - 2 * third,
            owner=USER,
            jobs=12,
            imocha_invitations=False,
        )
        seed_applications(url, fakes, needs_sending=args.others, owner=USERS[1], jobs=3, channel=OTHER_CHANNEL, imocha_invitations=False)
        print(f"seeded in {time.monotonic() - started:.1f} s")
        fakes.slow_down()
        services = runtime.services

        def build(page: int = 0) -> tuple[dict[str, Any], float, float]:
            t0 = time.perf_counter()
            data = services.home.for_user(TEAM, USER, page=page)
            t1 = time.perf_counter()
            settings = services.workspaces.settings(TEAM)
            view = blocks.build_home(
                jobs=data.jobs,
                total=data.total,
                shown=data.shown,
                page=data.page,
                configured=settings.has_imocha_key,
                is_admin=settings.has_imocha_key or services.access.is_admin(TEAM, USER),
            )
            t2 = time.perf_counter()
            return view, (t1 - t0) * 1000, (t2 - t1) * 1000

        view, data_ms, build_ms = build()
        print(
            f"first view, cold caches (conversations.members per card channel and users.info, 100 ms each on the fake): "
            f"data {data_ms:.1f} ms + settings and build {build_ms:.1f} ms"
        )
        totals, datas = [], []
        for _ in range(args.runs):
            view, data_ms, build_ms = build()
            totals.append(data_ms + build_ms)
            datas.append(data_ms)
        problems = validate_view(view)
        text = json.dumps(view)
        shown = sum(1 for b in view["blocks"] if str(b.get("block_id", "")).startswith("home_") and b["block_id"][5:].isdigit())
        print(
            f"warm caches, {args.runs} runs: median {statistics.median(totals):.1f} ms (data {statistics.median(datas):.1f} ms), "
            f"max {max(totals):.1f} ms   [target <= 200 ms]"
        )
        print(
            f"view: {len(view['blocks'])} blocks [limit 100], {len(text):,} characters [limit 250,000], Block Kit problems: {problems or 'none'}"
        )
        print(f"  {shown} applications with their buttons; footer: {view['blocks'][-2]['elements'][0]['text']!r}")
        assert len(view["blocks"]) <= 100, len(view["blocks"])
        for page in (1, 3):
            view, data_ms, build_ms = build(page)
            print(
                f"'Show more' page {page}: {data_ms + build_ms:.1f} ms, {len(view['blocks'])} blocks, problems: {validate_view(view) or 'none'}"
            )
            assert len(view["blocks"]) <= 100, len(view["blocks"])
    finally:
        runtime.close()
        fakes.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
