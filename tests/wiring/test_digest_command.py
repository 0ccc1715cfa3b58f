"""`/imocha digest` through the whole bot: a real send and completion, then this week's digest in the channel."""

from __future__ import annotations

import json

from sqlalchemy import select

from store.models import Workspace
from tests.fakes import slack_requests as sr
from tests.wiring.conftest import ADMIN, CHANNEL, MEMBER, RECRUITER, TEAM, Bot, create_plan, setup_workspace
from tests.wiring.helpers import complete, said_to, sent_card, settle, wait_headline


def test_an_admin_posts_this_weeks_digest_on_demand_without_scores_in_a_private_plans_channel(bot: Bot) -> None:
    _, inv_id = sent_card(bot, share=False)
    complete(bot, inv_id, points=42)
    wait_headline(bot, "Assessment needs review")

    assert bot.command(MEMBER, "digest").status_code == 200
    settle(bot, lambda: any("admins" in text for text in said_to(bot, MEMBER)))
    assert bot.slack.files(CHANNEL) == []

    assert bot.command(ADMIN, "digest").status_code == 200
    settle(bot, lambda: len(bot.slack.files(CHANNEL)) == 1 and any("Posted this week" in t for t in said_to(bot, ADMIN)))
    [upload] = bot.slack.files(CHANNEL)
    [message] = [m for m in bot.slack.top_level(CHANNEL) if m.files]
    text = message.text or ""
    assert "This week so far" in text and "Sent *1* · Started *1* · Completed *1* · Expired *0*" in text
    assert "Pass rate: 100% (1 of 1, pass mark 60%)" in text
    assert "84" not in text and "42" not in text and "Median score" not in text
    assert "sent 1, started 1, completed 1" in (upload.alt_txt or "")

    # App Home shows the same figures for the job, counts and rates only.
    assert bot.sender.event(team_id=TEAM, event=sr.app_home_opened(user_id=RECRUITER, tab="home")).status_code == 200
    settle(bot, lambda: bot.slack.published_home(RECRUITER) is not None)
    home = json.dumps(bot.slack.published_home(RECRUITER), ensure_ascii=False)
    assert "This week: sent 1 \u00b7 started 1 \u00b7 completed 1 \u00b7 expired 0 \u00b7 pass rate 100%" in home
    assert not bot.slack.violations


def test_the_digest_command_with_nothing_this_week_says_so_and_posts_nothing(bot: Bot) -> None:
    setup_workspace(bot)
    # The digest's Monday 09:00 is in the zone of the admin who set the workspace up (their Slack profile).
    with bot.runtime.session_factory() as session:
        assert session.scalar(select(Workspace.timezone)) == "Europe/London"
    assert create_plan(bot).status_code == 200
    assert bot.command(ADMIN, "digest").status_code == 200
    settle(bot, lambda: any("no digest to post" in t for t in said_to(bot, ADMIN)))
    assert bot.slack.count("files.getUploadURLExternal") == 0
