"""The sandbox's in-memory iMocha account: tests, invitations and their rules, callbacks, faults."""

from __future__ import annotations

import copy
import functools
import logging
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

import httpx

from bot.clock import system_clock

log = logging.getLogger(__name__)

# Canonical internal statuses: the prose spellings of the reference's behaviour tables (§5.3–§5.5).
PENDING = "Pending"
IN_PROGRESS = "In Progress"
COMPLETE = "Complete"
TEST_LEFT = "Test Left"
TERMINATED = "Terminated"
CANCELLED = "Cancelled"
EXPIRED = "Expired"

FINISHED = frozenset({COMPLETE, TEST_LEFT, TERMINATED})
STATUSES = (PENDING, IN_PROGRESS, COMPLETE, TEST_LEFT, TERMINATED, CANCELLED, EXPIRED)

# Each endpoint spells statuses its own way (§12).
REPORT_SPELLING = {
    PENDING: "Pending",
    IN_PROGRESS: "In Progress",
    COMPLETE: "Complete",
    TEST_LEFT: "TestLeft",
    TERMINATED: "Terminated",
    CANCELLED: "Cancelled",
    EXPIRED: "Expired",
}
ATTEMPTS_SPELLING = {
    COMPLETE: "Completed",
    TEST_LEFT: "Testleft",
    TERMINATED: "Terminated",
    CANCELLED: "Cancelled",
    EXPIRED: "Expired",
}
ATTEMPT_STATES = {
    "completed": frozenset(FINISHED),
    "cancelled": frozenset({CANCELLED}),
    "expired": frozenset({EXPIRED}),
}

CANCEL_REFUSED = "Testinvitation state in inprogress, complete, and expired can not be cancelled."
FIRST_INVITATION_ID = 3_100_001
DEFAULT_VALIDITY = timedelta(days=7)
# The callback's AttemptedOn is in the account's time zone; the documented sample is IST (+05:30).
ACCOUNT_TIMEZONE = timezone(timedelta(hours=5, minutes=30))


class ImochaStateError(Exception):
    """A request the account refuses; `status_code` is the HTTP answer the API gives for it."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class InvalidRequest(ImochaStateError):
    """The request's values do not make sense (answered like a validation error)."""


class UnknownTest(ImochaStateError):
    status_code = 404

    def __init__(self, message: str = "Test not found"):
        super().__init__(message)


class UnknownTestLink(ImochaStateError):
    status_code = 404

    def __init__(self, message: str = "Test link not found"):
        super().__init__(message)


class UnknownInvitation(ImochaStateError):
    status_code = 404

    def __init__(self, message: str = "Test invitation not found"):
        super().__init__(message)


class InvalidTransition(ImochaStateError):
    """The invitation is in a state that does not allow the requested change."""


class ForeignInvitations(ImochaStateError):
    """Process Callbacks named ids that are not in the account (`unknown`)."""

    status_code = 401

    def __init__(self, unknown: list[int]):
        super().__init__("testinvitationIds does not belong to account or not found")
        self.unknown = unknown


# ----------------------------------------------------------------------------------------- time helpers


def format_utc(moment: datetime) -> str:
    """`2020-06-11T16:00:00Z`, the format the API takes and returns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: object) -> datetime:
    """Parse an API date: ISO 8601 with `Z`, an offset, no zone (taken as UTC) or a bare date (midnight)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a date: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def score_line(points: float, total: float) -> str:
    """The product's score wording: `42 / 50 points (84%)`."""
    percent = round(points / total * 100) if total else 0
    return f"{format_points(points)} / {format_points(total)} points ({percent}%)"


def performance_category(percent: float) -> str:
    # The reference shows only "Beginner"; the bands are the sandbox's own.
    if percent < 50:
        return "Beginner"
    if percent < 80:
        return "Intermediate"
    return "Expert"


# ----------------------------------------------------------------------------------------- data


@dataclass
class Question:
    """A multiple-choice question on the candidate page; `section` indexes the test's sections."""

    text: str
    options: list[str]
    answer: int
    section: int = 0


@dataclass
class Section:
    section_id: int
    name: str
    points: float
    duration: int  # minutes


