"""The report (§7.1), Retrieve Invites (§8.2) and Process Callbacks (§8.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.sandbox.state import format_utc
from tests.fakes import imocha as fakes
from tests.fakes.imocha import CallbackReceiver, FakeImocha, ManualClock, running_callback_receiver

fake_imocha = fakes.fake_imocha

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BAD_DATES = {"result": None, "errors": ["Date & time is not invalid or incorrect format"]}


@pytest.fixture
def clock(fake_imocha: FakeImocha) -> ManualClock:
    clock = ManualClock(NOW)
    fake_imocha.state.clock = clock
    return clock


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[CallbackReceiver]:
    with running_callback_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(shared_receiver: CallbackReceiver) -> CallbackReceiver:
    shared_receiver.reset()
    return shared_receiver


def get_report(fake: FakeImocha, inv_id: int, report_type: str | None = None) -> Any:
    params = {"reportType": report_type} if report_type else None
    with fake.client() as client:
        return client.get(f"/v3/reports/{inv_id}", params=params)


def attempts(fake: FakeImocha, state: str | None, body: Any) -> Any:
    params = {"state": state} if state else None
    with fake.client() as client:
        return client.post("/v3/candidates/testattempts", params=params, json=body)


def process(fake: FakeImocha, body: Any) -> Any:
    with fake.client() as client:
        return client.post("/v3/callbacks/process", json=body)


# ----------------------------------------------------------------------------------------- report


def test_the_report_of_a_completed_test_has_scores_sections_and_the_pdf_link(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv_id = fake_imocha.invite(email="ada@example.com", name="Ada Lovelace")["testInvitationId"]
    fake_imocha.state.start(inv_id)
    clock.advance(minutes=25)
    fake_imocha.state.complete(inv_id, section_scores=[25, 8.5], category="Intermediate")

    response = get_report(fake_imocha, inv_id)

    assert response.status_code == 200
    report = response.json()
    inv = fake_imocha.state.invitation(inv_id)
    assert report == {
        "testInvitationId": inv_id,
        "testId": 1001,
        "candidateEmail": "ada@example.com",
        "candidateName": "Ada Lovelace",
        "attemptedOn": "2026-03-02T09:00:00.000Z",
        "status": "Complete",
        "score": 33.5,
        "scorePercentage": 67,
        "candidatePoints": 33.5,
        "totalTestPoints": 50,
        "testName": "Python Developer",
        "pdfReportUrl": inv.pdf_url(fake_imocha.url),
        "performanceCategory": "Intermediate",
        "timeTaken": 1500,
        "testDuration": 40,
        "sections": [
            {
                "sectionId": inv.sections[0].section_id,
                "sectionName": "Python basics",
                "candidateScore": 25,
                "sectionScore": 30,
                "noOfQue": 2,
                "sectionTime": 20,
                "sectionTimeTaken": 750,
            },
            {
                "sectionId": inv.sections[1].section_id,
                "sectionName": "Problem solving",
                "candidateScore": 8.5,
                "sectionScore": 20,
                "noOfQue": 2,
                "sectionTime": 20,
                "sectionTimeTaken": 750,
            },
        ],
    }
    assert report["pdfReportUrl"].startswith(f"{fake_imocha.url}/reports/")


@pytest.mark.parametrize(
    ("status", "spelling"),
    [
        ("Pending", "Pending"),
        ("In Progress", "In Progress"),
        ("Complete", "Complete"),
        ("Test Left", "TestLeft"),
        ("Terminated", "Terminated"),
        ("Expired", "Expired"),
        ("Cancelled", "Cancelled"),
    ],
)
def test_the_report_spells_each_status_as_live_responses_do(
    fake_imocha: FakeImocha, clock: ManualClock, status: str, spelling: str
) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    state = fake_imocha.state
    {
        "Pending": lambda: None,
        "In Progress": lambda: state.start(inv_id),
        "Complete": lambda: state.complete(inv_id, points=40),
        "Test Left": lambda: state.complete(inv_id, points=40, status="Test Left"),
        "Terminated": lambda: state.complete(inv_id, points=40, status="Terminated"),
        "Expired": lambda: state.expire(inv_id),
        "Cancelled": lambda: state.cancel(inv_id),
    }[status]()

    report = get_report(fake_imocha, inv_id).json()

    assert report["status"] == spelling
    if status in ("Complete", "Test Left", "Terminated"):
        assert (report["candidatePoints"], report["scorePercentage"]) == (40, 80)
        assert report["pdfReportUrl"] and report["performanceCategory"] == "Expert"
    else:
        assert report["score"] == report["candidatePoints"] == report["scorePercentage"] == 0
        assert report["pdfReportUrl"] is None and report["performanceCategory"] is None
        assert all(section["candidateScore"] == 0 for section in report["sections"])
        assert report["totalTestPoints"] == 50


def test_the_report_type_chooses_sections_skills_or_both(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id, points=25)
    summary = get_report(fake_imocha, inv_id, "1").json()
    skills = get_report(fake_imocha, inv_id, "2").json()
    both = get_report(fake_imocha, inv_id, "3").json()
    assert "sections" in summary and "skills" not in summary
    assert "skills" in skills and "sections" not in skills
    assert "sections" in both and "skills" in both
    assert skills["skills"][0]["qbName"] == "Python basics"
    assert skills["skills"][0]["candidateQbScore"] == 15 and skills["skills"][0]["qbScore"] == 30


def test_an_unknown_report_type_is_refused(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    response = get_report(fake_imocha, inv_id, "7")
    assert response.status_code == 400
    assert response.json() == {"errors": ["'reportType' must be 1, 2 or 3."]}


def test_the_report_of_an_unknown_invitation_is_404(fake_imocha: FakeImocha) -> None:
    response = get_report(fake_imocha, 999)
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test invitation not found"}


# ----------------------------------------------------------------------------------------- retrieve invites


def make_history(fake: FakeImocha, clock: ManualClock) -> dict[str, int]:
    """Five invitations whose current state began one hour apart, from NOW + 1h to NOW + 5h."""
    state = fake.state
    ids = {
        name: fake.invite(email=f"{name}@example.com", name=name)["testInvitationId"]
        for name in ("complete", "left", "terminated", "cancelled", "expired", "pending")
    }
    clock.advance(hours=1)
    state.complete(ids["complete"])
    clock.advance(hours=1)
    state.leave(ids["left"])
    clock.advance(hours=1)
    state.complete(ids["terminated"], status="Terminated")
    clock.advance(hours=1)
    state.cancel(ids["cancelled"])
    clock.advance(hours=1)
    state.expire(ids["expired"])
    return ids


def window(start_hours: float, end_hours: float) -> dict[str, str]:
    return {
        "StartDateTime": format_utc(NOW + timedelta(hours=start_hours)),
        "EndDateTime": format_utc(NOW + timedelta(hours=end_hours)),
    }


def test_retrieve_invites_lists_finished_attempts_with_their_own_spellings(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    ids = make_history(fake_imocha, clock)
    response = attempts(fake_imocha, "completed", window(0, 6))
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] is None
    assert body["result"]["testAttempts"] == [
        {
            "testInvitationId": ids[name],
            "testId": 1001,
            "name": name,
            "email": f"{name}@example.com",
            "invitationtype": "api",
            "testStatus": spelling,
        }
        for name, spelling in (("complete", "Completed"), ("left", "Testleft"), ("terminated", "Terminated"))
    ]


@pytest.mark.parametrize(("state", "name", "spelling"), [("cancelled", "cancelled", "Cancelled"), ("expired", "expired", "Expired")])
def test_retrieve_invites_lists_cancelled_and_expired_invitations_by_state(
    fake_imocha: FakeImocha, clock: ManualClock, state: str, name: str, spelling: str
) -> None:
    ids = make_history(fake_imocha, clock)
    found = attempts(fake_imocha, state, window(0, 6)).json()["result"]["testAttempts"]
    assert [(a["testInvitationId"], a["testStatus"]) for a in found] == [(ids[name], spelling)]


def test_retrieve_invites_filters_on_when_the_state_began_bounds_included(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    ids = make_history(fake_imocha, clock)

    def found(start: float, end: float) -> list[int]:
        body = attempts(fake_imocha, "completed", window(start, end)).json()
        return [a["testInvitationId"] for a in body["result"]["testAttempts"]]

    assert found(2, 3) == [ids["left"], ids["terminated"]]
    assert found(1.5, 2.5) == [ids["left"]]
    assert found(3.5, 10) == []
    assert found(-10, 0.5) == []


def test_retrieve_invites_finds_an_invitation_that_expired_on_its_own_at_its_end_time(fake_imocha: FakeImocha, clock: ManualClock) -> None:
    inv_id = fake_imocha.invite(startDateTime=format_utc(NOW), endDateTime=format_utc(NOW + timedelta(hours=2)))["testInvitationId"]
    clock.advance(days=3)
    hit = attempts(fake_imocha, "expired", window(1.5, 2.5)).json()["result"]["testAttempts"]
    miss = attempts(fake_imocha, "expired", window(3, 70)).json()["result"]["testAttempts"]
    assert [a["testInvitationId"] for a in hit] == [inv_id]
    assert miss == []


def test_retrieve_invites_defaults_to_completed_attempts_and_takes_dates_without_a_zone(
    fake_imocha: FakeImocha, clock: ManualClock
) -> None:
    ids = make_history(fake_imocha, clock)
    body = attempts(fake_imocha, None, {"StartDateTime": "2026-03-02", "EndDateTime": "2026-03-02T12:00:00"})
    found = [a["testInvitationId"] for a in body.json()["result"]["testAttempts"]]
    assert found == [ids["complete"], ids["left"], ids["terminated"]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"StartDateTime": "2026-03-02T00:00:00Z"},
        {"StartDateTime": "yesterday", "EndDateTime": "2026-03-02T00:00:00Z"},
        {"StartDateTime": "2026-03-03T00:00:00Z", "EndDateTime": "2026-03-02T00:00:00Z"},
        {"StartDateTime": 20260302, "EndDateTime": "2026-03-03T00:00:00Z"},
    ],
)
def test_retrieve_invites_answers_401_for_missing_or_bad_dates(fake_imocha: FakeImocha, body: dict[str, Any]) -> None:
    response = attempts(fake_imocha, "completed", body)
    assert response.status_code == 401
    assert response.json() == BAD_DATES


def test_retrieve_invites_answers_401_for_an_unknown_state(fake_imocha: FakeImocha) -> None:
    response = attempts(fake_imocha, "finished", window(0, 1))
    assert response.status_code == 401
    body = response.json()
    assert body["result"] is None
    assert len(body["errors"]) == 1 and "finished" in body["errors"][0]


# ----------------------------------------------------------------------------------------- process callbacks


def test_process_callbacks_resends_the_callback_of_each_started_or_finished_invitation(
    fake_imocha: FakeImocha, receiver: CallbackReceiver
) -> None:
    state = fake_imocha.state
    done = fake_imocha.invite(email="done@example.com", callbackUrl=receiver.url)["testInvitationId"]
    started = fake_imocha.invite(email="started@example.com", callbackUrl=receiver.url)["testInvitationId"]
    pending = fake_imocha.invite(email="pending@example.com", callbackUrl=receiver.url)["testInvitationId"]
    state.complete(done, points=45)
    state.start(started)
    receiver.wait_for(3)  # In Progress + Complete for `done`, In Progress for `started`
    receiver.reset()

    response = process(fake_imocha, {"testinvitationIds": [done, started, pending]})

    assert response.status_code == 200
    assert response.json() == {
        "result": {"testinvitationIds": {"successful": [done, started], "failed": [pending]}},
        "errors": None,
    }
    resent = sorted(receiver.wait_for(2), key=lambda payload: payload["TestInvitationId"])
    assert [(p["TestInvitationId"], p["Status"], p["CandidateScore"]) for p in resent] == [
        (done, "Complete", 45),
        (started, "In Progress", 0),
    ]


def test_process_callbacks_refuses_ids_from_another_account(fake_imocha: FakeImocha) -> None:
    mine = fake_imocha.invite()["testInvitationId"]
    response = process(fake_imocha, {"testinvitationIds": [mine, 94761, 12]})
    assert response.status_code == 401
    assert response.json() == {
        "result": None,
        "errors": ["testinvitationIds does not belong to account or not found", "94761", "12"],
    }


def test_process_callbacks_refuses_more_than_100_ids(fake_imocha: FakeImocha) -> None:
    response = process(fake_imocha, {"testinvitationIds": list(range(3_100_001, 3_100_102))})
    assert response.status_code == 401
    body = response.json()
    assert body["result"] is None and "100" in body["errors"][0]


@pytest.mark.parametrize("body", [{}, {"testinvitationIds": []}, {"testinvitationIds": "3100001"}])
def test_process_callbacks_requires_a_list_of_ids(fake_imocha: FakeImocha, body: dict[str, Any]) -> None:
    response = process(fake_imocha, body)
    assert response.status_code == 401
    assert response.json() == {"result": None, "errors": ["testinvitationIds is required"]}


def test_process_callbacks_takes_the_key_in_any_case(fake_imocha: FakeImocha) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    response = process(fake_imocha, {"testInvitationIds": [inv_id]})
    assert response.status_code == 200
    assert response.json()["result"]["testinvitationIds"] == {"successful": [], "failed": [inv_id]}
