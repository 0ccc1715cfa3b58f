"""The sandbox account's invitations: invite, reattempt, cancel and expire by the reference's rules (§5)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from datetime import datetime

from bot.sandbox.catalogue import Catalogue
from bot.sandbox.records import (
    CANCEL_REFUSED,
    CANCELLED,
    DEFAULT_VALIDITY,
    EXPIRED,
    FIRST_INVITATION_ID,
    IN_PROGRESS,
    PENDING,
    ImochaTest,
    InvalidRequest,
    InvalidTransition,
    Invitation,
    SectionResult,
    UnknownInvitation,
    UnknownTestLink,
    new_token,
)


def set_status(inv: Invitation, status: str, now: datetime) -> None:
    inv.status = status
    inv.status_changed_at = now


class Invitations:
    """Every invitation of the account, by id and by its page tokens, under the account's one lock."""

    def __init__(self, lock: threading.Lock, catalogue: Catalogue, *, now: Callable[[], datetime]) -> None:
        self._lock = lock
        self._catalogue = catalogue
        self._now = now
        self._invitations: dict[int, Invitation] = {}
        self._by_token: dict[str, int] = {}
        self._by_report_token: dict[str, int] = {}
        self._latest: dict[tuple[int, str], int] = {}  # (test link, email) -> newest invitation id
        self._next_id = FIRST_INVITATION_ID

    # ---- reading ---------------------------------------------------------------------------------

    def invitation(self, inv_id: int) -> Invitation:
        with self._lock:
            return copy.deepcopy(self.get_locked(inv_id))

    def invitations(self) -> list[Invitation]:
        with self._lock:
            return [copy.deepcopy(inv) for inv in self.all_locked()]

    def invitation_by_token(self, token: str) -> Invitation:
        with self._lock:
            return copy.deepcopy(self.by_token_locked(token))

    def invitation_by_report_token(self, token: str) -> Invitation:
        with self._lock:
            return copy.deepcopy(self.get_locked(self._by_report_token.get(token, -1)))

    # ---- for the other units, which hold the lock ------------------------------------------------

    def get_locked(self, inv_id: int) -> Invitation:
        try:
            inv = self._invitations[inv_id]
        except KeyError:
            raise UnknownInvitation() from None
        return self._refresh_locked(inv)

    def by_token_locked(self, token: str) -> Invitation:
        return self.get_locked(self._by_token.get(token, -1))

    def all_locked(self) -> Iterator[Invitation]:
        """Every invitation (the records themselves), in id order."""
        return (self._refresh_locked(inv) for _, inv in sorted(self._invitations.items()))

    def has_locked(self, inv_id: int) -> bool:
        return inv_id in self._invitations

    def _refresh_locked(self, inv: Invitation) -> Invitation:
        """Expire lazily: a pending invitation past its end is Expired from the end time on."""
        if inv.status == PENDING and self._now() >= inv.end_at:
            inv.status = EXPIRED
            inv.status_changed_at = inv.end_at
        return inv

    # ---- changing --------------------------------------------------------------------------------

    def invite(
        self,
        test_id: int,
        *,
        email: str,
        name: str,
        callback_url: str | None = None,
        redirect_url: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        send_email: bool = False,
        time_zone_id: int | None = None,
        test_link_id: int | None = None,
    ) -> tuple[Invitation, bool]:
        """Invite per §5.1/§5.3; returns the invitation and whether it is new."""
        with self._lock:
            now = self._now()
            test = self._catalogue.test_locked(test_id)
            link_id = _link_id(test, test_link_id)
            start, end = _window(start, end, now=now)
            key = (link_id, email.strip().lower())
            existing_id = self._latest.get(key)
            if existing_id is not None:
                inv = self.get_locked(existing_id)
                if inv.status in (PENDING, CANCELLED, EXPIRED):
                    _reopen(inv, start, end, time_zone_id, now=now)
                # Complete, Test Left, Terminated, In Progress: the same invitation, unchanged.
                return copy.deepcopy(self._refresh_locked(inv)), False
            inv = self._add_locked(
                _new_invitation(
                    self._next_id,
                    test,
                    link_id,
                    email=email.strip(),
                    name=name.strip(),
                    callback_url=callback_url,
                    redirect_url=redirect_url,
                    now=now,
                )
            )
            inv.send_email, inv.start_at, inv.end_at, inv.time_zone_id = send_email, start, end, time_zone_id
            self._latest[key] = inv.id
            return copy.deepcopy(self._refresh_locked(inv)), True

    def reattempt(
        self,
        inv_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        callback_url: str | None = None,
        redirect_url: str | None = None,
        send_email: bool = False,
        time_zone_id: int | None = None,
    ) -> Invitation:
        """Reattempt per §5.4, applied to the newest invitation of the chain `inv_id` belongs to."""
        with self._lock:
            now = self._now()
            inv = self.get_locked(inv_id)
            while inv.next_invitation_id is not None:
                inv = self.get_locked(inv.next_invitation_id)
            start, end = _window(start, end, now=now)
            if inv.status == IN_PROGRESS:
                raise InvalidTransition(f"Reattempt is not allowed on Test invitation id: {inv.id} which is in inprogress state.")
            if inv.status in (PENDING, CANCELLED, EXPIRED):
                if callback_url:
                    inv.callback_url = callback_url
                if redirect_url:
                    inv.redirect_url = redirect_url
                _reopen(inv, start, end, time_zone_id, now=now)
                return copy.deepcopy(self._refresh_locked(inv))
            # Complete / Test Left / Terminated: a new invitation inheriting all but the window.
            test = self._catalogue.test_locked(inv.test_id)
            new = self._add_locked(
                _new_invitation(
                    self._next_id,
                    test,
                    inv.test_link_id,
                    email=inv.email,
                    name=inv.name,
                    callback_url=callback_url or inv.callback_url,
                    redirect_url=redirect_url or inv.redirect_url,
                    now=now,
                )
            )
            new.send_email, new.start_at, new.end_at, new.time_zone_id = send_email, start, end, time_zone_id
            new.attempt, new.is_reattempt, new.previous_invitation_id = inv.attempt + 1, True, inv.id
            inv.next_invitation_id = new.id
            self._latest[(inv.test_link_id, inv.email.lower())] = new.id
            return copy.deepcopy(self._refresh_locked(new))

    def cancel(self, inv_id: int) -> Invitation:
        """Cancel per §5.5: only a pending invitation."""
        with self._lock:
            inv = self.get_locked(inv_id)
            if inv.status != PENDING:
                raise InvalidTransition(CANCEL_REFUSED)
            set_status(inv, CANCELLED, self._now())
            return copy.deepcopy(inv)

    def expire(self, inv_id: int) -> Invitation:
        """End a pending invitation's access window now."""
        with self._lock:
            now = self._now()
            inv = self.get_locked(inv_id)
            if inv.status != PENDING:
                raise InvalidTransition(f"Invitation {inv.id} is {inv.status}; only pending ones expire.")
            inv.end_at = now
            set_status(inv, EXPIRED, now)
            return copy.deepcopy(inv)

    def _add_locked(self, inv: Invitation) -> Invitation:
        """Store a new invitation (built by `_new_invitation` with the next id), findable by id and page tokens."""
        self._next_id = inv.id + 1
        self._invitations[inv.id] = inv
        self._by_token[inv.token] = inv.id
        self._by_report_token[inv.report_token] = inv.id
        return inv


