"""iMocha's response bodies as pydantic models, and the parsers that turn them into the client's values.

Each parser raises ValueError (a pydantic ValidationError worded as one line by `fields.load`) when a
body is not the documented shape; the client turns that into ImochaProtocolError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from bot.imocha.errors import error_text, lookup
from bot.imocha.fields import AnyStatus, Array, Body, Id, OptFloat, OptId, OptInt, OptStr, OptTime, Text, names
from bot.imocha.status import Status
from bot.imocha.values import Attempt, CallbackReplay, Cancelled, Invitation, Report, SectionScore, Test, TestDetail, TestSection
from bot.vendors.parsing import load

# ---- tests: GET /v3/tests, GET /v3/tests/{id} -----------------------------------------------------


class TestItem(Body):
    __test__ = False  # not a pytest test class
    what = "test"

    test_id: Id = Field(validation_alias=names("testId"))
    name: OptStr = Field(None, validation_alias=names("testName", "name"))
    duration: OptInt = None
    status: OptStr = None

    def value(self) -> Test:
        return Test(test_id=self.test_id, name=self.name or "", duration=self.duration, status=self.status)


class TestsPage(Body):
    __test__ = False
    what = "tests page"

    tests: Array[TestItem] = []
    count: OptInt = None

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if "tests" not in data and "Tests" not in data:
            raise ValueError("tests page has no 'tests' array")


class SectionItem(Body):
    what = "section"

    name: OptStr = Field(None, validation_alias=names("sectionName", "name"))
    questions: OptInt = Field(None, validation_alias=names("questions", "noOfQue"))
    duration: OptInt = None


class TestDetailBody(TestItem):
    __test__ = False
    sections: Array[SectionItem] = []

    def detail(self) -> TestDetail:
        sections = tuple(TestSection(name=s.name or "", questions=s.questions, duration=s.duration) for s in self.sections)
        return TestDetail(test_id=self.test_id, name=self.name or "", duration=self.duration, sections=sections)


def parse_tests_page(data: object) -> tuple[list[Test], int | None]:
    if isinstance(data, list):  # some accounts answer a bare array
        return [load(TestItem, item).value() for item in data], None
    page = load(TestsPage, data)
    return [test.value() for test in page.tests], page.count


def parse_test_detail(data: object) -> TestDetail:
    return load(TestDetailBody, data).detail()


# ---- invitations: invite, reattempt, cancel -------------------------------------------------------


class InvitationBody(Body):
    what = "invitation"

    invitation_id: Id = Field(validation_alias=names("testInvitationId"))
    test_url: Text = Field(validation_alias=names("testUrl"))
    status: AnyStatus = Status.PENDING  # the invite response may leave it out

    def value(self) -> Invitation:
        return Invitation(invitation_id=self.invitation_id, test_url=self.test_url, status=self.status)


class CancelledBody(Body):
    what = "cancellation"

    invitation_id: Id = Field(validation_alias=names("testInvitationId"))
    status: AnyStatus = Status.CANCELLED

    def value(self) -> Cancelled:
        return Cancelled(invitation_id=self.invitation_id, status=self.status)


def parse_invitation(data: object) -> Invitation:
    return load(InvitationBody, data).value()


def parse_cancelled(data: object) -> Cancelled:
    return load(CancelledBody, data).value()


# ---- reports: GET /v3/reports/{id} -----------------------------------------------------------------


class SectionScoreItem(Body):
    what = "section"

    name: OptStr = Field(None, validation_alias=names("sectionName"))
    candidate_score: OptFloat = Field(None, validation_alias=names("candidateScore"))
    max_score: OptFloat = Field(None, validation_alias=names("sectionScore"))
    questions: OptInt = Field(None, validation_alias=names("noOfQue"))

    def value(self) -> SectionScore:
        return SectionScore(
            name=self.name or "", candidate_score=self.candidate_score or 0.0, max_score=self.max_score or 0.0, questions=self.questions
        )


class ReportBody(Body):
    what = "report"

    invitation_id: OptId = Field(None, validation_alias=names("testInvitationId"))
    test_id: OptInt = Field(None, validation_alias=names("testId"))
    test_name: OptStr = Field(None, validation_alias=names("testName"))
    email: OptStr = Field(None, validation_alias=names("candidateEmail"))
    candidate_name: OptStr = Field(None, validation_alias=names("candidateName"))
    status: AnyStatus = Status.UNKNOWN
    points: OptFloat = Field(None, validation_alias=names("candidatePoints"))
    total: OptFloat = Field(None, validation_alias=names("totalTestPoints"))
    percentage: OptFloat = Field(None, validation_alias=names("scorePercentage"))
    performance_category: OptStr = Field(None, validation_alias=names("performanceCategory"))
    pdf_url: OptStr = Field(None, validation_alias=names("pdfReportUrl"))
    attempted_on: OptTime = Field(None, validation_alias=names("attemptedOn"))
    sections: Array[SectionScoreItem] = []

    def value(self, requested_id: int) -> Report:
        percentage = self.percentage
        if percentage is None and self.points is not None and self.total:
            percentage = round(self.points / self.total * 100, 2)
        return Report(
            invitation_id=requested_id if self.invitation_id is None else self.invitation_id,
            test_id=self.test_id,
            test_name=self.test_name,
            email=self.email,
            candidate_name=self.candidate_name,
            status=self.status,
            candidate_points=self.points,
            total_points=self.total,
            percentage=percentage,
            performance_category=self.performance_category,
            pdf_url=self.pdf_url,
            attempted_on=self.attempted_on,
            sections=tuple(section.value() for section in self.sections),
        )


def report_parser(requested_id: int) -> Callable[[object], Report]:
    """A parser for the report of `requested_id` (the body may leave its own id out)."""
    return lambda data: load(ReportBody, data).value(requested_id)


# ---- the Callback API: Retrieve Invites, Process Callbacks (reference §8) -----------------------


class Envelope(Body):
    """`{"result": ..., "errors": ...}`: a body without a result is an error, worded from its errors."""

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if lookup(data, "result") is None:
            errors = error_text(data)
            raise ValueError(f"{cls.what} has no result" + (f" (errors: {errors})" if errors else ""))


class AttemptItem(Body):
    what = "test attempt"

    invitation_id: Id = Field(validation_alias=names("testInvitationId"))
    test_id: OptInt = Field(None, validation_alias=names("testId"))
    name: OptStr = None
    email: OptStr = None
    status: AnyStatus = Field(Status.UNKNOWN, validation_alias=names("testStatus", "status"))

    def value(self) -> Attempt:
        return Attempt(invitation_id=self.invitation_id, test_id=self.test_id, name=self.name, email=self.email, status=self.status)


class AttemptsResult(Body):
    what = "test attempts result"

    attempts: Array[AttemptItem] = Field([], validation_alias=names("testAttempts"))


class AttemptsBody(Envelope):
    what = "test attempts"

    result: AttemptsResult


class ReplayIds(Body):
    what = "testinvitationIds"

    successful: Array[Id] = []
    failed: Array[Id] = []


class ReplayResult(Body):
    what = "process callbacks result"

    ids: ReplayIds = Field(validation_alias=names("testinvitationIds"))


class ReplayBody(Envelope):
    what = "process callbacks"

    result: ReplayResult


def parse_attempts(data: object) -> list[Attempt]:
    return [attempt.value() for attempt in load(AttemptsBody, data).result.attempts]


def parse_replay(data: object) -> CallbackReplay:
    ids = load(ReplayBody, data).result.ids
    return CallbackReplay(successful=tuple(ids.successful), failed=tuple(ids.failed))
