"""The candidate page, the operator page and the PDF report, driven with plain HTTP forms."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from bot.sandbox import start_in_thread
from bot.sandbox.pdf import render_report_pdf
from bot.sandbox.state import ImochaState, format_utc
from tests.fakes import imocha as fakes
from tests.fakes.imocha import CallbackReceiver, FakeImocha, ManualClock, running_callback_receiver, web_client

fake_imocha = fakes.fake_imocha

# The fixture's test 1001 has four questions, all answered by option 1: two in "Python basics"
# (30 points) and two in "Problem solving" (20 points).
THREE_RIGHT = {"q0": "1", "q1": "1", "q2": "1", "q3": "0", "action": "submit"}


@pytest.fixture(scope="module")
def web() -> Iterator[httpx.Client]:
    with web_client() as client:
        yield client


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[CallbackReceiver]:
    with running_callback_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(shared_receiver: CallbackReceiver) -> CallbackReceiver:
    shared_receiver.reset()
    return shared_receiver


def test_opening_the_test_link_shows_the_test_and_marks_it_in_progress(
    fake_imocha: FakeImocha, receiver: CallbackReceiver, web: httpx.Client
) -> None:
    invite = fake_imocha.invite(name="Ada Lovelace", callbackUrl=receiver.url)

    page = web.get(invite["testUrl"])

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Python Developer" in page.text
    assert "Python basics" in page.text and "Problem solving" in page.text
    assert len(re.findall(r"<fieldset>", page.text)) == 4
    assert 'name="q0"' in page.text and "Leave the test" in page.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).status == "In Progress"
    assert [p["Status"] for p in receiver.wait_for(1)] == ["In Progress"]


def test_opening_the_test_link_twice_sends_one_in_progress_callback(
    fake_imocha: FakeImocha, receiver: CallbackReceiver, web: httpx.Client
) -> None:
    invite = fake_imocha.invite(callbackUrl=receiver.url)
    assert web.get(invite["testUrl"]).status_code == 200
    assert web.get(invite["testUrl"]).status_code == 200
    assert fake_imocha.state.wait_for_callbacks()
    assert len(receiver.received) == 1


def test_submitting_answers_completes_the_test_with_a_score_and_a_callback(
    fake_imocha: FakeImocha, receiver: CallbackReceiver, web: httpx.Client
) -> None:
    invite = fake_imocha.invite(callbackUrl=receiver.url)
    web.get(invite["testUrl"])

    result = web.post(invite["testUrl"], data=THREE_RIGHT)

    assert result.status_code == 200
    assert "40 / 50 points (80%)" in result.text
    inv = fake_imocha.state.invitation(invite["testInvitationId"])
    assert (inv.status, inv.points, [s.score for s in inv.sections]) == ("Complete", 40, [30, 10])
    complete = receiver.wait_for(2)[1]
    assert (complete["Status"], complete["CandidateScore"], complete["TotalScore"]) == ("Complete", 40, 50)


def test_submitting_without_opening_first_still_sends_both_callbacks(
    fake_imocha: FakeImocha, receiver: CallbackReceiver, web: httpx.Client
) -> None:
    invite = fake_imocha.invite(callbackUrl=receiver.url)
    assert web.post(invite["testUrl"], data=THREE_RIGHT).status_code == 200
    assert [p["Status"] for p in receiver.wait_for(2)] == ["In Progress", "Complete"]


def test_leaving_the_test_records_test_left(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite()
    web.get(invite["testUrl"])
    result = web.post(invite["testUrl"], data={"q0": "1", "action": "leave"})
    assert result.status_code == 200
    assert "You left the test" in result.text
    inv = fake_imocha.state.invitation(invite["testInvitationId"])
    assert (inv.status, inv.points) == ("Test Left", 15)


def test_a_second_submit_gets_an_already_submitted_page(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite()
    web.post(invite["testUrl"], data=THREE_RIGHT)
    again = web.post(invite["testUrl"], data={"q0": "0", "action": "submit"})
    reopened = web.get(invite["testUrl"])
    assert again.status_code == reopened.status_code == 409
    assert "already submitted" in again.text and "already appeared" in again.text
    assert "Traceback" not in again.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).points == 40


def test_an_unknown_test_link_gets_a_not_found_page(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    page = web.get(f"{fake_imocha.url}/take/no-such-token")
    post = web.post(f"{fake_imocha.url}/take/no-such-token", data=THREE_RIGHT)
    assert page.status_code == post.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "not valid" in page.text


def test_a_cancelled_invitation_cannot_be_taken(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite()
    fake_imocha.state.cancel(invite["testInvitationId"])
    page = web.get(invite["testUrl"])
    post = web.post(invite["testUrl"], data=THREE_RIGHT)
    assert page.status_code == post.status_code == 410
    assert "cancelled" in post.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).status == "Cancelled"


def test_an_expired_invitation_cannot_be_submitted(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    fake_imocha.state.clock = clock
    invite = fake_imocha.invite()
    clock.advance(days=8)
    post = web.post(invite["testUrl"], data=THREE_RIGHT)
    assert post.status_code == 410
    assert "expired" in post.text


def test_an_expired_invitation_shows_an_expired_page_and_answers_nothing(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    fake_imocha.state.clock = clock
    invite = fake_imocha.invite()
    clock.advance(days=8)
    page = web.get(invite["testUrl"])
    assert page.status_code == 410
    assert "Invitation expired" in page.text and "Traceback" not in page.text
    with fake_imocha.client() as client:
        report = client.get(f"/v3/reports/{invite['testInvitationId']}").json()
    assert (report["status"], report["score"], report["pdfReportUrl"]) == ("Expired", 0, None)


def test_submitting_after_the_operator_expired_the_invitation_gets_an_expired_page(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite()
    assert web.post(f"{fake_imocha.url}/operator/{invite['testInvitationId']}/expire").status_code == 303
    post = web.post(invite["testUrl"], data=THREE_RIGHT)
    assert post.status_code == 410
    assert "This test invitation has expired." in post.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).status == "Expired"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"q0": "1"}},  # no action: not the page's buttons
        {"data": {"q0": "1", "action": "explode"}},
        {"json": {"q0": "1", "action": "submit"}},
        {"content": b"--xx\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xx"}},
    ],
    ids=["no-action", "unknown-action", "json-body", "broken-multipart"],
)
def test_a_post_that_is_not_the_pages_form_gets_a_clear_page_and_finishes_nothing(
    fake_imocha: FakeImocha, web: httpx.Client, request_kwargs: dict[str, Any]
) -> None:
    invite = fake_imocha.invite()
    response = web.post(invite["testUrl"], **request_kwargs)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).status in ("Pending", "In Progress")
    assert web.post(invite["testUrl"], data=THREE_RIGHT).status_code == 200  # the real form still works


def test_answers_that_are_not_options_score_nothing_but_do_not_break_the_page(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite()
    data = {"q0": "abc", "q1": "99999999999999999999", "q99": "1", "q-1": "1", "qx": "1", "action": "submit"}
    response = web.post(invite["testUrl"], data=data)
    assert response.status_code == 200
    assert "0 / 50 points (0%)" in response.text


def test_a_test_before_its_window_opens_is_not_started(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    invite = fake_imocha.invite(startDateTime=format_utc(start))
    page = web.get(invite["testUrl"])
    assert page.status_code == 403
    assert "opens at" in page.text
    assert fake_imocha.state.invitation(invite["testInvitationId"]).status == "Pending"


def test_the_candidate_page_escapes_names(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    invite = fake_imocha.invite(name="<script>alert(1)</script>")
    page = web.get(invite["testUrl"])
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


def test_backticked_code_in_a_question_is_shown_as_code_and_still_escaped(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    fake_imocha.state.add_test(77, "Markup", [("HTML", 10)], questions=[("Is `<b>` bold?", ["yes `<b>`", "no"], 0)])
    invite = fake_imocha.invite(77)
    page = web.get(invite["testUrl"])
    assert "Is <code>&lt;b&gt;</code> bold?" in page.text
    assert "yes <code>&lt;b&gt;</code>" in page.text
    assert "<b>" not in page.text


# ----------------------------------------------------------------------------------------- operator


def test_the_operator_page_lists_invitations_with_the_buttons_their_state_allows(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    pending = fake_imocha.invite(email="p@example.com", name="<b>Pat</b>")["testInvitationId"]
    done = fake_imocha.invite(email="d@example.com")["testInvitationId"]
    fake_imocha.state.complete(done, points=42)

    page = web.get(f"{fake_imocha.url}/")

    assert page.status_code == 200
    assert "&lt;b&gt;Pat&lt;/b&gt;" in page.text and "<b>Pat</b>" not in page.text
    for action in ("start", "complete", "leave", "expire", "cancel"):
        assert f'action="/operator/{pending}/{action}"' in page.text
        assert f'action="/operator/{done}/{action}"' not in page.text
    assert "42 / 50 points (84%)" in page.text


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("start", "In Progress"),
        ("complete", "Complete"),
        ("leave", "Test Left"),
        ("expire", "Expired"),
        ("cancel", "Cancelled"),
    ],
)
def test_an_operator_button_changes_the_invitation_and_returns_to_the_list(
    fake_imocha: FakeImocha, action: str, status: str, web: httpx.Client
) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    response = web.post(f"{fake_imocha.url}/operator/{inv_id}/{action}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert fake_imocha.state.invitation(inv_id).status == status


def test_an_operator_action_the_state_forbids_gets_an_explanation(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    fake_imocha.state.complete(inv_id)
    response = web.post(f"{fake_imocha.url}/operator/{inv_id}/cancel")
    unknown = web.post(f"{fake_imocha.url}/operator/42/cancel")
    assert response.status_code == 409
    assert "can not be cancelled" in response.text
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "heading"),
    [
        ("POST", "/operator/3100001/explode", 404, "Unknown action"),
        ("POST", "/operator/not-a-number/cancel", 404, "Resource not found"),
        ("POST", "/operator/99999999999999999999/cancel", 404, "Action refused"),
        ("GET", "/operator/3100001/cancel", 405, "Method Not Allowed"),
        ("GET", "/take/", 404, "Resource not found"),
        ("GET", "/no/such/page", 404, "Resource not found"),
    ],
)
def test_bad_operator_and_page_addresses_get_a_clear_html_page(
    fake_imocha: FakeImocha, web: httpx.Client, method: str, path: str, status: int, heading: str
) -> None:
    fake_imocha.invite()
    response = web.request(method, f"{fake_imocha.url}{path}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<h1>{heading}</h1>" in response.text
    assert "Traceback" not in response.text
    assert fake_imocha.state.invitations()[0].status == "Pending"


# ----------------------------------------------------------------------------------------- PDF


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_the_report_pdf_opens_and_shows_the_score_and_sections(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    inv_id = fake_imocha.invite(name="Ada Lovelace")["testInvitationId"]
    fake_imocha.state.complete(inv_id, section_scores=[27, 15], category="Expert")
    with fake_imocha.client() as client:
        pdf_url = client.get(f"/v3/reports/{inv_id}").json()["pdfReportUrl"]

    response = web.get(pdf_url)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "42 / 50 points (84%)" in text
    for expected in ("Ada Lovelace", "Python Developer", "Expert", "Python basics", "Problem solving"):
        assert expected in text


def test_there_is_no_pdf_before_the_test_is_finished(fake_imocha: FakeImocha, web: httpx.Client) -> None:
    inv_id = fake_imocha.invite()["testInvitationId"]
    url = fake_imocha.state.invitation(inv_id).pdf_url(fake_imocha.url)
    assert web.get(url).status_code == 404
    assert web.get(f"{fake_imocha.url}/reports/nothing.pdf").status_code == 404


def test_render_report_pdf_handles_fractional_scores_and_odd_names() -> None:
    state = ImochaState()
    state.add_test(7, "C++ & <Templates>", [("Part A", 10), ("Part B", 5)])
    inv, _ = state.invite(7, email="o'neil@example.com", name="Zoë O'Neil")
    inv = state.complete(inv.id, section_scores=[7.25, 2.5])
    text = pdf_text(render_report_pdf(inv))
    assert "9.75 / 15 points (65%)" in text
    assert "C++ & <Templates>" in text


# ----------------------------------------------------------------------------------------- serving


def test_start_in_thread_serves_the_demo_tests_at_the_state_base_url(web: httpx.Client) -> None:
    state, server = start_in_thread()
    try:
        assert state.base_url == server.url
        response = web.get(f"{server.url}/v3/tests", headers={"X-API-KEY": "sandbox-demo"})
        names = [test["testName"] for test in response.json()["tests"]]
        assert "Python Developer – Intermediate" in names and "SQL Basics" in names
        invite = web.post(
            f"{server.url}/v3/tests/1134601/invite",
            headers={"X-API-KEY": "sandbox-demo"},
            json={"email": "demo@example.com", "name": "Demo"},
        ).json()
        assert invite["testUrl"].startswith(f"{server.url}/take/")
        page = web.get(invite["testUrl"])
        assert page.status_code == 200 and "Python Developer – Intermediate" in page.text
    finally:
        server.stop()


def test_start_in_thread_serves_a_given_state(web: httpx.Client) -> None:
    mine = ImochaState()
    mine.add_test(5, "Only test")
    state, server = start_in_thread(mine)
    try:
        assert state is mine
        body = web.get(f"{server.url}/v3/tests", headers={"X-API-KEY": "sandbox-x"}).json()
        assert [test["testId"] for test in body["tests"]] == [5]
    finally:
        server.stop()
