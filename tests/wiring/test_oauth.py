"""Multi-workspace OAuth over real HTTP: install, tokens encrypted at rest, uninstall, isolation between workspaces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, text

from bot.runtime.app import Runtime, build_runtime
from bot.runtime.config import load_settings
from bot.runtime.serving import ServerThread
from bot.slack.oauth import BOT_SCOPES
from bot.workspace.crypto import SecretBox
from bot.workspace.settings import SetupInput
from store.models import Workspace
from tests.fakes import slack_requests as sr
from tests.fakes.imocha import GOOD_KEY, FakeImocha
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import ADMIN, CHANNEL, RECRUITER, SECRET, TEAM, create_plan

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret"
TEAM_B = "T0002"
ADMIN_B = "UADMINB"
MEMBER_B = "UMEMBERB"
STATE_COOKIE = "slack-app-oauth-state"


@dataclass
class OAuthBot:
    runtime: Runtime
    server: ServerThread
    box: SecretBox
    sender: sr.SlackSender
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def install(self, code: str) -> httpx.Response:
        """Walk the install flow as a browser would: install page (state cookie), then Slack's redirect back."""
        page = self.http.get(f"{self.url}/slack/install")
        assert page.status_code == 200, page.text
        state = _state_cookie(page)
        return self.http.get(
            f"{self.url}/slack/oauth_redirect", params={"code": code, "state": state}, headers={"Cookie": f"{STATE_COOKIE}={state}"}
        )

    def plans_listing(self, slack: FakeSlack, team: str, user: str) -> str:
        rid = f"plans-{team}-{user}"
        r = self.sender.command(team_id=team, user_id=user, text="plans", response_url=slack.response_url(rid))
        assert r.status_code == 200
        slack.wait_for(lambda s: len(s.responses_to(rid)) >= 1)
        return json.dumps(slack.responses_to(rid)[-1].body)


def _state_cookie(response: httpx.Response) -> str:
    cookies = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookies.load(header)
    assert STATE_COOKIE in cookies, response.headers
    return cookies[STATE_COOKIE].value


@pytest.fixture
def oauth_slack(slack: FakeSlack) -> FakeSlack:
    """The wiring directory plus a second workspace; both teams install through oauth.v2.access."""
    slack.add_team(TEAM_B, "xoxb-never-used-b", team_name="Globex")
    slack.add_user(ADMIN_B, team_id=TEAM_B, email="admin@globex.example", is_admin=True)
    slack.add_user(MEMBER_B, team_id=TEAM_B, email="member@globex.example")
    slack.set_oauth(CLIENT_ID, CLIENT_SECRET, {"code-a": TEAM, "code-b": TEAM_B}, installers={"code-a": ADMIN, "code-b": ADMIN_B})
    return slack


@pytest.fixture
def oauth_bot(engine: Engine, oauth_slack: FakeSlack, fake_imocha: FakeImocha) -> Iterator[OAuthBot]:
    key = Fernet.generate_key().decode()
    settings = load_settings(
        _env_file=None,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_signing_secret=SECRET,
        slack_api_url=oauth_slack.api_url,
        database_url=str(engine.url.render_as_string(hide_password=False)),
        imocha_base_url=fake_imocha.url,
        encryption_key=key,
        imocha_poll_seconds=1,
    )
    runtime = build_runtime(settings, engine=engine)
    server = ServerThread(runtime.web, lifespan="on").start()
    bot = OAuthBot(runtime, server, SecretBox(key), sr.SlackSender(server.url, SECRET), httpx.Client(timeout=10.0))
    yield bot
    bot.http.close()
    bot.sender.close()
    server.stop()
    runtime.close()
    with engine.begin() as conn:  # slack_sdk's tables are not in our metadata, so the per-test cleanup misses them
        for table in ("slack_installations", "slack_bots", "slack_oauth_states"):
            conn.execute(text(f"DELETE FROM {table}"))


def test_the_install_page_asks_for_exactly_the_manifest_scopes_and_sets_the_state_cookie(oauth_bot: OAuthBot) -> None:
    page = oauth_bot.http.get(f"{oauth_bot.url}/slack/install")
    assert page.status_code == 200
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page.text)
    assert link, page.text
    query = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert query["client_id"] == [CLIENT_ID]
    assert sorted(query["scope"][0].split(",")) == sorted(BOT_SCOPES)
    assert query["state"] == [_state_cookie(page)]


def test_an_install_stores_the_bot_token_encrypted_and_the_bot_then_answers_that_workspace(
    oauth_bot: OAuthBot, oauth_slack: FakeSlack, engine: Engine
) -> None:
    done = oauth_bot.install("code-a")
    assert done.status_code == 200, done.text
    token = oauth_slack.issued_tokens[-1]

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT bot_token FROM slack_installations WHERE team_id = :t"), {"t": TEAM}).scalars().all()
        bots = conn.execute(text("SELECT bot_token FROM slack_bots WHERE team_id = :t"), {"t": TEAM}).scalars().all()
    assert len(stored) == 1 and len(bots) == 1
    for raw in stored + bots:
        assert raw and raw != token and token not in raw
        assert oauth_bot.box.decrypt(raw) == token  # encrypted once, with the bot's key
    store = oauth_bot.runtime.bolt.installation_store  # type: ignore[union-attr]
    found = store.find_bot(enterprise_id=None, team_id=TEAM)
    assert found is not None and found.bot_token == token

    # the installed workspace is served with its own token
    r = oauth_bot.sender.command(team_id=TEAM, user_id=RECRUITER, text="help")
    assert r.status_code == 200 and "/imocha setup" in r.text
    assert oauth_slack.calls_to("auth.test")[-1].token == token


