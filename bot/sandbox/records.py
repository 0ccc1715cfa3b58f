"""The sandbox account's vocabulary: statuses and their spellings, refusals, records, and small helpers."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

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


def new_token() -> str:
    return secrets.token_urlsafe(18)


def as_questions(raw: Iterable[Any], n_sections: int) -> list[Question]:
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


def generic_questions(sections: Sequence[Section]) -> list[Question]:
    return [
        Question(
            text=f"Which statement about {section.name.lower()} is correct? (sample question)",
            options=["The first option", "The right answer", "Neither of these"],
            answer=1,
            section=index,
        )
        for index, section in enumerate(sections)
    ]


def json_number(value: float) -> float | int:
    """Whole numbers as JSON integers, as in the documented samples (`"TotalScore": 115`)."""
    return int(value) if float(value).is_integer() else round(value, 2)
