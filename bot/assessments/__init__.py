"""An application's assessment, from sending it to the decision on its result.

Owns the commands on an application and its invitations, and their rules: every command takes the
`Actor` and decides here who may act (bot/slack/access.py: the owner, an admin, or a full member who
can see the card), so a Slack button, a Workflow Builder step and any later caller meet the same rule;
which action a status admits comes from bot.domain.allowed_actions, the one state machine the card's
buttons are drawn from too. Results and thread replies are facts (ActionResult, NoteKind payloads);
handlers/ words them. Also owns tracking an invitation to its end (poller.py, callbacks.py,
lifecycle.py), reminders (reminders.py) and Advance / Reject / Undo (decisions.py).

    reads.py      AssessmentReads: views, `view_for` / `prepare_send` (authorised), the candidate's other results
    sending.py    Sender: invite once, link an existing result, record iMocha's answer, finish interrupted sends
    actions.py    InvitationActions: Cancel, Resend, Allow re-attempt, Mark reviewed behind one action lock
    records.py    what they share: ActionResult, loading an application, queueing its card and thread reply
    decisions.py  Advance / Reject once, Undo for ten minutes, the ATS write-back queued with them
    poller.py, callbacks.py, lifecycle.py   status tracking: the poller, iMocha's callbacks, what a change causes

May import bot.domain, bot.views, bot.imocha, bot.slack (outbox, access), bot.ats (write-back and
event queues), bot.workspace, bot.runtime (clock, claims, metrics) and store; never handlers/.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.assessments.actions import InvitationActions
from bot.assessments.reads import AssessmentReads
from bot.assessments.records import LOCK_SECONDS, ActionResult, failure, friendly, load_application, queue_card, queue_note
from bot.assessments.sending import Sender
from bot.domain import Actor, ApplicationView, AuditLine, ExistingResult
from bot.slack.access import Access
from bot.slack.outbox import SlackOutbox
from bot.views import application_view
from bot.workspace.settings import Workspaces

__all__ = [
    "LOCK_SECONDS",
    "ActionResult",
    "Assessments",
    "application_view",
    "failure",
    "friendly",
    "load_application",
    "queue_card",
    "queue_note",
]


class Assessments:
    """The one entry the Slack layer, the workflow step and the poller use; each call goes to its part."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        outbox: SlackOutbox,
        clock: Callable[[], datetime],
        callback_url: str | None,
        access: Access,
    ):
        self.reads = AssessmentReads(session_factory=session_factory, access=access, clock=clock)
        self.sender = Sender(
            session_factory=session_factory, reads=self.reads, workspaces=workspaces, outbox=outbox, clock=clock, callback_url=callback_url
        )
        self.actions = InvitationActions(
            session_factory=session_factory,
            reads=self.reads,
            sender=self.sender,
            workspaces=workspaces,
            outbox=outbox,
            clock=clock,
            callback_url=callback_url,
        )

    # -- reading
    def view(self, team_id: str, application_id: int) -> ApplicationView:
        return self.reads.view(team_id, application_id)

    def view_for(self, team_id: str, application_id: int, actor: Actor) -> ApplicationView:
        return self.reads.view_for(team_id, application_id, actor)

    def prepare_send(self, team_id: str, application_id: int, actor: Actor) -> tuple[ApplicationView, list[ExistingResult]]:
        return self.reads.prepare_send(team_id, application_id, actor)

    def existing_results(self, team_id: str, application_id: int) -> list[ExistingResult]:
        return self.reads.existing_results(team_id, application_id)

    def status_for_email(self, team_id: str, email: str, actor: Actor) -> list[tuple[ApplicationView, list[AuditLine]]]:
        return self.reads.status_for_email(team_id, email, actor)

    # -- commands
    def send(
        self,
        team_id: str,
        application_id: int,
        actor: Actor,
        *,
        test_id: int | None = None,
        test_name: str | None = None,
        mode: str = "new",
    ) -> ActionResult:
        return self.sender.send(team_id, application_id, actor, test_id=test_id, test_name=test_name, mode=mode)

    def cancel(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.actions.cancel(team_id, application_id, actor)

    def resend(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.actions.resend(team_id, application_id, actor)

    def reattempt(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.actions.reattempt(team_id, application_id, actor)

    def mark_reviewed(self, team_id: str, application_id: int, actor: Actor) -> ActionResult:
        return self.actions.mark_reviewed(team_id, application_id, actor)

    def recover_stuck_sends(self, older_than: timedelta = timedelta(seconds=LOCK_SECONDS)) -> int:
        return self.sender.recover_stuck_sends(older_than)