def test_a_replayed_or_forged_state_is_refused(oauth_bot: OAuthBot, oauth_slack: FakeSlack) -> None:
    page = oauth_bot.http.get(f"{oauth_bot.url}/slack/install")
    state = _state_cookie(page)
    forged = oauth_bot.http.get(
        f"{oauth_bot.url}/slack/oauth_redirect", params={"code": "code-a", "state": "forged"}, headers={"Cookie": f"{STATE_COOKIE}={state}"}
    )
    assert forged.status_code >= 400
    assert oauth_slack.count("oauth.v2.access") == 0
    ok = oauth_bot.http.get(
        f"{oauth_bot.url}/slack/oauth_redirect", params={"code": "code-a", "state": state}, headers={"Cookie": f"{STATE_COOKIE}={state}"}
    )
    assert ok.status_code == 200
    replay = oauth_bot.http.get(
        f"{oauth_bot.url}/slack/oauth_redirect", params={"code": "code-a", "state": state}, headers={"Cookie": f"{STATE_COOKIE}={state}"}
    )
    assert replay.status_code >= 400
    assert oauth_slack.count("oauth.v2.access") == 1


def test_two_workspaces_keep_their_plans_apart_and_uninstalling_one_leaves_the_other_running(
    oauth_bot: OAuthBot, oauth_slack: FakeSlack, engine: Engine
) -> None:
    assert oauth_bot.install("code-a").status_code == 200
    assert oauth_bot.install("code-b").status_code == 200
    token_b = oauth_slack.issued_tokens[-1]
    workspaces = oauth_bot.runtime.services.workspaces
    for team, admin in ((TEAM, ADMIN), (TEAM_B, ADMIN_B)):
        workspaces.save(team, admin, SetupInput(api_key=GOOD_KEY, default_channel_id=None, validity_days=7))

    # each workspace makes a plan through Slack; each sees only its own
    bot_a = _AsTeam(oauth_bot)
    assert "Plan saved" in create_plan(bot_a, job="Backend Engineer", channel=CHANNEL).text  # type: ignore[arg-type]
    r = oauth_bot.sender.submit(
        team_id=TEAM_B,
        user_id=MEMBER_B,
        callback_id="imocha_plan",
        values={
            "job": {"job_input": sr.plain("Globex Designer")},
            "stage": {"stage_input": sr.plain("iMocha assessment")},
            "test": {"test_select": sr.external("1001", "Python Developer")},
            "channel": {"channel_input": sr.conversation(None)},
            "pass_mark": {"pass_mark_input": sr.number(None)},
            "share_scores": {"share_scores_input": sr.checkboxes()},
        },
    )
    assert "Plan saved" in r.text, r.text
    listing_a = oauth_bot.plans_listing(oauth_slack, TEAM, RECRUITER)
    listing_b = oauth_bot.plans_listing(oauth_slack, TEAM_B, MEMBER_B)
    assert "Backend Engineer" in listing_a and "Globex Designer" not in listing_a
    assert "Globex Designer" in listing_b and "Backend Engineer" not in listing_b
    # every Web API call for B's user went out with B's token, never A's
    b_calls = [c for c in oauth_slack.calls if c.body.get("user") in (ADMIN_B, MEMBER_B) or c.body.get("user_id") in (ADMIN_B, MEMBER_B)]
    assert b_calls and all(c.token == token_b for c in b_calls)
    assert {team for _, team in workspaces.active_workspaces()} == {TEAM, TEAM_B}

    # Slack says A uninstalled the app: A's polling stops and its tokens go; B is untouched
    r = oauth_bot.sender.event(team_id=TEAM, event={"type": "app_uninstalled", "event_ts": "1700000000.000200"})
    assert r.status_code == 200
    store = oauth_bot.runtime.bolt.installation_store  # type: ignore[union-attr]
    oauth_slack.wait_for(lambda s: store.find_bot(enterprise_id=None, team_id=TEAM) is None, message="A's tokens were not removed")
    assert {team for _, team in workspaces.active_workspaces()} == {TEAM_B}
    with engine.connect() as conn:
        active = {team: on for team, on in conn.execute(select(Workspace.team_id, Workspace.active))}
    assert active == {TEAM: False, TEAM_B: True}
    b_bot = store.find_bot(enterprise_id=None, team_id=TEAM_B)
    assert b_bot is not None and b_bot.bot_token == token_b
    assert "Globex Designer" in oauth_bot.plans_listing(oauth_slack, TEAM_B, MEMBER_B)


def test_revoking_the_bot_token_stops_that_workspace(oauth_bot: OAuthBot, oauth_slack: FakeSlack) -> None:
    assert oauth_bot.install("code-b").status_code == 200
    workspaces = oauth_bot.runtime.services.workspaces
    workspaces.save(TEAM_B, ADMIN_B, SetupInput(api_key=GOOD_KEY, default_channel_id=None, validity_days=7))
    r = oauth_bot.sender.event(team_id=TEAM_B, event={"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}})
    assert r.status_code == 200
    store = oauth_bot.runtime.bolt.installation_store  # type: ignore[union-attr]
    oauth_slack.wait_for(lambda s: store.find_bot(enterprise_id=None, team_id=TEAM_B) is None, message="B's bot token was not removed")
    assert workspaces.active_workspaces() == []


class _AsTeam:
    """Just enough of the wiring `Bot` for conftest's `create_plan`, which signs as team A."""

    def __init__(self, bot: OAuthBot):
        self.sender = bot.sender

    def submit(self, user: str, callback_id: str, values: dict | None = None, **kw: object) -> httpx.Response:
        return self.sender.submit(team_id=TEAM, user_id=user, callback_id=callback_id, values=values or {}, **kw)