@dataclass
class TestLink:
    __test__ = False  # not a pytest test class

    test_link_id: int
    test_id: int
    name: str
    key: str
    is_api_link: bool = False


@dataclass
class ImochaTest:
    __test__ = False  # not a pytest test class

    test_id: int
    name: str
    sections: list[Section]
    duration: int
    questions: list[Question]
    labels: list[str] = field(default_factory=list)
    status: str = "Active"
    links: list[TestLink] = field(default_factory=list)

    @property
    def total_points(self) -> float:
        return float(sum(section.points for section in self.sections))

    @property
    def default_link(self) -> TestLink:
        return self.links[0]


@dataclass
class SectionResult:
    section_id: int
    name: str
    points: float  # the section's maximum
    questions: int
    duration: int  # allotted minutes
    score: float = 0.0
    time_taken: int = 0  # seconds


@dataclass
class Invitation:
    id: int
    test_id: int
    test_link_id: int
    test_name: str
    email: str
    name: str
    callback_url: str | None
    redirect_url: str | None
    send_email: bool
    status: str
    start_at: datetime
    end_at: datetime
    created_at: datetime
    status_changed_at: datetime
    token: str
    report_token: str
    total_points: float
    sections: list[SectionResult]
    time_zone_id: int | None = None
    attempted_at: datetime | None = None
    finished_at: datetime | None = None
    points: float = 0.0
    category: str | None = None
    attempt: int = 1
    is_reattempt: bool = False
    previous_invitation_id: int | None = None
    next_invitation_id: int | None = None

    @property
    def testInvitationId(self) -> int:  # the API's name, for readers of the reference
        return self.id

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        return round(self.points / self.total_points * 100) if self.total_points else 0

    @property
    def time_taken(self) -> int:
        if self.attempted_at is None or self.finished_at is None:
            return 0
        return max(0, int((self.finished_at - self.attempted_at).total_seconds()))

    def test_url(self, base_url: str) -> str:
        return f"{base_url}/take/{self.token}"

    def pdf_url(self, base_url: str) -> str:
        return f"{base_url}/reports/{self.report_token}.pdf"


