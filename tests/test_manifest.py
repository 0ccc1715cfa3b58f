"""app_manifest.yaml passes Slack's own schema and declares exactly what the app registers and asks for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet
from slack_bolt import App
from sqlalchemy import Engine

from bot.runtime.app import Runtime, build_runtime
from bot.runtime.config import Settings, load_settings
from bot.slack.oauth import BOT_SCOPES
from handlers import ids
from handlers.blocks import HELP
from tests.fakes import slack_requests as sr
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "app_manifest.yaml"
# Major version 2: the Workflow Builder step's `functions` need v2's input/output parameter shape.
SCHEMA_FILE = "manifest.schema.2.0.0.json"
# CI keeps Slack's schema in a `shared/` folder beside the clone; the vendored copy is the fallback.
SCHEMA_DIRS = (ROOT.parent / "shared" / "reference" / "slack-manifest-schema", ROOT / "tests" / "fixtures" / "slack-manifest-schema")

TEAM, TOKEN, SECRET = "T0001", "xoxb-manifest-test", "manifest-signing-secret"


def schema_path() -> Path:
    return next(d / SCHEMA_FILE for d in SCHEMA_DIRS if (d / SCHEMA_FILE).is_file())


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_the_manifest_passes_slacks_schema(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 2
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema).check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def test_the_vendored_schema_is_slacks_schema() -> None:
    vendored = SCHEMA_DIRS[1] / SCHEMA_FILE
    assert (SCHEMA_DIRS[1] / "LICENSE").is_file()
    shared = SCHEMA_DIRS[0] / SCHEMA_FILE
    if shared.is_file():
        assert json.loads(vendored.read_text()) == json.loads(shared.read_text()), "refresh tests/fixtures/slack-manifest-schema"


def test_the_schema_catches_what_slack_would_refuse(manifest: dict[str, Any]) -> None:
    """The validation has teeth: an unknown key or a too-short long_description fails it."""
    validator = jsonschema.Draft7Validator(json.loads(schema_path().read_text(encoding="utf-8")))
    unknown = {**manifest, "settings": {**manifest["settings"], "socket_mode": True}}
    short = {**manifest, "display_information": {**manifest["display_information"], "long_description": "Too short."}}
    assert not validator.is_valid(unknown)
    assert not validator.is_valid(short)


def test_the_wheel_ships_the_same_manifest() -> None:
    # pyproject's package-data ships bot/app_manifest.yaml; it must be the file people paste into Slack.
    packaged = resources.files("bot").joinpath("app_manifest.yaml").read_bytes()
    assert packaged == MANIFEST.read_bytes(), "copy app_manifest.yaml over bot/app_manifest.yaml"


def test_the_manifest_asks_for_exactly_the_scopes_the_oauth_flow_requests(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "the bot needs no user scopes"
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert sorted(scopes["bot"]) == sorted(BOT_SCOPES)


def test_the_manifest_subscribes_to_exactly_the_events_in_the_id_catalogue(manifest: dict[str, Any]) -> None:
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == sorted(ids.EVENTS)
    assert "user_events" not in manifest["settings"]["event_subscriptions"]


def test_the_manifest_urls_point_at_the_bots_routes(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    event_urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    event_urls += [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]]
    event_urls.append(settings["interactivity"]["message_menu_options_url"])
    assert {urlsplit(u).path for u in event_urls} == {"/slack/events"}
    assert [urlsplit(u).path for u in manifest["oauth_config"]["redirect_urls"]] == ["/slack/oauth_redirect"]
    assert {urlsplit(u).netloc for u in [*event_urls, *manifest["oauth_config"]["redirect_urls"]]} == {"YOUR-HOST"}
    assert settings["socket_mode_enabled"] is True  # the default for trying it out; docs/install.md explains HTTP mode
    assert manifest["features"]["app_home"]["home_tab_enabled"] and manifest["features"]["app_home"]["messages_tab_enabled"]


def test_the_usage_hint_lists_the_subcommands_the_help_describes(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    hint = command["usage_hint"].strip("[]").split(" | ")
    assert hint == ["setup", "plan", "plans", "send", "status <email>", "resync", "digest", "help"]
    for sub in hint:
        assert f"/imocha {sub}" in HELP
    assert command["should_escape"] is False


def test_the_env_example_lists_every_setting_and_loads_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    example = ROOT / ".env.example"
    paragraphs = example.read_text(encoding="utf-8").split("\n\n")
    for name in Settings.model_fields:
        variable = re.compile(rf"^(# )?{name.upper()}=", re.M)
        (paragraph,) = [p for p in paragraphs if variable.search(p)] or [""]
        assert paragraph, f"{name.upper()} is missing from .env.example"
        comments = [line for line in paragraph.splitlines() if line.startswith("#") and not re.match(r"# [A-Z_]+=", line)]
        assert comments, f"{name.upper()} has no comment explaining it"
        monkeypatch.delenv(name.upper(), raising=False)
    settings = load_settings(_env_file=example)  # copied to .env untouched, it is a valid (empty) configuration
    assert settings.database_url == "sqlite:///imocha-bot.db" and settings.slack_bot_token is None


# -- what the Bolt app really registers ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def registered(
    monkeypatch: pytest.MonkeyPatch, sqlite_engine: Engine, fake_slack: FakeSlack
) -> Iterator[tuple[Runtime, dict[str, list[Any]]]]:
    """The real composition root, with App's registration methods recording what the handlers register."""
    fake_slack.reset()
    fake_slack.add_team(TEAM, TOKEN)
    seen: dict[str, list[Any]] = {"command": [], "event": [], "options": [], "action": [], "view": [], "function": []}
    for name in seen:
        original = getattr(App, name)

        def recording(self: App, constraint: Any, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            seen[_name].append(constraint)
            return _original(self, constraint, *args, **kwargs)

        monkeypatch.setattr(App, name, recording)
    settings = load_settings(
        _env_file=None,
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        database_url=str(sqlite_engine.url),
        encryption_key=Fernet.generate_key().decode(),
    )
    runtime = build_runtime(settings, engine=sqlite_engine, token_verification=False)
    yield runtime, seen
    runtime.close()


def _dispatch(runtime: Runtime, body: str) -> Any:
    assert runtime.bolt is not None
    return runtime.bolt.dispatch(sr.bolt_request(body, SECRET))


def _event(event_type: str) -> dict[str, Any]:
    if event_type == "app_home_opened":
        return sr.app_home_opened(user_id="UMANIFEST", tab="messages")  # the messages tab: no Web API call
    if event_type == "tokens_revoked":
        return {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": []}}
    if event_type == "function_executed":
        # The step with no inputs: acked, then failed with a message for the workflow's author.
        return {"type": "function_executed", "function": {"callback_id": ids.SEND_FUNCTION}, "inputs": {}, "function_execution_id": "Fx0"}
    return {"type": event_type}


def test_the_app_registers_exactly_the_manifests_commands_and_events(
    manifest: dict[str, Any], registered: tuple[Runtime, dict[str, list[Any]]]
) -> None:
    _runtime, seen = registered
    assert sorted(seen["command"]) == sorted(c["command"] for c in manifest["features"]["slash_commands"])
    # app.function listens to function_executed events for the manifest's functions.
    assert sorted(seen["function"]) == sorted(manifest["functions"])
    assert sorted([*seen["event"], "function_executed"]) == sorted(manifest["settings"]["event_subscriptions"]["bot_events"])
    # buttons and modals need interactivity; external_select options need the options load URL
    assert seen["action"] and seen["view"] and manifest["settings"]["interactivity"]["is_enabled"]
    assert seen["options"] and manifest["settings"]["interactivity"]["message_menu_options_url"]


def test_a_signed_request_for_each_declared_command_and_event_is_handled(
    manifest: dict[str, Any], registered: tuple[Runtime, dict[str, list[Any]]]
) -> None:
    runtime, _seen = registered
    for command in manifest["features"]["slash_commands"]:
        response = _dispatch(runtime, sr.slash_command(team_id=TEAM, user_id="UMANIFEST", text="help", command=command["command"]))
        assert response.status == 200, command
        assert "/imocha setup" in response.body
    for event_type in manifest["settings"]["event_subscriptions"]["bot_events"]:
        response = _dispatch(runtime, sr.event_callback(team_id=TEAM, event=_event(event_type)))
        assert response.status == 200, event_type

    # and what the manifest does not declare finds no listener
    assert _dispatch(runtime, sr.slash_command(team_id=TEAM, user_id="UMANIFEST", text="help", command="/other")).status == 404
    assert _dispatch(runtime, sr.event_callback(team_id=TEAM, event={"type": "member_joined_channel"})).status == 404
