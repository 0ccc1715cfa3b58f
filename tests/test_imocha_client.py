"""The iMocha client, driven through httpx.MockTransport with fixtures shaped like the documented bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import imocha
from bot.imocha import (
    Attempt,
    AttemptState,
    AuthError,
    BadRequestError,
    Callback,
    CallbackReplay,
    Cancelled,
    ImochaClient,
    ImochaConnectionError,
    ImochaError,
    ImochaProtocolError,
    ImochaStatusError,
    Invitation,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    SectionScore,
    ServerError,
    Status,
    Test,  # a dataclass marked __test__ = False, so pytest does not try to collect it
    TestDetail,
    TestSection,
    normalize_status,
    parse_callback,
)

FIXTURES = Path(__file__).parent / "fixtures" / "imocha"
BASE_URL = "https://apiv3.imocha.io"
API_KEY = "imk_live_Zq7W3xNv9Tb2Lp4Rk8Hs"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def reply(status: int, body: Any = None, *, headers: dict[str, str] | None = None, text: str | None = None):
    def answer(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


def raising(exc_type: type[httpx.TransportError], message: str = "boom"):
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return answer


class FakeImocha:
    """Answers requests from a script (the last answer repeats) and records every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    @property
    def only_request(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


class Harness:
    def __init__(
        self,
        *answers: Answer,
        retry: RetryPolicy | None = None,
        rand: float = 1.0,
        base_url: str = BASE_URL,
    ) -> None:
        self.fake = FakeImocha(*answers)
        self.delays: list[float] = []
        self.http = ImochaClient.build_http(base_url, transport=httpx.MockTransport(self.fake))
        self.client = ImochaClient(
            self.http,
            API_KEY,
            retry=retry or RetryPolicy(),
            sleep=self.delays.append,
            random=lambda: rand,
        )

    @property
    def requests(self) -> list[httpx.Request]:
        return self.fake.requests


@pytest.fixture
def harness_factory():
    made: list[Harness] = []

    def make(*answers: Answer, **kwargs: Any) -> Harness:
        harness = Harness(*answers, **kwargs)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.http.close()


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def assert_request(
    request: httpx.Request,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
) -> None:
    assert request.method == method
    assert request.url.host == "apiv3.imocha.io"
    assert request.url.path == path
    assert dict(request.url.params) == (params or {})
    assert request.headers["X-API-KEY"] == API_KEY


# --------------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------------


def test_list_tests_walks_every_page_until_the_count_is_reached(harness_factory):
    h = harness_factory(reply(200, fixture("tests_page1")), reply(200, fixture("tests_page2")))

    tests = h.client.list_tests()

    assert len(tests) == 130
    assert tests[0] == Test(test_id=1000, name="Test 000", duration=30, status="Active")
    assert tests[-1].test_id == 1129
    assert len(h.requests) == 2
    assert_request(h.requests[0], "GET", "/v3/tests", params={"pageNo": "1", "pageSize": "100"})
    assert_request(h.requests[1], "GET", "/v3/tests", params={"pageNo": "2", "pageSize": "100"})


def test_list_tests_stops_at_a_short_page_when_there_is_no_count(harness_factory):
    page = {"tests": [{"testId": 7, "testName": "Go"}, {"testId": 8, "testName": "SQL"}]}
    h = harness_factory(reply(200, page))

    assert [t.test_id for t in h.client.list_tests()] == [7, 8]
    assert len(h.requests) == 1


def test_list_tests_stops_when_the_server_ignores_the_page_number(harness_factory):
    full_page = {"tests": [{"testId": i, "testName": f"T{i}"} for i in range(100)]}
    h = harness_factory(reply(200, full_page))

    assert len(h.client.list_tests()) == 100
    assert len(h.requests) == 2


def test_list_tests_of_an_empty_account_is_an_empty_list(harness_factory):
    h = harness_factory(reply(200, {"tests": [], "count": 0}))

    assert h.client.list_tests() == []


def test_get_test_returns_the_sections(harness_factory):
    h = harness_factory(reply(200, fixture("test_detail_200")))

    detail = h.client.get_test(1134601)

    assert_request(h.fake.only_request, "GET", "/v3/tests/1134601")
    assert detail == TestDetail(
        test_id=1134601,
        name="Python 3 (Coding) - Intermediate",
        duration=60,
        sections=(
            TestSection(name="Python Fundamentals", questions=10, duration=20),
            TestSection(name="Coding", questions=2, duration=40),
        ),
    )


def test_invite_posts_the_camelcase_body_with_utc_dates_and_the_key_header(harness_factory):
    h = harness_factory(reply(201, fixture("invite_201")))
    ist = timezone(timedelta(hours=5, minutes=30))

    invitation = h.client.invite(
        292930,
        email="ada.lovelace@example.com",
        name="Ada Lovelace",
        callback_url="https://bot.example.com/imocha/callback",
        redirect_url="https://example.com/thanks",
        start=datetime(2020, 6, 11, 21, 30, 0, 999, tzinfo=ist),
        end=datetime(2020, 6, 18, 16, 0, tzinfo=UTC),
    )

    request = h.fake.only_request
    assert_request(request, "POST", "/v3/tests/292930/invite")
    assert request.headers["Content-Type"] == "application/json"
    assert body_of(request) == {
        "email": "ada.lovelace@example.com",
        "name": "Ada Lovelace",
        "sendEmail": "yes",
        "callbackUrl": "https://bot.example.com/imocha/callback",
        "redirectUrl": "https://example.com/thanks",
        "startDateTime": "2020-06-11T16:00:00Z",
        "endDateTime": "2020-06-18T16:00:00Z",
    }
    assert invitation == Invitation(
        invitation_id=2807324,
        test_url="https://test.interviewmocha.com/IMInstructions?bk1kdWNyYXdudzN",
        status=Status.PENDING,
    )


def test_invite_says_no_to_email_and_leaves_out_unset_fields(harness_factory):
    h = harness_factory(reply(201, fixture("invite_201")))

    h.client.invite(292930, email="a@example.com", name="A", send_email=False)

    assert body_of(h.fake.only_request) == {"email": "a@example.com", "name": "A", "sendEmail": "no"}


def test_invite_accepts_200_and_reads_the_status_of_the_invite_by_link_shape(harness_factory):
    h = harness_factory(reply(200, fixture("invite_by_link_200")))

    invitation = h.client.invite(303076, email="a@example.com", name="A")

    assert invitation.invitation_id == 3178622
    assert invitation.test_url.startswith("https://test.imocha.io/IMInstructions?")
    assert invitation.status is Status.PENDING


def test_invite_refuses_naive_datetimes_before_calling_imocha(harness_factory):
    h = harness_factory(reply(201, fixture("invite_201")))

    with pytest.raises(ValueError, match="timezone-aware"):
        h.client.invite(1, email="a@example.com", name="A", start=datetime(2020, 6, 11, 16, 0))
    assert h.requests == []


def test_reattempt_posts_the_pascalcase_body(harness_factory):
    h = harness_factory(reply(200, fixture("reattempt_200")))

    invitation = h.client.reattempt(
        3178622,
        start=datetime(2020, 6, 11, 16, 0, tzinfo=UTC),
        end=datetime(2020, 6, 12, 16, 0, tzinfo=UTC),
        callback_url="https://bot.example.com/imocha/callback",
        send_email=False,
    )

    request = h.fake.only_request
    assert_request(request, "POST", "/v3/invitations/3178622/reattempt")
    assert body_of(request) == {
        "StartDateTime": "2020-06-11T16:00:00Z",
        "EndDateTime": "2020-06-12T16:00:00Z",
        "CallbackUrl": "https://bot.example.com/imocha/callback",
        "sendEmail": "no",
    }
    assert invitation == Invitation(
        invitation_id=3178623,
        test_url="https://test.imocha.io/IMInstructions?cmVhdHRlbXB0MzE3ODYyMw",
        status=Status.PENDING,
    )


def test_reattempt_with_defaults_sends_only_send_email(harness_factory):
    h = harness_factory(reply(200, fixture("reattempt_200")))

    h.client.reattempt(3178622)

    assert body_of(h.fake.only_request) == {"sendEmail": "yes"}


def test_cancel_posts_without_a_body_and_returns_the_cancelled_status(harness_factory):
    h = harness_factory(reply(200, fixture("cancel_200")))

    cancelled = h.client.cancel(2932950)

    request = h.fake.only_request
    assert_request(request, "POST", "/v3/invitations/2932950/cancel")
    assert request.content == b""
    assert cancelled == Cancelled(invitation_id=2932950, status=Status.CANCELLED)


def test_cancel_of_an_invitation_that_is_not_pending_raises_bad_request_with_imochas_message(
    harness_factory,
):
    h = harness_factory(reply(400, fixture("cancel_400")))

    with pytest.raises(BadRequestError) as caught:
        h.client.cancel(2932950)

    assert caught.value.status_code == 400
    assert caught.value.message == ("Testinvitation state in inprogress, complete, and expired can not be cancelled.")
    assert caught.value.body == fixture("cancel_400")
    assert len(h.requests) == 1


def test_report_reads_a_camelcase_report_with_sections(harness_factory):
    h = harness_factory(reply(200, fixture("report_200")))

    report = h.client.report(3314697)

    assert_request(h.fake.only_request, "GET", "/v3/reports/3314697", params={"reportType": "1"})
    assert report == imocha.Report(
        invitation_id=3314697,
        test_id=1134601,
        test_name="Python 3 (Coding) - Intermediate",
        email="ada.lovelace@example.com",
        candidate_name="Ada Lovelace",
        status=Status.COMPLETE,
        candidate_points=70.0,
        total_points=115.0,
        percentage=61.0,
        performance_category="Intermediate",
        pdf_url="https://app.imocha.io/PDFReport?id=OXP5R5ayMu8nrHfnh2g%3d%3d",
        attempted_on=datetime(2020, 10, 9, 13, 21, 53, tzinfo=UTC),
        sections=(
            SectionScore(name="Python Fundamentals", candidate_score=40.0, max_score=50.0, questions=10),
            SectionScore(name="Coding", candidate_score=30.0, max_score=65.0, questions=2),
        ),
    )


def test_report_reads_the_pascalcase_keys_of_the_doc_table_and_computes_the_percentage(harness_factory):
    h = harness_factory(reply(200, fixture("report_doc_table_200")))

    report = h.client.report(2655161, report_type=3)

    assert dict(h.fake.only_request.url.params) == {"reportType": "3"}
    assert report.status is Status.TEST_LEFT
    assert report.performance_category == "Beginner"
    assert report.test_id == 292930
    assert report.candidate_name is None
    assert report.percentage == 30.0
    assert report.sections == ()


def test_report_of_an_unattempted_invitation_is_pending_with_no_scores(harness_factory):
    h = harness_factory(reply(200, {"testInvitationId": 5, "status": "None", "sections": None}))

    report = h.client.report(5)

    assert report.status is Status.PENDING
    assert report.percentage is None
    assert report.attempted_on is None


def test_attempts_posts_the_window_and_state_and_normalises_statuses(harness_factory):
    h = harness_factory(reply(200, fixture("testattempts_200")))

    attempts = h.client.attempts(
        AttemptState.COMPLETED,
        start=datetime(2020, 3, 20, 16, 0, tzinfo=UTC),
        end=datetime(2020, 6, 20, 16, 0, tzinfo=UTC),
    )

    request = h.fake.only_request
    assert_request(request, "POST", "/v3/candidates/testattempts", params={"state": "completed"})
    assert body_of(request) == {
        "StartDateTime": "2020-03-20T16:00:00Z",
        "EndDateTime": "2020-06-20T16:00:00Z",
    }
    assert attempts == [
        Attempt(2655161, 292930, "May", "may@example.com", Status.COMPLETE),
        Attempt(2894725, 1134601, "Suhas Kurade", "suhas@example.com", Status.TEST_LEFT),
    ]


@pytest.mark.parametrize("state", list(AttemptState))
def test_attempts_sends_each_state_in_lower_case(harness_factory, state):
    h = harness_factory(reply(200, {"result": {"testAttempts": []}, "errors": None}))

    assert h.client.attempts(state, start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime.now(UTC)) == []
    assert dict(h.fake.only_request.url.params) == {"state": state.value}


def test_attempts_validation_error_reported_as_401_is_a_bad_request_not_a_bad_key(harness_factory):
    h = harness_factory(reply(401, fixture("testattempts_401")))

    with pytest.raises(BadRequestError) as caught:
        h.client.attempts(AttemptState.EXPIRED, start=datetime.now(UTC), end=datetime.now(UTC))

    assert not isinstance(caught.value, AuthError)
    assert caught.value.status_code == 401
    assert caught.value.message == "Date & time is not invalid or incorrect format"


def test_process_callbacks_posts_the_lowercase_i_key_and_returns_the_results(harness_factory):
    h = harness_factory(reply(200, fixture("callbacks_process_200")))

    replay = h.client.process_callbacks([2631727, 2633244, 2633386])

    request = h.fake.only_request
    assert_request(request, "POST", "/v3/callbacks/process")
    assert body_of(request) == {"testinvitationIds": [2631727, 2633244, 2633386]}
    assert replay == CallbackReplay(successful=(2631727, 2633244, 2633386), failed=())


def test_process_callbacks_sends_250_ids_in_three_chunks_and_merges_the_results(harness_factory):
    def echo(request: httpx.Request) -> httpx.Response:
        ids = body_of(request)["testinvitationIds"]
        result = {"successful": [i for i in ids if i % 7], "failed": [i for i in ids if not i % 7]}
        return httpx.Response(200, json={"result": {"testinvitationIds": result}, "errors": None})

    h = harness_factory(echo)
    ids = list(range(1, 251))

    replay = h.client.process_callbacks(ids)

    sent = [body_of(r)["testinvitationIds"] for r in h.requests]
    assert [len(chunk) for chunk in sent] == [100, 100, 50]
    assert [i for chunk in sent for i in chunk] == ids
    assert replay.successful == tuple(i for i in ids if i % 7)
    assert replay.failed == tuple(i for i in ids if not i % 7)


def test_process_callbacks_sends_a_repeated_id_once(harness_factory):
    h = harness_factory(reply(200, fixture("callbacks_process_200")))

    h.client.process_callbacks([5, 6, 5])

    assert body_of(h.fake.only_request) == {"testinvitationIds": [5, 6]}


def test_process_callbacks_with_no_ids_makes_no_request(harness_factory):
    h = harness_factory(reply(200, fixture("callbacks_process_200")))

    assert h.client.process_callbacks([]) == CallbackReplay(successful=(), failed=())
    assert h.requests == []


def test_process_callbacks_for_foreign_ids_reported_as_401_is_a_bad_request(harness_factory):
    h = harness_factory(reply(401, fixture("callbacks_process_401")))

    with pytest.raises(BadRequestError) as caught:
        h.client.process_callbacks([94761])

    assert caught.value.message == "testinvitationIds does not belong to account or not found; 94761"


def test_check_key_asks_for_one_test_and_returns_the_count(harness_factory):
    h = harness_factory(reply(200, {"tests": [{"testId": 1, "testName": "Go"}], "count": 42}))

    assert h.client.check_key() == 42
    assert_request(h.fake.only_request, "GET", "/v3/tests", params={"pageNo": "1", "pageSize": "1"})


def test_check_key_falls_back_to_the_number_of_tests_returned(harness_factory):
    h = harness_factory(reply(200, {"tests": []}))

    assert h.client.check_key() == 0


def test_check_key_raises_auth_error_when_the_key_is_rejected(harness_factory):
    h = harness_factory(reply(401, fixture("bad_key_401")))

    with pytest.raises(AuthError) as caught:
        h.client.check_key()

    assert caught.value.status_code == 401
    assert caught.value.message.startswith("Access denied due to invalid subscription key.")
    assert len(h.requests) == 1


def test_requests_keep_a_path_prefix_in_the_base_url(harness_factory):
    h = harness_factory(reply(200, fixture("cancel_200")), base_url="http://127.0.0.1:9999/imocha")

    h.client.cancel(2932950)

    assert str(h.fake.only_request.url) == "http://127.0.0.1:9999/imocha/v3/invitations/2932950/cancel"


def test_build_http_sets_the_base_url_and_default_timeout_and_carries_no_key():
    with ImochaClient.build_http(BASE_URL) as http:
        assert str(http.base_url) == "https://apiv3.imocha.io"
        assert http.timeout == ImochaClient.DEFAULT_TIMEOUT
        assert "x-api-key" not in http.headers


def test_one_http_client_can_serve_clients_with_different_keys():
    fake = FakeImocha(reply(200, fixture("cancel_200")))
    with ImochaClient.build_http(BASE_URL, transport=httpx.MockTransport(fake)) as http:
        ImochaClient(http, "key-one").cancel(1)
        ImochaClient(http, "key-two").cancel(1)

    assert [r.headers["X-API-KEY"] for r in fake.requests] == ["key-one", "key-two"]


def test_the_client_repr_does_not_contain_the_key(harness_factory):
    h = harness_factory(reply(200, {}))

    assert API_KEY not in repr(h.client)
    assert API_KEY[:6] not in repr(h.client)
    assert "apiv3.imocha.io" in repr(h.client)


def test_the_client_refuses_an_empty_key():
    with ImochaClient.build_http(BASE_URL) as http, pytest.raises(ValueError, match="empty"):
        ImochaClient(http, "  ")


# --------------------------------------------------------------------------------------------------
# Status vocabulary
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # invite response, behaviour tables, help centre, V2
        ("Pending", Status.PENDING),
        # cancel response, cancel rules, behaviour tables, help centre
        ("cancelled", Status.CANCELLED),
        ("Cancelled", Status.CANCELLED),
        ("Canceled", Status.CANCELLED),
        ("Expired", Status.EXPIRED),
        # callback, behaviour tables, cancel rules, reattempt error, V2
        ("In Progress", Status.IN_PROGRESS),
        ("Inprogress", Status.IN_PROGRESS),
        ("inprogress", Status.IN_PROGRESS),
        ("In progress", Status.IN_PROGRESS),
        ("Complete", Status.COMPLETE),
        ("Completed", Status.COMPLETE),
        ("Generated", Status.COMPLETE),
        ("Test Left", Status.TEST_LEFT),
        ("TestLeft", Status.TEST_LEFT),
        ("Testleft", Status.TEST_LEFT),
        ("Terminated", Status.TERMINATED),
        # report status of an invitation never attempted; V2 test re-opened for a retake
        ("None", Status.PENDING),
        ("Reset", Status.PENDING),
        # our own spellings and sloppy ones
        ("test_left", Status.TEST_LEFT),
        ("in_progress", Status.IN_PROGRESS),
        ("  COMPLETE ", Status.COMPLETE),
        ("in-progress", Status.IN_PROGRESS),
        # not statuses at all
        ("Active", Status.UNKNOWN),
        ("Passed", Status.UNKNOWN),
        ("", Status.UNKNOWN),
        (None, Status.UNKNOWN),
        (42, Status.UNKNOWN),
    ],
)
def test_normalize_status_maps_every_documented_spelling(raw, expected):
    assert normalize_status(raw) is expected


