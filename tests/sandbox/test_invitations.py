"""Invite (§5.1–§5.3), reattempt (§5.4), cancel (§5.5) and lazy expiry, over HTTP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.sandbox.state import format_utc
from tests.fakes import imocha as fakes
from tests.fakes.imocha import FakeImocha, ManualClock

fake_imocha = fakes.fake_imocha

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CANCEL_REFUSED = {
    "statusCode": 400,
    "message": "Testinvitation state in inprogress, complete, and expired can not be cancelled.",
}


@pytest.fixture(autouse=True)
def no_callbacks(fake_imocha: FakeImocha) -> None:
    # These tests register made-up callback URLs; nothing should try to reach them.
    fake_imocha.state.callbacks_enabled = False


@pytest.fixture
def clock(fake_imocha: FakeImocha) -> ManualClock:
    clock = ManualClock(NOW)
    fake_imocha.state.clock = clock
    return clock


def window(start_days: float, end_days: float) -> dict[str, Any]:
    return {
        "startDateTime": format_utc(NOW + timedelta(days=start_days)),
        "endDateTime": format_utc(NOW + timedelta(days=end_days)),
    }


def post(fake: FakeImocha, path: str, body: Any = None) -> Any:
    with fake.client() as client:
        return client.post(path, json=body)


def put_in_state(fake: FakeImocha, inv_id: int, status: str, clock: ManualClock) -> None:
    state = fake.state
    if status == "Pending":
        return
    if status == "In Progress":
        state.start(inv_id)
    elif status == "Complete":
        state.complete(inv_id, points=40)
    elif status == "Test Left":
        state.leave(inv_id)
    elif status == "Terminated":
        state.complete(inv_id, status="Terminated")
    elif status == "Cancelled":
        state.cancel(inv_id)
    elif status == "Expired":
        clock.advance(days=8)  # past the default 7-day window
    assert state.invitation(inv_id).status == status


# ----------------------------------------------------------------------------------------- invite


def test_invite_creates_a_pending_invitation_with_a_link_to_the_candidate_page(
    fake_imocha: FakeImocha,
) -> None:
    response = post(fake_imocha, "/v3/tests/1001/invite", {"email": "ada@example.com", "name": "Ada Lovelace"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"testInvitationId", "testUrl", "status"}
    assert body["testInvitationId"] >= 3_100_000
    assert body["status"] == "Pending"
    assert body["testUrl"].startswith(f"{fake_imocha.url}/take/")
    inv = fake_imocha.state.invitation(body["testInvitationId"])
    assert (inv.test_id, inv.email, inv.name, inv.status) == (
        1001,
        "ada@example.com",
        "Ada Lovelace",
        "Pending",
    )
    assert inv.send_email is False


def test_invitation_ids_increase_by_one(fake_imocha: FakeImocha) -> None:
    first = fake_imocha.invite(email="a@example.com")["testInvitationId"]
    second = fake_imocha.invite(email="b@example.com")["testInvitationId"]
    assert second == first + 1


@pytest.mark.parametrize("key", ["callbackUrl", "callbackURL", "CallbackUrl", "CALLBACKURL"])
def test_invite_takes_the_callback_url_whatever_its_key_case(fake_imocha: FakeImocha, key: str) -> None:
    fields: dict[str, Any] = {key: "https://bot.example.com/webhooks/imocha"}
    body = fake_imocha.invite(**fields)
    inv = fake_imocha.state.invitation(body["testInvitationId"])
    assert inv.callback_url == "https://bot.example.com/webhooks/imocha"


def test_invite_stores_the_access_window_and_the_send_email_choice(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    body = fake_imocha.invite(sendEmail="yes", **window(1, 3))
    inv = fake_imocha.state.invitation(body["testInvitationId"])
    assert inv.start_at == NOW + timedelta(days=1)
    assert inv.end_at == NOW + timedelta(days=3)
    assert inv.send_email is True


def test_invite_without_a_window_is_open_for_seven_days_from_now(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv = fake_imocha.state.invitation(fake_imocha.invite()["testInvitationId"])
    assert (inv.start_at, inv.end_at) == (NOW, NOW + timedelta(days=7))


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "Ada"}, ["'Email' must not be empty."]),
        ({"email": "  ", "name": "Ada"}, ["'Email' must not be empty."]),
        ({"email": "not-an-address", "name": "Ada"}, ["'Email' is not a valid email address."]),
        ({"email": "ada@example.com"}, ["'Name' must not be empty."]),
        ({}, ["'Email' must not be empty.", "'Name' must not be empty."]),
        (None, ["'Email' must not be empty.", "'Name' must not be empty."]),
    ],
)
def test_invite_validates_email_and_name_with_the_documented_messages(
    fake_imocha: FakeImocha, body: dict[str, str] | None, errors: list[str]
) -> None:
    response = post(fake_imocha, "/v3/tests/1001/invite", body)
    assert response.status_code == 400
    assert response.json() == {"errors": errors}
    assert fake_imocha.state.invitations() == []


def test_invite_refuses_an_unreadable_date_and_an_end_before_the_start(fake_imocha: FakeImocha) -> None:
    bad_date = post(
        fake_imocha,
        "/v3/tests/1001/invite",
        {"email": "a@example.com", "name": "A", "endDateTime": "next week"},
    )
    backwards = post(
        fake_imocha,
        "/v3/tests/1001/invite",
        {
            "email": "a@example.com",
            "name": "A",
            "startDateTime": "2026-03-05T00:00:00Z",
            "endDateTime": "2026-03-04",
        },
    )
    assert bad_date.status_code == backwards.status_code == 400
    assert "EndDateTime" in bad_date.json()["errors"][0]
    assert backwards.json() == {"errors": ["'endDateTime' must be later than 'startDateTime'."]}


def test_invite_with_mandatory_fields_disabled_makes_up_a_candidate(fake_imocha: FakeImocha) -> None:
    response = post(fake_imocha, "/v3/tests/1001/invite", {"disableMandatoryFields": 1})
    assert response.status_code == 201
    inv = fake_imocha.state.invitation(response.json()["testInvitationId"])
    assert inv.email.endswith("@sandbox.invalid") and inv.name


def test_invite_to_an_unknown_test_is_404(fake_imocha: FakeImocha) -> None:
    response = post(fake_imocha, "/v3/tests/4242/invite", {"email": "a@example.com", "name": "A"})
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test not found"}


@pytest.mark.parametrize(
    ("status", "same_window", "status_after"),
    [
        ("Pending", False, "Pending"),
        ("Cancelled", False, "Pending"),
        ("Expired", False, "Pending"),
        ("Complete", True, "Complete"),
        ("Test Left", True, "Test Left"),
        ("In Progress", True, "In Progress"),
    ],
)
def test_inviting_the_same_candidate_again_returns_the_existing_invitation(
    fake_imocha: FakeImocha, clock: ManualClock, status: str, same_window: bool, status_after: str
) -> None:
    first = fake_imocha.invite(email="ada@example.com")
    inv_id = first["testInvitationId"]
    put_in_state(fake_imocha, inv_id, status, clock)
    before = fake_imocha.state.invitation(inv_id)
    new_window: dict[str, Any] = {
        "startDateTime": format_utc(clock.now),
        "endDateTime": format_utc(clock.now + timedelta(days=14)),
    }

    again = fake_imocha.invite(email="ADA@example.com", **new_window)

    assert again["testInvitationId"] == inv_id
    assert again["testUrl"] == first["testUrl"]
    assert again["status"] == status_after
    after = fake_imocha.state.invitation(inv_id)
    assert after.status == status_after
    if same_window:
        assert (after.start_at, after.end_at) == (before.start_at, before.end_at)
    else:
        assert (after.start_at, after.end_at) == (clock.now, clock.now + timedelta(days=14))
    assert len(fake_imocha.state.invitations()) == 1


def test_a_reinvite_does_not_overwrite_the_name_or_the_callback_url(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite(name="Ada", callbackUrl="https://a.example.com/cb")["testInvitationId"]
    fake_imocha.invite(name="Ada L.", callbackUrl="https://b.example.com/cb")
    inv = fake_imocha.state.invitation(inv_id)
    assert (inv.name, inv.callback_url) == ("Ada", "https://a.example.com/cb")


def test_the_same_candidate_on_another_test_gets_another_invitation(fake_imocha: FakeImocha) -> None:
    python = fake_imocha.invite(test_id=1001)["testInvitationId"]
    sql = fake_imocha.invite(test_id=1002)["testInvitationId"]
    assert python != sql


def test_invite_by_test_link_is_separate_from_the_default_link(fake_imocha: FakeImocha) -> None:
    link = fake_imocha.state.add_test_link(1001, "Campus drive")
    default = fake_imocha.invite()["testInvitationId"]
    response = post(
        fake_imocha,
        f"/v3/tests/1001/testlinks/{link.test_link_id}/invite",
        {"email": "ada@example.com", "name": "Ada Lovelace"},
    )
    assert response.status_code == 201
    by_link = response.json()
    assert by_link["status"] == "Pending"
    assert by_link["testInvitationId"] != default
    assert fake_imocha.state.invitation(by_link["testInvitationId"]).test_link_id == link.test_link_id


def test_invite_by_an_unknown_test_link_is_404(fake_imocha: FakeImocha) -> None:
    response = post(fake_imocha, "/v3/tests/1001/testlinks/1/invite", {"email": "a@example.com", "name": "A"})
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test link not found"}


def test_concurrent_invites_for_one_candidate_make_a_single_invitation(fake_imocha: FakeImocha) -> None:
    ids: list[int] = []

    def invite() -> None:
        ids.append(fake_imocha.invite(email="race@example.com")["testInvitationId"])

    threads = [threading.Thread(target=invite) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert len(fake_imocha.state.invitations()) == 1


# ----------------------------------------------------------------------------------------- reattempt


@pytest.mark.parametrize("status", ["Complete", "Test Left", "Terminated"])
def test_reattempt_after_a_finished_test_makes_a_new_invitation_and_url(fake_imocha: FakeImocha, clock: ManualClock, status: str) -> None:
    first = fake_imocha.invite(callbackUrl="https://bot.example.com/cb")
    put_in_state(fake_imocha, first["testInvitationId"], status, clock)

    response = post(
        fake_imocha,
        f"/v3/invitations/{first['testInvitationId']}/reattempt",
        {
            "StartDateTime": format_utc(NOW),
            "EndDateTime": format_utc(NOW + timedelta(days=2)),
            "sendEmail": "no",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"testInvitationId", "testUrl", "callbackUrlRegistered", "redirectUrlRegistered"}
    assert body["testInvitationId"] != first["testInvitationId"]
    assert body["testUrl"] != first["testUrl"]
    assert body["callbackUrlRegistered"] == "https://bot.example.com/cb"
    new = fake_imocha.state.invitation(body["testInvitationId"])
    assert new.status == "Pending"
    assert (new.is_reattempt, new.previous_invitation_id, new.attempt) == (True, first["testInvitationId"], 2)
    assert (new.start_at, new.end_at) == (NOW, NOW + timedelta(days=2))
    assert fake_imocha.state.invitation(first["testInvitationId"]).status == status


def test_reattempt_while_the_test_is_in_progress_is_refused(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.start(inv_id)
    response = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": f"Reattempt is not allowed on Test invitation id: {inv_id} which is in inprogress state.",
    }


@pytest.mark.parametrize("status", ["Pending", "Cancelled", "Expired"])
def test_reattempt_of_an_unattempted_invitation_reopens_it_with_a_new_window(
    fake_imocha: FakeImocha, clock: ManualClock, status: str
) -> None:
    first = fake_imocha.invite()
    inv_id = first["testInvitationId"]
    put_in_state(fake_imocha, inv_id, status, clock)

    response = post(
        fake_imocha,
        f"/v3/invitations/{inv_id}/reattempt",
        {"StartDateTime": format_utc(clock.now), "EndDateTime": format_utc(clock.now + timedelta(days=3))},
    )

    assert response.status_code == 200
    assert response.json()["testInvitationId"] == inv_id
    assert response.json()["testUrl"] == first["testUrl"]
    inv = fake_imocha.state.invitation(inv_id)
    assert inv.status == "Pending"
    assert (inv.start_at, inv.end_at) == (clock.now, clock.now + timedelta(days=3))


def test_a_second_reattempt_before_the_candidate_attempts_returns_the_same_reattempt(
    fake_imocha: FakeImocha,
) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    first = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {}).json()
    second = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {}).json()
    assert second["testInvitationId"] == first["testInvitationId"] != inv_id
    assert len(fake_imocha.state.invitations()) == 2


def test_reattempt_after_a_completed_reattempt_makes_a_third_attempt(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    second = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {}).json()["testInvitationId"]
    fake_imocha.state.complete(second)
    third = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {}).json()["testInvitationId"]
    inv = fake_imocha.state.invitation(third)
    assert third not in (inv_id, second)
    assert (inv.attempt, inv.previous_invitation_id) == (3, second)


def test_reattempt_registers_a_new_callback_url(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite(callbackUrl="https://old.example.com/cb")["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    body = post(
        fake_imocha,
        f"/v3/invitations/{inv_id}/reattempt",
        {"CallbackUrl": "https://new.example.com/cb", "RedirectUrl": "https://careers.example.com"},
    ).json()
    assert body["callbackUrlRegistered"] == "https://new.example.com/cb"
    assert body["redirectUrlRegistered"] == "https://careers.example.com"
    assert fake_imocha.state.invitation(body["testInvitationId"]).callback_url == "https://new.example.com/cb"


def test_a_reinvite_after_a_reattempt_returns_the_newest_invitation(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    reattempt = post(fake_imocha, f"/v3/invitations/{inv_id}/reattempt", {}).json()["testInvitationId"]
    assert fake_imocha.invite()["testInvitationId"] == reattempt


def test_reattempt_of_an_unknown_invitation_is_404(fake_imocha: FakeImocha) -> None:
    response = post(fake_imocha, "/v3/invitations/12/reattempt", {})
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test invitation not found"}


# ----------------------------------------------------------------------------------------- cancel


def test_cancel_of_a_pending_invitation_answers_lower_case_cancelled(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    response = post(fake_imocha, f"/v3/invitations/{inv_id}/cancel")
    assert response.status_code == 200
    assert response.json() == {"testInvitationId": inv_id, "status": "cancelled"}
    assert fake_imocha.state.invitation(inv_id).status == "Cancelled"


@pytest.mark.parametrize("status", ["In Progress", "Complete", "Test Left", "Terminated", "Expired", "Cancelled"])
def test_cancel_is_refused_unless_the_invitation_is_pending(fake_imocha: FakeImocha, clock: ManualClock, status: str) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    put_in_state(fake_imocha, inv_id, status, clock)
    response = post(fake_imocha, f"/v3/invitations/{inv_id}/cancel")
    assert response.status_code == 400
    assert response.json() == CANCEL_REFUSED
    assert fake_imocha.state.invitation(inv_id).status == status


def test_cancel_of_an_unknown_invitation_is_404(fake_imocha: FakeImocha) -> None:
    response = post(fake_imocha, "/v3/invitations/77/cancel")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test invitation not found"}


# ----------------------------------------------------------------------------------------- expiry


def test_a_pending_invitation_expires_when_its_window_ends(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv_id = fake_imocha.invite(**window(0, 2))["testInvitationId"]
    clock.advance(days=2, seconds=-1)
    assert fake_imocha.state.invitation(inv_id).status == "Pending"
    clock.advance(days=1)
    inv = fake_imocha.state.invitation(inv_id)
    assert inv.status == "Expired"
    assert inv.status_changed_at == NOW + timedelta(days=2)


def test_an_attempt_in_progress_does_not_expire_at_the_end_of_the_window(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv_id = fake_imocha.invite(**window(0, 1))["testInvitationId"]
    fake_imocha.state.start(inv_id)
    clock.advance(days=3)
    assert fake_imocha.state.invitation(inv_id).status == "In Progress"


def test_the_expire_control_ends_the_window_now(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    clock.advance(hours=1)
    inv = fake_imocha.state.expire(inv_id)
    assert (inv.status, inv.end_at, inv.status_changed_at) == ("Expired", clock.now, clock.now)


def test_reattempt_refuses_a_window_that_ends_before_it_starts(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    response = post(
        fake_imocha,
        f"/v3/invitations/{inv_id}/reattempt",
        {"StartDateTime": "2026-03-05T00:00:00Z", "EndDateTime": "2026-03-04T00:00:00Z"},
    )
    assert response.status_code == 400
    assert response.json() == {"errors": ["'endDateTime' must be later than 'startDateTime'."]}
