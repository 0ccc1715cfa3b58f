"""Fault injection on the API, and iMocha's callbacks (§6) with their retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.runtime.serving import free_port
from tests.fakes import imocha as fakes
from tests.fakes.imocha import CallbackReceiver, FakeImocha, ManualClock, running_callback_receiver

fake_imocha = fakes.fake_imocha

PAYLOAD_KEYS = {
    "CandidateEmailId",
    "AttemptedOn",
    "TotalScore",
    "CandidateScore",
    "ReportPDFUrl",
    "TestInvitationId",
    "Status",
    "AttemptedOnUtc",
    "PerformanceCategory",
}


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[CallbackReceiver]:
    with running_callback_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(shared_receiver: CallbackReceiver) -> CallbackReceiver:
    shared_receiver.reset()
    return shared_receiver


# ----------------------------------------------------------------------------------------- faults


def test_fail_next_answers_the_next_matching_request_with_an_error_then_recovers(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/invite")
    with fake_imocha.client() as client:
        other = client.get("/v3/tests")
        failed = client.post("/v3/tests/1001/invite", json={"email": "a@example.com", "name": "A"})
        retried = client.post("/v3/tests/1001/invite", json={"email": "a@example.com", "name": "A"})
    assert other.status_code == 200
    assert failed.status_code == 500
    assert failed.json() == {"statusCode": 500, "message": "Internal Server Error"}
    assert retried.status_code == 201
    assert fake_imocha.state.count("/invite") == 2
    assert len(fake_imocha.state.invitations()) == 1


def test_fail_next_with_a_count_fails_that_many_requests(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/v3/tests", status=503, count=2)
    with fake_imocha.client() as client:
        codes = [client.get("/v3/tests").status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_a_rate_limit_answer_carries_retry_after(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/reports/", status=429, retry_after=7)
    with fake_imocha.client() as client:
        response = client.get("/v3/reports/3100001")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}


def test_a_rate_limit_answer_without_retry_after_has_no_such_header(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/v3/tests", status=429)
    with fake_imocha.client() as client:
        response = client.get("/v3/tests")
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_a_fault_can_carry_its_own_body(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/cancel", status=403, body={"errors": ["nope"]})
    with fake_imocha.client() as client:
        response = client.post("/v3/invitations/3100001/cancel")
    assert (response.status_code, response.json()) == (403, {"errors": ["nope"]})


def test_a_delayed_fault_makes_a_client_time_out(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/v3/tests", status=504, delay=0.5)
    with fake_imocha.client(timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/v3/tests")


def test_latency_slows_every_api_request(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.latency = 0.15
    with fake_imocha.client() as client:
        started = time.monotonic()
        assert client.get("/v3/tests").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_a_dropped_connection_breaks_the_response_mid_body(fake_imocha: FakeImocha) -> None:
    fake_imocha.state.drop_connection_next("/invite")
    with fake_imocha.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v3/tests/1001/invite", json={"email": "a@example.com", "name": "A"})
        assert client.get("/v3/tests").status_code == 200


# ----------------------------------------------------------------------------------------- callbacks


def test_starting_and_completing_send_the_two_documented_callbacks(fake_imocha: FakeImocha, receiver: CallbackReceiver) -> None:
    fake_imocha.state.clock = ManualClock(datetime(2020, 10, 9, 13, 21, 53, tzinfo=UTC))
    inv_id = fake_imocha.invite(email="ada@example.com", callbackUrl=receiver.url)["testInvitationId"]
    fake_imocha.state.start(inv_id)
    fake_imocha.state.complete(inv_id, points=42, category="Beginner")

    in_progress, complete = receiver.wait_for(2)

    assert set(in_progress) == set(complete) == PAYLOAD_KEYS
    assert in_progress == {
        "CandidateEmailId": "ada@example.com",
        "AttemptedOn": "09-Oct-2020 06:51 PM",
        "TotalScore": 0,
        "CandidateScore": 0,
        "ReportPDFUrl": None,
        "TestInvitationId": inv_id,
        "Status": "In Progress",
        "AttemptedOnUtc": "2020-10-09T13:21:53",
        "PerformanceCategory": None,
    }
    assert complete == {
        **in_progress,
        "TotalScore": 50,
        "CandidateScore": 42,
        "ReportPDFUrl": fake_imocha.state.invitation(inv_id).pdf_url(fake_imocha.url),
        "Status": "Complete",
        "PerformanceCategory": "Beginner",
    }


@pytest.mark.parametrize("status", ["Test Left", "Terminated"])
def test_a_left_or_terminated_test_sends_its_status_in_the_callback(
    fake_imocha: FakeImocha, receiver: CallbackReceiver, status: str
) -> None:
    inv_id = fake_imocha.invite(callbackUrl=receiver.url)["testInvitationId"]
    fake_imocha.state.complete(inv_id, points=10, status=status)
    in_progress, finished = receiver.wait_for(2)
    assert (in_progress["Status"], finished["Status"]) == ("In Progress", status)
    assert finished["CandidateScore"] == 10 and finished["ReportPDFUrl"]


def test_a_failed_callback_is_retried_until_it_is_accepted(fake_imocha: FakeImocha, receiver: CallbackReceiver) -> None:
    receiver.fail_next = 2
    inv_id = fake_imocha.invite(callbackUrl=receiver.url)["testInvitationId"]
    fake_imocha.state.start(inv_id)
    assert receiver.wait_for(1)[0]["Status"] == "In Progress"
    assert fake_imocha.state.wait_for_callbacks()
    deliveries = fake_imocha.state.callback_deliveries
    assert [(d.attempt, d.status_code, d.ok) for d in deliveries] == [(1, 500, False), (2, 500, False), (3, 200, True)]


def test_a_callback_is_given_up_after_five_retries(fake_imocha: FakeImocha) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/webhooks/imocha"
    inv_id = fake_imocha.invite(callbackUrl=unreachable)["testInvitationId"]
    fake_imocha.state.start(inv_id)
    assert fake_imocha.state.wait_for_callbacks()
    deliveries = fake_imocha.state.callback_deliveries
    assert [d.attempt for d in deliveries] == [1, 2, 3, 4, 5, 6]
    assert all(d.status_code is None and d.error and not d.ok for d in deliveries)


def test_callbacks_keep_their_order_for_one_invitation(fake_imocha: FakeImocha, receiver: CallbackReceiver) -> None:
    receiver.fail_next = 1  # the In Progress callback is retried; Complete must still come after it
    inv_id = fake_imocha.invite(callbackUrl=receiver.url)["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    assert [p["Status"] for p in receiver.wait_for(2)] == ["In Progress", "Complete"]


def test_no_callback_is_sent_when_callbacks_are_disabled(fake_imocha: FakeImocha, receiver: CallbackReceiver) -> None:
    fake_imocha.state.callbacks_enabled = False
    inv_id = fake_imocha.invite(callbackUrl=receiver.url)["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    assert fake_imocha.state.wait_for_callbacks()
    assert fake_imocha.state.callback_deliveries == []
    assert receiver.received == []


def test_no_callback_is_sent_for_an_invitation_without_a_callback_url(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    assert fake_imocha.state.wait_for_callbacks()
    assert fake_imocha.state.callback_deliveries == []
