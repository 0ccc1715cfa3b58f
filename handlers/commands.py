"""`/imocha` and its modals: setup, plans, manual send, status and resync."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.ats.intake import valid_email
from bot.domain import Actor, DomainError
from bot.runtime.services import Services
from bot.workspace.plans import PlanInput
from bot.workspace.settings import HarvestCredentials, SetupInput, WorkspaceSettings
from bot.workspace.setup import SetupProblem
from handlers import blocks, ids, parse
from handlers.after_ack import after_ack
from handlers.notify import tell

log = logging.getLogger("handlers.commands")


def register(app: App, services: Services) -> None:
    _register_command(app, services)
    _register_setup_view(app, services)
    _register_plan_view(app, services)
    _register_manual_send_view(app, services)
    _register_plan_actions(app, services)


def _register_command(app: App, services: Services) -> None:
    """`/imocha` and its subcommands."""

    @app.command(ids.COMMAND)
    def imocha_command(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        words = (command.get("text") or "").strip().split()
        sub = words[0].lower() if words else "help"
        team, user = parse.team_id(command, context), str(command.get("user_id", ""))
        if sub in ("help", "?"):
            ack(text=blocks.HELP)
            return
        if sub == "status":
            if len(words) < 2 or not valid_email(words[1].strip("<>").split("|")[-1].removeprefix("mailto:")):
                ack(text="Usage: `/imocha status name@example.com`")
                return
            ack()
            email = words[1].strip("<>").split("|")[-1].removeprefix("mailto:")
            _guarded(services, team, user, respond, lambda: _status(services, team, user, email, respond))
            return
        handlers = {
            "setup": lambda: _open_setup(services, team, user, command["trigger_id"], client),
            "plan": lambda: _open_plan(services, team, user, command["trigger_id"], client),
            "plans": lambda: _plans(services, team, user, respond),
            "send": lambda: _open_manual_send(services, team, user, command["trigger_id"], client),
            "resync": lambda: _resync(services, team, user, respond),
            "digest": lambda: _digest(services, team, user, respond),
        }
        handler = handlers.get(sub)
        if handler is None:
            ack(text=f"I don't know `{blocks.esc(sub)[:40]}`.\n{blocks.HELP}")
            return
        ack()
        _guarded(services, team, user, respond, handler)


def _register_setup_view(app: App, services: Services) -> None:
    """The setup modal's submission."""

    @app.view(ids.SETUP_VIEW)
    def setup_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        key = parse.text(view, ids.KEY_BLOCK, ids.KEY_INPUT)
        gem_key = parse.text(view, ids.GEM_KEY_BLOCK, ids.GEM_KEY_INPUT)
        harvest_id = parse.text(view, ids.HARVEST_ID_BLOCK, ids.HARVEST_ID_INPUT)
        harvest_secret = parse.text(view, ids.HARVEST_SECRET_BLOCK, ids.HARVEST_SECRET_INPUT)
        raw_days = parse.value(view, ids.VALIDITY_BLOCK, ids.VALIDITY_INPUT)
        days = parse.int_or_none(raw_days) if raw_days not in (None, "") else 7
        current = services.workspaces.settings(team)
        errors = {}
        if not key and not current.has_imocha_key:
            errors[ids.KEY_BLOCK] = "Paste the iMocha API key."
        elif key and (len(key) < 8 or len(key) > 300 or any(c.isspace() for c in key)):
            errors[ids.KEY_BLOCK] = "That doesn't look like an iMocha API key (no spaces, 8–300 characters)."
        if days is None or not 1 <= days <= 90:
            errors[ids.VALIDITY_BLOCK] = "Enter a whole number of days from 1 to 90."
        if gem_key and (len(gem_key) < 8 or any(c.isspace() for c in gem_key)):
            errors[ids.GEM_KEY_BLOCK] = "That doesn't look like a Gem API key."
        harvest, harvest_errors = _harvest_input(harvest_id, harvest_secret, current)
        errors.update(harvest_errors)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        if not services.setup.allowed(team, Actor(user)):
            ack(response_action="errors", errors={ids.KEY_BLOCK: "Only Slack workspace admins and owners can change the iMocha setup."})
            return
        ack(response_action="update", view=blocks.build_message_modal("iMocha setup", ":hourglass_flowing_sand: Checking the key…"))
        after_ack(
            services,
            "the setup modal",
            lambda: _finish_setup(services, client, view, team, user, current, key=key, gem_key=gem_key, days=days, harvest=harvest),
        )