@dataclass(frozen=True)
class Call:
    """One request to the `/v3` API as the sandbox received it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    api_key: str | None


@dataclass(frozen=True)
class CallbackDelivery:
    """One attempt to POST a callback; `ok` means a 2xx answer."""

    url: str
    payload: dict[str, Any]
    attempt: int
    status_code: int | None
    error: str | None
    at: datetime

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Fault:
    path_contains: str
    status: int
    remaining: int
    retry_after: int | None = None
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False

    def response_body(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        if self.status == 429:
            # iMocha sits behind Azure API Management (its 401 text is APIM's); this is APIM's 429 text.
            wait = self.retry_after if self.retry_after is not None else 1
            return {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {wait} seconds."}
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        return {"statusCode": self.status, "message": phrase}


def _new_token() -> str:
    return secrets.token_urlsafe(18)


def _as_questions(raw: Iterable[Any], n_sections: int) -> list[Question]:
    questions: list[Question] = []
    for index, item in enumerate(raw):
        if isinstance(item, Question):
            question = item
        elif isinstance(item, dict):
            question = Question(
                text=item["text"],
                options=list(item["options"]),
                answer=int(item["answer"]),
                section=int(item.get("section", index % n_sections)),
            )
        else:
            text, options, answer, *rest = item
            section = int(rest[0]) if rest else index % n_sections
            question = Question(text=text, options=list(options), answer=int(answer), section=section)
        if not 0 <= question.answer < len(question.options):
            raise ValueError(f"question {index}: answer {question.answer} is not one of its options")
        if not 0 <= question.section < n_sections:
            raise ValueError(f"question {index}: section {question.section} does not exist")
        questions.append(question)
    return questions


def _generic_questions(sections: Sequence[Section]) -> list[Question]:
    return [
        Question(
            text=f"Which statement about {section.name.lower()} is correct? (sample question)",
            options=["The first option", "The right answer", "Neither of these"],
            answer=1,
            section=index,
        )
        for index, section in enumerate(sections)
    ]


# ----------------------------------------------------------------------------------------- the account


class ImochaState:
    """One iMocha account: every API route and page reads and changes it under one lock."""

    def __init__(
        self,
        *,
        accept_key: Callable[[str], bool] | None = None,
        clock: Callable[[], datetime] | None = None,
        base_url: str = "http://127.0.0.1:8900",
    ):
        self.accept_key: Callable[[str], bool] = accept_key or (lambda key: key.startswith("sandbox-"))
        self.clock: Callable[[], datetime] = clock or system_clock
        self.base_url = base_url.rstrip("/")
        self.latency = 0.0
        self.callbacks_enabled = True
        self.callback_timeout = 5.0
        self.callback_retries = 5  # "retries 5 times consecutively" (§6): 6 attempts in all
        self.callback_retry_delay = 0.2
        self.calls: list[Call] = []
        self.callback_deliveries: list[CallbackDelivery] = []

        self._lock = threading.Lock()
        self._callbacks_idle = threading.Condition(self._lock)
        self._keys: set[str] = set()
        self._tests: dict[int, ImochaTest] = {}
        self._invitations: dict[int, Invitation] = {}
        self._by_token: dict[str, int] = {}
        self._by_report_token: dict[str, int] = {}
        self._latest: dict[tuple[int, str], int] = {}  # (test link, email) -> newest invitation id
        self._next_invitation_id = FIRST_INVITATION_ID
        self._next_link_id = 201_001
        self._next_section_id = 50_001
        self._faults: list[Fault] = []
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._delivering = False
        self._undelivered = 0

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # ------------------------------------------------------------------------------------- keys

    def add_key(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)

    def is_valid_key(self, key: str | None) -> bool:
        if not key:
            return False
        with self._lock:
            if key in self._keys:
                return True
        return bool(self.accept_key(key))

    # ------------------------------------------------------------------------------------- tests

    def add_test(
        self,
        test_id: int,
        name: str,
        sections: list[tuple[str, float]] | None = None,
        duration: int = 30,
        questions: list[Any] | None = None,
        *,
        labels: list[str] | None = None,
        status: str = "Active",
    ) -> ImochaTest:
        """Add (or replace) a test; questions: `Question`s, dicts or (text, options, answer[, section])."""
        section_specs = sections or [("General", 10.0)]
        with self._lock:
            share = max(1, duration // len(section_specs))
            built = []
            for section_name, points in section_specs:
                built.append(Section(self._next_section_id, section_name, float(points), share))
                self._next_section_id += 1
            test = ImochaTest(
                test_id=test_id,
                name=name,
                sections=built,
                duration=duration,
                questions=[],
                labels=list(labels or []),
                status=status,
            )
            test.questions = _as_questions(questions, len(built)) if questions is not None else _generic_questions(built)
            test.links.append(self._make_link_locked(test_id, "Default test link", is_api_link=True))
            self._tests[test_id] = test
            return copy.deepcopy(test)

    def add_test_link(self, test_id: int, name: str, *, is_api_link: bool = False) -> TestLink:
        with self._lock:
            test = self._test_locked(test_id)
            link = self._make_link_locked(test_id, name, is_api_link=is_api_link)
            test.links.append(link)
            return copy.deepcopy(link)

    def _make_link_locked(self, test_id: int, name: str, *, is_api_link: bool) -> TestLink:
        link = TestLink(self._next_link_id, test_id, name, secrets.token_hex(4), is_api_link)
        self._next_link_id += 1
        return link

    def tests(self) -> list[ImochaTest]:
        with self._lock:
            return [copy.deepcopy(test) for _, test in sorted(self._tests.items())]

    def test(self, test_id: int) -> ImochaTest:
        with self._lock:
            return copy.deepcopy(self._test_locked(test_id))

    def _test_locked(self, test_id: int) -> ImochaTest:
        try:
            return self._tests[test_id]
        except KeyError:
            raise UnknownTest() from None

    def seed_demo(self) -> None:
        """Add the demo tests the `imocha-bot sandbox` command starts with."""
        from bot.sandbox.demo import seed_demo

        seed_demo(self)

    # ------------------------------------------------------------------------------------- invitations

    def invitation(self, inv_id: int) -> Invitation:
        with self._lock:
            return copy.deepcopy(self._invitation_locked(inv_id))

    def invitations(self) -> list[Invitation]:
        with self._lock:
            return [copy.deepcopy(self._refresh_locked(inv)) for _, inv in sorted(self._invitations.items())]

    def invitation_by_token(self, token: str) -> Invitation:
        with self._lock:
            return copy.deepcopy(self._invitation_locked(self._by_token.get(token, -1)))

    def invitation_by_report_token(self, token: str) -> Invitation:
        with self._lock:
            return copy.deepcopy(self._invitation_locked(self._by_report_token.get(token, -1)))

    def _invitation_locked(self, inv_id: int) -> Invitation:
        try:
            inv = self._invitations[inv_id]
        except KeyError:
            raise UnknownInvitation() from None
        return self._refresh_locked(inv)

    def _refresh_locked(self, inv: Invitation) -> Invitation:
        """Expire lazily: a pending invitation past its end is Expired from the end time on."""
        if inv.status == PENDING and self.now() >= inv.end_at:
            inv.status = EXPIRED
            inv.status_changed_at = inv.end_at
        return inv

    def _window(self, start: datetime | None, end: datetime | None, *, now: datetime) -> tuple[datetime, datetime]:
        start = start or now
        end = end or start + DEFAULT_VALIDITY
        if end <= start:
            raise InvalidRequest("'endDateTime' must be later than 'startDateTime'.")
        return start, end

    def invite(
        self,
        test_id: int,
        *,
        email: str,
        name: str,
        callback_url: str | None = None,
        redirect_url: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        send_email: bool = False,
        time_zone_id: int | None = None,
        test_link_id: int | None = None,
    ) -> tuple[Invitation, bool]:
        """Invite per §5.1/§5.3; returns the invitation and whether it is new."""
        with self._lock:
            now = self.now()
            test = self._test_locked(test_id)
            if test_link_id is None:
                link = test.default_link
            else:
                matching = [link for link in test.links if link.test_link_id == test_link_id]
                if not matching:
                    raise UnknownTestLink()
                link = matching[0]
            start, end = self._window(start, end, now=now)
            key = (link.test_link_id, email.strip().lower())
            existing_id = self._latest.get(key)
            if existing_id is not None:
                inv = self._invitation_locked(existing_id)
                if inv.status == PENDING:
                    inv.start_at, inv.end_at, inv.time_zone_id = start, end, time_zone_id
                elif inv.status in (CANCELLED, EXPIRED):
                    inv.start_at, inv.end_at, inv.time_zone_id = start, end, time_zone_id
                    self._set_status_locked(inv, PENDING, now)
                # Complete, Test Left, Terminated, In Progress: the same invitation, unchanged.
                return copy.deepcopy(self._refresh_locked(inv)), False
            inv = self._new_invitation_locked(
                test,
                link.test_link_id,
                email=email.strip(),
                name=name.strip(),
                callback_url=callback_url,
                redirect_url=redirect_url,
                send_email=send_email,
                start=start,
                end=end,
                time_zone_id=time_zone_id,
                now=now,
            )
            self._latest[key] = inv.id
            return copy.deepcopy(self._refresh_locked(inv)), True

    def _new_invitation_locked(
        self,
        test: ImochaTest,
        test_link_id: int,
        *,
        email: str,
        name: str,
        callback_url: str | None,
        redirect_url: str | None,
        send_email: bool,
        start: datetime,
        end: datetime,
        time_zone_id: int | None,
        now: datetime,
    ) -> Invitation:
        counts = [0] * len(test.sections)
        for question in test.questions:
            counts[question.section] += 1
        inv = Invitation(
            id=self._next_invitation_id,
            test_id=test.test_id,
            test_link_id=test_link_id,
            test_name=test.name,
            email=email,
            name=name,
            callback_url=callback_url,
            redirect_url=redirect_url,
            send_email=send_email,
            status=PENDING,
            start_at=start,
            end_at=end,
            created_at=now,
            status_changed_at=now,
            token=_new_token(),
            report_token=_new_token(),
            total_points=test.total_points,
            sections=[SectionResult(s.section_id, s.name, s.points, counts[i], s.duration) for i, s in enumerate(test.sections)],
            time_zone_id=time_zone_id,
        )
        self._next_invitation_id += 1
        self._invitations[inv.id] = inv
        self._by_token[inv.token] = inv.id
        self._by_report_token[inv.report_token] = inv.id
        return inv

    def reattempt(
        self,
        inv_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        callback_url: str | None = None,
        redirect_url: str | None = None,
        send_email: bool = False,
        time_zone_id: int | None = None,
    ) -> Invitation:
        """Reattempt per §5.4, applied to the newest invitation of the chain `inv_id` belongs to."""
        with self._lock:
            now = self.now()
            inv = self._invitation_locked(inv_id)
            while inv.next_invitation_id is not None:
                inv = self._invitation_locked(inv.next_invitation_id)
            start, end = self._window(start, end, now=now)
            if inv.status == IN_PROGRESS:
                raise InvalidTransition(f"Reattempt is not allowed on Test invitation id: {inv.id} which is in inprogress state.")
            if inv.status in (PENDING, CANCELLED, EXPIRED):
                inv.start_at, inv.end_at, inv.time_zone_id = start, end, time_zone_id
                if callback_url:
                    inv.callback_url = callback_url
                if redirect_url:
                    inv.redirect_url = redirect_url
                if inv.status != PENDING:
                    self._set_status_locked(inv, PENDING, now)
                return copy.deepcopy(self._refresh_locked(inv))
            # Complete / Test Left / Terminated: a new invitation inheriting all but the window.
            test = self._test_locked(inv.test_id)
            new = self._new_invitation_locked(
                test,
                inv.test_link_id,
                email=inv.email,
                name=inv.name,
                callback_url=callback_url or inv.callback_url,
                redirect_url=redirect_url or inv.redirect_url,
                send_email=send_email,
                start=start,
                end=end,
                time_zone_id=time_zone_id,
                now=now,
            )
            new.attempt = inv.attempt + 1
            new.is_reattempt = True
            new.previous_invitation_id = inv.id
            inv.next_invitation_id = new.id
            self._latest[(inv.test_link_id, inv.email.lower())] = new.id
            return copy.deepcopy(self._refresh_locked(new))

    def cancel(self, inv_id: int) -> Invitation:
        """Cancel per §5.5: only a pending invitation."""
        with self._lock:
            inv = self._invitation_locked(inv_id)
            if inv.status != PENDING:
                raise InvalidTransition(CANCEL_REFUSED)
            self._set_status_locked(inv, CANCELLED, self.now())
            return copy.deepcopy(inv)

    def expire(self, inv_id: int) -> Invitation:
        """End a pending invitation's access window now."""
        with self._lock:
            now = self.now()
            inv = self._invitation_locked(inv_id)
            if inv.status != PENDING:
                raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; only pending ones expire.")
            inv.end_at = now
            self._set_status_locked(inv, EXPIRED, now)
            return copy.deepcopy(inv)

    def start(self, inv_id: int) -> Invitation:
        """The candidate opens the test: In Progress, and the first callback."""
        with self._lock:
            inv = self._invitation_locked(inv_id)
            self._start_locked(inv, self.now())
            return copy.deepcopy(inv)

    def _start_locked(self, inv: Invitation, now: datetime) -> None:
        if inv.status != PENDING:
            raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; only a pending one can start.")
        inv.attempted_at = now
        self._set_status_locked(inv, IN_PROGRESS, now)
        self._fire_locked(inv)

    def complete(
        self,
        inv_id: int,
        *,
        points: float | None = None,
        section_scores: list[float] | None = None,
        status: str = COMPLETE,
        category: str | None = None,
    ) -> Invitation:
        """Finish the attempt (starting it first if pending) and send the result callback.

        Without `points` or `section_scores` the candidate scores 80%; `points` is spread over the
        sections in proportion to their maximum.
        """
        if status not in FINISHED:
            raise ValueError(f"status must be one of {sorted(FINISHED)}, not {status!r}")
        with self._lock:
            inv = self._invitation_locked(inv_id)
            scores = self._section_scores(inv, points, section_scores)
            self._finish_locked(inv, scores, status, category)
            return copy.deepcopy(inv)

    def leave(self, inv_id: int, *, points: float = 0.0) -> Invitation:
        """The candidate leaves the test: Test Left."""
        return self.complete(inv_id, points=points, status=TEST_LEFT)

    def submit_answers(self, token: str, answers: dict[int, int], *, status: str = COMPLETE) -> Invitation:
        """Score the candidate page's answers (question index -> option index) and finish the attempt."""
        with self._lock:
            inv = self._invitation_locked(self._by_token.get(token, -1))
            test = self._test_locked(inv.test_id)
            correct = [0] * len(inv.sections)
            asked = [0] * len(inv.sections)
            for index, question in enumerate(test.questions):
                asked[question.section] += 1
                if answers.get(index) == question.answer:
                    correct[question.section] += 1
            overall = sum(correct) / sum(asked) if sum(asked) else 0.0
            scores = [round(section.points * (correct[i] / asked[i] if asked[i] else overall), 2) for i, section in enumerate(inv.sections)]
            self._finish_locked(inv, scores, status, None)
            return copy.deepcopy(inv)

    def _section_scores(self, inv: Invitation, points: float | None, section_scores: list[float] | None) -> list[float]:
        if section_scores is not None:
            if len(section_scores) != len(inv.sections):
                raise ValueError(f"expected {len(inv.sections)} section scores, got {len(section_scores)}")
            for score, section in zip(section_scores, inv.sections, strict=True):
                if not 0 <= score <= section.points:
                    raise ValueError(f"section {section.name!r}: {score} is outside 0..{section.points}")
            return [float(score) for score in section_scores]
        if points is None:
            points = round(inv.total_points * 0.8, 2)
        if not 0 <= points <= inv.total_points:
            raise ValueError(f"points {points} outside 0..{inv.total_points}")
        if not inv.total_points:
            return [0.0 for _ in inv.sections]
        return [round(points * section.points / inv.total_points, 2) for section in inv.sections]

    def _finish_locked(self, inv: Invitation, scores: list[float], status: str, category: str | None) -> None:
        if inv.status not in (PENDING, IN_PROGRESS):
            raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; the attempt cannot be finished.")
        now = self.now()
        if inv.status == PENDING:
            self._start_locked(inv, now)
        inv.finished_at = now
        inv.points = round(sum(scores), 2)
        total_minutes = sum(section.duration for section in inv.sections) or 1
        for section, score in zip(inv.sections, scores, strict=True):
            section.score = score
            section.time_taken = inv.time_taken * section.duration // total_minutes
        inv.category = category or performance_category(inv.percent)
        self._set_status_locked(inv, status, now)
        self._fire_locked(inv)

    def _set_status_locked(self, inv: Invitation, status: str, now: datetime) -> None:
        inv.status = status
        inv.status_changed_at = now

    def attempts_between(self, state: str, start: datetime, end: datetime) -> list[Invitation]:
        """Retrieve Invites (§8.2): invitations in `state` whose current state began within [start, end]."""
        wanted = ATTEMPT_STATES[state]
        with self._lock:
            found = [
                copy.deepcopy(inv)
                for inv in map(self._refresh_locked, self._invitations.values())
                if inv.status in wanted and start <= inv.status_changed_at <= end
            ]
        return sorted(found, key=lambda inv: (inv.status_changed_at, inv.id))

    def process_callbacks(self, inv_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """Process Callbacks (§8.1): resend the current callback of each started or finished invitation.

        Raises ForeignInvitations when some ids are not in the account.
        Returns (successful, failed); an invitation with nothing to send (not started, or no
        callback URL) is failed.
        """
        with self._lock:
            unknown = [inv_id for inv_id in inv_ids if inv_id not in self._invitations]
            if unknown:
                raise ForeignInvitations(unknown)
            successful: list[int] = []
            failed: list[int] = []
            for inv_id in inv_ids:
                inv = self._invitation_locked(inv_id)
                if inv.callback_url and (inv.finished or inv.status == IN_PROGRESS):
                    successful.append(inv_id)
                    self._fire_locked(inv)
                else:
                    failed.append(inv_id)
            return successful, failed

    # ------------------------------------------------------------------------------------- callbacks

    def callback_payload(self, inv: Invitation) -> dict[str, Any]:
        """The §6 payload for the invitation's current state."""
        finished = inv.finished
        attempted = inv.attempted_at or inv.status_changed_at
        return {
            "CandidateEmailId": inv.email,
            "AttemptedOn": attempted.astimezone(ACCOUNT_TIMEZONE).strftime("%d-%b-%Y %I:%M %p"),
            "TotalScore": json_number(inv.total_points) if finished else 0,
            "CandidateScore": json_number(inv.points) if finished else 0,
            "ReportPDFUrl": inv.pdf_url(self.base_url) if finished else None,
            "TestInvitationId": inv.id,
            "Status": inv.status,
            "AttemptedOnUtc": attempted.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "PerformanceCategory": inv.category if finished else None,
        }

    def _fire_locked(self, inv: Invitation) -> None:
        if not (self.callbacks_enabled and inv.callback_url):
            return
        self._outbox.append((inv.callback_url, self.callback_payload(inv)))
        self._undelivered += 1
        if not self._delivering:
            self._delivering = True
            worker = threading.Thread(target=self._deliver_outbox, name="imocha-sandbox-callbacks", daemon=True)
            worker.start()

    def _deliver_outbox(self) -> None:
        # One worker at a time keeps each invitation's callbacks in order (In Progress before Complete).
        with httpx.Client(timeout=self.callback_timeout, verify=_tls_context()) as client:
            while True:
                with self._lock:
                    if not self._outbox:
                        self._delivering = False
                        self._callbacks_idle.notify_all()
                        return
                    url, payload = self._outbox.popleft()
                try:
                    self._deliver(client, url, payload)
                finally:
                    with self._lock:
                        self._undelivered -= 1
                        self._callbacks_idle.notify_all()

    def _deliver(self, client: httpx.Client, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, self.callback_retries + 2):
            status_code: int | None = None
            error: str | None = None
            try:
                status_code = client.post(url, json=payload).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery = CallbackDelivery(url, payload, attempt, status_code, error, self.now())
            with self._lock:
                self.callback_deliveries.append(delivery)
            if delivery.ok:
                return
            log.info("callback to %s failed (attempt %d): %s", url, attempt, error or status_code)
            if attempt <= self.callback_retries:
                time.sleep(self.callback_retry_delay)
        log.warning("callback to %s given up after %d attempts", url, self.callback_retries + 1)

    def wait_for_callbacks(self, timeout: float = 5.0) -> bool:
        """Block until every queued callback has been delivered or given up; False on timeout."""
        with self._callbacks_idle:
            return self._callbacks_idle.wait_for(lambda: self._undelivered == 0, timeout)

    # ------------------------------------------------------------------------------------- faults

    def fail_next(
        self,
        path_contains: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: dict[str, Any] | None = None,
        delay: float = 0,
    ) -> None:
        """Answer the next `count` API requests whose path contains `path_contains` with `status`."""
        with self._lock:
            self._faults.append(Fault(path_contains, status, count, retry_after, body, delay))

    def drop_connection_next(self, path_contains: str, count: int = 1) -> None:
        """Close the connection mid-response for the next `count` matching API requests."""
        with self._lock:
            self._faults.append(Fault(path_contains, 200, count, drop=True))

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return copy.copy(fault)
        return None

    # ------------------------------------------------------------------------------------- call log

    def record_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def count(self, path_contains: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(1 for call in self.calls if path_contains in call.path and (method is None or call.method == method.upper()))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building httpx's default context costs ~70 ms; callback batches are frequent in tests.
    return httpx.create_ssl_context()


def json_number(value: float) -> float | int:
    """Whole numbers as JSON integers, as in the documented samples (`"TotalScore": 115`)."""
    return int(value) if float(value).is_integer() else round(value, 2)
