"""The weekly digest: each plan's week in numbers, posted once per plan and week to its hiring channel with a chart.

    figures.py  DigestStats and the week's bounds in the workspace's zone; weekly_figures() in two queries
    posting.py  Digests: the Monday job, /imocha digest, the claim per plan and week, the upload and retries

May import bot.domain, bot.imocha (statuses), bot.slack (gateway; access: who may post on demand) and
store; the words and the chart come from a DigestRenderer (handlers/digest.py) injected by the
composition root.
"""

from bot.digest.figures import DigestStats, Waiting, due_week, this_monday, week_bounds, weekly_figures, zone
from bot.digest.posting import DigestRenderer, Digests

__all__ = ["DigestRenderer", "DigestStats", "Digests", "Waiting", "due_week", "this_monday", "week_bounds", "weekly_figures", "zone"]
