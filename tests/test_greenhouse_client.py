"""The Harvest v3 client against the fake Greenhouse over real HTTP: tokens per acting user, lookups, writes, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.ats.greenhouse import (
    HarvestActingUserError,
    HarvestApplication,
    HarvestAuthError,
    HarvestClient,
    HarvestClients,
    HarvestConnectionError,
    HarvestCredentials,
    HarvestForbiddenError,
    HarvestNotFoundError,
    HarvestProtocolError,
    HarvestRateLimitError,
    HarvestServerError,
    HarvestUser,
    HarvestValidationError,
    RejectionReason,
)
from bot.ats.greenhouse.models import list_of, parse_application, parse_reason, parse_user, parse_user_email
from bot.runtime.serving import free_port
from tests.conftest import Clock
from tests.fakes.greenhouse import CLIENT_ID, CLIENT_SECRET, FakeHarvest, HarvestState, fake_harvest  # noqa: F401 (fixture)

GOOD = HarvestCredentials(CLIENT_ID, CLIENT_SECRET)


@pytest.fixture
def world(fake_harvest: FakeHarvest, clock: Clock) -> Iterator[tuple[HarvestState, HarvestClients, list[float]]]:  # noqa: F811
    """The fake on the test clock, and a client factory whose retries sleep on a list instead."""
    state = fake_harvest.reset(clock)
    slept: list[float] = []
    clients, https = HarvestClients.build(fake_harvest.url, fake_harvest.url, clock=clock, sleep=slept.append, random=lambda: 1.0)
    yield state, clients, slept
    for http in https:
        http.close()


def account(state: HarvestState) -> tuple[int, int, dict]:
    rita = state.add_user("Rita Recruiter", "Rita@Example.com", secondary=["rita.r@example.org"])
    job = state.add_job("Designer", ["Application Review", "Assessment", "Onsite"])
    return rita, state.add_application(job, "Assessment"), job


def test_check_accepts_good_credentials_and_names_what_is_wrong_otherwise(world: tuple[HarvestState, HarvestClients, list[float]]) -> None:
    state, clients, _ = world
    clients(GOOD).check()
    with pytest.raises(HarvestAuthError, match="refused the Harvest client ID and secret.*invalid_client"):
        clients(HarvestCredentials(CLIENT_ID, "wrong-secret")).check()
    state.credentials[CLIENT_ID]["scopes"].discard("harvest:users:list")
    with pytest.raises(HarvestForbiddenError, match="harvest:users:list"):
        clients(GOOD).check()
    [first, *_] = state.calls_to("POST", "/token")
    assert first.body == {"grant_type": "client_credentials"}  # the service account: no sub


def test_one_token_per_acting_user_reused_until_it_nears_expiry_or_is_refused(
    world: tuple[HarvestState, HarvestClients, list[float]], clock: Clock
) -> None:
    state, clients, _ = world
    rita, app_id, job = account(state)
    client = clients(GOOD)
    client.check()
    client.check()
    client.move(app_id, from_stage_id=job["stage_ids"]["Assessment"], as_user=rita)
    subs = [c.body.get("sub") for c in state.calls_to("POST", "/token")]
    assert subs == [None, str(rita)]  # the service account's token served both checks
    assert [(c.path, c.sub) for c in state.calls_to("POST", "/v3/")] == [(f"/v3/applications/{app_id}/move", rita)]

    clock.advance(minutes=59, seconds=1)  # within a minute of the hour: renewed first
    client.check()
    assert state.count("POST", "/token") == 3
    state.tokens.clear()  # Greenhouse revoked them: a 401, then one new token and the call again
    client.check()
    assert state.count("POST", "/token") == 4 and state.count("GET", "/v3/users") == 5


def test_users_are_found_by_primary_or_secondary_email_and_deactivated_ones_are_skipped(
    world: tuple[HarvestState, HarvestClients, list[float]],
) -> None:
    state, clients, _ = world
    rita, _app, _job = account(state)
    state.add_user("Old Account", "mo@example.com", deactivated=True)
    mo = state.add_user("Mo Member", "mo.m@example.com", secondary=["mo@example.com"])
    client = clients(GOOD)
    found = client.find_user("rita@example.COM")
    assert found is not None and found.id == rita and found.name == "Rita Recruiter"
    assert (client.find_user("rita.r@example.org") or found).id == rita
    assert (client.find_user("mo@example.com") or found).id == mo
    assert client.find_user("nobody@example.com") is None


def test_advance_moves_to_the_next_stage_as_the_user_and_a_stale_stage_is_a_validation_error(
    world: tuple[HarvestState, HarvestClients, list[float]],
) -> None:
    state, clients, _ = world
    rita, app_id, job = account(state)
    client = clients(GOOD)
    assessment, onsite = job["stage_ids"]["Assessment"], job["stage_ids"]["Onsite"]
    client.move(str(app_id), from_stage_id=str(assessment), as_user=rita)
    assert client.application(app_id).current_stage_id == onsite
    with pytest.raises(HarvestValidationError, match="from_stage_id: does not match") as info:
        client.move(app_id, from_stage_id=assessment, as_user=rita)
    assert info.value.status_code == 422
    client.move(app_id, from_stage_id=onsite, to_stage_id=assessment, as_user=rita)  # the way an undo moves back
    assert state.stage_name(app_id) == "Assessment"
    with pytest.raises(HarvestNotFoundError):
        client.application(999_999)


def test_reject_needs_a_reason_and_unreject_takes_it_back(world: tuple[HarvestState, HarvestClients, list[float]]) -> None:
    state, clients, _ = world
    rita, app_id, _job = account(state)
    client = clients(GOOD)
    reasons = client.rejection_reasons()
    assert [(r.id, r.type) for r in reasons][-1] == (303, "We rejected them")
    client.reject(app_id, rejection_reason_id=303, notes="From Slack", as_user=rita)
    assert client.application(app_id).status == "rejected"
    with pytest.raises(HarvestValidationError, match="already rejected"):
        client.reject(app_id, rejection_reason_id=303, notes=None, as_user=rita)
    client.unreject(app_id, as_user=rita)
    assert client.application(app_id).status == "active"
    assert [w[0] for w in state.writes] == ["reject", "unreject"]


def test_a_deactivated_or_unknown_acting_user_gets_no_token(world: tuple[HarvestState, HarvestClients, list[float]]) -> None:
    state, clients, _ = world
    _rita, app_id, job = account(state)
    gone = state.add_user("Gone Person", "gone@example.com", deactivated=True)
    with pytest.raises(HarvestActingUserError, match=f"acting as user {gone}.*not an active user"):
        clients(GOOD).move(app_id, from_stage_id=job["stage_ids"]["Assessment"], as_user=gone)
    assert state.writes == []


@pytest.mark.parametrize(
    ("method", "status", "headers", "error", "calls", "sleeps"),
    [
        ("GET", 429, {"Retry-After": "30"}, HarvestRateLimitError, 1, []),  # a long wait is the queue's to schedule
        ("GET", 429, {"Retry-After": "1"}, None, 2, [1.0]),  # a short one is waited here
        ("GET", 503, {}, None, 2, [0.5]),  # reads are retried with backoff
        ("POST", 503, {}, HarvestServerError, 1, []),  # a write that reached Greenhouse is not sent again here
        ("POST", 429, {"Retry-After": "1"}, None, 2, [1.0]),  # a throttled write was not acted on
        ("POST", 403, {}, HarvestForbiddenError, 1, []),
    ],
    ids=["get-429-long", "get-429-short", "get-503", "post-503", "post-429-short", "post-403"],
)
def test_the_retry_policy_as_a_table(
    world: tuple[HarvestState, HarvestClients, list[float]],
    method: str,
    status: int,
    headers: dict[str, str],
    error: type[Exception] | None,
    calls: int,
    sleeps: list[float],
) -> None:
    state, clients, slept = world
    rita, app_id, job = account(state)
    client = clients(GOOD)
    client.check()  # the service account's token exists already
    path = "/v3/users" if method == "GET" else f"/v3/applications/{app_id}/move"
    state.fail(method, path, status, headers=headers)

    def call() -> None:
        if method == "GET":
            client.check()
        else:
            client.move(app_id, from_stage_id=job["stage_ids"]["Assessment"], as_user=rita)

    if error is None:
        call()
    else:
        with pytest.raises(error) as info:
            call()
        if isinstance(info.value, HarvestRateLimitError):
            assert info.value.retry_after == 30.0
    assert state.count(method, path) == (calls + 1 if method == "GET" else calls)
    assert slept == sleeps


def test_greenhouse_out_of_reach_is_a_connection_error_that_says_nothing_was_sent(clock: Clock) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    clients, https = HarvestClients.build(url, url, clock=clock, sleep=lambda s: None)
    try:
        with pytest.raises(HarvestConnectionError, match="could not reach Greenhouse") as info:
            clients(GOOD).move(1, from_stage_id=2, as_user=3)
        assert info.value.maybe_sent is False
    finally:
        for http in https:
            http.close()


def test_credentials_never_show_their_secret() -> None:
    assert CLIENT_SECRET not in repr(GOOD) and CLIENT_SECRET not in repr(HarvestClient(httpx.Client(), httpx.Client(), GOOD, clock=Clock()))
    assert HarvestCredentials.from_json(GOOD.to_json()) == GOOD


# The items are pydantic models (bot/ats/greenhouse/models.py); these pin how leniently each field reads.


def test_an_application_reads_ids_as_numbers_text_or_id_objects_and_ignores_extra_fields() -> None:
    app = parse_application(
        {"id": " 12 ", "status": "Rejected ", "current_stage": {"id": "7", "name": "Onsite"}, "jobs": [{"id": 3}, {"id": 4}]}
    )
    assert app == HarvestApplication(id=12, status="rejected ", current_stage_id=7, job_id=3)
    assert parse_application(
        {"id": 1, "current_stage_id": 5, "current_stage": {"id": 6}, "job_id": "9", "jobs": [8], "prospect": True}
    ) == (HarvestApplication(1, None, 5, 9))
    # A `current_stage_id` that is sent wins even when null; a `job_id` of "" is no job, not a reason to read `jobs`.
    assert parse_application({"id": 1, "current_stage_id": None, "current_stage": {"id": 6}, "job_id": "", "jobs": [8]}) == (
        HarvestApplication(1, None, None, None)
    )
    assert parse_application({"id": 1, "status": 3, "current_stage": True, "job_id": None, "jobs": []}) == HarvestApplication(
        1, None, None, None
    )
    assert parse_application({"id": 1, "job_id": 2, "jobs": ["not read"]}).job_id == 2


def test_a_user_and_a_rejection_reason_read_what_harvest_sends() -> None:
    user = parse_user(
        {"id": "5", "primary_email": "", "primary_email_address": "rita@example.com", "first_name": "Rita", "last_name": None}
    )
    assert user == HarvestUser(id=5, email="rita@example.com", name="Rita", deactivated=False)
    assert parse_user({"id": 6, "name": "Sam", "disabled": True, "deactivated": "yes"}) == HarvestUser(6, None, "Sam", deactivated=True)
    assert parse_user_email({"user_id": "7", "email": None, "extra": 1}) == {"user_id": 7, "email": ""}
    assert parse_reason({"id": 2, "name": "Too junior", "type": {"id": 1, "name": "We rejected them"}}) == (
        RejectionReason(2, "Too junior", "We rejected them")
    )
    assert parse_reason({"id": "3", "type": "They rejected us"}) == RejectionReason(3, "", "They rejected us")
    assert parse_reason({"id": 4, "name": None, "type": {"id": 1}}) == RejectionReason(4, "", None)


@pytest.mark.parametrize(
    ("parse", "item", "problem"),
    [
        (parse_user, "Rita", "expected an object, got str"),
        (parse_user, {"name": "no id"}, "user id: Field required"),
        (parse_user, {"id": None}, "user id: must be an integer, got NoneType"),
        (parse_user, {"id": "abc"}, "user id: invalid literal for int"),
        (parse_user_email, {"user_id": [1]}, "user email user_id: must be an integer, got list"),
        (parse_application, {"id": 1, "current_stage_id": "Onsite"}, "application current_stage_id: invalid literal for int"),
        (parse_application, {"id": 1, "jobs": [{"id": 2.5}]}, "application job_id: invalid literal for int"),
        (parse_reason, {"id": {"id": 1}}, "rejection reason id: must be an integer, got dict"),
    ],
)
def test_a_malformed_item_fails_naming_the_field_and_a_list_of_them_is_a_protocol_error(parse: Any, item: object, problem: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(problem)):
        parse(item)
    with pytest.raises(HarvestProtocolError, match="^unexpected item in a Harvest list: " + re.escape(problem)):
        list_of(parse)([item])
