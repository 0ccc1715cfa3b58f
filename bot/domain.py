"""Plain values the services hand to the Slack layer, and the domain errors users can be told about."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "Actor",
    "AlreadyDecided",
    "AppStatus",
    "ApplicationView",
    "AuditLine",
    "CardAction",
    "Conflict",
    "Decision",
    "DomainError",
    "ExistingResult",
    "ImochaUnavailable",
    "InvitationView",
    "NotAllowed",
    "NotFound",
    "NoteKind",
    "NothingToSend",
    "OwnerOnly",
    "PlanView",
    "SectionView",
    "allowed_actions",
    "normalise_key",
    "statuses_allowing",
]


def normalise_key(value: str) -> str:
    """How jobs and stages are matched: case-insensitive, surrounding and repeated space ignored."""
    return " ".join(value.split()).casefold()


class AppStatus(enum.StrEnum):
    """An application's assessment status, as the card and App Home show it (SPEC §3)."""

    NEEDS_SENDING = "needs_sending"
    SENDING = "sending"
    SEND_FAILED = "send_failed"
    SENT = "sent"
    IN_PROGRESS = "in_progress"
    NEEDS_REVIEW = "needs_review"
    REVIEWED = "reviewed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    LEFT = "left"


class DomainError(Exception):
    """Something the user did that cannot be done; the message is safe to show them."""


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class OwnerOnly(NotAllowed):
    """Only the card's owner (or an admin) may do this; `owner` is who that is, when known."""

    def __init__(self, owner: str | None, what: str):
        super().__init__(f"Only the card's owner or a workspace admin can {what}.")
        self.owner, self.what = owner, what


class ImochaUnavailable(DomainError):
    """iMocha failed what a user asked for just now; `kind` names the failure (safe to log, never the key)."""

    def __init__(self, message: str, *, kind: str):
        super().__init__(message)
        self.kind = kind


class Conflict(DomainError):
    """The thing already happened or is happening (a double click, a concurrent submit)."""


class AlreadyDecided(Conflict):
    """A second Advance or Reject: someone decided first."""

    def __init__(self, decision: Decision, by: str):
        super().__init__(f"Already {decision.past} by {by}.")
        self.decision, self.by = decision, by


class NothingToSend(Conflict):
    """Send on an application that is not waiting to be sent; `view` is how it stands."""

    def __init__(self, view: ApplicationView):
        super().__init__(f"Nothing to send: the assessment is {view.status.value.replace('_', ' ')}.")
        self.view = view


class Decision(enum.StrEnum):
    """What the hiring team decided about a reviewed result, from the card."""

    ADVANCE = "advance"
    REJECT = "reject"

    @property
    def past(self) -> str:
        return "advanced" if self is Decision.ADVANCE else "rejected"


UNDO_DECISION = timedelta(minutes=10)  # how long a decision can be taken back with Undo


class CardAction(enum.StrEnum):
    """What can be done to an application from its card; `allowed_actions` says when (one state machine)."""

    SEND = "send"
    RETRY = "retry"
    CANCEL = "cancel"
    RESEND = "resend"
    REATTEMPT = "reattempt"
    MARK_REVIEWED = "mark_reviewed"
    ADVANCE = "advance"
    REJECT = "reject"
    UNDO = "undo"


_BY_STATUS: dict[AppStatus, tuple[CardAction, ...]] = {
    AppStatus.NEEDS_SENDING: (CardAction.SEND,),
    AppStatus.SENDING: (),
    AppStatus.SEND_FAILED: (CardAction.RETRY, CardAction.SEND),
    AppStatus.SENT: (CardAction.CANCEL, CardAction.RESEND),
    AppStatus.IN_PROGRESS: (),
    AppStatus.NEEDS_REVIEW: (CardAction.MARK_REVIEWED, CardAction.REATTEMPT, CardAction.ADVANCE, CardAction.REJECT),
    AppStatus.REVIEWED: (CardAction.REATTEMPT, CardAction.ADVANCE, CardAction.REJECT),
    AppStatus.LEFT: (CardAction.REATTEMPT,),
    AppStatus.EXPIRED: (CardAction.RESEND,),
    AppStatus.CANCELLED: (CardAction.RESEND,),
}
_NEEDS_EMAIL = (CardAction.SEND, CardAction.RETRY)


def allowed_actions(
    status: AppStatus, *, has_email: bool = True, decision: Decision | None = None, undo_open: bool = False
) -> tuple[CardAction, ...]:
    """The actions an application in `status` takes, in the order the card shows them.

    The card's buttons and the services' checks both come from here. A decided application takes
    only Undo, and only while the undo window is open; Send and Retry need the candidate's email.
    """
    if decision is not None:
        return (CardAction.UNDO,) if undo_open else ()
    return tuple(action for action in _BY_STATUS[status] if has_email or action not in _NEEDS_EMAIL)


def statuses_allowing(action: CardAction) -> tuple[AppStatus, ...]:
    """Every status in which an undecided application takes `action` (what a service's compare-and-set admits)."""
    return tuple(status for status, actions in _BY_STATUS.items() if action in actions)


DECIDABLE = statuses_allowing(CardAction.ADVANCE)


class NoteKind(enum.StrEnum):
    """A thread reply on the card, queued by a service as facts; handlers/blocks/replies.py words it."""

    INVITED = "invited"  # sent, resent or a re-attempt allowed
    REUSED = "reused"
    CANCELLED = "cancelled"
    REVIEWED = "reviewed"
    ACTION_FAILED = "action_failed"
    DECIDED = "decided"
    DECISION_UNDONE = "decision_undone"


@dataclass(frozen=True)
class Actor:
    """Who asks for an action, and where Slack says they clicked (a card in that channel proves they see it)."""

    user_id: str
    channel_id: str | None = None


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
