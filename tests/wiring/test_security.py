"""Security over real HTTP: signatures and HMACs, body limits and validation, who may act, escaping, the key kept secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from bot.runtime.app import build_runtime
from bot.runtime.config import load_settings
from bot.runtime.serving import ServerThread
from store.models import Application, Base, Invitation
from tests.fakes import slack_requests as sr
from tests.fakes.imocha import FakeImocha
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import (
    ADMIN,
    ATS_SECRET,
    BOT_TOKEN,
    CHANNEL,
    GUEST,
    OUTSIDER,
    RECRUITER,
    SECRET,
    TEAM,
    Bot,
    ats_event,
    create_plan,
    setup_workspace,
)
from tests.wiring.helpers import card, click, complete, new_card, settle, submit_send, wait_headline

SECRET_KEY = "sandbox-SECRETKEY-123456"
REJECTED_KEY = "bogus-SECRETKEY-654321"


def _applications(bot: Bot) -> int:
    with bot.runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Application)) or 0)


def _answered(rid: str, text: str) -> Callable[[FakeSlack], bool]:
    """Whether the response_url `rid` was told something containing `text`."""
    return lambda fake: any(text in json.dumps(p.body) for p in fake.responses_to(rid))


def _everything_sent_to_slack(bot: Bot) -> str:
    """Every Web API call body, response_url post and stored view, as one string."""
    parts = [json.dumps(c.body, default=str) for c in bot.slack.calls]
    parts += [json.dumps(p.body, default=str) for p in bot.slack.responses]
    parts += [json.dumps(v, default=str) for v in bot.slack.views.values()]
    return "\n".join(parts)


# -- signatures -------------------------------------------------------------------------------------


def test_requests_without_a_valid_signature_get_401_and_change_nothing(bot: Bot) -> None:
    bot.slack.reset_calls()  # the bot's own start-up (auth.test) is not under test
    body = sr.slash_command(team_id=TEAM, user_id=ADMIN, text="setup", response_url=bot.slack.response_url("sig"))
    good = sr.sign(body, SECRET)
    cases = {
        "wrong": {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        "wrong secret": sr.sign(body, "not-the-secret"),
        "missing": {"Content-Type": sr.FORM},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "stale (over 5 minutes)": sr.sign(body, SECRET, int(time.time()) - 301),
        "garbage timestamp": {**good, "X-Slack-Request-Timestamp": "soon"},
    }
    for name, headers in cases.items():
        r = httpx.post(bot.sender.url, content=body.encode(), headers=headers)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert SECRET not in r.text and "v0=" not in r.text, name
    time.sleep(0.2)
    assert bot.slack.calls == [] and bot.slack.responses == []
    # the same body, properly signed, is served (so the refusals above were about the signature)
    assert httpx.post(bot.sender.url, content=body.encode(), headers=sr.sign(body, SECRET)).status_code == 200
    bot.slack.wait_for_calls("views.open", 1)

    # the ATS webhook's HMAC
    setup_workspace(bot)
    create_plan(bot)
    raw = json.dumps(ats_event()).encode()
    for headers in (
        {"X-Signature": "sha256=" + hmac.new(b"wrong", raw, hashlib.sha256).hexdigest()},
        {"X-Signature": hmac.new(ATS_SECRET.encode(), raw, hashlib.sha256).hexdigest()},  # no sha256= prefix
        {"X-Signature": "sha256=" + hmac.new(ATS_SECRET.encode(), raw + b" ", hashlib.sha256).hexdigest()},
        {},
    ):
        r = httpx.post(f"{bot.url}/webhooks/ats", content=raw, headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 401, (headers, r.text)
        assert ATS_SECRET not in r.text
    assert _applications(bot) == 0
    assert bot.ats(ats_event()).status_code == 202


def test_a_correctly_signed_binary_body_gets_400_and_a_badly_signed_one_401(bot: Bot) -> None:
    bot.slack.reset_calls()
    junk = bytes(range(256))  # not UTF-8, not a form, not JSON
    signed = sr.sign(junk, SECRET, content_type="application/octet-stream")
    r = httpx.post(bot.sender.url, content=junk, headers=signed)
    assert r.status_code == 400, r.text  # the signature verifies: a malformed body, not an authentication failure (SPEC §8)
    assert "error" in r.json()
    forged = sr.sign(junk, "not-the-secret", content_type="application/octet-stream")
    assert httpx.post(bot.sender.url, content=junk, headers=forged).status_code == 401
    assert httpx.post(bot.sender.url, content=junk + b"!", headers=signed).status_code == 401
    time.sleep(0.2)
    assert bot.slack.calls == [] and bot.slack.responses == []


@pytest.fixture
def bot_without_secrets(engine: Engine, slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[Bot]:
    """The same bot with no ATS_WEBHOOK_SECRET (and, like every test bot, no GREENHOUSE_WEBHOOK_SECRET)."""
    settings = load_settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        database_url=engine.url.render_as_string(hide_password=False),
        imocha_base_url=fake_imocha.url,
        encryption_key=Fernet.generate_key().decode(),
    )
    runtime = build_runtime(settings, engine=engine)
    server = ServerThread(runtime.web, lifespan="on").start()
    b = Bot(runtime, server, slack, fake_imocha, sr.SlackSender(server.url, SECRET))
    yield b
    b.sender.close()
    b.server.stop()
    b.runtime.close()


def test_a_webhook_route_whose_secret_is_unset_answers_404_naming_the_variable_that_enables_it(bot_without_secrets: Bot) -> None:
    raw = json.dumps(ats_event()).encode()
    for route, header, variable in (("ats", "X-Signature", "ATS_WEBHOOK_SECRET"), ("greenhouse", "Signature", "GREENHOUSE_WEBHOOK_SECRET")):
        r = httpx.post(f"{bot_without_secrets.url}/webhooks/{route}", content=raw, headers={header: "sha256=whatever"})
        assert r.status_code == 404, route
        assert r.json() == {"error": f"/webhooks/{route} is switched off: set {variable} to enable it", "enable_with": variable}
    assert httpx.get(f"{bot_without_secrets.url}/healthz").json() == {"status": "ok", "db": "ok"}


# -- input ------------------------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_saying_what_is_wrong_and_changes_nothing(bot: Bot) -> None:
    setup_workspace(bot)
    create_plan(bot)

    # bodies over 1 MiB, declared or streamed
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    for route in ("/webhooks/ats", "/webhooks/imocha", "/slack/events"):
        r = httpx.post(bot.url + route, content=big, headers={"Content-Type": "application/json", **sr.sign(big.decode(), SECRET)})
        assert r.status_code == 413, route

    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b"a" * 65536

    assert httpx.post(bot.url + "/webhooks/imocha", content=chunks()).status_code == 413
    assert httpx.post(bot.url + "/slack/events", content=chunks()).status_code == 413
    assert httpx.get(bot.url + "/slack/events").status_code == 405

    # ATS events: malformed JSON, a bad email, missing and oversized fields
    def signed(raw: bytes) -> httpx.Response:
        sig = "sha256=" + hmac.new(ATS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return httpx.post(f"{bot.url}/webhooks/ats", content=raw, headers={"X-Signature": sig, "Content-Type": "application/json"})

    r = signed(b'{"event": "application.stage_changed",')
    assert r.status_code == 400 and r.json()["fields"] == ["body"]
    r = signed(b"[]")
    assert r.status_code == 400 and r.json()["fields"] == ["body"]
    bad_email = ats_event()
    bad_email["candidate"]["email"] = "ada.example.com"
    r = signed(json.dumps(bad_email).encode())
    assert r.status_code == 400 and r.json()["fields"] == ["candidate.email"]
    missing = ats_event()
    del missing["job"]
    missing["stage"]["name"] = "x" * 5000
    missing["recruiter"] = {"email": "<!channel>"}
    r = signed(json.dumps(missing).encode())
    assert r.status_code == 400
    assert set(r.json()["fields"]) == {"job.name", "stage.name", "recruiter.email"}
    assert _applications(bot) == 0

    # malformed Slack bodies
    for body, content_type in (("payload=%7Bnot-json", sr.FORM), ("{not json", sr.JSON), ("[1, 2]", sr.JSON), ("", sr.FORM)):
        r = bot.sender.post(body, content_type=content_type)
        assert r.status_code == 400, (body, r.status_code)

    # Bolt's parser takes any form body with the word "payload" for interactivity: the command survives
    for text in ("payload please", "payload={}", "help"):
        r = bot.command(RECRUITER, text)
        assert r.status_code == 200, text
        assert "/imocha setup" in r.text and "/imocha status" in r.text, (text, r.text)


# -- who may act --------------------------------------------------------------------------------------


def test_guests_and_people_who_cannot_see_the_card_cannot_act_on_it(bot: Bot) -> None:
    app_id = new_card(bot)
    bot.slack.reset_calls()

    # a guest: politely refused, whatever they try
    bot.command(GUEST, "plan")
    bot.slack.wait_for(lambda s: any("guests" in json.dumps(p.body) for p in s.responses_to(GUEST)))
    click(bot, GUEST, "send_assessment", app_id, rid="guest-click")
    bot.slack.wait_for(lambda s: any("guests" in json.dumps(p.body) for p in s.responses_to("guest-click")))
    # someone neither owning the card nor in its channel, submitting a send form they were never shown
    for user in (GUEST, OUTSIDER):
        assert submit_send(bot, app_id, user=user).status_code == 200
    time.sleep(0.3)
    assert bot.slack.count("views.open") == 0
    assert bot.imocha.state.count("/invite") == 0
    assert "Assessment needs sending" in json.dumps(card(bot).blocks)

    # once sent, clicks that do not come from the card (another channel, App Home, a hand-made request)
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    (inv,) = bot.imocha.state.invitations()
    bot.imocha.state.reset_calls()
    for action_id in ("cancel_invitation", "resend_invitation", "show_score"):
        rid = f"out-{action_id}"
        click(bot, OUTSIDER, action_id, app_id, channel_id="C0GENERAL", rid=rid)
        bot.slack.wait_for(_answered(rid, "only on cards"))
    r = bot.action(OUTSIDER, "cancel_invitation", str(app_id), view={"id": "VHOME", "type": "home"}, response_url=None)
    assert r.status_code == 200
    time.sleep(0.3)
    assert bot.imocha.state.count("/cancel") == 0 and bot.imocha.state.count("/invite") == 0
    assert bot.imocha.state.invitation(inv.id).status == "Pending"
    assert "Assessment sent" in json.dumps(card(bot).blocks)

    # an application id from nowhere is refused the same way, not with an error trace
    click(bot, RECRUITER, "cancel_invitation", 999_999, rid="nowhere")
    bot.slack.wait_for(lambda s: len(s.responses_to("nowhere")) == 1)
    assert "no longer exists" in json.dumps(bot.slack.responses_to("nowhere")[0].body)


# -- escaping -----------------------------------------------------------------------------------------


def test_a_candidate_named_like_a_channel_mention_pings_nobody(bot: Bot) -> None:
    setup_workspace(bot)
    create_plan(bot, share=True)
    event = ats_event()
    event["candidate"]["name"] = "<!channel> & <@UADMIN> <https://evil.example|click>"
    event["job"]["name"] = "Backend Engineer"
    assert bot.ats(event).status_code == 202
    settle(bot, lambda: len(bot.slack.top_level(CHANNEL)) == 1)
    app_id = int(card(bot).blocks[-1]["elements"][0]["value"])  # type: ignore[index]
    assert submit_send(bot, app_id).status_code == 200
    wait_headline(bot, "Assessment sent")
    (inv,) = bot.imocha.state.invitations()
    complete(bot, inv.id)
    wait_headline(bot, "Assessment needs review")
    settle(bot, lambda: any(m.reply_broadcast for m in bot.slack.messages(CHANNEL)))
    settle(bot, lambda: any("completed" in (m.text or "") for m in bot.slack.dms_to(RECRUITER)))

    blocks = json.dumps(card(bot).blocks)
    assert "&lt;!channel&gt; &amp; &lt;@UADMIN&gt;" in blocks
    for raw in ("<!channel>", "<@UADMIN>", "<https://evil.example|click>"):
        leaks = [c.method + " " + json.dumps(c.body)[:800] for c in bot.slack.calls if raw in json.dumps(c.body)]
        leaks += ["response_url " + json.dumps(p.body)[:800] for p in bot.slack.responses if raw in json.dumps(p.body)]
        assert not leaks, (raw, leaks)
    assert bot.slack.violations == []


# -- the API key ---------------------------------------------------------------------------------------


def _database_text(bot: Bot, engine: Engine) -> bytes:
    if engine.url.get_backend_name() == "sqlite":
        path = Path(str(engine.url.database))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with engine.connect() as conn:
        rows = [repr(conn.execute(select(table)).all()) for table in Base.metadata.sorted_tables]
    return "\n".join(rows).encode()


def test_the_api_key_appears_in_no_log_no_slack_message_and_not_in_the_database(
    bot: Bot, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # a rejected key first (its error must not echo it), then the real one
    bot.command(ADMIN, "setup")
    bot.slack.wait_for_calls("views.open", 1)
    view_id = list(bot.slack.views)[-1]
    values = {
        "api_key": {"api_key_input": sr.plain(REJECTED_KEY)},
        "default_channel": {"default_channel_input": sr.conversation(CHANNEL)},
        "validity_days": {"validity_days_input": sr.number(7)},
        "gem_key": {"gem_key_input": sr.plain(None)},
    }
    bot.submit(ADMIN, "imocha_setup", values, view_id=view_id)
    bot.slack.wait_for(lambda s: "rejected" in json.dumps(s.views[view_id]))
    values["api_key"] = {"api_key_input": sr.plain(SECRET_KEY)}
    bot.submit(ADMIN, "imocha_setup", values, view_id=view_id)
    bot.slack.wait_for(lambda s: "connected" in json.dumps(s.views[view_id]))

    # the whole journey, including failures whose texts could carry the key
    create_plan(bot, share=True)
    app_id = new_card(bot, plan=False)
    bot.imocha.state.fail_next("/invite", status=400, body={"errors": [{"message": "bad request"}]})
    submit_send(bot, app_id)
    wait_headline(bot, "Assessment could not be sent")
    click(bot, RECRUITER, "retry_send", app_id)
    wait_headline(bot, "Assessment sent")
    (inv,) = bot.imocha.state.invitations()
    complete(bot, inv.id)
    wait_headline(bot, "Assessment needs review")
    bot.command(RECRUITER, "status ada@example.com")
    bot.command(ADMIN, "resync")
    bot.slack.wait_for(lambda s: any("Resync done" in json.dumps(p.body) for p in s.responses))
    assert any(c.api_key == SECRET_KEY for c in bot.imocha.state.calls)  # the key really was used

    ours = [r for r in caplog.records if not r.name.startswith("bot.sandbox")]
    assert ours, "no log records were captured"
    for record in ours:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for key in (SECRET_KEY, REJECTED_KEY, "SECRETKEY"):
            assert key not in text, f"{record.name}: {text[:300]}"
    sent = _everything_sent_to_slack(bot)
    assert "SECRETKEY" not in sent
    stored = _database_text(bot, engine)
    assert b"SECRETKEY" not in stored
    with bot.runtime.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 1


# -- fuzz -------------------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_ids = st.sampled_from(["1", "0", "-1", "999999999999999999999", "x", ""])
_view_like = st.fixed_dictionaries(
    {
        "id": st.just("V1"),
        "type": st.just("modal"),
        "callback_id": st.sampled_from(["imocha_setup", "imocha_plan", "imocha_send_confirm", "imocha_manual_send", "x"]),
        "state": st.fixed_dictionaries(
            {
                "values": st.dictionaries(
                    st.sampled_from(["api_key", "job", "test", "use", "pass_mark", "candidate_email"]),
                    st.dictionaries(st.text(max_size=25), _json, max_size=2),
                    max_size=3,
                )
            }
        ),
    },
    optional={"private_metadata": st.one_of(st.text(max_size=20), _ids.map(lambda i: json.dumps({"application_id": i, "plan_id": i})))},
)
_slack_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["block_actions", "view_submission", "view_closed", "block_suggestion", "event_callback", "shortcut"]),
        "team": st.one_of(st.just({"id": TEAM}), _json),
        "user": st.one_of(st.just({"id": RECRUITER}), _json),
    },
    optional={
        "actions": st.lists(
            st.fixed_dictionaries(
                {
                    "action_id": st.sampled_from(
                        ["send_assessment", "cancel_invitation", "show_score", "plan_edit_menu", "home_show_more", "x"]
                    )
                },
                optional={"value": st.one_of(_ids, _json), "selected_option": _json},
            ),
            min_size=1,
            max_size=2,
        ),
        "view": st.one_of(_view_like, _json),
        "event": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["app_home_opened", "app_uninstalled", "tokens_revoked"])},
                optional={"user": _json, "tab": _json, "tokens": _json},
            ),
            _json,
        ),
        "container": _json,
        "trigger_id": _json,
        "action_id": st.sampled_from(["test_select", "x"]),
        "value": _json,
    },
)
_command_like = st.fixed_dictionaries(
    {
        "command": st.just("/imocha"),
        "text": st.one_of(
            st.sampled_from(["status", "status a@b.co", "plans", "payload", "send", "resync", "setup"]), st.text(max_size=40)
        ),
        "team_id": st.just(TEAM),
        "user_id": st.sampled_from([RECRUITER, ADMIN, GUEST, "UNKNOWN"]),
    },
    optional={"trigger_id": st.text(max_size=10), "response_url": st.just("http://127.0.0.1:9/x")},
)
_ats_like = st.one_of(
    st.fixed_dictionaries(
        {"event": st.sampled_from(["application.stage_changed", "other"])},
        optional={
            "id": _json,
            "team_id": _json,
            "application": _json,
            "candidate": _json,
            "job": _json,
            "stage": _json,
            "recruiter": _json,
        },
    ),
    # a valid event with one field replaced: the parser's edges
    st.tuples(st.sampled_from(list(ats_event())), _json).map(lambda kv: {**ats_event(), kv[0]: kv[1]}),
    st.tuples(st.sampled_from(["name", "email", "id"]), _json).map(
        lambda kv: {**ats_event(), "candidate": {**ats_event()["candidate"], kv[0]: kv[1]}}
    ),
)
_callback_like = st.fixed_dictionaries(
    {"TestInvitationId": st.one_of(st.integers(), _json)}, optional={"Status": _json, "CandidateScore": _json, "AttemptedOnUtc": _json}
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, bytes, str]:
    route = draw(st.sampled_from(["/webhooks/ats", "/webhooks/imocha", "/slack/events"]))
    kind = draw(st.sampled_from(["json", "shaped", "form"]))
    if kind == "form":
        fields = draw(st.one_of(_command_like, st.dictionaries(st.sampled_from(["command", "text", "payload", "x"]), st.text(max_size=30))))
        if draw(st.booleans()):
            fields["payload"] = json.dumps(draw(_slack_like))
        return route, urlencode(fields).encode(), sr.FORM
    if kind == "shaped":
        shaped = {"/webhooks/ats": _ats_like, "/webhooks/imocha": _callback_like, "/slack/events": _slack_like}[route]
        return route, json.dumps(draw(shaped)).encode(), sr.JSON
    return route, json.dumps(draw(_json)).encode(), sr.JSON


def test_fuzzed_bodies_never_get_a_5xx(bot: Bot) -> None:
    setup_workspace(bot)
    create_plan(bot)
    client = httpx.Client(timeout=10)
    statuses: dict[int, int] = {}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(_requests())
    def post(request: tuple[str, bytes, str]) -> None:
        route, raw, content_type = request
        headers: dict[str, Any] = {"Content-Type": content_type}
        if route == "/webhooks/ats":
            headers["X-Signature"] = "sha256=" + hmac.new(ATS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        elif route == "/slack/events":
            headers.update(sr.sign(raw.decode(), SECRET, content_type=content_type))
        r = client.post(bot.url + route, content=raw, headers=headers)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (route, raw[:300], r.status_code, r.text[:300])

    try:
        post()
    finally:
        client.close()
    assert httpx.get(f"{bot.url}/healthz").status_code == 200
    assert any(400 <= s < 500 for s in statuses), statuses
    # and the bot still serves a well-formed request after all that (the fuzz may draw none of its own)
    assert bot.command(RECRUITER, "help").status_code == 200
