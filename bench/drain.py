"""Outbox drain: 200 signed ATS stage events fired at `imocha-bot run`, then how fast their cards reach Slack.

    .venv/bin/python bench/drain.py                          # 1 channel, 200 cards, SQLite
    .venv/bin/python bench/drain.py --channels 10            # the same 200 over 10 channels (one plan each)
    .venv/bin/python bench/drain.py --cards 60               # shorter run; the 200-card time is extrapolated
    .venv/bin/python bench/drain.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_drain
    .venv/bin/python bench/drain.py --replicas 2 --channels 10 --database-url postgresql+psycopg://...  # one budget per channel?
    .venv/bin/python bench/drain.py --ratelimit-every 7 --retry-after 2   # every 7th post answered 429: Retry-After honoured?

The bot runs as production starts it (`imocha-bot run`, a subprocess per replica, each on its own
port, same database); the fake Slack (each call answered after `--slack-latency`, every accepted
chat.postMessage recorded with its channel and the time it was made) and the fake iMocha run in
this process; the events are fired from a child process, in order (event n goes to replica
n % replicas, `--concurrency` connections per replica, each taking the next event when its last
one is answered). The workspace and the plans (one per channel, channel i gets events n with
n % channels == i) are set up through Slack first. The database is dropped and recreated (use a
scratch one).

It prints the intake (answers, time to accept all events), the time from the first event to the
last card posted, per channel the posts, the burst (first 3) and the sustained chat.postMessage
rate after it, the peak over any 10 s, duplicates (an application with two cards), lost cards
(accepted events without a card), the order of the cards against the events' order and against
the bot's intake order (application ids), and with `--ratelimit-every` the 429s given and the
chat.postMessage calls made before their Retry-After had elapsed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib
import itertools

from common import (
    ADMIN,
    CHANNEL,
    TEAM,
    USERS,
    AtsSender,
    BotCommand,
    Delivery,
    Fakes,
    Post,
    ats_event,
    backend,
    command_database,
    load_average,
    machine,
    recording_slack,
    setup_through_slack,
    sqlite_url,
)

CARD = re.compile(r"Drain candidate (\d{4,})")
BURST = 3  # ChannelPacer(burst=3): the posts a channel may get at once before the rate applies
SETUP_JOB = "Engineer, team 0"  # the plan setup_through_slack saves (for CHANNEL)
TARGETS = {1: 215.0, 10: 30.0}  # issue 17: 200 cards into 1 channel / over 10 channels


def channel_ids(channels: int) -> list[str]:
    return [CHANNEL] + [f"C0DRAIN{i:02d}" for i in range(1, channels)]


def job_names(channels: int) -> list[str]:
    return [SETUP_JOB] + [f"Drain job {i:02d}" for i in range(1, channels)]


def add_plans(url: str, fakes: Fakes, channels: int) -> None:
    """One plan per extra channel (the first channel's plan is setup_through_slack's), saved through the plan modal."""
    from tests.fakes import slack_requests as sr

    ids, jobs = channel_ids(channels), job_names(channels)
    with sr.SlackSender(url, fakes_secret()) as sender:
        for channel, job in list(zip(ids, jobs, strict=True))[1:]:
            r = sender.submit(
                team_id=TEAM,
                user_id=USERS[0],
                callback_id="imocha_plan",
                values={
                    "job": {"job_input": sr.plain(job)},
                    "stage": {"stage_input": sr.plain("iMocha assessment")},
                    "test": {"test_select": sr.external("1001", "Python Developer")},
                    "channel": {"channel_input": sr.conversation(channel)},
                    "pass_mark": {"pass_mark_input": sr.number(60)},
                    "share_scores": {"share_scores_input": sr.checkboxes()},
                },
            )
            assert r.status_code == 200 and "Plan saved" in r.text, r.text


def fakes_secret() -> str:
    from common import SECRET

    return SECRET


def intake_order(url: str) -> dict[int, int]:
    """Event number → the bot's application id (its intake order)."""
    from sqlalchemy import select

    from store.db import make_engine
    from store.models import Application

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Application.external_id, Application.id).where(Application.external_id.like("drain-app-%"))).all()
    engine.dispose()
    return {int(external.rsplit("-", 1)[1]): int(app_id) for external, app_id in rows}


def card_posts(posts: Sequence[Post]) -> dict[int, list[Post]]:
    """Event number → the top-level posts that were its card."""
    out: dict[int, list[Post]] = defaultdict(list)
    for post in posts:
        found = CARD.search(post.text)
        if post.thread_ts is None and found:
            out[int(found.group(1))].append(post)
    return out


def inversions(sequence: Sequence[int]) -> int:
    """Adjacent pairs out of order."""
    return sum(1 for a, b in itertools.pairwise(sequence) if b < a)


