"""The bot's iMocha client (`bot/imocha/`) against the sandbox over real HTTP, not MockTransport.

Each public method of `ImochaClient` is exercised end to end: the client builds the request, the
sandbox answers with iMocha's paths, spellings and error shapes, and the client parses the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.imocha import (
    Attempt,
    AttemptState,
    AuthError,
    BadRequestError,
    Cancelled,
    ImochaClient,
    ImochaConnectionError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    SectionScore,
    ServerError,
    Status,
    Test,
)
from bot.sandbox.api import ACCESS_DENIED
from bot.sandbox.state import ImochaState
from tests.fakes import imocha as fakes
from tests.fakes.imocha import (
    BAD_KEY,
    GOOD_KEY,
    PYTHON_TEST_ID,
    SQL_TEST_ID,
    CallbackReceiver,
    FakeImocha,
    ManualClock,
    running_callback_receiver,
)

fake_imocha = fakes.fake_imocha

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class RecordingSleep:
    """A no-op `sleep` that remembers each delay the client asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def client(fake_imocha: FakeImocha, sleep: RecordingSleep) -> Iterator[ImochaClient]:
    with ImochaClient.build_http(fake_imocha.url) as http:
        yield ImochaClient(http, GOOD_KEY, sleep=sleep, random=lambda: 0.5)


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


# ----------------------------------------------------------------------------------------- tests


def test_list_tests_returns_the_account_tests(client: ImochaClient) -> None:
    tests = client.list_tests()
    assert tests == [
        Test(PYTHON_TEST_ID, "Python Developer", duration=40, status="Active"),
        Test(SQL_TEST_ID, "SQL Basics", duration=30, status="Active"),
    ]


def test_list_tests_walks_every_page_of_a_large_account(fake_imocha: FakeImocha, client: ImochaClient) -> None:
    for test_id in range(5001, 5001 + 248):
        fake_imocha.state.add_test(test_id, f"Generated test {test_id}")
    fake_imocha.state.reset_calls()

    tests = client.list_tests()

    assert len(tests) == 250
    assert len({t.test_id for t in tests}) == 250
    assert tests[-1] == Test(5248, "Generated test 5248", duration=30, status="Active")
    pages = [call.query for call in fake_imocha.state.calls if call.path == "/v3/tests"]
    assert pages == [{"pageNo": str(n), "pageSize": "100"} for n in (1, 2, 3)]


def test_list_tests_of_an_empty_account_is_empty(fake_imocha: FakeImocha, client: ImochaClient) -> None:
    fake_imocha.app.state.imocha = ImochaState(base_url=fake_imocha.url)  # no tests at all
    assert client.list_tests() == []


def test_get_test_returns_the_sections_with_their_question_counts(client: ImochaClient) -> None:
    detail = client.get_test(PYTHON_TEST_ID)
    assert (detail.test_id, detail.name, detail.duration) == (PYTHON_TEST_ID, "Python Developer", 40)
    assert [(s.name, s.questions, s.duration) for s in detail.sections] == [
        ("Python basics", 2, 20),
        ("Problem solving", 2, 20),
    ]


