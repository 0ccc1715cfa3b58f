"""The Slack outbox: every Slack write the bot must make exactly once, at Slack's pace.

queue.py is the door (`SlackOutbox`: rows are added in the transaction that changes the state they
announce, then delivered) and tells the whole story; rows.py claims rows and records their outcomes by
compare-and-set; lanes.py delivers each channel's rows in order, one process per lane; writes.py makes
the Slack calls (the card's post or update under a claim on the card, thread replies, DMs). Pacing per
Slack budget is bot/slack/pacing.py, shared with the gateway.
"""

from __future__ import annotations

from bot.slack.outbox.queue import CARD, CLAIMS, DM, LANE_CLAIMS, THREAD, Renderer, SlackOutbox

__all__ = ["CARD", "CLAIMS", "DM", "LANE_CLAIMS", "THREAD", "Renderer", "SlackOutbox"]
