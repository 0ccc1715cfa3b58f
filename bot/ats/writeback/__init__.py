"""Decisions written back to the ATS: Advance / Reject (and Undo) to Greenhouse through Harvest v3, to Gem as a note.

**The queue.** Recording a decision or its undo (bot/assessments/decisions.py) inserts an `ats_writebacks` row in
the same transaction, when the application came from Greenhouse (and the workspace has Harvest
credentials) or from Gem (and it has a Gem key). So a decision and its write-back are stored together
or not at all: nothing is lost on a crash. Rows are worked right after the decision, by the
`ats.writeback` job every 10 s and by claim recovery. They are claimed like the Slack outbox and the
Gem score notes (bot/runtime/claims.py: renewed while this process works, lapsing 3 s after it dies, when
another process resumes the row), the write starts only while the claim is sure, and every outcome is
recorded by compare-and-set on the claim. An application's rows are written in order: a row waits
while an earlier one of the same application is pending (an undo's reverse waits for its decision).

**No duplicate write.** Greenhouse writes are checked against Greenhouse's own state before they are
made, and the row notes that a write was sent (`payload.posted`) before sending it. An Advance is a
move *from the stage the assessment was in* (the webhook's `current_stage.id`): if the application is
no longer there, the move happened (ours, when the row had sent one: recorded as written; someone
else's: recorded as already done) and is not made again. Greenhouse itself refuses a move whose
`from_stage_id` is stale. A Reject is made only while the application is active, Undo's unreject only
while it is rejected, Undo's move back only while it is where our Advance put it. So a process killed
between Greenhouse's answer and the bookkeeping is resumed without a second write. Gem's notes cannot
be read back: a note row found marked as sent but not recorded (its writer died mid-call, or Gem did
not answer) is not sent again but reported as failed, saying the note may be there already.

**Undo within 10 minutes.** A write that was never tried (still waiting, unclaimed) is cancelled in the
undo's transaction and nothing reaches the ATS. Otherwise the undo queues the reverse: Greenhouse
moves the application back to the assessment stage or unrejects it (each only if our write landed and
nobody moved it since); Gem gets a second note saying the decision was undone.

**Retries and failures.** 429 (after `Retry-After`; the workspace's other rows wait too), 5xx and
connection errors are retried with backoff (30 s doubling, at most 30 min, 8 attempts: about an hour).
Errors asking again cannot fix (401/403/404/422, no Greenhouse user with the clicker's email, a note
that may be written) fail at once. A failed write-back is never silent: one log line, an audit entry,
and a thread reply on the card saying what failed and what to do, with a **Retry** button for the
card's owner and admins, which queues the row again.

What is left: someone changing the application in Greenhouse in the moment between the bot's read and
its write gets Greenhouse's refusal (a stale `from_stage_id`, "already rejected"), which shows as a
failure, never as a double write. A row that had sent its write before a crash counts a move found
on resumption as its own, even in the rare case a person made it meanwhile.

**Where the parts live.** worker.py queues the rows (`queue_decision`, `queue_undo`) and holds
`DecisionWriteback`, the worker and the Retry command. bot/ats/writeback/rows.py keeps the table (claims,
notes, outcomes, thread replies), bot/ats/writeback/greenhouse.py and bot/ats/writeback/gem.py make
the writes, bot/ats/writeback/job.py holds what they share.
"""

from __future__ import annotations

from bot.ats.writeback.gem import (
    gem_note_body,
)
from bot.ats.writeback.job import (
    ACTOR,
    ADVANCE,
    ALREADY,
    BACKOFF,
    CANCELLED,
    CLAIMS,
    DEFAULT_RETRY_AFTER,
    FAILED,
    GEM,
    GREENHOUSE,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    NOT_NEEDED,
    NOTE_FOOTER,
    REJECT,
    TARGET_NAMES,
    UNDO_ADVANCE,
    UNDO_REJECT,
    WRITTEN,
    Later,
    Permanent,
    RateLimits,
    Remedy,
)
from bot.ats.writeback.worker import (
    DecisionWriteback,
    RetryTarget,
    queue_decision,
    queue_undo,
)

__all__ = [
    "ACTOR",
    "ADVANCE",
    "ALREADY",
    "BACKOFF",
    "CANCELLED",
    "CLAIMS",
    "DEFAULT_RETRY_AFTER",
    "FAILED",
    "GEM",
    "GREENHOUSE",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF",
    "NOTE_FOOTER",
    "NOT_NEEDED",
    "REJECT",
    "TARGET_NAMES",
    "UNDO_ADVANCE",
    "UNDO_REJECT",
    "WRITTEN",
    "DecisionWriteback",
    "Later",
    "Permanent",
    "RateLimits",
    "Remedy",
    "RetryTarget",
    "gem_note_body",
    "queue_decision",
    "queue_undo",
]
