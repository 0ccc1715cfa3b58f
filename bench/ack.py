"""Ack latency: bursts of 200 concurrent signed Slack requests against the bot in HTTP mode.

    .venv/bin/python bench/ack.py                        # SQLite, 5 bursts of 200, then options loads alone
    .venv/bin/python bench/ack.py --bursts 10 --options-seconds 0
    .venv/bin/python bench/ack.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_ack

The fake Slack answers after 100 ms and the fake iMocha after 2 s. A burst mixes slash commands
(help, plans, status), Send clicks, send-modal submissions, Cancel and Resend clicks, options loads of
the test picker and app_home_opened events; each submission, Cancel and Resend acts on its own
application, so each one makes a real (2 s) iMocha call after its ack. Prints p50/p95/p99/max HTTP
response time per kind and per burst, the requests over 1 s and the non-2xx count (Bolt answers
404 when a listener's ack() is later than 3 s). Then options loads alone: p99 and the number of
iMocha test-list calls per cache period. The database is dropped and recreated (use a scratch one).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CHANNEL,
    TEAM,
    USERS,
    AtsSender,
    BotCommand,
    BotProcess,
    Fakes,
    Loader,
    Request,
    Result,
    Seeded,
    ThreadClock,
    ats_event,
    backend,
    command_database,
    cpu_seconds,
    fresh_database,
    line,
    load_average,
    machine,
    profiling,
    recording_slack,
    seed_applications,
    setup_through_slack,
    sqlite_url,
    summary,
)

# One burst: 200 requests.
MIX = {
    "help": 20,
    "plans": 15,
    "status": 15,
    "send click": 30,
    "send submission": 30,
    "cancel": 20,
    "resend": 20,
    "options": 30,
    "app_home_opened": 20,
}
# The issue-17 mix (--mix issue, the default out of process): 100 requests, slash commands, Send clicks
# that open modals and test-picker options loads.
ISSUE_MIX = {**{kind: 0 for kind in MIX}, "help": 15, "plans": 10, "status": 15, "send click": 30, "options": 30}
MIXES = {"bench": MIX, "issue": ISSUE_MIX}
TYPED = ["", "p", "py", "pyth", "sql", "s", "dev", "1001", "basics", "x"]


def seed_for_bursts(url: str, fakes: Fakes, bursts: int, mix: dict[str, int]) -> tuple[Seeded, list[Seeded]]:
    """Applications to click Send on (shared), and per burst fresh ones to submit, cancel and resend."""
    clickable = seed_applications(url, fakes, needs_sending=max(1, mix["send click"]))
    if not mix["send submission"] + mix["cancel"] + mix["resend"]:
        return clickable, [Seeded([], [], []) for _ in range(bursts)]
    per_burst = [
        seed_applications(
            url, fakes, needs_sending=mix["send submission"], sent=mix["cancel"], expired=mix["resend"], start_at=1000 * (b + 1)
        )
        for b in range(bursts)
    ]
    return clickable, per_burst


def build_burst(fakes: Fakes, clickable: Seeded, mine: Seeded, mix: dict[str, int], rng: random.Random) -> list[Request]:
    """The requests of one burst, in a shuffled order; bodies as Slack sends them."""
    import json

    from tests.fakes import slack_requests as sr

    def user(i: int) -> str:
        return USERS[i % len(USERS)]

    form, as_json = sr.FORM, sr.JSON
    out: list[Request] = []
    for i in range(mix["help"]):
        out.append(
            Request(
                "help", sr.slash_command(team_id=TEAM, user_id=user(i), text="help", response_url=fakes.slack.response_url(user(i))), form
            )
        )
    for i in range(mix["plans"]):
        out.append(
            Request(
                "plans", sr.slash_command(team_id=TEAM, user_id=user(i), text="plans", response_url=fakes.slack.response_url(user(i))), form
            )
        )
    for i in range(mix["status"]):
        email = f"cand{i + 1}@example.com" if i % 3 else "x@y.com"
        body = sr.slash_command(team_id=TEAM, user_id=user(i), text=f"status {email}", response_url=fakes.slack.response_url(user(i)))
        out.append(Request("status", body, form))

    def click(kind: str, action_id: str, app_id: int, i: int) -> Request:
        body = sr.block_action(
            team_id=TEAM,
            user_id=user(i),
            action_id=action_id,
            value=str(app_id),
            channel_id=CHANNEL,
            response_url=fakes.slack.response_url(user(i)),
        )
        return Request(kind, body, form)

    for i in range(mix["send click"]):
        out.append(click("send click", "send_assessment", clickable.needs_sending[i % len(clickable.needs_sending)], i))
    for i, app_id in enumerate(mine.needs_sending[: mix["send submission"]]):
        body = sr.view_submission(
            team_id=TEAM,
            user_id=user(i),
            callback_id="imocha_send_confirm",
            values={"test": {"test_select": sr.external("1001", "Python Developer")}},
            private_metadata=json.dumps({"application_id": app_id}),
        )
        out.append(Request("send submission", body, form))
    for i, app_id in enumerate(mine.sent[: mix["cancel"]]):
        out.append(click("cancel", "cancel_invitation", app_id, i))
    for i, app_id in enumerate(mine.expired[: mix["resend"]]):
        out.append(click("resend", "resend_invitation", app_id, i))
    for i in range(mix["options"]):
        body = sr.block_suggestion(team_id=TEAM, user_id=user(i), action_id="test_select", block_id="test", value=TYPED[i % len(TYPED)])
        out.append(Request("options", body, form))
    for i in range(mix["app_home_opened"]):
        out.append(Request("app_home_opened", sr.event_callback(team_id=TEAM, event=sr.app_home_opened(user_id=user(i))), as_json))
    rng.shuffle(out)
    return out


def report_burst(label: str, results: Sequence[Result], *, per_kind: bool = True) -> None:
    print(line(label, results))
    if per_kind:
        for kind in MIX:
            mine = [r for r in results if r.kind == kind]
            if mine:
                print("  " + line(kind, mine, width=20))
    errors = Counter(f"{r.kind}: {r.status} {r.error}" for r in results if r.error)
    for text, n in errors.most_common(5):
        print(f"  ! {n} x {text[:160]}")


def run_bursts(
    urls: str | Sequence[str],
    fakes: Fakes,
    loader: Loader,
    clickable: Seeded,
    per_burst: list[Seeded],
    args: argparse.Namespace,
    bots: Sequence[BotProcess] = (),
    *,
    mix: dict[str, int] = MIX,
    other_pids: Sequence[int] = (),
) -> list[Result]:
    pids = [bot.pid for bot in bots]
    rng = random.Random(6)
    everything: list[Result] = []
    for b, mine in enumerate(per_burst):
        requests = build_burst(fakes, clickable, mine, mix, rng)
        with contextlib.ExitStack() as stack:
            clocks = [stack.enter_context(ThreadClock(pid)) for pid in pids]
            others = [stack.enter_context(ThreadClock(pid)) for pid in other_pids]
            results = loader.burst(urls, requests)
            time.sleep(0.01)
        everything += results
        report_burst(f"burst {b + 1} ({len(requests)})", results, per_kind=args.per_kind)
        start, end = min(r.sent_at for r in results), max(r.sent_at + r.seconds for r in results)
        for clock, pid in zip(others, other_pids, strict=True):
            used = sum(clock.used(start, end, {}).values())
            print(
                f"  bot {pid} CPU from the first request to the last answer ({(end - start) * 1000:.0f} ms): {used * 1000:.0f} ms; "
                f"load average {load_average()}"
            )
        for clock, bot in zip(clocks, bots, strict=True):
            used = clock.used(start, end, bot.ask("thread_names"))
            groups = ", ".join(
                f"{name} {seconds * 1000:.0f}" for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]) if seconds >= 0.001
            )
            gc = ", ".join(f"gen{g} {seconds * 1000:.0f} ms" for g, seconds in bot.ask("gc_pauses")) or "none"
            print(
                f"  bot {bot.pid} CPU from the first request to the last answer ({(end - start) * 1000:.0f} ms): "
                f"{sum(used.values()) * 1000:.0f} ms ({groups}); GC pauses over 2 ms since the last burst: {gc}; "
                f"load average {load_average()}"
            )
        time.sleep(args.pause)
    return everything


def options_alone(url: str, fakes: Fakes, loader: Loader, args: argparse.Namespace) -> None:
    """Typing in the test picker for `--options-seconds`: options loads at a steady rate, then all at once."""
    from bot.workspace.settings import TEST_CACHE_SECONDS
    from tests.fakes import slack_requests as sr

    if args.options_seconds <= 0:
        return

    def loads(n: int, offset: int) -> list[Request]:
        return [
            Request(
                "options",
                sr.block_suggestion(
                    team_id=TEAM,
                    user_id=USERS[i % len(USERS)],
                    action_id="test_select",
                    block_id="test",
                    value=TYPED[(offset + i) % len(TYPED)],
                ),
                sr.FORM,
            )
            for i in range(n)
        ]

    rate = args.options_rate
    print(
        f"\noptions loads alone for {args.options_seconds:g} s: {rate:g} a second, evenly spaced, then every 5 s "
        f"{args.options_burst} at once (test cache period {TEST_CACHE_SECONDS:g} s, iMocha at {fakes.imocha_latency * 1000:g} ms)"
    )
    fakes.imocha.state.reset_calls()
    started = time.monotonic()
    steady: list[Result] = []
    bursts: list[Result] = []
    n = 0
    while time.monotonic() - started < args.options_seconds:
        n += 1
        if n % 5 == 0:
            bursts += loader.burst(url, loads(args.options_burst, n))
        else:
            steady += loader.burst(url, loads(int(rate), n), spacing=1 / rate)
    elapsed = time.monotonic() - started
    calls = fakes.imocha.state.count("/v3/tests", "GET")
    print(line(f"steady, {rate:g}/s", steady))
    print(line(f"{args.options_burst} at once", bursts))
    print(
        f"  iMocha test-list calls: {calls} in {elapsed:.0f} s = {calls / (elapsed / TEST_CACHE_SECONDS):.2f} per "
        f"{TEST_CACHE_SECONDS:g}-s cache period ({len(steady) + len(bursts):,} options loads)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL of a scratch database (default: SQLite in a temporary directory)")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between bursts")
    parser.add_argument("--per-kind", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--options-seconds", type=float, default=None, help="options loads alone, for this long (0: skip; default 130, 0 out of process)"
    )
    parser.add_argument("--options-burst", type=int, default=50)
    parser.add_argument(
        "--py-spy", metavar="FILE", help="record the bot with py-spy during the bursts (collapsed stacks, idle threads included)"
    )
    parser.add_argument("--gil", action="store_true", help="with --py-spy: sample only the thread holding the GIL, at 500 Hz")
    parser.add_argument("--options-rate", type=float, default=50.0, help="options loads a second in the steady phase")
    parser.add_argument(
        "--out-of-process",
        action="store_true",
        help="drive `imocha-bot run` (a subprocess, scheduler and poller on, its own logging) instead of the BotProcess child",
    )
    parser.add_argument("--mix", choices=sorted(MIXES), default=None, help="bench: the 200 above; issue: 100 (default out of process)")
    parser.add_argument(
        "--drain",
        type=int,
        default=None,
        help="ATS events fired into the hiring channel just before the bursts (default 200 out of process, else 0)",
    )
    parser.add_argument(
        "--open-invitations", type=int, default=None, help="sent applications for the poller to watch (default 200 out of process, else 0)"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=2.0, help="out of process: IMOCHA_POLL_SECONDS (the poller runs back to back at 2 s)"
    )
    parser.add_argument("--log-level", default="INFO", help="out of process: LOG_LEVEL (INFO, as deployed)")
    args = parser.parse_args(argv)
    oop = args.out_of_process
    mix = MIXES[args.mix or ("issue" if oop else "bench")]
    drain = args.drain if args.drain is not None else (200 if oop else 0)
    open_invitations = args.open_invitations if args.open_invitations is not None else (200 if oop else 0)
    options_seconds = args.options_seconds if args.options_seconds is not None else (0.0 if oop else 130.0)

    from cryptography.fernet import Fernet

    tmp = tempfile.TemporaryDirectory(prefix="bench-ack-")
    url = args.database_url or sqlite_url(tmp.name)
    mode = f"`imocha-bot run` (poller every {args.poll_seconds:g} s, LOG_LEVEL {args.log_level})" if oop else "BotProcess (no scheduler)"
    print(
        f"ack latency: {machine()}; {backend(url)}; {mode}; {args.bursts} bursts of {sum(mix.values())}; "
        f"{drain} cards draining; {open_invitations} open invitations"
    )
    key = Fernet.generate_key().decode()
    fakes = Fakes(slack=recording_slack())
    bot: BotProcess | None = None
    command: BotCommand | None = None
    if oop:
        command_database(url, fakes, key, tmp.name)
        command = BotCommand(fakes, url, key, tmp.name, poll_seconds=args.poll_seconds, log_level=args.log_level)
        bot_url, bot_pid = command.url, command.pid
    else:
        fresh_database(url)
        bot = BotProcess(fakes=fakes, database_url=url, encryption_key=key)
        bot_url, bot_pid = bot.url, bot.pid
    loader = Loader()
    sender = AtsSender()
    try:
        setup_through_slack(bot_url, fakes)
        clickable, per_burst = seed_for_bursts(url, fakes, args.bursts, mix)
        if open_invitations:
            seed_applications(url, fakes, sent=open_invitations, start_at=100_000)
        loader.burst(bot_url, build_burst(fakes, clickable, Seeded([], [], []), {**{k: 0 for k in MIX}, "help": 20}, random.Random(0)))
        fakes.slow_down()
        print(f"bot pid {bot_pid}; fake Slack {fakes.slack_latency * 1000:g} ms, fake iMocha {fakes.imocha_latency * 1000:g} ms\n")
        if drain:
            bodies = [ats_event(n, job_id="drain-job", job_name="Engineer, team 0") for n in range(drain)]
            sender.start([bot_url], bodies, concurrency=4)
            answers = sender.result()
            print(
                f"{drain} ATS events answered {dict(Counter(d.status for d in answers))} in {answers[-1].answered_at - answers[0].sent_at:.1f} s; the bursts start now"
            )
        posted_before = len(fakes.slack.recorded()[0])  # type: ignore[attr-defined]
        drain_started = time.time()
        with profiling(bot_pid, args.py_spy, gil=args.gil, rate=500 if args.gil else 100):
            everything = run_bursts(
                bot_url,
                fakes,
                loader,
                clickable,
                per_burst,
                args,
                bots=[bot] if bot else [],
                mix=mix,
                other_pids=[bot_pid] if not bot else [],
            )
        s = summary(r.seconds for r in everything)
        bad = sum(1 for r in everything if not 200 <= r.status < 300)
        print(
            f"\nall bursts: {len(everything)} requests  p50 {s['p50']:.1f}  p95 {s['p95']:.1f}  p99 {s['p99']:.1f}  max {s['max']:.1f} ms  "
            f">1s {sum(1 for r in everything if r.seconds > 1)}  non-2xx {bad}"
        )
        if drain:
            posted = len(fakes.slack.recorded()[0]) - posted_before  # type: ignore[attr-defined]
            print(f"while the bursts ran: {posted} chat.postMessage in {time.time() - drain_started:.0f} s (cards of the drain among them)")
        if command is not None:
            print(f"imocha-bot run CPU so far: {cpu_seconds(bot_pid):.1f} s; log lines: {len(command.log_lines())}")
        if bot is not None:
            wait_quiet(fakes, bot)
            options_alone(bot_url, fakes, loader, argparse.Namespace(**{**vars(args), "options_seconds": options_seconds}))
            print(f"\nbot RSS now/peak: {'/'.join(f'{v:.0f}' for v in bot.ask('rss'))} MB")
    finally:
        sender.stop()
        loader.stop()
        if bot is not None:
            bot.stop()
        if command is not None:
            command.stop()
        fakes.stop()
        tmp.cleanup()


def wait_quiet(fakes: Fakes, bot: BotProcess, timeout: float = 180.0) -> None:
    """Let the work after the acks finish (no new iMocha or Slack call for 6 s), and show what it did."""
    deadline = time.monotonic() + timeout
    last, quiet = (-1, -1), 0
    while time.monotonic() < deadline and quiet < 2:
        count = (len(fakes.imocha.state.calls), len(fakes.slack.calls))
        quiet = quiet + 1 if count == last else 0
        last = count
        time.sleep(3)
    calls = Counter(f"{c.method} {re.sub(r'[0-9]+', '{id}', c.path)}" for c in fakes.imocha.state.calls)
    print(f"after the bursts: iMocha calls {dict(calls)}; Slack calls {dict(Counter(c.method for c in fakes.slack.calls))}")


if __name__ == "__main__":
    main()
