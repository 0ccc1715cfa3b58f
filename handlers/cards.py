"""Card buttons: Send (and its confirm modal), Retry, Cancel, Resend, Allow re-attempt, Mark reviewed, Show score,
Advance, Reject and Undo; and Retry on the thread reply of a decision the ATS did not take."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.assessments import ActionResult
from bot.domain import Actor, AppStatus, Conflict, DomainError
from bot.runtime.services import Services
from handlers import blocks, ids, parse
from handlers.after_ack import after_ack
from handlers.notify import tell

log = logging.getLogger("handlers.cards")


def _clicked_in(body: dict[str, Any]) -> str | None:
    """The channel of the message whose button was clicked (a card there proves the clicker can see it)."""
    container = body.get("container") or {}
    return container.get("channel_id") or (body.get("channel") or {}).get("id")


def register(app: App, services: Services) -> None:
    _register_send_modal(app, services)
    _register_send_view(app, services)
    _register_buttons(app, services)
    _register_report(app, services)
    _register_writeback(app, services)


def _register_send_modal(app: App, services: Services) -> None:
    """The Send button and its modal, and Retry after a failed send."""

    def open_send_modal(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext, respond: Respond
    ) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        app_id = parse.int_or_none(action.get("value")) or 0
        channel = _clicked_in(body)
        after_ack(services, "Send", lambda: send_modal(team, user, app_id, channel, body["trigger_id"], client, respond))

    def send_modal(team: str, user: str, app_id: int, channel: str | None, trigger_id: str, client: WebClient, respond: Respond) -> None:
        try:
            view, existing = services.assessments.prepare_send(team, app_id, Actor(user, channel))
        except DomainError as exc:
            tell(services, team, user, f":no_entry: {blocks.describe(exc)}", respond=respond)
            return
        services.workspaces.prefetch_tests(team)  # the modal's test picker loads its options from the cache
        client.views_open(trigger_id=trigger_id, view=blocks.build_send_modal(view, existing))

    app.action(ids.SEND)(open_send_modal)

    @app.action(ids.RETRY)
    def retry(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        after_ack(services, "Retry", lambda: _act(services, body, action, context, respond, services.assessments.send))


def _register_send_view(app: App, services: Services) -> None:
    """The send modal's submission: the invitation is sent after the ack."""

    @app.view(ids.SEND_VIEW)
    def send_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        app_id = parse.int_or_none(parse.metadata(view).get("application_id"))
        test = parse.option(view, ids.TEST_BLOCK, ids.TEST_INPUT)
        if app_id is None:
            ack(response_action="errors", errors={ids.TEST_BLOCK: "This form is out of date; open it again from the card."})
            return
        if test is None or parse.int_or_none(test[0]) is None:
            ack(response_action="errors", errors={ids.TEST_BLOCK: "Pick an iMocha test."})
            return
        use = parse.option(view, ids.USE_BLOCK, ids.USE_INPUT)
        mode = {ids.USE_REUSE: "reuse", ids.USE_REATTEMPT: "reattempt"}.get(use[0] if use else "", "new")
        test_id, test_name = int(test[0]), test[1]
        ack()
        after_ack(services, "the send modal", functools.partial(send, team, user, app_id, test_id, test_name, mode))

    def send(team: str, user: str, app_id: int, test_id: int, test_name: str, mode: str) -> None:
        try:
            result = services.assessments.send(team, app_id, Actor(user), test_id=test_id, test_name=test_name, mode=mode)
        except Conflict as exc:
            log.info("send for application %s by %s ignored: %s", app_id, user, exc)
            return
        except DomainError as exc:
            tell(services, team, user, f":no_entry: {blocks.describe(exc)}")
            return
        if not result.ok and result.view is not None and result.view.status != AppStatus.SEND_FAILED:
            log.info("send for application %s by %s: %s", app_id, user, result.message)  # a concurrent duplicate


def _register_buttons(app: App, services: Services) -> None:
    """The card's plain buttons: cancel, resend, reattempt, reviewed and the decisions."""

    for action_id, fn in (
        (ids.CANCEL, lambda s: s.assessments.cancel),
        (ids.RESEND, lambda s: s.assessments.resend),
        (ids.REATTEMPT, lambda s: s.assessments.reattempt),
        (ids.REVIEWED, lambda s: s.assessments.mark_reviewed),
        (ids.ADVANCE, lambda s: s.decisions.advance),
        (ids.REJECT, lambda s: s.decisions.reject),
        (ids.UNDO_DECISION, lambda s: s.decisions.undo),
    ):
        app.action(action_id)(_button(services, fn(services)))


def _register_report(app: App, services: Services) -> None:
    """Show score, and the report link (which only needs an ack)."""

    @app.action(ids.SHOW_SCORE)
    def show_score(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        after_ack(services, "Show score", lambda: score(body, action, context, respond))

    def score(body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        channel = _clicked_in(body)
        try:
            view = services.assessments.view_for(team, parse.int_or_none(action.get("value")) or 0, Actor(user, channel))
        except DomainError as exc:
            tell(services, team, user, f":no_entry: {blocks.describe(exc)}", respond=respond)
            return
        message = blocks.build_score_ephemeral(view)
        respond(text=message["text"], blocks=message["blocks"], response_type="ephemeral", replace_original=False)

    @app.action(ids.REPORT_LINK)
    def report_link(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; the click only needs an ack


def _register_writeback(app: App, services: Services) -> None:
    """Retry of a decision's write-back to the ATS."""

    @app.action(ids.WRITEBACK_RETRY)
    def retry_writeback(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        after_ack(services, "Retry write-back", lambda: writeback_again(body, action, context, respond))

    def writeback_again(body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        row_id = parse.int_or_none(action.get("value")) or 0
        try:
            if services.writeback is None:
                raise DomainError("Decisions are not written back to an ATS in this deployment.")
            target = services.writeback.target_of(team, row_id)
            said = services.writeback.retry(team, row_id, Actor(user))
            tell(services, team, user, f":arrows_counterclockwise: {said}", respond=respond)
            services.writeback.deliver(application_id=target.application_id)
        except Conflict as exc:
            tell(services, team, user, f":information_source: {blocks.describe(exc)}", respond=respond)
        except DomainError as exc:
            tell(services, team, user, f":no_entry: {blocks.describe(exc)}", respond=respond)


def _button(services: Services, fn: Callable[[str, int, Actor], ActionResult]) -> Callable[..., None]:
    def listener(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        after_ack(services, str(action.get("action_id")), lambda: _act(services, body, action, context, respond, fn))

    return listener


def _act(
    services: Services,
    body: dict[str, Any],
    action: dict[str, Any],
    context: BoltContext,
    respond: Respond,
    fn: Callable[[str, int, Actor], ActionResult],
) -> None:
    team, user = parse.team_id(body, context), parse.user_id(body)
    app_id = parse.int_or_none(action.get("value")) or 0
    channel = _clicked_in(body)
    try:
        result = fn(team, app_id, Actor(user, channel))
    except Conflict as exc:
        tell(services, team, user, f":information_source: {blocks.describe(exc)}", respond=respond)
        return
    except DomainError as exc:
        tell(services, team, user, f":no_entry: {blocks.describe(exc)}", respond=respond)
        return
    if not result.ok:
        tell(services, team, user, f":warning: {result.message}", respond=respond)
