"""iMocha's status vocabulary: every spelling its endpoints use, normalised in this one place."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Where an invitation / attempt stands, whatever spelling iMocha used for it."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    TEST_LEFT = "test_left"
    TERMINATED = "terminated"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """The candidate's attempt is over and a report exists."""
        return self in (Status.COMPLETE, Status.TEST_LEFT, Status.TERMINATED)

    @property
    def closed(self) -> bool:
        """Nothing more will happen to this invitation without a new invite or a reattempt."""
        return self.finished or self in (Status.EXPIRED, Status.CANCELLED)


# Keys are spellings with case, spaces, underscores and hyphens removed. Every spelling the docs print
# (reference §12) folds onto one of these.
_STATUS_SPELLINGS: dict[str, Status] = {
    "pending": Status.PENDING,
    # The report's `status` is "None" for an invitation that was never attempted (seen in live responses);
    # V2's "Reset" is a test re-opened for a retake. Both mean "waiting for the candidate".
    "none": Status.PENDING,
    "reset": Status.PENDING,
    "inprogress": Status.IN_PROGRESS,  # "In Progress", "Inprogress", "inprogress", V2 "In progress"
    "complete": Status.COMPLETE,
    "completed": Status.COMPLETE,  # Retrieve Invites and the help centre say "Completed"
    "generated": Status.COMPLETE,  # V2 report status: the report exists, so the test is complete
    "testleft": Status.TEST_LEFT,  # "Test Left", "TestLeft", "Testleft"
    "terminated": Status.TERMINATED,
    "expired": Status.EXPIRED,
    "cancelled": Status.CANCELLED,
    "canceled": Status.CANCELLED,
    "unknown": Status.UNKNOWN,
}


def normalize_status(raw: str | None) -> Status:
    """Map any iMocha status spelling to a `Status`; anything unrecognised is UNKNOWN, never an error.

    The string "None" (report status of an unattempted invitation) is PENDING; a missing value
    (Python ``None``) is UNKNOWN because nothing was said at all.
    """
    if not isinstance(raw, str):
        return Status.UNKNOWN
    key = "".join(ch for ch in raw.casefold() if ch not in " _-\t")
    return _STATUS_SPELLINGS.get(key, Status.UNKNOWN)


class AttemptState(enum.StrEnum):
    """The `state` filter of Retrieve Invites; COMPLETED covers Completed, Testleft and Terminated."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