def _register_plan_view(app: App, services: Services) -> None:
    """The plan modal's submission."""

    @app.view(ids.PLAN_VIEW)
    def plan_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        job = parse.text(view, ids.JOB_BLOCK, ids.JOB_INPUT)
        stage = parse.text(view, ids.STAGE_BLOCK, ids.STAGE_INPUT)
        test = parse.option(view, ids.TEST_BLOCK, ids.TEST_INPUT)
        raw_mark = parse.value(view, ids.PASS_MARK_BLOCK, ids.PASS_MARK_INPUT)
        mark = parse.int_or_none(raw_mark) if raw_mark not in (None, "") else None
        errors = {}
        if not job or len(job) > 200:
            errors[ids.JOB_BLOCK] = "Enter the job's name or ATS id (up to 200 characters)."
        if not stage or len(stage) > 200:
            errors[ids.STAGE_BLOCK] = "Enter the stage name, e.g. iMocha assessment."
        if test is None or parse.int_or_none(test[0]) is None:
            errors[ids.TEST_BLOCK] = "Pick an iMocha test."
        if raw_mark not in (None, "") and (mark is None or not 0 <= mark <= 100):
            errors[ids.PASS_MARK_BLOCK] = "Enter a whole percentage from 0 to 100."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        assert test is not None
        share = bool(parse.value(view, ids.SHARE_BLOCK, ids.SHARE_INPUT))
        digest_off = bool(parse.value(view, ids.DIGEST_BLOCK, ids.DIGEST_INPUT))
        channel = parse.value(view, ids.CHANNEL_BLOCK, ids.CHANNEL_INPUT)
        plan_id = parse.metadata(view).get("plan_id")
        data = PlanInput(
            job=job,
            stage=stage,
            test_id=int(test[0]),
            test_name=test[1],
            channel_id=channel,
            pass_mark=mark,
            share_scores_in_channel=share,
            weekly_digest=not digest_off,
        )
        try:
            plan = services.plans.save(team, Actor(user), data, plan_id=plan_id)
        except DomainError as exc:
            ack(response_action="errors", errors={ids.JOB_BLOCK: str(exc)[:1900]})
            return
        where = f"<#{plan.channel_id}>" if plan.channel_id else "the default channel (or the owner's DM)"
        ack(
            response_action="update",
            view=blocks.build_message_modal(
                "Plan saved",
                (
                    f":white_check_mark: Candidates reaching *{blocks.esc(plan.stage_label)}* for *{blocks.esc(plan.job_label)}* "
                    f"get *{blocks.esc(plan.test_name)}*; cards go to {where}."
                ),
            ),
        )


def _register_manual_send_view(app: App, services: Services) -> None:
    """The manual send modal's submission."""

    @app.view(ids.MANUAL_SEND_VIEW)
    def manual_send_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        team, user = parse.team_id(body, context), parse.user_id(body)
        name = parse.text(view, ids.NAME_BLOCK, ids.NAME_INPUT)
        email = parse.text(view, ids.EMAIL_BLOCK, ids.EMAIL_INPUT)
        job = parse.text(view, ids.JOB_BLOCK, ids.JOB_INPUT)
        test = parse.option(view, ids.TEST_BLOCK, ids.TEST_INPUT)
        errors = {}
        if not name or len(name) > 200:
            errors[ids.NAME_BLOCK] = "Enter the candidate's name."
        if not valid_email(email):
            errors[ids.EMAIL_BLOCK] = "Enter a valid email address, like name@example.com."
        if not job or len(job) > 200:
            errors[ids.JOB_BLOCK] = "Enter the job."
        if test is None or parse.int_or_none(test[0]) is None:
            errors[ids.TEST_BLOCK] = "Pick an iMocha test."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        assert test is not None
        try:
            result = services.intake.receive_manual(
                team, Actor(user), name=name, email=email, job=job, test_id=int(test[0]), test_name=test[1]
            )
            assert result.application_id is not None
            app_view = services.assessments.view(team, result.application_id)
            existing = services.assessments.existing_results(team, result.application_id)
        except DomainError as exc:
            ack(response_action="errors", errors={ids.EMAIL_BLOCK: str(exc)[:1900]})
            return
        ack(response_action="update", view=blocks.build_send_modal(app_view, existing))
        application_id = result.application_id
        after_ack(services, "the manual send modal", lambda: services.outbox.deliver(application_id=application_id))


