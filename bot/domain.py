"""Plain values the services hand to the Slack layer, and the domain errors users can be told about."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from store.models import AppStatus

__all__ = [
    "AppStatus",
    "ApplicationView",
    "AuditLine",
    "Conflict",
    "Decision",
    "DomainError",
    "ExistingResult",
    "InvitationView",
    "NotAllowed",
    "NotFound",
    "PlanView",
    "SectionView",
    "normalise_key",
]


def normalise_key(value: str) -> str:
    """How jobs and stages are matched: case-insensitive, surrounding and repeated space ignored."""
    return " ".join(value.split()).casefold()


class DomainError(Exception):
    """Something the user did that cannot be done; the message is safe to show them."""


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class Conflict(DomainError):
    """The thing already happened or is happening (a double click, a concurrent submit)."""


class Decision(enum.StrEnum):
    """What the hiring team decided about a reviewed result, from the card."""

    ADVANCE = "advance"
    REJECT = "reject"

    @property
    def past(self) -> str:
        return "advanced" if self is Decision.ADVANCE else "rejected"


UNDO_DECISION = timedelta(minutes=10)  # how long a decision can be taken back with Undo
DECIDABLE = (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)


@dataclass(frozen=True)
class SectionView:
    name: str
    score: float
    max_score: float


@dataclass(frozen=True)
class InvitationView:
    id: int
    imocha_id: int
    test_id: int
    test_name: str
    test_url: str
    status: str
    attempt: int
    candidate_points: float | None = None
    total_points: float | None = None
    percentage: float | None = None
    performance_category: str | None = None
    report_url: str | None = None
    sections: tuple[SectionView, ...] = ()
    valid_until: datetime | None = None
    sent_by: str | None = None
    sent_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ApplicationView:
    id: int
    team_id: str
    status: AppStatus
    candidate_name: str
    candidate_email: str | None
    job_name: str
    stage_name: str
    test_id: int
    test_name: str
    owner_user_id: str | None
    attempt: int = 1
    status_reason: str | None = None
    pass_mark: int | None = None
    share_scores_in_channel: bool = False
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    invitation: InvitationView | None = None
    reused_from: str | None = None  # the job whose invitation this application shares
    card_channel_id: str | None = None
    card_ts: str | None = None
    card_in_dm: bool = False
    updated_at: datetime | None = None
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    undo_open: bool = False  # the decision is younger than UNDO_DECISION (known only to views built with `now`)

    @property
    def passed(self) -> bool | None:
        inv = self.invitation
        if inv is None or inv.percentage is None or self.pass_mark is None:
            return None
        return inv.percentage >= self.pass_mark


@dataclass(frozen=True)
class ExistingResult:
    """An invitation for the same candidate and test reached through another application."""

    invitation: InvitationView
    job_name: str
    application_id: int


@dataclass(frozen=True)
class PlanView:
    id: int
    job_label: str
    stage_label: str
    test_id: int
    test_name: str
    channel_id: str | None
    pass_mark: int | None
    share_scores_in_channel: bool
    created_by: str
    weekly_digest: bool = True


@dataclass(frozen=True)
class AuditLine:
    actor: str
    action: str
    outcome: str
    detail: str | None
    at: datetime
    extra: dict[str, str] = field(default_factory=dict)
