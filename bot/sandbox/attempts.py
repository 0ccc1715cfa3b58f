"""The candidate's side of the sandbox: starting and finishing attempts, scoring, and what iMocha reports of them."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.sandbox.callbacks import CallbackSender
from bot.sandbox.catalogue import Catalogue
from bot.sandbox.invitations import Invitations, set_status
from bot.sandbox.records import (
    ATTEMPT_STATES,
    COMPLETE,
    FINISHED,
    IN_PROGRESS,
    PENDING,
    TEST_LEFT,
    ForeignInvitations,
    InvalidTransition,
    Invitation,
    performance_category,
)


class Attempts:
    """Attempts on the account's invitations, under its one lock; each change sends its callback."""

    def __init__(
        self,
        lock: threading.Lock,
        invitations: Invitations,
        catalogue: Catalogue,
        callbacks: CallbackSender,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._lock = lock
        self._invitations = invitations
        self._catalogue = catalogue
        self._callbacks = callbacks
        self._now = now

    def start(self, inv_id: int) -> Invitation:
        """The candidate opens the test: In Progress, and the first callback."""
        with self._lock:
            inv = self._invitations.get_locked(inv_id)
            self._start_locked(inv, self._now())
            return copy.deepcopy(inv)

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
            inv = self._invitations.get_locked(inv_id)
            scores = _section_scores(inv, points, section_scores)
            self._finish_locked(inv, scores, status, category)
            return copy.deepcopy(inv)

    def leave(self, inv_id: int, *, points: float = 0.0) -> Invitation:
        """The candidate leaves the test: Test Left."""
        return self.complete(inv_id, points=points, status=TEST_LEFT)

    def submit_answers(self, token: str, answers: dict[int, int], *, status: str = COMPLETE) -> Invitation:
        """Score the candidate page's answers (question index -> option index) and finish the attempt."""
        with self._lock:
            inv = self._invitations.by_token_locked(token)
            test = self._catalogue.test_locked(inv.test_id)
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

    def attempts_between(self, state: str, start: datetime, end: datetime) -> list[Invitation]:
        """Retrieve Invites (§8.2): invitations in `state` whose current state began within [start, end]."""
        wanted = ATTEMPT_STATES[state]
        with self._lock:
            found = [
                copy.deepcopy(inv)
                for inv in self._invitations.all_locked()
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
            unknown = [inv_id for inv_id in inv_ids if not self._invitations.has_locked(inv_id)]
            if unknown:
                raise ForeignInvitations(unknown)
            successful: list[int] = []
            failed: list[int] = []
            for inv_id in inv_ids:
                inv = self._invitations.get_locked(inv_id)
                if inv.callback_url and (inv.finished or inv.status == IN_PROGRESS):
                    successful.append(inv_id)
                    self._callbacks.fire_locked(inv)
                else:
                    failed.append(inv_id)
            return successful, failed

    def _start_locked(self, inv: Invitation, now: datetime) -> None:
        if inv.status != PENDING:
            raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; only a pending one can start.")
        inv.attempted_at = now
        set_status(inv, IN_PROGRESS, now)
        self._callbacks.fire_locked(inv)

    def _finish_locked(self, inv: Invitation, scores: list[float], status: str, category: str | None) -> None:
        if inv.status not in (PENDING, IN_PROGRESS):
            raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; the attempt cannot be finished.")
        now = self._now()
        if inv.status == PENDING:
            self._start_locked(inv, now)
        inv.finished_at = now
        inv.points = round(sum(scores), 2)
        total_minutes = sum(section.duration for section in inv.sections) or 1
        for section, score in zip(inv.sections, scores, strict=True):
            section.score = score
            section.time_taken = inv.time_taken * section.duration // total_minutes
        inv.category = category or performance_category(inv.percent)
        set_status(inv, status, now)
        self._callbacks.fire_locked(inv)


def _section_scores(inv: Invitation, points: float | None, section_scores: list[float] | None) -> list[float]:
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
