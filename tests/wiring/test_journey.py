"""The recruiter's whole journey through real HTTP: setup, plan, ATS event, card, send, DM, card updated."""

from __future__ import annotations

import json
import threading

from bot.imocha import Status
from tests.fakes import slack_requests as sr
from tests.wiring.conftest import (
    ADMIN,
    CHANNEL,
    MEMBER,
    RECRUITER,
    Bot,
    ats_event,
    create_plan,
    setup_workspace,
)


def _card(bot: Bot):
    msgs = bot.slack.top_level(CHANNEL)
    assert len(msgs) == 1, [m.text for m in msgs]
    return msgs[0]


def _send_values(test_id: str = "1001", name: str = "Python Developer") -> dict:
    return {"test": {"test_select": sr.external(test_id, name)}}


def _open_send(bot: Bot, user: str = RECRUITER) -> tuple[dict, str]:
    card = _card(bot)
    app_id = card.blocks[-1]["elements"][0]["value"]
    r = bot.action(user, "send_assessment", app_id, channel_id=CHANNEL, message_ts=card.ts)
    assert r.status_code == 200
    bot.slack.wait_for(
        lambda s: s.count("views.open") >= 1 and any(v.get("callback_id") == "imocha_send_confirm" for v in s.views.values())
    )
    view = next(v for v in bot.slack.views.values() if v.get("callback_id") == "imocha_send_confirm")
    return view, app_id


def test_the_whole_journey_from_setup_to_a_sent_assessment(bot: Bot) -> None:
    # a non-admin is refused setup, privately
    r = bot.command(MEMBER, "setup")
    assert r.status_code == 200
    bot.slack.wait_for(lambda s: any("admins" in (p.body.get("text") or "") for p in s.responses))
    assert bot.slack.count("views.open") == 0

    # an admin tries a bad key, then a good one
    assert bot.command(ADMIN, "setup").status_code == 200
    bot.slack.wait_for_calls("views.open", 1)
    view_id = list(bot.slack.views)[-1]
    values = {
        "api_key": {"api_key_input": sr.plain("wrong-key-123")},
        "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
        "validity_days": {"validity_days_input": sr.number(7)},
        "gem_key": {"gem_key_input": sr.plain(None)},
    }
    r = bot.submit(ADMIN, "imocha_setup", values, view_id=view_id)
    assert r.status_code == 200 and "Checking the key" in r.text
    bot.slack.wait_for(lambda s: "iMocha rejected this API key" in json.dumps(s.views[view_id]))
    values["api_key"] = {"api_key_input": sr.plain("sandbox-test-key")}
    r = bot.submit(ADMIN, "imocha_setup", values, view_id=view_id)
    bot.slack.wait_for(lambda s: "iMocha is connected" in json.dumps(s.views[view_id]))
    assert bot.runtime.services.workspaces.settings("T0001").has_imocha_key

    # a recruiter makes a plan
    r = create_plan(bot)
    assert r.status_code == 200 and "Plan saved" in r.text, r.text

    # the ATS says Ada reached the stage: one card in the hiring channel
    r = bot.ats(ats_event())
    assert r.status_code == 202 and r.json() == {"status": "accepted", "application": "app-42"}
    bot.slack.wait_for(lambda s: len(s.top_level(CHANNEL)) == 1)
    card = _card(bot)
    assert "Assessment needs sending" in json.dumps(card.blocks)
    assert any(e.get("text", {}).get("text") == "Send assessment" for b in card.blocks if b["type"] == "actions" for e in b["elements"])

    # click → confirm modal → submit
    view, app_id = _open_send(bot)
    assert "Python Developer" in json.dumps(view)
    r = bot.submit(RECRUITER, "imocha_send_confirm", _send_values(), private_metadata=json.dumps({"application_id": int(app_id)}))
    assert r.status_code == 200
    bot.slack.wait_for(lambda s: "Assessment sent" in json.dumps(_card(bot).blocks))
    invitations = bot.imocha.state.invitations()
    assert len(invitations) == 1
    url = invitations[0].test_url(bot.imocha.url)
    bot.slack.wait_for(lambda s: any("Test link" in json.dumps(m.blocks) for m in s.dms_to(RECRUITER)))
    dms = bot.slack.dms_to(RECRUITER)
    if url:
        assert any(url in json.dumps(m.blocks) for m in dms)
    assert bot.slack.violations == []


def test_a_double_submit_creates_one_invitation(bot: Bot) -> None:
    setup_workspace(bot)
    assert create_plan(bot).status_code == 200
    assert bot.ats(ats_event()).status_code == 202
    bot.slack.wait_for(lambda s: len(s.top_level(CHANNEL)) == 1)
    _view, app_id = _open_send(bot)
    meta = json.dumps({"application_id": int(app_id)})
    threads = [
        threading.Thread(target=bot.submit, args=(RECRUITER, "imocha_send_confirm", _send_values()), kwargs={"private_metadata": meta})
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.slack.wait_for(lambda s: "Assessment sent" in json.dumps(_card(bot).blocks))
    assert bot.imocha.state.count("/invite", "POST") == 1
    bot.slack.wait_for(lambda s: any("Test link" in json.dumps(m.blocks) for m in s.dms_to(RECRUITER)))
    link_dms = [m for m in bot.slack.dms_to(RECRUITER) if "Test link" in json.dumps(m.blocks)]
    assert len(link_dms) == 1
    assert len(bot.imocha.state.invitations()) == 1
    assert Status.PENDING  # the invitation is open


def test_duplicate_ats_deliveries_make_one_card(bot: Bot) -> None:
    setup_workspace(bot)
    create_plan(bot)
    assert bot.ats(ats_event()).status_code == 202
    assert bot.ats(ats_event()).status_code == 202
    assert bot.ats(ats_event(event_id="evt_02")).status_code == 202
    bot.slack.wait_for(lambda s: len(s.top_level(CHANNEL)) == 1)
    assert len(bot.slack.top_level(CHANNEL)) == 1


def test_racing_deliverers_post_a_new_card_once_and_update_it_in_place(bot: Bot) -> None:
    """A send's card update racing the card's first post used to post a second card."""
    from bot.ats.intake import IntakeEvent
    from bot.slack.outbox import CARD, SlackOutbox
    from store.models import Workspace

    setup_workspace(bot)
    assert create_plan(bot).status_code == 200
    services = bot.runtime.services
    result = services.intake.receive(
        IntakeEvent(
            source="ats",
            team_id="T0001",
            application_id="race-1",
            candidate_name="Grace Hopper",
            candidate_email="grace@example.com",
            job_id=None,
            job_name="Backend Engineer",
            stage_name="iMocha assessment",
        )
    )
    assert result.created and result.application_id is not None
    with bot.runtime.session_factory.begin() as session:
        ws_id = session.query(Workspace.id).filter_by(team_id="T0001").scalar()
        for n in range(5):
            SlackOutbox.add(session, workspace_id=ws_id, kind=CARD, key=f"card:race:{n}", application_id=result.application_id)
    threads = [threading.Thread(target=services.outbox.deliver, kwargs={"application_id": result.application_id}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    services.outbox.deliver()
    assert len(bot.slack.top_level(CHANNEL)) == 1
    assert bot.slack.count("chat.postMessage") == 1
