"""What the assessment commands share: the result type, how an iMocha failure is worded, loading an
application, making an invitation live, and queueing its card update and thread reply (as facts)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import imocha
from bot.assessments.lifecycle import APP_STATUS
from bot.domain import (
    ApplicationView,
    AppStatus,
    CardAction,
    NoteKind,
    NotFound,
    statuses_allowing,
)
from bot.imocha import Status
from bot.runtime import metrics
from bot.slack.outbox import CARD, THREAD, SlackOutbox
from store import repos
from store.models import Application, ApplicationInvitation, Invitation

log = logging.getLogger("bot.assessments")

SENDABLE = tuple(status.value for status in statuses_allowing(CardAction.SEND))
LOCK_SECONDS = 120
RESEND_GRACE_SECONDS = 60  # a Resend this soon after the last (re)send is a duplicate click


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    view: ApplicationView | None = None


def failure(exc: imocha.ImochaError) -> str:
    """Count an iMocha failure met by a recruiter's action, by kind, and word it for them."""
    metrics.IMOCHA_ERRORS.labels(kind=type(exc).__name__).inc()
    return friendly(exc)


def friendly(exc: imocha.ImochaError) -> str:
    """An iMocha failure as a sentence a recruiter can act on (never the key, never a stack)."""
    if isinstance(exc, imocha.AuthError):
        return "iMocha rejected the workspace's API key (an admin can replace it with /imocha setup)"
    if isinstance(exc, imocha.RateLimitError):
        return "iMocha is rate limiting us; try again in a minute"
    if isinstance(exc, imocha.ImochaConnectionError):
        return "iMocha could not be reached"
    if isinstance(exc, imocha.ServerError):
        return "iMocha had an internal error"
    if isinstance(exc, imocha.NotFoundError):
        return "iMocha does not know this test or invitation"
    if isinstance(exc, imocha.ImochaStatusError):
        return f"iMocha said: {exc.message}"[:300]
    return "iMocha answered in a way the bot did not understand"


def load_application(session: Session, team_id: str, application_id: int, *, lock: bool = False) -> Application:
    ws = repos.workspace_by_team(session, team_id)
    app = repos.application(session, ws.id, application_id, lock=lock) if ws else None
    if app is None:
        raise NotFound("That application no longer exists in this workspace.")
    return app


def queue_card(session: Session, app: Application, *, tag: str) -> None:
    SlackOutbox.add(session, workspace_id=app.workspace_id, kind=CARD, key=f"card:{app.id}:{tag}:{uuid.uuid4().hex}", application_id=app.id)


def queue_note(session: Session, app: Application, kind: NoteKind, actor: str, **facts: object) -> None:
    """Queue a thread reply on the card: what happened and who did it (handlers/blocks/replies.py words it)."""
    SlackOutbox.add(
        session,
        workspace_id=app.workspace_id,
        kind=THREAD,
        key=f"note:{app.id}:{uuid.uuid4().hex}",
        application_id=app.id,
        payload={"template": "event", "event": kind.value, "actor": actor, **facts},
    )


def shared_elsewhere(session: Session, application_id: int, invitation_id: int) -> bool:
    return (
        session.scalar(
            select(ApplicationInvitation.id)
            .where(
                ApplicationInvitation.invitation_id == invitation_id,
                ApplicationInvitation.application_id != application_id,
                ApplicationInvitation.live.is_(True),
            )
            .limit(1)
        )
        is not None
    )


def make_live(session: Session, app: Application, inv: Invitation, user_id: str, *, reused: bool, now: datetime) -> None:
    """Make `inv` the application's one live invitation and take its status; releases the action lock."""
    session.execute(
        update(ApplicationInvitation)
        .where(ApplicationInvitation.application_id == app.id, ApplicationInvitation.invitation_id != inv.id)
        .values(live=False)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    if not repos.insert_ignore(
        session,
        ApplicationInvitation,
        {
            "application_id": app.id,
            "invitation_id": inv.id,
            "test_id": inv.test_id,
            "live": True,
            "reused": reused,
            "linked_by": user_id,
        },
        ["application_id", "invitation_id"],
    ):
        session.execute(
            update(ApplicationInvitation)
            .where(ApplicationInvitation.application_id == app.id, ApplicationInvitation.invitation_id == inv.id)
            .values(live=True)
            .execution_options(synchronize_session=False)
        )
    app.current_invitation_id = inv.id
    app.attempt = inv.attempt
    app.status = APP_STATUS.get(Status(inv.status), AppStatus.SENT).value
    app.status_changed_at = now
    app.sending_by = app.sending_since = None


def status_words(status: AppStatus) -> str:
    return {
        AppStatus.NEEDS_SENDING: "waiting to be sent",
        AppStatus.SENDING: "being sent",
        AppStatus.SEND_FAILED: "not sent (the last try failed)",
        AppStatus.SENT: "sent",
        AppStatus.IN_PROGRESS: "in progress",
        AppStatus.NEEDS_REVIEW: "completed and waiting for review",
        AppStatus.REVIEWED: "reviewed",
        AppStatus.EXPIRED: "expired",
        AppStatus.CANCELLED: "cancelled",
        AppStatus.LEFT: "left unfinished",
    }[status]
