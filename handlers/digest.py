"""The weekly digest's message, alt text and PNG chart (matplotlib, Agg backend): pure functions of its figures."""

from __future__ import annotations

import io
import threading

from bot.digest import DigestStats
from handlers.blocks import esc

MAX_ALT_TEXT = 1000  # Slack cuts image alt text beyond this
_PLOT_LOCK = threading.Lock()  # pyplot's state is global; the Figure API below avoids it, the lock covers font caches


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _duration(hours: float | None) -> str:
    if hours is None:
        return "–"
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _week(stats: DigestStats) -> str:
    label = "This week so far, from" if stats.partial else "Week of"
    return f"{label} {stats.week_start:%a %d %b %Y} ({stats.timezone})"


def _pass_rate(stats: DigestStats) -> str:
    if stats.pass_rate is None:
        return "no pass mark to judge against" if stats.completed else "–"
    mark = f", pass mark {stats.pass_mark}%" if stats.pass_mark is not None else ""
    return f"{stats.pass_rate:.0f}% ({stats.passed} of {stats.judged}{mark})"


def build_digest_text(stats: DigestStats) -> str:
    """The message the chart is posted with (mrkdwn). No score when the plan keeps scores out of the channel."""
    lines = [
        f"*iMocha weekly digest: {esc(stats.job_label)}* ({esc(stats.stage_label)} · {esc(stats.test_name)})",
        _week(stats),
        f"• Sent *{stats.sent}* · Started *{stats.started}* · Completed *{stats.completed}* · Expired *{stats.expired}*",
        f"• Pass rate: {_pass_rate(stats)}",
    ]
    if stats.shows_scores:
        lines.append(f"• Median score: {_pct(stats.median_score)}")
    lines.append(f"• Median time from sent to completed: {_duration(stats.median_hours_to_complete)}")
    if stats.waiting:
        lines.append(f"• Waiting for review longer than 2 days: *{len(stats.waiting)}*")
        for item in stats.waiting[:15]:
            owner = f" — <@{item.owner_user_id}>" if item.owner_user_id else ""
            lines.append(f"    ◦ {esc(item.candidate)}, {item.days} days{owner}")
        if len(stats.waiting) > 15:
            lines.append(f"    ◦ and {len(stats.waiting) - 15} more (App Home has them all)")
    return "\n".join(lines)


def build_week_line(figures: list[DigestStats]) -> str:
    """One job's week so far for App Home (its plans summed): counts and rates only, whoever looks."""
    sent, started, completed, expired = (sum(getattr(f, name) for f in figures) for name in ("sent", "started", "completed", "expired"))
    passed, judged = sum(f.passed or 0 for f in figures), sum(f.judged for f in figures)
    line = f"This week: sent {sent} · started {started} · completed {completed} · expired {expired}"
    if judged:
        line += f" · pass rate {100 * passed / judged:.0f}%"
    waiting = sum(len(f.waiting) for f in figures)
    if waiting:
        line += f" · {waiting} waiting for review > 2 days"
    return line


def build_digest_alt_text(stats: DigestStats) -> str:
    """What the chart shows, in words and numbers, for screen readers and for anyone the image fails to load for."""
    parts = [
        f"iMocha weekly digest chart for {stats.job_label}. {_week(stats)}.",
        f"Funnel: sent {stats.sent}, started {stats.started}, completed {stats.completed}, expired {stats.expired}.",
        f"Pass rate {_pass_rate(stats)}.",
    ]
    if stats.shows_scores and stats.scores:
        counts = _bins(stats.scores)
        bands = ", ".join(f"{low}–{low + 10}%: {n}" for low, n in zip(range(0, 100, 10), counts, strict=True) if n)
        parts.append(f"Score distribution ({len(stats.scores)} scores, median {_pct(stats.median_score)}): {bands}.")
        if stats.pass_mark is not None:
            parts.append(f"Pass mark {stats.pass_mark}%.")
    parts.append(f"Median time from sent to completed {_duration(stats.median_hours_to_complete)}.")
    return " ".join(parts)[:MAX_ALT_TEXT]


def _bins(scores: tuple[float, ...]) -> list[int]:
    counts = [0] * 10
    for score in scores:
        counts[min(9, max(0, int(score // 10)))] += 1
    return counts


def render_digest_chart(stats: DigestStats) -> bytes:
    """A PNG: the week's funnel, and, where scores may show, the score distribution with the pass mark."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with_scores = stats.shows_scores and bool(stats.scores)
    with _PLOT_LOCK:
        fig = Figure(figsize=(10, 4) if with_scores else (6, 4), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 if with_scores else 1, squeeze=False)[0]
        funnel = axes[0]
        labels = ["Sent", "Started", "Completed", "Expired"]
        values = [stats.sent, stats.started, stats.completed, stats.expired]
        bars = funnel.barh(labels[::-1], values[::-1], color=["#c0392b", "#27ae60", "#2980b9", "#34495e"])
        funnel.bar_label(bars, padding=3)
        funnel.set_title("The week's funnel")
        funnel.xaxis.get_major_locator().set_params(integer=True)
        funnel.set_xlim(0, max(1, *values) * 1.15)
        funnel.spines[["top", "right"]].set_visible(False)
        if with_scores:
            dist = axes[1]
            dist.hist(list(stats.scores), bins=list(range(0, 101, 10)), color="#2980b9", edgecolor="white")
            if stats.pass_mark is not None:
                dist.axvline(stats.pass_mark, color="#c0392b", linestyle="--", linewidth=2, label=f"pass mark {stats.pass_mark}%")
                dist.legend(loc="upper left", frameon=False)
            dist.set_title("Score distribution")
            dist.set_xlabel("score (%)")
            dist.set_ylabel("candidates")
            dist.set_xlim(0, 100)
            dist.yaxis.get_major_locator().set_params(integer=True)
            dist.spines[["top", "right"]].set_visible(False)
        fig.suptitle(f"{stats.job_label}: {_week(stats)}", fontsize=11)
        # Fixed margins: tight_layout would draw the figure twice.
        fig.subplots_adjust(left=0.12 if with_scores else 0.2, right=0.97, bottom=0.14, top=0.82, wspace=0.3)
        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()


class DigestRenderer:
    """bot.digest.DigestRenderer, injected by the composition root."""

    def text(self, stats: DigestStats) -> str:
        return build_digest_text(stats)

    def alt_text(self, stats: DigestStats) -> str:
        return build_digest_alt_text(stats)

    def chart(self, stats: DigestStats) -> bytes:
        return render_digest_chart(stats)