@pytest.mark.parametrize("status", list(Status))
def test_normalize_status_round_trips_its_own_values(status):
    assert normalize_status(status.value) is status
    assert normalize_status(str(status)) is status


@pytest.mark.parametrize(
    ("status", "finished", "closed"),
    [
        (Status.PENDING, False, False),
        (Status.IN_PROGRESS, False, False),
        (Status.COMPLETE, True, True),
        (Status.TEST_LEFT, True, True),
        (Status.TERMINATED, True, True),
        (Status.EXPIRED, False, True),
        (Status.CANCELLED, False, True),
        (Status.UNKNOWN, False, False),
    ],
)
def test_finished_and_closed_cover_the_right_statuses(status, finished, closed):
    assert status.finished is finished
    assert status.closed is closed


# --------------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------------

RETRY_AFTER_DATE = {"Date": "Wed, 21 Oct 2015 07:28:00 GMT", "Retry-After": "Wed, 21 Oct 2015 07:28:12 GMT"}


@pytest.mark.parametrize(
    ("first", "delays"),
    [
        pytest.param(raising(httpx.ConnectError), [0.5], id="connection error"),
        pytest.param(raising(httpx.ConnectTimeout), [0.5], id="connect timeout"),
        pytest.param(raising(httpx.ReadTimeout), [0.5], id="read timeout"),
        pytest.param(raising(httpx.RemoteProtocolError), [0.5], id="protocol error"),
        pytest.param(reply(408), [0.5], id="408"),
        pytest.param(reply(429, headers={"Retry-After": "7"}), [7.0], id="429 with Retry-After seconds"),
        pytest.param(reply(429, headers=RETRY_AFTER_DATE), [12.0], id="429 with Retry-After HTTP date"),
        pytest.param(reply(429), [0.5], id="429 without Retry-After"),
        pytest.param(reply(500, text="oops"), [0.5], id="500"),
        pytest.param(reply(502), [0.5], id="502"),
        pytest.param(reply(503, headers={"Retry-After": "2"}), [2.0], id="503 with Retry-After"),
        pytest.param(reply(504), [0.5], id="504"),
    ],
)
def test_transient_failures_are_retried_then_succeed(harness_factory, first, delays):
    h = harness_factory(first, reply(200, fixture("cancel_200")))

    assert h.client.cancel(2932950).status is Status.CANCELLED

    assert h.delays == delays
    assert len(h.requests) == 2
    assert all(r.headers["X-API-KEY"] == API_KEY for r in h.requests)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequestError), (401, AuthError), (403, AuthError), (404, NotFoundError)],
)
def test_client_errors_are_not_retried(harness_factory, status, error):
    h = harness_factory(reply(status, {"statusCode": status, "message": "no"}))

    with pytest.raises(error):
        h.client.report(1)

    assert len(h.requests) == 1
    assert h.delays == []


