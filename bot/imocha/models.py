"""iMocha's response bodies, parsed into the client's values (ValueError on a shape violation)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.imocha.errors import error_text, lookup
from bot.imocha.status import Status, normalize_status
from bot.imocha.values import Attempt, CallbackReplay, Cancelled, Invitation, Report, SectionScore, Test, TestDetail, TestSection


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _obj(value: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _items(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


def _int(value: object, what: str) -> int:
    result = _opt_int(value)
    if result is None:
        raise ValueError(f"{what} must be an integer, got {_short(value)}")
    return result


_INTEGER = re.compile(r"-?[0-9]+")


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())  # ids are Integer64, but the report documents testId as a String
    return None


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _opt_str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _opt_datetime(value: object) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; iMocha's naive timestamps (e.g. AttemptedOnUtc) are UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_test(value: object) -> Test:
    item = _obj(value, "test")
    return Test(
        test_id=_int(lookup(item, "testId"), "testId"),
        name=_opt_str(lookup(item, "testName", "name")) or "",
        duration=_opt_int(lookup(item, "duration")),
        status=_opt_str(lookup(item, "status")),
    )


def parse_tests_page(data: object) -> tuple[list[Test], int | None]:
    if isinstance(data, list):
        return [_parse_test(item) for item in data], None
    body = _obj(data, "tests page")
    if "tests" not in body and "Tests" not in body:
        raise ValueError("tests page has no 'tests' array")
    tests = [_parse_test(item) for item in _items(lookup(body, "tests"), "tests")]
    return tests, _opt_int(lookup(body, "count"))


def parse_test_detail(data: object) -> TestDetail:
    body = _obj(data, "test")
    sections = tuple(
        TestSection(
            name=_opt_str(lookup(section, "sectionName", "name")) or "",
            questions=_opt_int(lookup(section, "questions", "noOfQue")),
            duration=_opt_int(lookup(section, "duration")),
        )
        for section in (_obj(s, "section") for s in _items(lookup(body, "sections"), "sections"))
    )
    return TestDetail(
        test_id=_int(lookup(body, "testId"), "testId"),
        name=_opt_str(lookup(body, "testName", "name")) or "",
        duration=_opt_int(lookup(body, "duration")),
        sections=sections,
    )


def parse_invitation(data: object) -> Invitation:
    body = _obj(data, "invitation")
    url = _opt_str(lookup(body, "testUrl"))
    if url is None:
        raise ValueError("invitation has no testUrl")
    raw_status = lookup(body, "status")
    return Invitation(
        invitation_id=_int(lookup(body, "testInvitationId"), "testInvitationId"),
        test_url=url,
        status=Status.PENDING if raw_status is None else normalize_status(raw_status),
    )


def parse_cancelled(data: object) -> Cancelled:
    body = _obj(data, "cancellation")
    raw_status = lookup(body, "status")
    return Cancelled(
        invitation_id=_int(lookup(body, "testInvitationId"), "testInvitationId"),
        status=Status.CANCELLED if raw_status is None else normalize_status(raw_status),
    )


def report_parser(requested_id: int) -> Callable[[object], Report]:
    def parse(data: object) -> Report:
        body = _obj(data, "report")
        invitation_id = lookup(body, "testInvitationId")
        points = _opt_float(lookup(body, "candidatePoints"))
        total = _opt_float(lookup(body, "totalTestPoints"))
        percentage = _opt_float(lookup(body, "scorePercentage"))
        if percentage is None and points is not None and total:
            percentage = round(points / total * 100, 2)
        sections = tuple(
            SectionScore(
                name=_opt_str(lookup(section, "sectionName")) or "",
                candidate_score=_opt_float(lookup(section, "candidateScore")) or 0.0,
                max_score=_opt_float(lookup(section, "sectionScore")) or 0.0,
                questions=_opt_int(lookup(section, "noOfQue")),
            )
            for section in (_obj(s, "section") for s in _items(lookup(body, "sections"), "sections"))
        )
        return Report(
            invitation_id=requested_id if invitation_id is None else _int(invitation_id, "testInvitationId"),
            test_id=_opt_int(lookup(body, "testId")),
            test_name=_opt_str(lookup(body, "testName")),
            email=_opt_str(lookup(body, "candidateEmail")),
            candidate_name=_opt_str(lookup(body, "candidateName")),
            status=normalize_status(lookup(body, "status")),
            candidate_points=points,
            total_points=total,
            percentage=percentage,
            performance_category=_opt_str(lookup(body, "performanceCategory")),
            pdf_url=_opt_str(lookup(body, "pdfReportUrl")),
            attempted_on=_opt_datetime(lookup(body, "attemptedOn")),
            sections=sections,
        )

    return parse


def _result(data: object, what: str) -> Mapping[Any, Any]:
    """Unwrap the `{"result": ..., "errors": ...}` envelope of the Callback API (reference §8)."""
    body = _obj(data, what)
    result = lookup(body, "result")
    if result is None:
        errors = error_text(body)
        raise ValueError(f"{what} has no result" + (f" (errors: {errors})" if errors else ""))
    return _obj(result, f"{what} result")


def parse_attempts(data: object) -> list[Attempt]:
    result = _result(data, "test attempts")
    attempts = []
    for value in _items(lookup(result, "testAttempts"), "testAttempts"):
        item = _obj(value, "test attempt")
        attempts.append(
            Attempt(
                invitation_id=_int(lookup(item, "testInvitationId"), "testInvitationId"),
                test_id=_opt_int(lookup(item, "testId")),
                name=_opt_str(lookup(item, "name")),
                email=_opt_str(lookup(item, "email")),
                status=normalize_status(lookup(item, "testStatus", "status")),
            )
        )
    return attempts


def parse_replay(data: object) -> CallbackReplay:
    ids = _obj(lookup(_result(data, "process callbacks"), "testinvitationIds"), "testinvitationIds")
    return CallbackReplay(
        successful=tuple(_int(i, "successful id") for i in _items(lookup(ids, "successful"), "successful")),
        failed=tuple(_int(i, "failed id") for i in _items(lookup(ids, "failed"), "failed")),
    )
