"""The modals (setup, interview plan, send, manual send, a plain message) and the plans list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.domain import ApplicationView, ExistingResult, PlanView
from handlers import ids
from handlers.blocks.cards import score_line
from handlers.blocks.kit import (
    Block,
    _modal,
    button,
    channel_select,
    confirm,
    context,
    esc,
    plain,
    section,
    test_select,
    text_input,
    whole_number,
)


def _vendor_inputs(*, has_gem_key: bool, has_harvest: bool, harvest_client_id: str | None) -> list[Block]:
    """The setup modal's optional ATS credentials: Gem's key and Greenhouse's Harvest V3 client."""
    return [
        text_input(
            ids.GEM_KEY_BLOCK,
            ids.GEM_KEY_INPUT,
            "Gem API key",
            optional=True,
            max_length=300,
            hint=("A Gem key is set; paste a new one to replace it." if has_gem_key else "Optional, for Gem ATS intake."),
        ),
        text_input(
            ids.HARVEST_ID_BLOCK,
            ids.HARVEST_ID_INPUT,
            "Greenhouse Harvest client ID",
            optional=True,
            initial=harvest_client_id,
            max_length=200,
            hint=(
                "Optional: Advance and Reject are then written back to Greenhouse, as the person who clicks. "
                "In Greenhouse: Configure → Dev Center → API Credentials → Harvest V3 (OAuth)."
            ),
        ),
        text_input(
            ids.HARVEST_SECRET_BLOCK,
            ids.HARVEST_SECRET_INPUT,
            "Greenhouse Harvest client secret",
            optional=True,
            max_length=300,
            hint=(
                "A secret is set and is never shown again. Leave this empty to keep it, or paste a new one with its client ID."
                if has_harvest
                else "The secret of that Harvest V3 credential. It is checked live and stored encrypted."
            ),
        ),
    ]


def build_setup_modal(
    *,
    has_key: bool,
    default_channel: str | None,
    validity_days: int,
    has_gem_key: bool = False,
    has_harvest: bool = False,
    harvest_client_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    key_hint = (
        "A key is set and is never shown again. Leave this empty to keep it, or paste a new key to replace it."
        if has_key
        else "From iMocha: Settings → Integrations → API key. It is checked live and stored encrypted."
    )
    blocks: list[Block] = []
    if error:
        blocks.append(section(f":warning: *{esc(error)}*"))
    blocks += [
        text_input(ids.KEY_BLOCK, ids.KEY_INPUT, "iMocha API key", optional=has_key, hint=key_hint, max_length=300),
        channel_select(ids.DEFAULT_CHANNEL_BLOCK, ids.DEFAULT_CHANNEL_INPUT, "Default hiring channel", initial=default_channel),
        {
            "type": "input",
            "block_id": ids.VALIDITY_BLOCK,
            "label": plain("Invitation valid for (days)"),
            "optional": True,
            "element": whole_number(ids.VALIDITY_INPUT, 1, 90, initial=validity_days),
        },
        *_vendor_inputs(has_gem_key=has_gem_key, has_harvest=has_harvest, harvest_client_id=harvest_client_id),
    ]
    return _modal(ids.SETUP_VIEW, "iMocha setup", blocks)


def build_message_modal(title: str, text: str) -> dict[str, Any]:
    return _modal(ids.INFO_VIEW, title, [section(text)], submit=None)


def build_plan_modal(*, plan: PlanView | None = None) -> dict[str, Any]:
    share_option = {"text": plain("Show scores, pass/fail and the report in the channel"), "value": "share"}
    share: dict[str, Any] = {"type": "checkboxes", "action_id": ids.SHARE_INPUT, "options": [share_option]}
    if plan and plan.share_scores_in_channel:
        share["initial_options"] = [share_option]
    # Ticked means off, so that a plan saved without this field keeps its digest.
    digest_off = {"text": plain("No weekly digest for this plan"), "value": "off"}
    digest: dict[str, Any] = {"type": "checkboxes", "action_id": ids.DIGEST_INPUT, "options": [digest_off]}
    if plan and not plan.weekly_digest:
        digest["initial_options"] = [digest_off]
    pass_mark = whole_number(ids.PASS_MARK_INPUT, 0, 100, initial=plan.pass_mark if plan else None)
    blocks: list[Block] = [
        text_input(
            ids.JOB_BLOCK,
            ids.JOB_INPUT,
            "Job",
            initial=plan.job_label if plan else None,
            placeholder="Job name or ATS job id",
            hint="Matched case-insensitively against the ATS job id or name.",
        ),
        text_input(ids.STAGE_BLOCK, ids.STAGE_INPUT, "Stage", initial=plan.stage_label if plan else "iMocha assessment"),
        test_select(initial=(plan.test_id, plan.test_name) if plan else None),
        channel_select(ids.CHANNEL_BLOCK, ids.CHANNEL_INPUT, "Hiring channel", initial=plan.channel_id if plan else None),
        {"type": "input", "block_id": ids.PASS_MARK_BLOCK, "label": plain("Pass mark (%)"), "optional": True, "element": pass_mark},
        {
            "type": "input",
            "block_id": ids.SHARE_BLOCK,
            "label": plain("Share scores in channel"),
            "optional": True,
            "element": share,
            "hint": plain("Off: the channel hears that the test is complete, with a Show score button that answers privately."),
        },
        {
            "type": "input",
            "block_id": ids.DIGEST_BLOCK,
            "label": plain("Weekly digest"),
            "optional": True,
            "element": digest,
            "hint": plain("Every Monday 09:00 the channel gets last week's figures and a chart (no scores unless shared)."),
        },
    ]
    return _modal(
        ids.PLAN_VIEW,
        "Edit interview plan" if plan else "New interview plan",
        blocks,
        metadata=json.dumps({"plan_id": plan.id}) if plan else "",
    )


# Two blocks a plan, plus a heading and a "more" line, within a message's 50 blocks.
PLANS_SHOWN = 24


def build_plans_list(plans: Sequence[PlanView]) -> list[Block]:
    blocks: list[Block] = [section("*Interview plans*" if plans else "No interview plans yet. Create one with `/imocha plan`.")]
    for plan in plans[:PLANS_SHOWN]:
        details = [f"*{esc(plan.job_label)}* · {esc(plan.stage_label)} → {esc(plan.test_name)}"]
        extras = [
            f"<#{plan.channel_id}>" if plan.channel_id else "default channel",
            f"pass mark {plan.pass_mark}%" if plan.pass_mark is not None else "no pass mark",
            "scores shared" if plan.share_scores_in_channel else "scores private",
            "weekly digest" if plan.weekly_digest else "no digest",
            f"by <@{plan.created_by}>",
        ]
        details.append(" · ".join(extras))
        blocks.append(
            section(
                "\n".join(details),
                accessory={
                    "type": "overflow",
                    "action_id": f"{ids.PLAN_EDIT}_menu",
                    "options": [
                        {"text": plain("Edit", 75), "value": f"edit:{plan.id}"},
                        {"text": plain("Remove", 75), "value": f"remove:{plan.id}"},
                    ],
                },
            )
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"plan_{plan.id}",
                "elements": [
                    button("Edit", ids.PLAN_EDIT, str(plan.id)),
                    button(
                        "Remove",
                        ids.PLAN_REMOVE,
                        str(plan.id),
                        style="danger",
                        confirm=confirm(
                            "Remove this plan?",
                            f"New candidates reaching *{esc(plan.stage_label)}* for *{esc(plan.job_label)}* will no longer get a card.",
                            "Remove",
                        ),
                    ),
                ],
            }
        )
    if len(plans) > PLANS_SHOWN:
        blocks.append(context(f"…and {len(plans) - PLANS_SHOWN} more."))
    return blocks


