"""Pure Block Kit builders and the bot's wording: cards, notices, DMs, modals and App Home. No I/O.

Callers import from `handlers.blocks` (`from handlers import blocks as b; b.build_card(view)`), never
from a module inside it; every public name is re-exported here. Where things are, by surface:

- `kit.py`: the small Block Kit helpers the others build with: esc, clip, plain, mrkdwn, section,
  context, button, confirm, the modal inputs (text_input, test_select, channel_select, whole_number),
  the Block and Message types. Imports no other module of this package.
- `cards.py`: the card and what is said about one application: headline, score_line, verdict, bar,
  card_actions, result_blocks, build_card, and the completion notice, result DM, score ephemeral,
  link DM and reminder DM.
- `replies.py`: SlackRenderer (the outbox's renderer: which builder words which queued facts), the
  thread notes, describe(DomainError), and a failed write-back's words and remedies (WRITEBACK_WORDS,
  WRITEBACK_REMEDIES, writeback_remedy, build_writeback_failed).
- `modals.py`: the setup, plan, send, manual send and message modals, and the plans list.
- `home.py`: App Home (build_home, home_item) and what the slash commands answer: HELP and the
  status report (history_words, build_status_report).

The modules import in one direction only: kit ← cards ← replies, modals, home.
"""

from __future__ import annotations

from handlers.blocks.cards import (
    DECISION_EMOJI,
    EMOJI,
    HEADLINES,
    bar,
    build_card,
    build_completion_notice,
    build_link_dm,
    build_reminder_dm,
    build_result_dm,
    build_score_ephemeral,
    card_actions,
    headline,
    result_blocks,
    score_line,
    verdict,
)
from handlers.blocks.home import HELP, HOME_GROUPS, build_home, build_status_report, history_words, home_item
from handlers.blocks.kit import (
    Block,
    Message,
    button,
    channel_select,
    clip,
    confirm,
    context,
    esc,
    mrkdwn,
    plain,
    section,
    test_select,
    text_input,
    whole_number,
)
from handlers.blocks.modals import (
    PLANS_SHOWN,
    build_manual_send_modal,
    build_message_modal,
    build_plan_modal,
    build_plans_list,
    build_send_modal,
    build_setup_modal,
)
from handlers.blocks.replies import (
    ACTION_WORDS,
    STATUS_NOTES,
    WRITEBACK_REMEDIES,
    WRITEBACK_WORDS,
    SlackRenderer,
    build_writeback_failed,
    describe,
    event_note,
    send_failed_notice,
    writeback_remedy,
    writeback_retried_note,
)

__all__ = [
    "ACTION_WORDS",
    "DECISION_EMOJI",
    "EMOJI",
    "HEADLINES",
    "HELP",
    "HOME_GROUPS",
    "PLANS_SHOWN",
    "STATUS_NOTES",
    "WRITEBACK_REMEDIES",
    "WRITEBACK_WORDS",
    "Block",
    "Message",
    "SlackRenderer",
    "bar",
    "build_card",
    "build_completion_notice",
    "build_home",
    "build_link_dm",
    "build_manual_send_modal",
    "build_message_modal",
    "build_plan_modal",
    "build_plans_list",
    "build_reminder_dm",
    "build_result_dm",
    "build_score_ephemeral",
    "build_send_modal",
    "build_setup_modal",
    "build_status_report",
    "build_writeback_failed",
    "button",
    "card_actions",
    "channel_select",
    "clip",
    "confirm",
    "context",
    "describe",
    "esc",
    "event_note",
    "headline",
    "history_words",
    "home_item",
    "mrkdwn",
    "plain",
    "result_blocks",
    "score_line",
    "section",
    "send_failed_notice",
    "test_select",
    "text_input",
    "verdict",
    "whole_number",
    "writeback_remedy",
    "writeback_retried_note",
]
