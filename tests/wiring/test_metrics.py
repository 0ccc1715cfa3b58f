"""GET /metrics over real HTTP: Prometheus text, and counters that move as the journey runs."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.wiring.conftest import RECRUITER, Bot, ats_event, create_plan, setup_workspace
from tests.wiring.helpers import click, complete, new_card, post_callback, said_to, sent_card, settle, submit_send, wait_headline

FAMILIES = {
    "imocha_invitations_sent": "counter",
    "imocha_completions": "counter",
    "imocha_intake_events": "counter",
    "imocha_callbacks": "counter",
    "imocha_api_errors": "counter",
    "imocha_slack_errors": "counter",
    "imocha_poll_cycle_seconds": "histogram",
    "imocha_slack_ack_seconds": "histogram",
}


class Scrape:
    """One GET /metrics, parsed with prometheus_client's own parser."""

    def __init__(self, bot: Bot):
        r = httpx.get(f"{bot.url}/metrics")
        assert r.status_code == 200
        self.content_type = r.headers["content-type"]
        self.families = {f.name: f for f in text_string_to_metric_families(r.text)}

    def value(self, sample: str, **labels: str) -> float:
        family = next((f for f in self.families.values() if sample.startswith(f.name)), None)
        for s in family.samples if family else []:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return 0.0


def moved(before: Scrape, after: Scrape, sample: str, **labels: str) -> float:
    return after.value(sample, **labels) - before.value(sample, **labels)


def test_metrics_are_served_as_prometheus_text_with_every_family(bot: Bot) -> None:
    scrape = Scrape(bot)
    assert scrape.content_type.startswith("text/plain; version=")  # prometheus_client's exposition format
    assert {name: f.type for name, f in scrape.families.items() if name in FAMILIES} == FAMILIES


def test_counters_move_as_an_ats_event_is_accepted_sent_and_completed_by_callback(bot: Bot) -> None:
    before = Scrape(bot)
    app_id = new_card(bot)  # setup, plan, and one ATS event accepted
    assert bot.ats(ats_event("app-42", event_id="evt-app-42")).status_code == 202  # Slack-style redelivery
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    inv_id = bot.imocha.state.invitations()[0].id
    complete(bot, inv_id, via="callback")
    wait_headline(bot, "Assessment needs review")
    # iMocha repeats itself: a second callback, still one completion
    assert post_callback(bot, bot.imocha.state.callback_payload(bot.imocha.state.invitation(inv_id))).status_code == 200
    after = Scrape(bot)

    assert moved(before, after, "imocha_intake_events_total", source="ats", outcome="created") == 1
    assert moved(before, after, "imocha_intake_events_total", source="ats", outcome="duplicate") == 1
    assert moved(before, after, "imocha_invitations_sent_total", action="sent") == 1
    assert moved(before, after, "imocha_callbacks_total") == 2
    settle(bot, lambda: moved(before, Scrape(bot), "imocha_completions_total") >= 1)
    assert moved(before, Scrape(bot), "imocha_completions_total") == 1
    # every Slack request answered over HTTP was timed: setup (2), plan, send
    assert moved(before, after, "imocha_slack_ack_seconds_count") >= 4


def test_an_imocha_refusal_is_counted_by_kind(bot: Bot) -> None:
    app_id, inv_id = sent_card(bot)
    bot.imocha.state.start(inv_id)  # iMocha refuses to cancel a started test
    before = Scrape(bot)
    click(bot, RECRUITER, "cancel_invitation", app_id, rid="cancel")
    bot.slack.wait_for(lambda s: len(said_to(bot, "cancel")) >= 1)
    assert moved(before, Scrape(bot), "imocha_api_errors_total", kind="BadRequestError") == 1


def test_a_slack_error_delivering_a_card_is_counted_by_kind(bot: Bot) -> None:
    setup_workspace(bot)
    assert create_plan(bot).status_code == 200
    bot.slack.fail("chat.postMessage", status=200, error="internal_error")
    before = Scrape(bot)
    assert bot.ats(ats_event()).status_code == 202  # the card's first post fails; the outbox retries it later
    bot.slack.wait_for(lambda s: moved(before, Scrape(bot), "imocha_slack_errors_total", kind="card") >= 1)
    assert moved(before, Scrape(bot), "imocha_slack_errors_total", kind="card") == 1
