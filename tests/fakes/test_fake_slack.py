"""Tests of the Slack fakes themselves: Block Kit validation, the fake Web API, signed request builders."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt import App
from slack_bolt.adapter.asgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.runtime.serving import ServerThread
from tests.fakes import slack_requests as sr
from tests.fakes.blockkit import (
    assert_valid_blocks,
    assert_valid_view,
    validate_blocks,
    validate_message,
    validate_view,
)
from tests.fakes.slack import FakeSlack

TOKEN_A, TOKEN_B = "xoxb-team-a", "xoxb-team-b"
SECRET = "s"


def button(action_id: str = "go", text: str = "Go") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}


def section(text: str = "hi") -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def modal(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "modal", "title": {"type": "plain_text", "text": "Plan"}, "blocks": list(blocks), **extra}


def text_input(block_id: str | None = "name", action_id: str | None = "value") -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input"}
    if action_id:
        element["action_id"] = action_id
    block: dict[str, Any] = {
        "type": "input",
        "label": {"type": "plain_text", "text": "Name"},
        "element": element,
    }
    if block_id:
        block["block_id"] = block_id
    return block


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeSlack) -> FakeSlack:
    server.reset()
    server.add_team("T1", TOKEN_A, team_name="Acme")
    server.add_team("T2", TOKEN_B, bot_user_id="UBOT2", bot_id="BBOT2", team_name="Globex")
    server.add_user("U1", team_id="T1", email="ann@acme.test", name="ann", is_admin=True)
    server.add_user("U2", team_id="T1", email="bob@acme.test", is_restricted=True)
    server.add_user("V1", team_id="T2", email="vic@globex.test")
    server.add_channel("C1", team_id="T1", name="hiring", members=["U1", "U2"])
    server.add_channel("G1", team_id="T1", name="secret", members=["U1"], is_private=True)
    server.add_channel("C2", team_id="T2", name="general", members=["V1"])
    return server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(base_url=fake.api_url, token=TOKEN_A)


def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


# -- blockkit -------------------------------------------------------------------------------------------


def test_common_valid_blocks_have_no_problems() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Assessment sent"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Ann*"}, "accessory": button()},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": "*Job*"}, {"type": "plain_text", "text": "QA"}],
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "attempt 2"}]},
        {
            "type": "actions",
            "block_id": "card",
            "elements": [
                button("resend", "Resend"),
                {
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}],
                    "initial_option": {"text": {"type": "plain_text", "text": "A"}, "value": "a"},
                },
            ],
        },
    ]
    assert validate_blocks(blocks, surface="message") == []
    assert_valid_blocks(blocks, surface="home")


def test_a_button_text_of_80_characters_is_a_problem_at_its_json_pointer() -> None:
    problems = validate_blocks([{"type": "actions", "elements": [button(text="x" * 80)]}], surface="message")
    assert problems == ["/blocks/0/elements/0/text/text: must be at most 75 characters (got 80)"]


def test_51_blocks_are_too_many_for_a_message_but_not_for_a_modal() -> None:
    blocks = [{"type": "divider"}] * 51
    assert validate_blocks(blocks, surface="message") == ["/blocks: a message may have at most 50 blocks (got 51)"]
    assert validate_blocks(blocks, surface="modal") == []
    assert validate_blocks([{"type": "divider"}] * 101, surface="home") != []


def test_an_unknown_block_type_is_a_problem() -> None:
    assert validate_blocks([{"type": "sektion"}], surface="message") == ["/blocks/0/type: unknown block type 'sektion'"]


def test_plain_strings_unknown_fields_and_misplaced_elements_are_problems() -> None:
    problems = validate_blocks(
        [
            {"type": "section", "text": "hi"},
            {"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "colour": "red"},
            {"type": "header", "text": {"type": "mrkdwn", "text": "H"}},
            {"type": "actions", "elements": [{"type": "plain_text_input", "action_id": "a"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
        ],
        surface="message",
    )
    assert problems == [
        "/blocks/0/text: must be a text object ({'type': 'plain_text', 'text': ...}), not str",
        "/blocks/1/colour: unknown field 'colour'",
        "/blocks/2/text/type: must be plain_text here",
        "/blocks/3/elements/0/type: element type 'plain_text_input' is not allowed in an actions block",
        "/blocks/4/text/text: must not be empty",
    ]


def test_duplicate_ids_and_an_initial_option_outside_the_options_are_problems() -> None:
    select = {
        "type": "static_select",
        "action_id": "s",
        "options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}],
        "initial_option": {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
    }
    problems = validate_blocks(
        [
            {"type": "actions", "block_id": "x", "elements": [button("a"), button("a")]},
            {"type": "actions", "block_id": "x", "elements": [select]},
        ],
        surface="message",
    )
    assert problems == [
        "/blocks/0/elements/1/action_id: duplicate action_id 'a' in block",
        "/blocks/1/block_id: duplicate block_id 'x' (also /blocks/0)",
        "/blocks/1/elements/0/initial_option: initial option 'b' is not one of the options",
    ]


def test_an_input_block_in_a_view_must_set_its_block_id_and_action_id() -> None:
    problems = validate_view(modal(text_input(block_id=None, action_id=None), submit={"type": "plain_text", "text": "OK"}))
    assert problems == [
        "/view/blocks/0/block_id: an input block in a view must set block_id explicitly",
        "/view/blocks/0/element/action_id: an input element in a view must set action_id",
    ]


def test_validate_view_checks_title_submit_metadata_and_home_rules() -> None:
    assert validate_view(modal(text_input(), submit={"type": "plain_text", "text": "Save"})) == []
    problems = validate_view(
        modal(
            text_input(),
            title={"type": "plain_text", "text": "t" * 25},
            private_metadata="m" * 3001,
            callback_id="c" * 256,
        )
    )
    assert problems == [
        "/view/title/text: must be at most 24 characters (got 25)",
        "/view/private_metadata: must be at most 3000 characters (got 3001)",
        "/view/callback_id: must be at most 255 characters (got 256)",
        "/view/submit: a modal with input blocks needs a submit button",
    ]
    home = {"type": "home", "blocks": [section()], "submit": {"type": "plain_text", "text": "No"}}
    assert validate_view(home) == ["/view/submit: field 'submit' is not allowed in a home view"]


def test_a_view_over_250_kb_is_too_large() -> None:
    view = modal(*[section("x" * 3000)] * 90)
    assert any("view_too_large" in p for p in validate_view(view))


def test_validate_message_needs_text_or_blocks() -> None:
    assert validate_message(None, None) == ["/text: a message needs text or blocks (no_text)"]
    assert validate_message("hi", None) == []
    assert validate_message(None, [section()]) == []
    assert validate_message("x" * 40_001, None) == ["/text: 40001 characters is over 40000 (msg_too_long)"]


def test_assert_valid_view_raises_listing_every_problem() -> None:
    with pytest.raises(AssertionError) as info:
        assert_valid_view(modal(section(""), title={"type": "plain_text", "text": "t" * 30}))
    assert "/view/title/text" in str(info.value) and "/view/blocks/0/text/text" in str(info.value)


# -- fake Web API: directory, tokens, messages ------------------------------------------------------------


def test_auth_test_answers_for_the_team_of_the_token(fake: FakeSlack) -> None:
    resp = WebClient(base_url=fake.api_url, token=TOKEN_B).auth_test()
    assert (resp["team_id"], resp["user_id"], resp["bot_id"], resp["url"]) == (
        "T2",
        "UBOT2",
        "BBOT2",
        "https://globex.slack.com/",
    )
    assert "chat:write" in resp.headers["x-oauth-scopes"]


def test_missing_unknown_and_revoked_tokens_are_rejected(fake: FakeSlack) -> None:
    assert error_of(WebClient(base_url=fake.api_url).auth_test).response["error"] == "not_authed"
    assert error_of(WebClient(base_url=fake.api_url, token="xoxb-nope").auth_test).response["error"] == "invalid_auth"
    fake.revoke_token(TOKEN_A)
    err = error_of(lambda: WebClient(base_url=fake.api_url, token=TOKEN_A).chat_postMessage(channel="C1", text="x"))
    assert err.response["error"] == "token_revoked"


def test_post_update_and_thread_messages_through_a_real_web_client(fake: FakeSlack, client: WebClient) -> None:
    card = client.chat_postMessage(channel="C1", text="card", blocks=[section("Ann")])
    reply = client.chat_postMessage(channel="C1", thread_ts=card["ts"], text="done", reply_broadcast=True)
    client.chat_postMessage(channel="C1", thread_ts=card["ts"], text="note")
    client.chat_update(channel="C1", ts=card["ts"], text="card v2", blocks=[section("Ann, sent")])

    assert float(reply["ts"]) > float(card["ts"]) and reply["ts"] != card["ts"]
    updated = fake.message("C1", card["ts"])
    assert updated is not None
    assert (updated.text, updated.blocks, updated.updates, updated.user) == (
        "card v2",
        [section("Ann, sent")],
        1,
        "UBOT",
    )
    assert [(m.text, m.reply_broadcast) for m in fake.thread("C1", card["ts"])] == [
        ("done", True),
        ("note", False),
    ]
    assert [m.text for m in fake.top_level("C1")] == ["card v2", "done"]
    assert len(fake.messages("C1")) == 3
    assert fake.calls_to("chat.update")[0].body["blocks"] == [section("Ann, sent")]
    assert fake.violations == []


def test_posting_to_a_user_id_lands_in_their_dm_and_the_im_id_is_stable(fake: FakeSlack, client: WebClient) -> None:
    assert client.chat_postMessage(channel="U1", text="your link")["channel"] == "DU1"
    opened = client.conversations_open(users="U1")
    assert opened["channel"]["id"] == "DU1" and opened["already_open"] is True
    client.chat_postMessage(channel="DU1", text="again")
    assert [m.text for m in fake.dms_to("U1")] == ["your link", "again"]


def test_unknown_channels_unopened_ims_and_private_channels_without_the_bot_are_not_found(fake: FakeSlack, client: WebClient) -> None:
    for channel in ("C404", "DU2", "G1"):
        err = error_of(lambda channel=channel: client.chat_postMessage(channel=channel, text="x"))
        assert err.response["error"] == "channel_not_found", channel
    fake.add_member("G1", "UBOT")
    assert client.chat_postMessage(channel="G1", text="now visible")["ok"]


def test_a_team_cannot_reach_another_teams_channels_users_or_messages(fake: FakeSlack, client: WebClient) -> None:
    other = WebClient(base_url=fake.api_url, token=TOKEN_B)
    ts = client.chat_postMessage(channel="C1", text="mine")["ts"]
    assert error_of(lambda: other.chat_postMessage(channel="C1", text="x")).response["error"] == "channel_not_found"
    assert error_of(lambda: other.chat_update(channel="C1", ts=ts, text="x")).response["error"] == "channel_not_found"
    assert error_of(lambda: other.users_info(user="U1")).response["error"] == "user_not_found"
    assert error_of(lambda: other.conversations_open(users="U1")).response["error"] == "user_not_found"
    assert error_of(lambda: client.users_lookupByEmail(email="vic@globex.test")).response["error"] == "users_not_found"
    assert other.users_lookupByEmail(email="VIC@globex.test")["user"]["id"] == "V1"


def test_chat_update_refuses_a_missing_message_or_one_the_bot_did_not_post(fake: FakeSlack, client: WebClient) -> None:
    err = error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"
    ts = fake.add_message("C1", text="hello", user="U1")
    assert error_of(lambda: client.chat_update(channel="C1", ts=ts, text="x")).response["error"] == "cant_update_message"
    reply = client.chat_postMessage(channel="C1", thread_ts=ts, text="hi Ann")
    assert [m.ts for m in fake.thread("C1", ts)] == [reply["ts"]] and fake.violations == []


def test_a_reply_to_a_message_that_does_not_exist_is_recorded_as_a_violation(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", thread_ts="1699999999.000001", text="orphan")
    assert fake.violations == ["chat.postMessage: /thread_ts: no message 1699999999.000001 in C1"]


def test_ephemerals_permalinks_channel_info_members_and_user_flags(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postEphemeral(channel="C1", user="U2", text="only you")
    assert [m.text for m in fake.ephemerals("U2")] == ["only you"]
    err = error_of(lambda: client.chat_postEphemeral(channel="G1", user="U2", text="x"))
    assert err.response["error"] == "channel_not_found"

    ts = client.chat_postMessage(channel="C1", text="card")["ts"]
    link = client.chat_getPermalink(channel="C1", message_ts=ts)["permalink"]
    assert link == f"https://acme.slack.com/archives/C1/p{ts.replace('.', '')}"

    info = client.conversations_info(channel="C1")["channel"]
    assert (info["name"], info["is_private"], info["is_member"]) == ("hiring", False, False)
    assert client.conversations_members(channel="C1")["members"] == ["U1", "U2"]

    ann = client.users_info(user="U1")["user"]
    bob = client.users_info(user="U2")["user"]
    assert (ann["is_admin"], ann["is_restricted"], ann["profile"]["email"]) == (True, False, "ann@acme.test")
    assert (bob["is_admin"], bob["is_restricted"]) == (False, True)


def test_bolts_extra_team_id_field_and_form_encoded_blocks_are_accepted(fake: FakeSlack) -> None:
    client = WebClient(base_url=fake.api_url, token=TOKEN_A, team_id="T1")
    client.chat_postMessage(channel="C1", text="hi")
    form = client.api_call("chat.postMessage", data={"channel": "C1", "blocks": json.dumps([section()])})
    assert form["ok"] and fake.calls_to("chat.postMessage")[0].body["team_id"] == "T1"
    assert fake.messages("C1")[1].blocks == [section()]


def test_an_unknown_method_answers_unknown_method(client: WebClient) -> None:
    assert error_of(lambda: client.api_call("chat.frobnicate")).response["error"] == "unknown_method"


# -- views ------------------------------------------------------------------------------------------------


def test_a_trigger_id_opens_one_view_and_is_refused_when_reused_or_expired(fake: FakeSlack, client: WebClient) -> None:
    view = client.views_open(trigger_id="t-1", view=modal(section()))["view"]
    assert view["id"] == "V1", "view ids restart at V1 after reset(), matching slack_requests' default view_id"
    assert view["hash"] and view["state"] == {"values": {}}
    assert error_of(lambda: client.views_open(trigger_id="t-1", view=modal())).response["error"] == "exchanged_trigger_id"
    fake.expire_trigger("t-2")
    assert error_of(lambda: client.views_open(trigger_id="t-2", view=modal())).response["error"] == "expired_trigger_id"
    assert [v["id"] for v in fake.opened_views()] == [view["id"]]


def test_views_update_by_id_or_external_id_and_publish_a_home_tab(fake: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id="t", view=modal(section("loading"), external_id="plan-1"))["view"]
    client.views_update(view_id=opened["id"], view=modal(section("step 2")))
    updated = client.views_update(external_id="plan-1", view=modal(section("step 3"), external_id="plan-1"))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert fake.views[opened["id"]]["blocks"] == [section("step 3")]
    err = error_of(lambda: client.views_update(view_id="V404", view=modal(section())))
    assert err.response["error"] == "not_found"
    other = WebClient(base_url=fake.api_url, token=TOKEN_B)
    assert error_of(lambda: other.views_update(view_id=opened["id"], view=modal())).response["error"] == "not_found"

    first = client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("home")]})["view"]
    again = client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("home 2")]})["view"]
    assert first["id"] == again["id"]
    assert fake.published_home("U1") == again and fake.published_home("U2") is None


def test_an_invalid_view_is_rejected_as_invalid_arguments_and_recorded(fake: FakeSlack, client: WebClient) -> None:
    bad = modal(text_input(), title={"type": "plain_text", "text": "a title that is far too long"})
    err = error_of(lambda: client.views_open(trigger_id="t", view=bad))
    assert err.response["error"] == "invalid_arguments"
    assert "[ERROR] /view/title/text: must be at most 24 characters (got 28)" in err.response["response_metadata"]["messages"]
    assert len(fake.violations) == 2 and fake.violations[0].startswith("views.open: /view/title")
    assert client.views_open(trigger_id="t", view=modal(section()))["ok"], "an invalid view must not use up the trigger"


# -- Block Kit strictness on messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "actions", "elements": [button(text="x" * 80)]}],
        [{"type": "divider"}] * 51,
        [{"type": "sektion", "text": {"type": "mrkdwn", "text": "x"}}],
    ],
    ids=["button text of 80 characters", "51 blocks", "unknown block type"],
)
def test_invalid_blocks_are_rejected_and_recorded_as_violations(fake: FakeSlack, client: WebClient, blocks: list[dict[str, Any]]) -> None:
    err = error_of(lambda: client.chat_postMessage(channel="C1", text="x", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert err.response["response_metadata"]["messages"][0].startswith("[ERROR] /blocks")
    assert len(fake.violations) == 1 and fake.violations[0].startswith("chat.postMessage: /blocks")
    assert fake.messages("C1") == []


def test_a_message_without_text_or_blocks_is_no_text(fake: FakeSlack, client: WebClient) -> None:
    no_text = error_of(lambda: client.api_call("chat.postMessage", json={"channel": "C1"}))
    assert no_text.response["error"] == "no_text"
    assert fake.violations == ["chat.postMessage: /text: a message needs text or blocks (no_text)"]


# -- fault injection, latency, waiting ------------------------------------------------------------


def test_a_429_surfaces_as_a_slack_api_error_with_an_integer_retry_after(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=7)
    err = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert (err.response.status_code, err.response["error"]) == (429, "ratelimited")
    assert err.response.headers["Retry-After"] == ["7"] or err.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel="C1", text="x")["ok"], "only the next call fails"


def test_the_rate_limit_retry_handler_retries_after_a_429(fake: FakeSlack) -> None:
    client = WebClient(base_url=fake.api_url, token=TOKEN_A, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    fake.fail("chat.postMessage", status=429, retry_after=0)
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert fake.count("chat.postMessage") == 2 and len(fake.messages("C1")) == 1


def test_server_errors_and_injected_slack_errors_surface_as_slack_api_errors(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("users.info", status=500)
    fake.fail("users.info", status=503, empty_body=True)
    fake.fail("*", status=200, error="fatal_error")
    first = error_of(lambda: client.users_info(user="U1")).response
    assert (first.status_code, first["error"]) == (500, "internal_error")
    assert error_of(lambda: client.users_info(user="U1")).response.status_code == 503
    assert error_of(lambda: client.auth_test()).response["error"] == "fatal_error"
    assert client.users_info(user="U1")["ok"]


def test_latency_delays_every_call_but_200_concurrent_calls_wait_together(fake: FakeSlack) -> None:
    fake.latency = 0.5
    host, port = fake.url.removeprefix("http://").split(":")
    request = (
        f"POST /api/auth.test HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()

    async def call() -> bytes:
        # Raw sockets: httpx's async pool, not the fake, is the bottleneck at 200 connections.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    async def burst() -> list[bytes]:
        return await asyncio.gather(*(call() for _ in range(200)))

    started = time.monotonic()
    answers = asyncio.run(burst())
    elapsed = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 200") and b'"team_id":"T1"' in a for a in answers)
    assert 0.5 <= elapsed < 10.0  # together: one after another would take 100 s (loose, for a loaded machine)
    assert fake.count("auth.test") == 200


def test_wait_for_calls_returns_once_background_work_made_them(fake: FakeSlack, client: WebClient) -> None:
    import threading

    threading.Timer(0.1, lambda: client.chat_postMessage(channel="C1", text="later")).start()
    calls = fake.wait_for_calls("chat.postMessage", 1, timeout=3)
    assert calls[0].body["text"] == "later" and calls[0].token == TOKEN_A
    fake.wait_for(lambda f: len(f.messages("C1")) == 1, timeout=3)
    with pytest.raises(AssertionError, match="expected 2 calls"):
        fake.wait_for_calls("chat.postMessage", 2, timeout=0.05)


def test_response_url_posts_are_recorded_and_their_blocks_validated(fake: FakeSlack) -> None:
    assert WebhookClient(fake.response_url("7")).send(text="done", replace_original=True).status_code == 200
    bad = WebhookClient(fake.response_url("7")).send(blocks=[{"type": "sektion"}])
    assert bad.status_code == 400
    posts = fake.responses_to("7")
    assert [p.body.get("text") for p in posts] == ["done", None] and posts[0].body["replace_original"] is True
    assert fake.violations == ["response_url: /blocks/0/type: unknown block type 'sektion'"]


def test_oauth_v2_access_installs_a_working_token_for_the_codes_team(fake: FakeSlack) -> None:
    fake.set_oauth("cid", "csecret", {"code-1": "T1"})
    anonymous = WebClient(base_url=fake.api_url)
    bad = error_of(lambda: anonymous.oauth_v2_access(client_id="cid", client_secret="nope", code="code-1"))
    assert bad.response["error"] == "bad_client_secret"
    resp = anonymous.oauth_v2_access(client_id="cid", client_secret="csecret", code="code-1")
    assert (resp["team"], resp["bot_user_id"], resp["authed_user"]["id"]) == (
        {"id": "T1", "name": "Acme"},
        "UBOT",
        "U1",
    )
    assert WebClient(base_url=fake.api_url, token=resp["access_token"]).auth_test()["team_id"] == "T1"
    again = error_of(lambda: anonymous.oauth_v2_access(client_id="cid", client_secret="csecret", code="code-1"))
    assert again.response["error"] == "invalid_code"


def test_apps_connections_open_needs_an_app_token(fake: FakeSlack) -> None:
    fake.add_app_token("xapp-1")
    assert WebClient(base_url=fake.api_url, token="xapp-1").apps_connections_open(app_token="xapp-1")["url"].startswith("ws://")
    err = error_of(lambda: WebClient(base_url=fake.api_url).apps_connections_open(app_token=TOKEN_A))
    assert err.response["error"] == "not_allowed_token_type"


# -- signed requests ------------------------------------------------------------------------------


def test_signature_verifier_accepts_the_headers_sign_makes_and_rejects_tampering() -> None:
    body = sr.slash_command(team_id="T1", user_id="U1", text="plans")
    headers = sr.sign(body, SECRET)
    verifier = SignatureVerifier(SECRET)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + "x", headers)
    assert not verifier.is_valid_request(body, sr.sign(body, SECRET, timestamp=int(time.time()) - 301))
    assert sr.sign(sr.url_verification("c"), SECRET)["Content-Type"] == "application/json"


def test_slash_commands_are_form_encoded_like_slacks() -> None:
    fields = parse_qs(sr.slash_command(team_id="T1", user_id="U1", text="send ann@x.test"))
    assert fields["command"] == ["/imocha"] and fields["text"] == ["send ann@x.test"]
    assert fields["channel_id"] == ["C0GENERAL"] and fields["trigger_id"][0]
    two = {parse_qs(sr.slash_command(team_id="T1", user_id="U1", text=""))["trigger_id"][0] for _ in range(2)}
    assert len(two) == 2


@pytest.fixture(scope="module")
def bolt(server: FakeSlack) -> tuple[App, dict[str, Any]]:
    server.reset()
    server.add_team("T1", TOKEN_A)
    app = App(client=WebClient(base_url=server.api_url, token=TOKEN_A), signing_secret=SECRET)
    seen: dict[str, Any] = {}

    @app.command("/imocha")
    def command(ack: Any, command: dict[str, Any]) -> None:
        seen["command"] = command["text"]
        ack("ok")

    @app.action("resend")
    def message_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        seen["action"] = (body["container"]["type"], action["value"])
        ack()

    @app.action("pick")
    def view_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        seen["view_action"] = (
            body["container"]["type"],
            body["view"]["id"],
            action["selected_option"]["value"],
        )
        ack()

    @app.view("plan")
    def submission(ack: Any, view: dict[str, Any]) -> None:
        seen["submission"] = (view["state"]["values"]["name"]["value"]["value"], view["private_metadata"])
        ack()

    @app.options("test")
    def suggestion(ack: Any, payload: dict[str, Any]) -> None:
        seen["suggestion"] = payload["value"]
        ack(options=[{"text": {"type": "plain_text", "text": "Python"}, "value": "py"}])

    @app.event("app_home_opened")
    def home(event: dict[str, Any]) -> None:
        seen["event"] = event["user"]

    return app, seen


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("command", sr.slash_command(team_id="T1", user_id="U1", text="plans"), "plans"),
        (
            "action",
            sr.block_action(team_id="T1", user_id="U1", action_id="resend", value="42"),
            ("message", "42"),
        ),
        (
            "view_action",
            sr.block_action(
                team_id="T1",
                user_id="U1",
                action_id="pick",
                value="py",
                action_type="static_select",
                view={"id": "V9", "callback_id": "plan"},
            ),
            ("view", "V9", "py"),
        ),
        (
            "submission",
            sr.view_submission(
                team_id="T1",
                user_id="U1",
                callback_id="plan",
                values={"name": {"value": sr.plain("QA")}},
                private_metadata="m",
            ),
            ("QA", "m"),
        ),
        ("suggestion", sr.block_suggestion(team_id="T1", user_id="U1", action_id="test", value="pyt"), "pyt"),
        ("event", sr.event_callback(team_id="T1", event=sr.app_home_opened(user_id="U1")), "U1"),
    ],
)
def test_a_real_bolt_app_dispatches_each_built_body_to_its_listener(
    bolt: tuple[App, dict[str, Any]], name: str, body: str, expected: Any
) -> None:
    app, seen = bolt
    response = app.dispatch(sr.bolt_request(body, SECRET))
    assert response.status == 200, response.body
    deadline = time.monotonic() + 2
    while name not in seen and time.monotonic() < deadline:  # events are acknowledged before they run
        time.sleep(0.01)
    assert seen.pop(name) == expected


def test_bolt_answers_url_verification_and_reproduces_its_payload_parsing_quirk(
    bolt: tuple[App, dict[str, Any]],
) -> None:
    app, _ = bolt
    assert json.loads(app.dispatch(sr.bolt_request(sr.url_verification("abc"), SECRET)).body) == {"challenge": "abc"}
    quirk = sr.slash_command(team_id="T1", user_id="U1", text="payload please")
    assert app.dispatch(sr.bolt_request(quirk, SECRET)).status == 404


def test_slack_sender_posts_signed_requests_over_real_http(bolt: tuple[App, dict[str, Any]]) -> None:
    app, seen = bolt
    with ServerThread(SlackRequestHandler(app)) as web, sr.SlackSender(web.url, SECRET) as sender:
        response = sender.command(team_id="T1", user_id="U1", text="status ann@x.test")
        assert (response.status_code, response.text, seen.pop("command")) == (200, "ok", "status ann@x.test")
        forged = sender.post(sr.slash_command(team_id="T1", user_id="U1", text="x"), content_type=sr.FORM, signature="v0=0")
        assert forged.status_code == 401
        stale = sender.post(sr.url_verification("c"), content_type=sr.JSON, timestamp=int(time.time()) - 600)
        assert stale.status_code == 401


# -- file uploads (files_upload_v2: getUploadURLExternal, the upload URL, completeUploadExternal) -------

TINY_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_files_upload_v2_shares_a_png_in_the_channel_with_its_comment_and_alt_text(fake: FakeSlack, client: WebClient) -> None:
    # Sharing a file needs the bot in the channel (chat:write.public covers messages only).
    refused = error_of(lambda: client.files_upload_v2(channel="C1", file=TINY_PNG, filename="chart.png", title="Chart"))
    assert refused.response["error"] == "not_in_channel"
    client.conversations_join(channel="C1")
    fake.reset_calls()

    response = client.files_upload_v2(
        channel="C1", file=TINY_PNG, filename="chart.png", title="Chart", alt_txt="one pixel", initial_comment="*Digest*"
    )

    [upload] = fake.files("C1")
    assert response["file"]["id"] == upload.id
    assert (upload.data, upload.alt_txt, upload.title, upload.completed) == (TINY_PNG, "one pixel", "Chart", True)
    [message] = fake.messages("C1")
    assert (message.text, message.files) == ("*Digest*", [upload.id])
    assert [c.method for c in fake.calls] == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert not fake.violations


def test_an_upload_that_is_not_a_png_is_refused_and_recorded(fake: FakeSlack, client: WebClient) -> None:
    from urllib.error import HTTPError

    with pytest.raises(HTTPError):  # slack_sdk lets urllib's error through for a 400 from the upload URL
        client.files_upload_v2(channel="C1", content="not an image", filename="chart.png", title="Chart")
    assert fake.violations == ["upload: /upload: chart.png is not a PNG"]
    assert fake.messages("C1") == []
    assert (
        error_of(lambda: client.files_completeUploadExternal(files=[{"id": "F404"}], channel_id="C1")).response["error"] == "file_not_found"
    )