@pytest.mark.parametrize(
    ("answer", "error", "status_code"),
    [
        pytest.param(raising(httpx.ConnectError), ImochaConnectionError, None, id="connection error"),
        pytest.param(raising(httpx.ReadTimeout), ImochaConnectionError, None, id="timeout"),
        pytest.param(reply(408), ImochaStatusError, 408, id="408"),
        pytest.param(reply(429), RateLimitError, 429, id="429"),
        pytest.param(reply(500), ServerError, 500, id="500"),
        pytest.param(reply(502), ServerError, 502, id="502"),
        pytest.param(reply(503), ServerError, 503, id="503"),
        pytest.param(reply(504), ServerError, 504, id="504"),
    ],
)
def test_giving_up_after_max_attempts_raises_the_matching_error(harness_factory, answer, error, status_code):
    h = harness_factory(answer)

    with pytest.raises(error) as caught:
        h.client.list_tests()

    assert type(caught.value) is error
    assert getattr(caught.value, "status_code", None) == status_code
    assert len(h.requests) == 4
    assert h.delays == [0.5, 1.0, 2.0]


def test_giving_up_on_429_reports_the_last_retry_after(harness_factory):
    h = harness_factory(reply(429, {"statusCode": 429, "message": "Rate limit is exceeded."}, headers={"Retry-After": "3"}))

    with pytest.raises(RateLimitError) as caught:
        h.client.get_test(1)

    assert caught.value.retry_after == 3.0
    assert caught.value.message == "Rate limit is exceeded."
    assert h.delays == [3.0, 3.0, 3.0]