def test_get_test_of_an_unknown_test_is_not_found(client: ImochaClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_test(999)
    assert caught.value.status_code == 404
    assert caught.value.message == "Test not found"


# ----------------------------------------------------------------------------------------- key check


def test_check_key_with_a_good_key_counts_the_tests(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    assert client.check_key() == 2
    assert fake_imocha.state.calls[-1].api_key == GOOD_KEY


def test_check_key_with_a_bad_key_raises_auth_error_with_imochas_401_body(fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    with ImochaClient.build_http(fake_imocha.url) as http:
        bad = ImochaClient(http, BAD_KEY, sleep=sleep)
        with pytest.raises(AuthError) as caught:
            bad.check_key()
    assert caught.value.status_code == 401
    assert caught.value.body == {"statusCode": 401, "message": ACCESS_DENIED}
    assert caught.value.message == ACCESS_DENIED
    assert BAD_KEY not in str(caught.value)
    assert sleep.delays == []  # a rejected key is not retried
    assert fake_imocha.state.count("/v3/tests") == 1


def test_any_sandbox_key_is_accepted(fake_imocha: FakeImocha) -> None:
    with ImochaClient.build_http(fake_imocha.url) as http:
        assert ImochaClient(http, "sandbox-anything-at-all").check_key() == 2


# ----------------------------------------------------------------------------------------- invitations


def test_invite_returns_a_pending_invitation_with_a_link_to_the_candidate_page(
    fake_imocha: FakeImocha, client: ImochaClient, clock: ManualClock
) -> None:
    start, end = NOW + timedelta(hours=1), NOW + timedelta(days=3)
    invitation = client.invite(
        PYTHON_TEST_ID,
        email="ada@example.com",
        name="Ada Lovelace",
        callback_url="http://127.0.0.1:1/hook",
        redirect_url="https://example.com/thanks",
        start=start,
        end=end,
        send_email=False,
    )

    assert invitation.status is Status.PENDING
    assert invitation.test_url.startswith(f"{fake_imocha.url}/take/")
    stored = fake_imocha.state.invitation(invitation.invitation_id)
    assert (stored.email, stored.name, stored.test_id) == ("ada@example.com", "Ada Lovelace", PYTHON_TEST_ID)
    assert (stored.callback_url, stored.redirect_url) == ("http://127.0.0.1:1/hook", "https://example.com/thanks")
    assert (stored.start_at, stored.end_at, stored.send_email) == (start, end, False)


def test_inviting_the_same_candidate_again_returns_the_same_invitation(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    first = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    again = client.invite(PYTHON_TEST_ID, email="ADA@example.com", name="Ada L.")
    other_test = client.invite(SQL_TEST_ID, email="ada@example.com", name="Ada")
    assert again == first
    assert other_test.invitation_id != first.invitation_id
    assert len(fake_imocha.state.invitations()) == 2


def test_invite_with_a_bad_email_raises_bad_request_with_imochas_message(client: ImochaClient, sleep: RecordingSleep) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.invite(PYTHON_TEST_ID, email="not-an-email", name="Ada")
    assert caught.value.status_code == 400
    assert caught.value.message == "'Email' is not a valid email address."
    assert caught.value.body == {"errors": ["'Email' is not a valid email address."]}
    assert sleep.delays == []


def test_invite_with_an_empty_name_and_an_end_before_the_start_raises_bad_request(client: ImochaClient) -> None:
    with pytest.raises(BadRequestError, match="'Name' must not be empty"):
        client.invite(PYTHON_TEST_ID, email="ada@example.com", name=" ")
    with pytest.raises(BadRequestError, match="must be later than"):
        client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada", start=NOW, end=NOW - timedelta(days=1))


def test_invite_to_an_unknown_test_is_not_found(client: ImochaClient) -> None:
    with pytest.raises(NotFoundError, match="Test not found"):
        client.invite(999, email="ada@example.com", name="Ada")


def test_reattempt_after_a_completed_test_makes_a_new_invitation(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    first = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    fake_imocha.state.complete(first.invitation_id, points=20)

    second = client.reattempt(first.invitation_id, callback_url="http://127.0.0.1:1/new-hook", send_email=False)

    assert second.invitation_id != first.invitation_id
    assert second.test_url != first.test_url
    assert second.status is Status.PENDING  # the reattempt answer has no status; the client assumes pending
    stored = fake_imocha.state.invitation(second.invitation_id)
    assert (stored.attempt, stored.previous_invitation_id, stored.callback_url) == (2, first.invitation_id, "http://127.0.0.1:1/new-hook")
    # Asking again before the candidate attempts returns the same reattempt.
    assert client.reattempt(first.invitation_id).invitation_id == second.invitation_id


def test_reattempt_of_a_pending_invitation_moves_its_window(client: ImochaClient, fake_imocha: FakeImocha, clock: ManualClock) -> None:
    first = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=2)
    again = client.reattempt(first.invitation_id, start=start, end=end)
    assert again.invitation_id == first.invitation_id
    stored = fake_imocha.state.invitation(first.invitation_id)
    assert (stored.start_at, stored.end_at) == (start, end)


def test_reattempt_while_in_progress_raises_bad_request(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    first = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    fake_imocha.state.start(first.invitation_id)
    with pytest.raises(BadRequestError, match="inprogress state"):
        client.reattempt(first.invitation_id)


def test_reattempt_of_an_unknown_invitation_is_not_found(client: ImochaClient) -> None:
    with pytest.raises(NotFoundError, match="Test invitation not found"):
        client.reattempt(42)


def test_cancel_of_a_pending_invitation(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    invitation = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    assert client.cancel(invitation.invitation_id) == Cancelled(invitation.invitation_id, Status.CANCELLED)
    assert fake_imocha.state.invitation(invitation.invitation_id).status == "Cancelled"


def test_cancel_of_a_completed_invitation_raises_bad_request(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    invitation = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    fake_imocha.state.complete(invitation.invitation_id)
    with pytest.raises(BadRequestError) as caught:
        client.cancel(invitation.invitation_id)
    assert caught.value.status_code == 400
    assert "can not be cancelled" in caught.value.message


def test_cancel_of_an_unknown_invitation_is_not_found(client: ImochaClient) -> None:
    with pytest.raises(NotFoundError):
        client.cancel(42)


# ----------------------------------------------------------------------------------------- reports


def test_the_report_of_a_pending_invitation_has_no_score(client: ImochaClient) -> None:
    invitation = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada Lovelace")
    report = client.report(invitation.invitation_id)
    assert report.status is Status.PENDING
    assert (report.pdf_url, report.performance_category, report.attempted_on) == (None, None, None)
    assert report.total_points == 50


def test_the_report_of_a_completed_test_has_scores_sections_and_the_pdf(
    client: ImochaClient, fake_imocha: FakeImocha, clock: ManualClock
) -> None:
    invitation = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada Lovelace")
    fake_imocha.state.start(invitation.invitation_id)
    clock.advance(minutes=25)
    fake_imocha.state.complete(invitation.invitation_id, section_scores=[27, 15], category="Expert")

    report = client.report(invitation.invitation_id)

    assert report.invitation_id == invitation.invitation_id
    assert (report.test_id, report.test_name) == (PYTHON_TEST_ID, "Python Developer")
    assert (report.email, report.candidate_name) == ("ada@example.com", "Ada Lovelace")
    assert report.status is Status.COMPLETE
    assert (report.candidate_points, report.total_points, report.percentage) == (42, 50, 84)
    assert report.performance_category == "Expert"
    assert report.attempted_on == NOW
    assert report.pdf_url is not None and report.pdf_url.startswith(f"{fake_imocha.url}/reports/")
    assert report.sections == (
        SectionScore("Python basics", 27, 30, 2),
        SectionScore("Problem solving", 15, 20, 2),
    )


@pytest.mark.parametrize(
    ("finish", "status"),
    [("leave", Status.TEST_LEFT), ("terminate", Status.TERMINATED), ("cancel", Status.CANCELLED), ("expire", Status.EXPIRED)],
)
def test_the_report_status_spellings_map_back_to_the_clients_statuses(
    client: ImochaClient, fake_imocha: FakeImocha, finish: str, status: Status
) -> None:
    inv_id = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada").invitation_id
    state = fake_imocha.state
    {
        "leave": lambda: state.leave(inv_id),
        "terminate": lambda: state.complete(inv_id, status="Terminated"),
        "cancel": lambda: state.cancel(inv_id),
        "expire": lambda: state.expire(inv_id),
    }[finish]()
    assert client.report(inv_id).status is status


def test_the_report_of_an_unknown_invitation_is_not_found(client: ImochaClient) -> None:
    with pytest.raises(NotFoundError):
        client.report(42)


# ----------------------------------------------------------------------------------------- reconciliation


def test_attempts_lists_each_state_within_the_window(client: ImochaClient, fake_imocha: FakeImocha, clock: ManualClock) -> None:
    state = fake_imocha.state
    done = client.invite(PYTHON_TEST_ID, email="done@example.com", name="Done").invitation_id
    left = client.invite(PYTHON_TEST_ID, email="left@example.com", name="Left").invitation_id
    gone = client.invite(PYTHON_TEST_ID, email="gone@example.com", name="Gone").invitation_id
    late = client.invite(PYTHON_TEST_ID, email="late@example.com", name="Late").invitation_id
    early = client.invite(SQL_TEST_ID, email="early@example.com", name="Early").invitation_id
    state.complete(early)  # finished before the window below
    clock.advance(hours=1)
    state.complete(done)
    state.leave(left)
    state.cancel(gone)
    state.expire(late)
    window = {"start": NOW + timedelta(minutes=30), "end": NOW + timedelta(hours=2)}

    completed = client.attempts(AttemptState.COMPLETED, **window)
    cancelled = client.attempts(AttemptState.CANCELLED, **window)
    expired = client.attempts(AttemptState.EXPIRED, **window)

    assert completed == [
        Attempt(done, PYTHON_TEST_ID, "Done", "done@example.com", Status.COMPLETE),
        Attempt(left, PYTHON_TEST_ID, "Left", "left@example.com", Status.TEST_LEFT),
    ]
    assert [(a.invitation_id, a.status) for a in cancelled] == [(gone, Status.CANCELLED)]
    assert [(a.invitation_id, a.status) for a in expired] == [(late, Status.EXPIRED)]
    everything = client.attempts(AttemptState.COMPLETED, start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
    assert {a.invitation_id for a in everything} == {early, done, left}


def test_attempts_with_a_window_that_ends_before_it_starts_is_a_bad_request_not_a_bad_key(client: ImochaClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.attempts(AttemptState.COMPLETED, start=NOW, end=NOW - timedelta(days=1))
    assert caught.value.status_code == 401  # iMocha reports this validation error as a 401
    assert "Date & time" in caught.value.message


def test_process_callbacks_resends_the_callbacks_of_started_and_finished_invitations(
    client: ImochaClient, fake_imocha: FakeImocha, receiver: CallbackReceiver
) -> None:
    state = fake_imocha.state
    done = client.invite(PYTHON_TEST_ID, email="done@example.com", name="Done", callback_url=receiver.url).invitation_id
    pending = client.invite(PYTHON_TEST_ID, email="wait@example.com", name="Wait", callback_url=receiver.url).invitation_id
    state.complete(done, points=40)
    receiver.wait_for(2)  # In Progress, Complete
    receiver.reset()

    replay = client.process_callbacks([done, pending, done])

    assert (replay.successful, replay.failed) == ((done,), (pending,))
    [again] = receiver.wait_for(1)
    assert (again["TestInvitationId"], again["Status"], again["CandidateScore"], again["TotalScore"]) == (done, "Complete", 40, 50)


def test_process_callbacks_sends_more_than_100_ids_in_chunks(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    state = fake_imocha.state
    ids = [state.invite(PYTHON_TEST_ID, email=f"c{n}@example.com", name=f"C {n}")[0].id for n in range(130)]
    state.reset_calls()

    replay = client.process_callbacks(ids)

    assert replay.successful == () and replay.failed == tuple(ids)  # none started, none with a callback URL
    sent = [call.json["testinvitationIds"] for call in state.calls if call.path == "/v3/callbacks/process"]
    assert sent == [ids[:100], ids[100:]]


def test_process_callbacks_for_ids_of_another_account_is_a_bad_request(client: ImochaClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.process_callbacks([42, 43])
    assert caught.value.status_code == 401
    assert "does not belong to account" in caught.value.message


# ----------------------------------------------------------------------------------------- retries


def test_a_429_with_retry_after_is_waited_out_and_retried(client: ImochaClient, fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.fail_next("/v3/tests", status=429, retry_after=3)
    assert len(client.list_tests()) == 2
    assert sleep.delays == [3.0]
    assert fake_imocha.state.count("/v3/tests") == 2


def test_a_429_on_a_post_is_retried_without_inviting_twice(client: ImochaClient, fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.fail_next("/invite", status=429, retry_after=2, count=2)
    invitation = client.invite(PYTHON_TEST_ID, email="ada@example.com", name="Ada")
    assert sleep.delays == [2.0, 2.0]
    assert fake_imocha.state.count("/invite") == 3
    assert [inv.id for inv in fake_imocha.state.invitations()] == [invitation.invitation_id]


def test_a_429_that_lasts_gives_up_with_rate_limit_error(client: ImochaClient, fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.fail_next("/v3/reports", status=429, retry_after=5, count=10)
    with pytest.raises(RateLimitError) as caught:
        client.report(42)
    assert caught.value.retry_after == 5
    assert "Rate limit is exceeded" in caught.value.message
    assert sleep.delays == [5.0, 5.0, 5.0]
    assert fake_imocha.state.count("/v3/reports") == RetryPolicy().max_attempts


def test_a_500_is_retried_with_backoff(client: ImochaClient, fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.fail_next("/v3/tests/1001", status=503, count=2)
    assert client.get_test(PYTHON_TEST_ID).name == "Python Developer"
    assert sleep.delays == [0.25, 0.5]  # full jitter at rand 0.5 of 0.5 s, then 1 s


def test_a_500_that_lasts_gives_up_with_server_error(client: ImochaClient, fake_imocha: FakeImocha) -> None:
    fake_imocha.state.fail_next("/cancel", status=500, count=10)
    with pytest.raises(ServerError) as caught:
        client.cancel(42)
    assert (caught.value.status_code, caught.value.message) == (500, "Internal Server Error")


def test_a_dropped_connection_is_retried(client: ImochaClient, fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.drop_connection_next("/v3/tests")
    assert client.check_key() == 2
    assert len(sleep.delays) == 1


def test_a_server_that_does_not_answer_in_time_is_a_connection_error(fake_imocha: FakeImocha, sleep: RecordingSleep) -> None:
    fake_imocha.state.fail_next("/v3/tests", delay=1.0, count=2)
    with ImochaClient.build_http(fake_imocha.url, timeout=httpx.Timeout(0.2)) as http:
        impatient = ImochaClient(http, GOOD_KEY, retry=RetryPolicy(max_attempts=2), sleep=sleep)
        with pytest.raises(ImochaConnectionError, match="ReadTimeout"):
            impatient.list_tests()
    assert len(sleep.delays) == 1
