"""Reminders: nudge the card owner about assessments left untouched, and about ones about to expire."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from bot.domain import AppStatus
from bot.imocha import Status
from bot.slack.outbox import DM, SlackOutbox
from store import repos
from store.models import Application, ApplicationInvitation, Invitation, Reminder, Workspace

log = logging.getLogger("bot.assessments.reminders")

UNTOUCHED = "untouched"
EXPIRING = "expiring"
EXPIRING_WITHIN = timedelta(hours=24)


class Reminders:
    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime]):
        self._sf = session_factory
        self._clock = clock

    def run(self) -> int:
        """Queue today's reminder DMs; returns how many were queued. Safe to run as often as you like:
        each invitation gets at most one reminder of each kind per UTC day."""
        now = self._clock()
        day = now.astimezone(UTC).date().isoformat()
        queued = 0
        with self._sf.begin() as session:
            expiring = self._due(session, day, [EXPIRING]).where(
                Invitation.valid_until > now, Invitation.valid_until <= now + EXPIRING_WITHIN
            )
            queued += self._queue(session, expiring, EXPIRING, day, now)
            # "Expires within 24 hours" already says it is untouched: one DM a day is enough.
            untouched_ago = [
                and_(Workspace.reminder_days == days, Invitation.sent_at <= now - timedelta(days=days))
                for days in session.scalars(select(Workspace.reminder_days).where(Workspace.active).distinct())
            ]
            if untouched_ago:
                untouched = self._due(session, day, [EXPIRING, UNTOUCHED]).where(or_(*untouched_ago))
                queued += self._queue(session, untouched, UNTOUCHED, day, now)
        if queued:
            log.info("queued %d reminder DMs for %s", queued, day)
        return queued

    @staticmethod
    def _due(session: Session, day: str, not_sent: list[str]) -> Select[int, int, int, str | None, str | None]:
        """Open, unstarted invitations live on an application still at "sent", not yet reminded today."""
        reminded = exists().where(Reminder.invitation_id == Invitation.id, Reminder.day == day, Reminder.kind.in_(not_sent))
        return (
            select(Invitation.id, Application.id, Application.workspace_id, Application.owner_user_id, Invitation.sent_by)
            .join(
                ApplicationInvitation,
                and_(ApplicationInvitation.invitation_id == Invitation.id, ApplicationInvitation.live.is_(True)),
            )
            .join(Application, Application.id == ApplicationInvitation.application_id)
            .join(Workspace, Workspace.id == Invitation.workspace_id)
            .where(
                Workspace.active.is_(True),
                Invitation.status == Status.PENDING.value,
                Invitation.started_at.is_(None),
                Application.status == AppStatus.SENT.value,
                ~reminded,
            )
            .order_by(Invitation.id, Application.id)
        )

    @staticmethod
    def _queue(session: Session, query: Select[int, int, int, str | None, str | None], kind: str, day: str, now: datetime) -> int:
        queued = 0
        for invitation_id, application_id, workspace_id, owner, sent_by in session.execute(query).all():
            user = owner or sent_by
            if not user:
                continue
            # The unique (invitation, kind, day) row is the once-a-day guarantee, even across replicas;
            # a second application sharing the invitation finds it taken.
            if not repos.insert_ignore(
                session,
                Reminder,
                {"invitation_id": invitation_id, "kind": kind, "day": day, "sent_at": now},
                ["invitation_id", "kind", "day"],
            ):
                continue
            SlackOutbox.add(
                session,
                workspace_id=workspace_id,
                kind=DM,
                key=f"reminder:{kind}:{invitation_id}:{day}",
                application_id=application_id,
                payload={"template": "reminder", "user": user, "kind": kind},
            )
            queued += 1
        return queued