def _register_plan_actions(app: App, services: Services) -> None:
    """The buttons and menus of the plan list: edit, remove, new."""

    @app.action(ids.PLAN_EDIT)
    def plan_edit(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext, respond: Respond
    ) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        plan_id = parse.int_or_none(action.get("value")) or 0
        _guarded(services, team, user, respond, lambda: _open_plan_edit(services, team, user, plan_id, body["trigger_id"], client))

    @app.action(f"{ids.PLAN_EDIT}_menu")
    def plan_menu(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext, respond: Respond
    ) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        verb, _, raw = str((action.get("selected_option") or {}).get("value", "")).partition(":")
        plan_id = parse.int_or_none(raw) or 0
        if verb == "edit":
            _guarded(services, team, user, respond, lambda: _open_plan_edit(services, team, user, plan_id, body["trigger_id"], client))
        elif verb == "remove":
            _guarded(services, team, user, respond, lambda: _remove_plan(services, team, user, plan_id, respond))

    @app.action(ids.PLAN_REMOVE)
    def plan_remove(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        plan_id = parse.int_or_none(action.get("value")) or 0
        _guarded(services, team, user, respond, lambda: _remove_plan(services, team, user, plan_id, respond))

    @app.action(ids.PLAN_NEW)
    def plan_new(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext, respond: Respond) -> None:
        ack()
        team, user = parse.team_id(body, context), parse.user_id(body)
        _guarded(services, team, user, respond, lambda: _open_plan(services, team, user, body["trigger_id"], client))


def _finish_setup(
    services: Services,
    client: WebClient,
    view: dict[str, Any],
    team: str,
    user: str,
    current: WorkspaceSettings,
    *,
    key: str,
    gem_key: str,
    days: int | None,
    harvest: HarvestCredentials | None = None,
) -> None:
    """Run the setup (bot/workspace/setup.py checks the keys live and saves) and show its outcome in the modal (after the ack)."""
    channel = parse.value(view, ids.DEFAULT_CHANNEL_BLOCK, ids.DEFAULT_CHANNEL_INPUT)
    data = SetupInput(
        api_key=key or None,
        default_channel_id=channel,
        validity_days=days or 7,
        gem_api_key=gem_key or None,
        timezone=services.gateway.user(team, user).tz,
        harvest=harvest,
    )
    outcome = services.setup.setup(team, Actor(user), data)
    if outcome.problem is not None:
        saved = services.workspaces.settings(team) if outcome.saved else current
        form: dict[str, Any] = {
            "has_key": saved.has_imocha_key,
            "default_channel": channel,
            "validity_days": days or 7,
            "has_gem_key": saved.has_gem_key,
            "has_harvest": saved.has_harvest,
            "harvest_client_id": harvest.client_id if harvest else current.harvest_client_id,
        }
        client.views_update(
            view_id=view["id"], view=blocks.build_setup_modal(**form, error=_SETUP_PROBLEMS[outcome.problem](outcome.detail))
        )
        return
    done = ":white_check_mark: *iMocha is connected.*" + (
        f" {outcome.tests} tests are available." if outcome.tests is not None else " Settings saved; the key is unchanged."
    )
    if gem_key:
        done += "\n:white_check_mark: *Gem is connected:* candidates entering a planned stage in Gem get a card."
    if harvest:
        done += (
            "\n:white_check_mark: *Greenhouse is connected:* Advance and Reject on a Greenhouse candidate's card are "
            "written back to Greenhouse, as the Greenhouse user with the clicker's email."
        )
    done += "\nNext: `/imocha plan` binds a job's stage to a test."
    client.views_update(view_id=view["id"], view=blocks.build_message_modal("iMocha setup", done))


_KEPT = " The other settings were saved; enter the Harvest credentials again, or leave them empty."
_SETUP_PROBLEMS: dict[SetupProblem, Callable[[str], str]] = {
    SetupProblem.IMOCHA_REJECTED: lambda _detail: "iMocha rejected this API key",
    SetupProblem.IMOCHA_UNREACHABLE: lambda kind: f"iMocha could not be reached ({kind}); nothing was saved. Try again.",
    SetupProblem.GEM_REJECTED: lambda _detail: "Gem rejected this API key",
    SetupProblem.GEM_UNREACHABLE: lambda kind: f"Gem could not be reached ({kind}); nothing was saved. Try again.",
    SetupProblem.HARVEST_REJECTED: lambda _detail: "Greenhouse rejected this Harvest client ID and secret." + _KEPT,
    SetupProblem.HARVEST_FORBIDDEN: lambda said: (
        f"Greenhouse accepted the Harvest credentials but refused to list users ({said}): give the credential "
        "the scopes in the README's “Decisions written back”." + _KEPT
    ),
    SetupProblem.HARVEST_UNREACHABLE: lambda kind: (
        f"Greenhouse could not be reached ({kind}); the Harvest credentials were not saved. Try again." + _KEPT
    ),
}


def _harvest_input(client_id: str, secret: str, current: WorkspaceSettings) -> tuple[HarvestCredentials | None, dict[str, str]]:
    """The Harvest credentials to check and save (None: keep what is stored), or the fields' errors.

    The modal shows a stored client ID again, so an unchanged form sends the ID without the secret.
    """
    if not client_id and not secret:
        return None, {}
    if not client_id:
        return None, {ids.HARVEST_ID_BLOCK: "Enter the client ID that goes with this secret."}
    if any(c.isspace() for c in client_id) or len(client_id) < 4:
        return None, {ids.HARVEST_ID_BLOCK: "That doesn't look like a Harvest client ID (no spaces)."}
    if not secret:
        if current.has_harvest and client_id == current.harvest_client_id:
            return None, {}
        return None, {ids.HARVEST_SECRET_BLOCK: "Paste the client secret of this Harvest credential."}
    if any(c.isspace() for c in secret) or len(secret) < 8:
        return None, {ids.HARVEST_SECRET_BLOCK: "That doesn't look like a Harvest client secret (no spaces, 8 characters or more)."}
    return HarvestCredentials(client_id, secret), {}


def _guarded(services: Services, team: str, user: str, respond: Respond | None, fn: Any) -> None:
    """Run work after the ack, on the work pool; a DomainError becomes a private answer to the user."""

    def run() -> None:
        try:
            fn()
        except DomainError as exc:
            tell(services, team, user, f":no_entry: {exc}", respond=respond)

    after_ack(services, "/imocha", run)


def _open_setup(services: Services, team: str, user: str, trigger_id: str, client: WebClient) -> None:
    current = services.setup.current(team, Actor(user))
    client.views_open(
        trigger_id=trigger_id,
        view=blocks.build_setup_modal(
            has_key=current.has_imocha_key,
            default_channel=current.default_channel_id,
            validity_days=current.validity_days,
            has_gem_key=current.has_gem_key,
            has_harvest=current.has_harvest,
            harvest_client_id=current.harvest_client_id,
        ),
    )


def _open_plan(services: Services, team: str, user: str, trigger_id: str, client: WebClient) -> None:
    services.setup.start_picking_a_test(team, Actor(user))  # the modal's test picker loads its options from the cache
    client.views_open(trigger_id=trigger_id, view=blocks.build_plan_modal())


def _open_manual_send(services: Services, team: str, user: str, trigger_id: str, client: WebClient) -> None:
    services.setup.start_picking_a_test(team, Actor(user))
    client.views_open(trigger_id=trigger_id, view=blocks.build_manual_send_modal())


def _plans(services: Services, team: str, user: str, respond: Respond) -> None:
    plans = services.plans.list(team, Actor(user))
    respond(blocks=blocks.build_plans_list(plans), text="Interview plans", response_type="ephemeral")


def _open_plan_edit(services: Services, team: str, user: str, plan_id: int, trigger_id: str, client: WebClient) -> None:
    """The plan's edit modal (the list's Edit button and its menu): refused before it opens for anyone
    but the plan's creator or an admin; its test picker starts loading."""
    plan = services.plans.for_edit(team, Actor(user), plan_id)
    services.workspaces.prefetch_tests(team)
    client.views_open(trigger_id=trigger_id, view=blocks.build_plan_modal(plan=plan))


def _remove_plan(services: Services, team: str, user: str, plan_id: int, respond: Respond) -> None:
    plan = services.plans.remove(team, Actor(user), plan_id)
    tell(
        services,
        team,
        user,
        f":wastebasket: Removed the plan for *{blocks.esc(plan.job_label)}* / *{blocks.esc(plan.stage_label)}*. Existing cards stay.",
        respond=respond,
    )


def _status(services: Services, team: str, user: str, email: str, respond: Respond) -> None:
    rows = services.assessments.status_for_email(team, email, Actor(user))
    respond(blocks=blocks.build_status_report(email, rows), text=f"Assessments for {email}", response_type="ephemeral")


def _resync(services: Services, team: str, user: str, respond: Respond) -> None:
    def started() -> None:
        tell(services, team, user, ":arrows_counterclockwise: Asking iMocha to replay callbacks and polling now…", respond=respond)

    asked = services.poller.resync(team, Actor(user), started=started)
    tell(
        services,
        team,
        user,
        f":white_check_mark: Resync done: asked iMocha to replay {asked} open invitations and polled for changes.",
        respond=respond,
    )


def _digest(services: Services, team: str, user: str, respond: Respond) -> None:
    if services.digests is None:
        raise DomainError("The digest is not available in this process.")
    posted = services.digests.post_current_week(team, Actor(user))
    if posted:
        text = f":bar_chart: Posted this week's digest for {posted} plan{'s' if posted != 1 else ''} to their hiring channels."
    else:
        text = "No plan had any assessment activity this week, so there is no digest to post."
    tell(services, team, user, text, respond=respond)