def rates(times: Sequence[float]) -> tuple[float, float, float]:
    """(sustained posts/s after the first BURST, peak posts/s over any 10 s after the burst, smallest gap after the burst in s)."""
    if len(times) <= BURST:
        return float("nan"), float("nan"), float("nan")
    after = times[BURST - 1 :]
    sustained = (len(after) - 1) / (after[-1] - after[0]) if after[-1] > after[0] else float("inf")
    peak, j = 0, 0
    for i, t in enumerate(after):
        while after[j] < t - 10.0:
            j += 1
        peak = max(peak, i - j + 1)
    gaps = [b - a for a, b in itertools.pairwise(after)]
    return sustained, peak / 10.0, min(gaps) if gaps else float("nan")


def wait_for_cards(fakes: Fakes, sender: AtsSender, cards: int, timeout: float, stall: float) -> tuple[list[Delivery], float]:
    """Watch the posts until every accepted event has its card, nothing new came for `stall` s, or `timeout`."""
    started = time.time()
    deliveries: list[Delivery] | None = None
    last_count, last_change, last_print = 0, started, started
    while True:
        time.sleep(0.5)
        if deliveries is None:
            with contextlib.suppress(TimeoutError):
                deliveries = sender.result(timeout=0.01)
        posts, _limited = fakes.slack.recorded()
        done = len(card_posts(posts))
        now = time.time()
        if done != last_count:
            last_count, last_change = done, now
        if now - last_print >= 15:
            print(f"  {now - started:5.0f} s: {done} cards posted; load average {load_average()}", flush=True)
            last_print = now
        accepted = sum(1 for d in deliveries if d.status == 202) if deliveries is not None else cards
        if deliveries is not None and done >= accepted:
            return deliveries, now
        if now - started > timeout or (deliveries is not None and now - last_change > stall):
            if deliveries is None:
                deliveries = sender.result()
            return deliveries, now


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL of a scratch database (default: SQLite in a temporary directory)")
    parser.add_argument("--channels", type=int, default=1, help="hiring channels, one plan each; events dealt round-robin")
    parser.add_argument("--cards", type=int, default=200, help="ATS events fired (one new application, one card each)")
    parser.add_argument("--replicas", type=int, default=1, help="`imocha-bot run` processes on the same (PostgreSQL) database")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="connections per replica firing events (1: one at a time, strictly in order)"
    )
    parser.add_argument("--slack-latency", type=float, default=0.05, help="seconds the fake Slack takes to answer each call")
    parser.add_argument("--ratelimit-every", type=int, default=0, metavar="N", help="answer every N-th chat.postMessage 429")
    parser.add_argument("--retry-after", type=int, default=2, help="the Retry-After (s) of those 429s")
    parser.add_argument("--poll-seconds", type=float, default=60, help="IMOCHA_POLL_SECONDS of the bot (nothing to poll here)")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the bot")
    parser.add_argument("--timeout", type=float, default=None, help="give up waiting for cards after this long (default: from the cards)")
    parser.add_argument("--stall", type=float, default=30.0, help="stop when no card came for this long")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    from tests.fakes.imocha import PYTHON_TEST_ID  # noqa: F401  (the plans' test)

    tmp = tempfile.TemporaryDirectory(prefix="bench-drain-")
    url = args.database_url or sqlite_url(tmp.name)
    if args.replicas > 1 and not url.startswith("postgresql"):
        raise SystemExit("replicas share a PostgreSQL database: pass --database-url postgresql+psycopg://...")
    per_channel = -(-args.cards // args.channels)
    timeout = args.timeout or 60 + 2.0 * per_channel
    print(
        f"outbox drain: {machine()}; {backend(url)}; {args.cards} cards over {args.channels} channel(s); "
        f"{args.replicas} replica(s) of `imocha-bot run`; fake Slack {args.slack_latency * 1000:g} ms a call"
        + (
            f"; every {args.ratelimit_every}th chat.postMessage answered 429, Retry-After {args.retry_after} s"
            if args.ratelimit_every
            else ""
        )
    )
    key = Fernet.generate_key().decode()
    fakes = Fakes(slack_latency=args.slack_latency, imocha_latency=0.0, slack=recording_slack(retry_after=args.retry_after))
    ids, jobs = channel_ids(args.channels), job_names(args.channels)
    for n, channel in enumerate(ids[1:], 1):
        fakes.slack.add_channel(channel, team_id=TEAM, name=f"hiring-{n:02d}", members=[ADMIN, *USERS])
    command_database(url, fakes, key, tmp.name)
    bots: list[BotCommand] = []
    sender = AtsSender()
    try:
        for r in range(args.replicas):
            bots.append(
                BotCommand(fakes, url, key, tmp.name, name=f"replica-{r + 1}", poll_seconds=args.poll_seconds, log_level=args.log_level)
            )
        setup_through_slack(bots[0].url, fakes)
        add_plans(bots[0].url, fakes, args.channels)
        bodies = [
            ats_event(
                n,
                job_id=f"drain-job-{n % args.channels:02d}",
                job_name=jobs[n % args.channels],
                recruiter=f"{USERS[n % 40].lower()}@example.com",
            )
            for n in range(args.cards)
        ]
        time.sleep(1.0)  # the setup's own Slack writes are done
        fakes.slow_down()
        fakes.slack.reset_calls()
        with fakes.slack._lock:
            fakes.slack.posts.clear()
            fakes.slack.ratelimit_every = args.ratelimit_every
        print(f"bots: {', '.join(f'{b.url} (pid {b.pid})' for b in bots)}; logs in {tmp.name}; load average {load_average()}\n")
        sender.start([b.url for b in bots], bodies, concurrency=args.concurrency)
        deliveries, _stopped = wait_for_cards(fakes, sender, args.cards, timeout, args.stall)
        report(args, url, fakes, deliveries, ids)
        for bot in bots:
            errors = [line for line in bot.log_lines() if " ERROR " in line or "Traceback" in line]
            rate_limited = sum(1 for line in bot.log_lines() if "rate limited" in line)
            print(
                f"{bot.log_path.name}: {len(errors)} ERROR lines, {rate_limited} 'rate limited' lines"
                + "".join(f"\n  {e[:200]}" for e in errors[:5])
            )
    finally:
        sender.stop()
        for bot in bots:
            bot.stop()
        fakes.stop()
        tmp.cleanup()


def report(args: argparse.Namespace, url: str, fakes: Fakes, deliveries: list[Delivery], ids: list[str]) -> None:
    posts, limited = fakes.slack.recorded()
    statuses = Counter(d.status for d in deliveries)
    first_sent = min(d.sent_at for d in deliveries)
    accepted = [d for d in deliveries if d.status == 202]
    print(
        f"intake: {len(deliveries)} events, answers {dict(statuses)}; all answered {max(d.answered_at for d in deliveries) - first_sent:.1f} s "
        f"after the first was sent (median answer {sorted(d.answered_at - d.sent_at for d in deliveries)[len(deliveries) // 2] * 1000:.0f} ms)"
    )
    by_event = card_posts(posts)
    first_post = {n: min(p.at for p in ps) for n, ps in by_event.items()}
    duplicates = {n: len(ps) for n, ps in by_event.items() if len(ps) > 1}
    lost = sorted(d.n for d in accepted if d.n not in by_event)
    others = [p for p in posts if not (p.thread_ts is None and CARD.search(p.text))]
    if first_post:
        last = max(first_post.values())
        print(
            f"cards: {len(by_event)} of {len(accepted)} accepted posted; first {min(first_post.values()) - first_sent:.1f} s, "
            f"last {last - first_sent:.1f} s after the first event"
        )
    else:
        print("cards: none posted")
    print(f"duplicates (an application's card posted more than once): {len(duplicates)} {dict(list(duplicates.items())[:10]) or ''}")
    print(f"lost (accepted, no card): {len(lost)} {lost[:20] or ''}")
    if others:
        print(f"other chat.postMessage: {len(others)}, e.g. {others[0].channel}: {others[0].text[:120]!r}")
    order = intake_order(url)
    print("\nper channel: posts, burst, sustained rate after the first 3, peak over any 10 s, smallest gap, order")
    sustained_all = []
    for c, channel in enumerate(ids):
        mine = sorted((p for p in posts if p.channel == channel and p.thread_ts is None and CARD.search(p.text)), key=lambda p: p.at)
        events = [int(CARD.search(p.text).group(1)) for p in mine]  # type: ignore[union-attr]
        times = [p.at for p in mine]
        sustained, peak, gap = rates(times)
        sustained_all.append(sustained)
        burst = f"{times[min(BURST, len(times)) - 1] - times[0]:.2f} s" if times else "-"
        by_intake = [order.get(n, -1) for n in events]
        if len(ids) <= 12 or c < 3:
            print(
                f"  {channel}: {len(mine):>3} posts; first {min(BURST, len(mine))} within {burst}; sustained {sustained:.2f}/s; peak {peak:.2f}/s; "
                f"smallest gap {gap:.2f} s; out of order vs events {inversions(events)}, vs intake {inversions(by_intake)} "
                f"(of {max(0, len(events) - 1)} adjacent pairs)"
            )
    valid = [s for s in sustained_all if s == s]
    if valid:
        print(f"  sustained rate over the channels: min {min(valid):.2f}/s, max {max(valid):.2f}/s")
    if first_post and valid:
        per_channel = -(-200 // args.channels)
        estimate = (per_channel - BURST) / min(valid) + (min(first_post.values()) - first_sent)
        target = TARGETS.get(args.channels)
        print(
            f"  200 cards over {args.channels} channel(s) at the slowest channel's sustained rate: ~{estimate:.0f} s"
            + (f" (target ≤ {target:g} s)" if target else "")
            + ("" if args.cards >= 200 else f" — extrapolated from {args.cards} cards")
        )
    if args.ratelimit_every:
        calls = fakes.slack.calls_to("chat.postMessage")
        same = any_channel = 0
        for lim in limited:
            until = lim.at + lim.retry_after
            early = [c for c in calls if lim.at < c.at < until]
            any_channel += len(early)
            same += sum(1 for c in early if str(c.body.get("channel")) == lim.channel)
        print(
            f"\n429s: {len(limited)} chat.postMessage answered 429 (Retry-After {args.retry_after} s); calls made before their "
            f"Retry-After elapsed: {same} to the same channel, {any_channel} to any channel; chat.postMessage calls in all: {len(calls)}"
        )


if __name__ == "__main__":
    main()
