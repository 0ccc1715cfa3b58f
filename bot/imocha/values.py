"""The typed values the iMocha client returns (frozen dataclasses; never an httpx.Response)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.imocha.status import Status


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class, even when imported into a test module

    test_id: int
    name: str
    duration: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class TestSection:
    __test__ = False

    name: str
    questions: int | None
    duration: int | None


@dataclass(frozen=True)
class TestDetail:
    __test__ = False

    test_id: int
    name: str
    duration: int | None
    sections: tuple[TestSection, ...]


@dataclass(frozen=True)
class Invitation:
    """The result of an invite or a reattempt (status is PENDING when iMocha does not say)."""

    invitation_id: int
    test_url: str
    status: Status


@dataclass(frozen=True)
class SectionScore:
    name: str
    candidate_score: float
    max_score: float
    questions: int | None


@dataclass(frozen=True)
class Report:
    invitation_id: int
    test_id: int | None
    test_name: str | None
    email: str | None
    candidate_name: str | None
    status: Status
    candidate_points: float | None
    total_points: float | None
    percentage: float | None
    performance_category: str | None
    pdf_url: str | None
    attempted_on: datetime | None
    sections: tuple[SectionScore, ...]


@dataclass(frozen=True)
class Attempt:
    """One row of Retrieve Invites (`/v3/candidates/testattempts`)."""

    invitation_id: int
    test_id: int | None
    name: str | None
    email: str | None
    status: Status


@dataclass(frozen=True)
class Cancelled:
    invitation_id: int
    status: Status


@dataclass(frozen=True)
class CallbackReplay:
    successful: tuple[int, ...]
    failed: tuple[int, ...]


@dataclass(frozen=True)
class Callback:
    """What iMocha POSTs to an invitation's callbackUrl (reference §6)."""

    invitation_id: int
    status: Status
    email: str | None
    candidate_score: float | None
    total_score: float | None
    pdf_url: str | None
    performance_category: str | None
    attempted_on_utc: datetime | None