def build_send_modal(view: ApplicationView, existing: Sequence[ExistingResult]) -> dict[str, Any]:
    blocks: list[Block] = [
        section(
            f"Send *{esc(view.test_name)}* to *{esc(view.candidate_name)}* ({esc(view.candidate_email or 'no email')}) for *{esc(view.job_name)}*?\n"
            "iMocha emails the candidate the link, and you get it by DM too."
        ),
        test_select(initial=(view.test_id, view.test_name)),
    ]
    if existing:
        first = existing[0]
        inv = first.invitation
        status = inv.status.replace("_", " ")
        score = score_line(inv)
        blocks.append(
            section(
                f":information_source: {esc(view.candidate_name)} already has *{esc(inv.test_name)}* from the *{esc(first.job_name)}* application: "
                f"{status}" + (f", {score}" if score else "") + "."
            )
        )
        options = [{"text": plain("Reuse this result"), "value": ids.USE_REUSE}]
        if inv.status in ("complete", "test_left", "terminated"):
            options.append({"text": plain("Send a re-attempt"), "value": ids.USE_REATTEMPT})
        blocks.append(
            {
                "type": "input",
                "block_id": ids.USE_BLOCK,
                "label": plain("Use"),
                "element": {"type": "radio_buttons", "action_id": ids.USE_INPUT, "options": options, "initial_option": options[0]},
            }
        )
    return _modal(ids.SEND_VIEW, "Send assessment", blocks, submit="Send", metadata=json.dumps({"application_id": view.id}))


def build_manual_send_modal() -> dict[str, Any]:
    blocks: list[Block] = [
        text_input(ids.NAME_BLOCK, ids.NAME_INPUT, "Candidate name", max_length=200),
        text_input(ids.EMAIL_BLOCK, ids.EMAIL_INPUT, "Candidate email", max_length=320, placeholder="name@example.com"),
        text_input(ids.JOB_BLOCK, ids.JOB_INPUT, "Job", max_length=200),
        test_select(),
    ]
    return _modal(ids.MANUAL_SEND_VIEW, "Send an assessment", blocks, submit="Next")