def _link_id(test: ImochaTest, test_link_id: int | None) -> int:
    if test_link_id is None:
        return test.default_link.test_link_id
    if not any(link.test_link_id == test_link_id for link in test.links):
        raise UnknownTestLink()
    return test_link_id


def _window(start: datetime | None, end: datetime | None, *, now: datetime) -> tuple[datetime, datetime]:
    start = start or now
    end = end or start + DEFAULT_VALIDITY
    if end <= start:
        raise InvalidRequest("'endDateTime' must be later than 'startDateTime'.")
    return start, end


def _reopen(inv: Invitation, start: datetime, end: datetime, time_zone_id: int | None, *, now: datetime) -> None:
    """A pending, cancelled or expired invitation gets a new window and is pending (again)."""
    inv.start_at, inv.end_at, inv.time_zone_id = start, end, time_zone_id
    if inv.status != PENDING:
        set_status(inv, PENDING, now)


def _new_invitation(
    inv_id: int,
    test: ImochaTest,
    test_link_id: int,
    *,
    email: str,
    name: str,
    callback_url: str | None,
    redirect_url: str | None,
    now: datetime,
) -> Invitation:
    """The record of invitation `inv_id` to `test`: pending, fresh page tokens, one result per section of the test."""
    counts = [0] * len(test.sections)
    for question in test.questions:
        counts[question.section] += 1
    return Invitation(
        id=inv_id,
        test_id=test.test_id,
        test_link_id=test_link_id,
        test_name=test.name,
        email=email,
        name=name,
        callback_url=callback_url,
        redirect_url=redirect_url,
        send_email=False,
        status=PENDING,
        start_at=now,
        end_at=now + DEFAULT_VALIDITY,
        created_at=now,
        status_changed_at=now,
        token=new_token(),
        report_token=new_token(),
        total_points=test.total_points,
        sections=[SectionResult(s.section_id, s.name, s.points, counts[i], s.duration) for i, s in enumerate(test.sections)],
    )
