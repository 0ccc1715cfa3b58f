"""The candidate's journey in a real browser: Playwright driving Debian's headless Chromium.

Needs `/usr/bin/chromium` (`apt-get install chromium`); Playwright never downloads a browser here.
Without Chromium these tests fail in CI (CI=true) and are skipped elsewhere.

Screenshots land in pytest's tmp directory; to look at them, run
`pytest tests/sandbox/test_browser.py --basetemp=/tmp/shots` and open the PNGs under /tmp/shots.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.fakes.imocha import (
    PYTHON_TEST_ID,
    CallbackReceiver,
    FakeImocha,
    running_callback_receiver,
    running_fake_imocha,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium context with a fresh profile, and JavaScript off: the pages must not need it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            java_script_enabled=False,
            viewport={"width": 1280, "height": 900},
            timeout=30_000,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def imocha() -> Iterator[FakeImocha]:
    with running_fake_imocha() as fake:
        yield fake


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    with running_callback_receiver() as receiver:
        yield receiver


@pytest.fixture
def fake(imocha: FakeImocha, receiver: CallbackReceiver) -> FakeImocha:
    imocha.reset()
    receiver.reset()
    return imocha


def _report(fake: FakeImocha, inv_id: int) -> dict[str, Any]:
    with fake.client() as client:
        response = client.get(f"/v3/reports/{inv_id}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_a_candidate_takes_the_test_in_the_browser_and_the_score_arrives(
    fake: FakeImocha, receiver: CallbackReceiver, page: Any, tmp_path: Path
) -> None:
    invite = fake.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada Lovelace", callbackUrl=receiver.url)
    inv_id = invite["testInvitationId"]

    opened = page.goto(invite["testUrl"])
    assert opened is not None and opened.status == 200
    assert page.locator("h1").inner_text() == "Python Developer"
    assert "Ada Lovelace" in page.inner_text("main")
    assert page.locator("main ul li").all_inner_texts() == [
        "Python basics · 2 question(s), 30 points",
        "Problem solving · 2 question(s), 20 points",
    ]
    assert page.locator("fieldset").count() == 4
    # Three right answers of four: both "Python basics" questions (30) and one of "Problem solving" (10).
    page.get_by_role("radio", name="3", exact=True).check()  # len([1, 2, 3])
    page.get_by_role("radio", name="tuple").check()
    page.get_by_role("radio", name="O(log n)").check()
    page.get_by_role("radio", name="stack").check()  # wrong: a queue is first-in, first-out
    page.screenshot(path=str(tmp_path / "candidate-answered.png"), full_page=True)
    assert _report(fake, inv_id)["status"] == "In Progress"

    with page.expect_navigation():
        page.get_by_role("button", name="Submit answers").click()

    assert page.locator("h1").inner_text() == "Thank you, your answers were submitted"
    assert page.locator(".score").inner_text() == "40 / 50 points (80%)"
    page.screenshot(path=str(tmp_path / "candidate-submitted.png"), full_page=True)

    report = _report(fake, inv_id)
    assert report["status"] == "Complete"
    assert (report["score"], report["candidatePoints"], report["totalTestPoints"], report["scorePercentage"]) == (40, 40, 50, 80)
    assert [(s["sectionName"], s["candidateScore"]) for s in report["sections"]] == [("Python basics", 30), ("Problem solving", 10)]
    in_progress, complete = receiver.wait_for(2)
    assert (in_progress["TestInvitationId"], in_progress["Status"]) == (inv_id, "In Progress")
    assert (complete["TestInvitationId"], complete["Status"]) == (inv_id, "Complete")
    assert (complete["CandidateScore"], complete["TotalScore"]) == (40, 50)
    assert complete["ReportPDFUrl"] == report["pdfReportUrl"]

    # The report link on the thank-you page serves the PDF.
    pdf = page.request.get(page.get_by_role("link", name="Report (PDF)").get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    pdf_text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
    assert "40 / 50 points (80%)" in pdf_text and "Ada Lovelace" in pdf_text

    # Opening the link again, or submitting again, gets a clear page and leaves the score alone.
    again = page.goto(invite["testUrl"])
    assert again is not None and again.status == 409
    assert page.locator("h1").inner_text() == "Test already submitted"
    page.screenshot(path=str(tmp_path / "candidate-again.png"), full_page=True)
    assert _report(fake, inv_id)["score"] == 40


def test_leaving_the_test_in_the_browser_records_test_left(fake: FakeImocha, receiver: CallbackReceiver, page: Any) -> None:
    invite = fake.invite(PYTHON_TEST_ID, email="grace@example.com", name="Grace Hopper", callbackUrl=receiver.url)
    page.goto(invite["testUrl"])
    page.get_by_role("radio", name="3", exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Leave the test").click()
    assert page.locator("h1").inner_text() == "You left the test"
    assert _report(fake, invite["testInvitationId"])["status"] == "TestLeft"
    assert [p["Status"] for p in receiver.wait_for(2)] == ["In Progress", "Test Left"]


def test_the_operator_page_lists_invitations_and_its_buttons_work(fake: FakeImocha, page: Any, tmp_path: Path) -> None:
    fake.state.callbacks_enabled = False
    done = fake.invite(email="ada@example.com", name="Ada Lovelace")["testInvitationId"]
    fake.state.complete(done, section_scores=[27, 15])
    started = fake.invite(email="grace@example.com", name="Grace Hopper")["testInvitationId"]
    fake.state.start(started)
    pending = fake.invite(email="alan@example.com", name="Alan Turing")["testInvitationId"]
    fake.state.cancel(fake.invite(email="barbara@example.com", name="Barbara Liskov")["testInvitationId"])

    page.goto(f"{fake.url}/")
    assert page.locator("h1").inner_text() == "Operator"
    assert page.locator("table").first.locator("tbody tr").count() == 4
    page.screenshot(path=str(tmp_path / "operator.png"), full_page=True)

    row = page.locator("tr", has_text="Alan Turing")
    with page.expect_navigation():
        row.get_by_role("button", name="Cancel").click()
    assert page.url == f"{fake.url}/"
    assert fake.state.invitation(pending).status == "Cancelled"
    assert page.locator("tr", has_text="Alan Turing").locator(".badge").inner_text() == "Cancelled"
    assert "42 / 50 points (84%)" in page.locator("tr", has_text="Ada Lovelace").inner_text()