def test_backoff_doubles_and_is_capped_at_max_delay(harness_factory):
    h = harness_factory(reply(503), retry=RetryPolicy(max_attempts=7, base_delay=0.5, max_delay=3.0))

    with pytest.raises(ServerError):
        h.client.get_test(1)

    assert h.delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_backoff_uses_full_jitter(harness_factory):
    h = harness_factory(reply(502), rand=0.25)

    with pytest.raises(ServerError):
        h.client.get_test(1)

    assert h.delays == [0.125, 0.25, 0.5]


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        pytest.param({"Retry-After": "3600"}, 30.0, id="long seconds capped"),
        pytest.param(
            {"Retry-After": "Wed, 21 Oct 2015 09:00:00 GMT", "Date": RETRY_AFTER_DATE["Date"]},
            30.0,
            id="far date capped",
        ),
        pytest.param(
            {"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT", "Date": RETRY_AFTER_DATE["Date"]},
            0.0,
            id="past date",
        ),
        pytest.param({"Retry-After": "soon"}, 0.5, id="garbled falls back to backoff"),
        pytest.param({"Retry-After": "-5"}, 0.0, id="negative"),
    ],
)
def test_retry_after_is_honoured_within_the_cap(harness_factory, headers, delay):
    h = harness_factory(reply(429, headers=headers), reply(200, fixture("cancel_200")))

    h.client.cancel(1)

    assert h.delays == [delay]


