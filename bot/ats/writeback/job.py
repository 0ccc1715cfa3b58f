"""What the decision write-back's modules share (bot/ats/writeback/ tells the whole story).

Owns the vocabulary — targets, actions, outcomes, the retry limits, the claim table — the two ways a
write can fail (`Permanent`, `Later`) and the one way it can be abandoned (`Lost`), the claimed row as
the writers see it (`Job`), the per-workspace pause after a 429 (`RateLimits`), and the Slack email
lookup both writers start from. It imports no other write-back module.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.runtime.backoff import Backoff
from bot.runtime.claims import ClaimTable
from bot.vendors.pacing import DEFAULT_HOLD, Holds
from store.models import AtsWriteback

GREENHOUSE, GEM = "greenhouse", "gem"
ADVANCE, REJECT, UNDO_ADVANCE, UNDO_REJECT = "advance", "reject", "undo_advance", "undo_reject"
WRITTEN, ALREADY, CANCELLED, NOT_NEEDED, FAILED = "written", "already", "cancelled", "not_needed", "failed"

MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
SCHEDULE = Backoff(first=BACKOFF.total_seconds(), cap=MAX_BACKOFF.total_seconds())  # about an hour over 8 attempts
DEFAULT_RETRY_AFTER = DEFAULT_HOLD
TARGET_NAMES = {GREENHOUSE: "Greenhouse", GEM: "Gem"}
# While a row is claimed its next_attempt_at is the claim's expiry.
CLAIMS = ClaimTable("ats_writebacks", AtsWriteback, AtsWriteback.claimed_by, AtsWriteback.next_attempt_at, AtsWriteback.done_at.is_(None))
NOTE_FOOTER = "Posted by the iMocha Slack bot."
# Where a failure's words name the person who decided: handlers/blocks/replies.py puts their Slack mention there,
# audit entries and logs their user id. Outside text in the words is left as it is; the renderer escapes it.
ACTOR = "{actor}"


class Remedy(enum.StrEnum):
    """What a failed write-back's thread reply tells people to do; handlers/blocks/replies.py words each one."""

    CHECK_GEM_FEED = "check_gem_feed"
    GEM_KEY_MISSING = "gem_key_missing"
    GEM_DECISION_BY_HAND = "gem_decision_by_hand"
    GEM_KEY_REFUSED = "gem_key_refused"
    GEM_NOTE_BY_HAND = "gem_note_by_hand"
    HARVEST_MISSING = "harvest_missing"
    EMAIL_SCOPE = "email_scope"
    GREENHOUSE_USER = "greenhouse_user"
    ADVANCE_BY_HAND = "advance_by_hand"
    UNREJECT = "unreject"
    CHANGE_BY_HAND = "change_by_hand"
    REJECT_BY_HAND = "reject_by_hand"
    MOVE_BACK = "move_back"
    HARVEST_REFUSED = "harvest_refused"
    GREENHOUSE_ACCOUNT = "greenhouse_account"
    HARVEST_SCOPES = "harvest_scopes"
    APPLICATION_GONE = "application_gone"
    GREENHOUSE_BY_HAND = "greenhouse_by_hand"
    KEPT_FAILING = "kept_failing"


class Permanent(Exception):
    """Asking again will not help: the row fails at once, with `reason` and `remedy` in the thread reply."""

    def __init__(self, reason: str, remedy: Remedy) -> None:
        super().__init__(reason)
        self.reason = reason
        self.remedy = remedy


class Later(Exception):
    """A transient failure: try again after `delay` (None: the backoff), counting an attempt."""

    def __init__(self, reason: str, delay: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class Lost(Exception):
    """This process's claim may have lapsed before the write: leave the row to whoever holds it now."""


@dataclass(frozen=True)
class Job:
    """What one claimed row needs, read in the claiming transaction."""

    id: int
    workspace_id: int
    team_id: str
    application_id: int
    target: str
    action: str
    actor: str
    attempts: int
    payload: dict[str, Any]
    external_id: str
    external_stage_id: str | None
    external_candidate_id: str | None
    job_external_id: str
    candidate_name: str
    job_name: str
    stage_name: str
    score: str | None
    forward: dict[str, Any] | None  # the reversed row's action, outcome and payload (undo rows)


class RateLimits:
    """Per ATS and workspace, when this process may write again after the ATS answered 429 (the
    workspace's other rows for that ATS wait too). Gem's holds are the Gem poller's own, so one 429
    pauses polling, score notes and decision notes for the workspace alike."""

    def __init__(self, clock: Callable[[], datetime], *, gem_holds: Holds | None = None) -> None:
        self._clock = clock
        self._holds = {GREENHOUSE: Holds(), GEM: gem_holds if gem_holds is not None else Holds()}

    def pause(self, target: str, workspace_id: int, retry_after: float | None) -> timedelta:
        """Hold the workspace's writes to `target` for `retry_after` seconds (None: the default); returns the wait."""
        return self._holds[target].after_429(workspace_id, self._clock(), retry_after)

    def until(self, target: str, workspace_id: int) -> datetime | None:
        return self._holds[target].until(workspace_id, self._clock())


def actor_email(slack_email: Callable[[str, str], str | None], job: Job) -> str | None:
    """The decider's Slack email (None: Slack has none); Slack being away is transient, the decision stays queued."""
    try:
        return slack_email(job.team_id, job.actor)
    except Exception as exc:
        raise Later(f"Slack could not say who {ACTOR} is ({exc.__class__.__name__})") from exc