def test_retry_after_http_date_without_a_date_header_is_measured_from_now(harness_factory):
    when = datetime.now(UTC) + timedelta(seconds=20)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    h = harness_factory(reply(503, headers={"Retry-After": header}), reply(200, fixture("cancel_200")))

    h.client.cancel(1)

    assert 15.0 < h.delays[0] <= 20.0


def test_a_post_is_retried_with_the_same_body(harness_factory):
    h = harness_factory(raising(httpx.ReadTimeout), reply(201, fixture("invite_201")))

    h.client.invite(292930, email="a@example.com", name="A")

    assert len(h.requests) == 2
    assert body_of(h.requests[0]) == body_of(h.requests[1])


def test_a_single_attempt_policy_never_sleeps(harness_factory):
    h = harness_factory(reply(503), retry=RetryPolicy(max_attempts=1))

    with pytest.raises(ServerError):
        h.client.cancel(1)

    assert h.delays == []
    assert len(h.requests) == 1


def test_a_retry_policy_needs_at_least_one_attempt():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ConnectError,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.UnsupportedProtocol,
    ],
)
def test_httpx_exceptions_never_escape_the_client(harness_factory, exc_type):
    h = harness_factory(raising(exc_type, "network is down"))

    with pytest.raises(ImochaConnectionError) as caught:
        h.client.check_key()

    assert isinstance(caught.value.__cause__, exc_type)
    assert "GET /v3/tests" in caught.value.message


def test_an_unsupported_protocol_is_not_retried(harness_factory):
    h = harness_factory(raising(httpx.UnsupportedProtocol))

    with pytest.raises(ImochaConnectionError):
        h.client.check_key()

    assert len(h.requests) == 1


# --------------------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------------------


V2_MESSAGE = "Operation on resource cannot be performed: Reattempt is only allowed on completed test invitation"
PROBLEM_DETAILS = {
    "title": "One or more validation errors occurred.",
    "errors": {"Email": ["A valid email is required"], "Name": ["Name is required"]},
}
THROTTLED = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}
HTML = "<html><body>upstream exploded</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, fixture("invite_400"), BadRequestError, "'Email' must not be empty."),
        (400, fixture("cancel_400"), BadRequestError, fixture("cancel_400")["message"]),
        (401, fixture("bad_key_401"), AuthError, fixture("bad_key_401")["message"]),
        (401, fixture("testattempts_401"), BadRequestError, "Date & time is not invalid or incorrect format"),
        (
            401,
            fixture("callbacks_process_401"),
            BadRequestError,
            "testinvitationIds does not belong to account or not found; 94761",
        ),
        (403, fixture("v2_error_403"), AuthError, V2_MESSAGE),
        (403, {"statusCode": 403, "message": "Forbidden"}, AuthError, "Forbidden"),
        (400, PROBLEM_DETAILS, BadRequestError, "A valid email is required; Name is required"),
        (400, {"errors": []}, BadRequestError, "HTTP 400 Bad Request"),
        (404, None, NotFoundError, "HTTP 404 Not Found"),
        (409, {"message": "conflict"}, ImochaStatusError, "conflict"),
        (429, THROTTLED, RateLimitError, THROTTLED["message"]),
        (500, HTML, ServerError, HTML),
        (503, "", ServerError, "HTTP 503 Service Unavailable"),
    ],
)
def test_each_error_body_shape_maps_to_the_right_exception_and_message(harness_factory, status, body, error, message):
    answer = reply(status, text=body) if isinstance(body, str) else reply(status, body)
    h = harness_factory(answer, retry=RetryPolicy(max_attempts=1))

    with pytest.raises(ImochaStatusError) as caught:
        h.client.invite(1, email="a@example.com", name="A")

    assert type(caught.value) is error
    assert caught.value.status_code == status
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.body == (body or None)


def test_every_error_is_an_imocha_error():
    for error in (
        ImochaConnectionError,
        ImochaStatusError,
        AuthError,
        BadRequestError,
        NotFoundError,
        RateLimitError,
        ServerError,
        ImochaProtocolError,
    ):
        assert issubclass(error, ImochaError)
    for error in (AuthError, BadRequestError, NotFoundError, RateLimitError, ServerError):
        assert issubclass(error, ImochaStatusError)


def _invite(c: ImochaClient) -> object:
    return c.invite(1, email="a@example.com", name="A")


def _attempts(c: ImochaClient) -> object:
    return c.attempts(AttemptState.COMPLETED, start=datetime.now(UTC), end=datetime.now(UTC))


@pytest.mark.parametrize(
    ("call", "answer"),
    [
        (_invite, reply(201, text="<html>OK</html>")),
        (_invite, reply(201, {})),
        (_invite, reply(201, {"testInvitationId": "abc", "testUrl": "https://x"})),
        (_invite, reply(201, {"testInvitationId": 5})),
        (lambda c: c.reattempt(1), reply(200)),
        (lambda c: c.cancel(1), reply(200, ["cancelled"])),
        (lambda c: c.report(1), reply(200, "report")),
        (lambda c: c.report(1), reply(200, {"sections": "none"})),
        (lambda c: c.list_tests(), reply(200, {"items": []})),
        (lambda c: c.list_tests(), reply(200, {"tests": [{"testName": "no id"}]})),
        (lambda c: c.get_test(1), reply(200, {"testId": None})),
        (_attempts, reply(200, {"result": None, "errors": ["x"]})),
        (lambda c: c.process_callbacks([1]), reply(200, {"result": {"testinvitationIds": "nope"}})),
        (lambda c: c.check_key(), reply(200, text="not json {")),
    ],
)
def test_a_2xx_with_a_junk_body_raises_a_protocol_error(harness_factory, call, answer):
    h = harness_factory(answer)

    with pytest.raises(ImochaProtocolError):
        call(h.client)

    assert len(h.requests) == 1


# --------------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------------


def test_parse_callback_reads_the_in_progress_sample_and_ignores_base_img_url():
    callback = parse_callback(fixture("callback_in_progress"))

    assert callback == Callback(
        invitation_id=3314697,
        status=Status.IN_PROGRESS,
        email="ada.lovelace@example.com",
        candidate_score=0.0,
        total_score=0.0,
        pdf_url=None,
        performance_category=None,
        attempted_on_utc=datetime(2020, 10, 9, 13, 21, 53, tzinfo=UTC),
    )


def test_parse_callback_reads_the_complete_sample():
    callback = parse_callback(fixture("callback_complete"))

    assert callback == Callback(
        invitation_id=331469,
        status=Status.COMPLETE,
        email="ada.lovelace@example.com",
        candidate_score=6.0,
        total_score=115.0,
        pdf_url="https://app.imocha.io/PDFReport?id=OXP5R5ayMu8nrHfnh2g%3d%3d",
        performance_category="Beginner",
        attempted_on_utc=datetime(2020, 10, 9, 13, 21, 53, tzinfo=UTC),
    )


def test_parse_callback_tolerates_nulls_and_missing_optional_fields():
    callback = parse_callback({"TestInvitationId": "3314697", "Status": None, "TotalScore": None})

    assert callback.invitation_id == 3314697
    assert callback.status is Status.UNKNOWN
    assert callback.total_score is None
    assert callback.attempted_on_utc is None


@pytest.mark.parametrize("status", ["Terminated", "Test Left", "TestLeft"])
def test_parse_callback_understands_the_other_end_states(status):
    assert parse_callback({"TestInvitationId": 1, "Status": status}).status.finished


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param([fixture("callback_complete")], "JSON object", id="list"),
        pytest.param(None, "JSON object", id="null"),
        pytest.param('{"TestInvitationId": 1}', "JSON object", id="unparsed string"),
        pytest.param({"Status": "Complete"}, "no TestInvitationId", id="missing id"),
        pytest.param({"TestInvitationId": None}, "no TestInvitationId", id="null id"),
        pytest.param({"TestInvitationId": "abc"}, "integer", id="text id"),
        pytest.param({"TestInvitationId": 3.5}, "integer", id="fractional id"),
        pytest.param({"TestInvitationId": True}, "integer", id="boolean id"),
    ],
)
def test_parse_callback_rejects_junk_with_a_clear_value_error(data, match):
    with pytest.raises(ValueError, match=match):
        parse_callback(data)


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------


def test_the_key_and_candidate_emails_never_reach_the_logs_during_retries_and_failures(harness_factory, caplog):
    caplog.set_level(logging.DEBUG)
    email = "ada.lovelace@example.com"
    h = harness_factory(
        reply(503, headers={"Retry-After": "1"}),
        raising(httpx.ConnectError),
        reply(200, fixture("tests_page2")),  # list_tests succeeds on the third attempt
        reply(400, {"errors": [f"No records found for given Email address: {email}"]}),  # invite fails
        reply(401, fixture("bad_key_401")),  # check_key fails
        reply(401, fixture("testattempts_401")),  # attempts fails
        reply(200, fixture("report_200")),  # report (carrying the email) succeeds
        raising(httpx.ReadTimeout),  # cancel gives up after four timeouts
    )
    errors: list[ImochaError] = []

    h.client.list_tests()
    for call in (
        lambda: h.client.invite(1, email=email, name="Ada Lovelace"),
        h.client.check_key,
        lambda: h.client.attempts(AttemptState.COMPLETED, start=datetime.now(UTC), end=datetime.now(UTC)),
    ):
        with pytest.raises(ImochaError) as caught:
            call()
        errors.append(caught.value)
    assert h.client.report(3314697).email == email
    with pytest.raises(ImochaConnectionError) as caught:
        h.client.cancel(2932950)
    errors.append(caught.value)

    messages = [record.getMessage() for record in caplog.records]
    assert "iMocha GET /v3/tests failed: HTTP 503 (attempt 1/4); retrying in 1.00s" in messages
    assert "iMocha GET /v3/tests failed: ConnectError (attempt 2/4); retrying in 1.00s" in messages
    assert "iMocha POST /v3/invitations/2932950/cancel failed: ReadTimeout (attempt 4/4)" in messages
    assert "iMocha GET /v3/tests failed: HTTP 401 (attempt 1/4)" in messages
    everything = caplog.text + "\n".join(messages) + "\n".join(repr(e) + str(e) for e in errors)
    for fragment in (API_KEY, API_KEY[:8], API_KEY[-8:], API_KEY[6:14]):
        assert fragment not in everything
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert email not in record.getMessage()
