"""App Home (the queue per job) and what the slash commands answer: HELP and the status report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain import ApplicationView, AppStatus, AuditLine, Decision, normalise_key
from handlers import ids
from handlers.blocks.cards import card_actions, headline, score_line, verdict
from handlers.blocks.kit import Block, _date, button, context, esc, plain, section

# -- commands -----------------------------------------------------------------------------------


HELP = (
    "*iMocha assessments* — commands:\n"
    "• `/imocha setup` — connect iMocha (admins)\n"
    "• `/imocha plan` — bind a job's stage to an iMocha test and a hiring channel\n"
    "• `/imocha plans` — list, edit or remove plans\n"
    "• `/imocha send` — send an assessment to a candidate by hand\n"
    "• `/imocha status <email>` — a candidate's assessments and their history\n"
    "• `/imocha resync` — replay missed iMocha callbacks and poll now (admins)\n"
    "• `/imocha digest` — post this week's digest with its chart to each plan's channel (admins)\n"
    "• `/imocha help` — this list\n"
    "Open the app's *Home* tab for the queue."
)


# Audit actions whose stored name does not read as a verb phrase after the actor. A failed re-attempt
# is stored as "re-attempt" (bot/assessments.py's _action_failed).
_HISTORY_WORDS = {
    "reattempt": "allowed a re-attempt",
    "re-attempt": "allowed a re-attempt",
    "writeback": "wrote the decision back to the ATS",
    "writeback_retry": "retried writing the decision back to the ATS",
}


def history_words(action: str, detail: str | None = None) -> str:
    """What an audit action reads as in a history line: "<actor> allowed a re-attempt"."""
    if action == "decided" and detail in set(Decision):
        return f"{Decision(detail).past} the candidate"
    if action == "decision_undone" and detail in set(Decision):
        return f"undid the decision to {detail}"
    return _HISTORY_WORDS.get(action) or action.replace("_", " ")


def build_status_report(email: str, rows: Sequence[tuple[ApplicationView, Sequence[AuditLine]]]) -> list[Block]:
    if not rows:
        return [section(f"No assessments found for {esc(email)}.")]
    blocks: list[Block] = [section(f"*Assessments for {esc(email)}*")]
    for view, history in rows[:15]:
        lines = [f"*{esc(view.job_name)}* · {esc(view.test_name)} · {headline(view)}"]
        if view.invitation:
            score = score_line(view.invitation)
            if score and view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED):
                lines.append(f"Score: {score}" + (f" · {verdict(view)}" if verdict(view) else ""))
        for entry in list(history)[-8:]:
            who = f"<@{entry.actor}>" if entry.actor[:1] in ("U", "W") else entry.actor
            outcome = "" if entry.outcome == "ok" else f" ({entry.outcome}: {esc(entry.detail or '')})"
            lines.append(f"• {_date(entry.at)} {who} {history_words(entry.action, entry.detail)}{outcome}")
        blocks.append(section("\n".join(lines)))
    return blocks[:50]


# -- App Home -----------------------------------------------------------------------------------


HOME_GROUPS: list[tuple[str, tuple[AppStatus, ...]]] = [
    ("Needs sending", (AppStatus.NEEDS_SENDING, AppStatus.SEND_FAILED, AppStatus.SENDING)),
    ("Needs review", (AppStatus.NEEDS_REVIEW,)),
    ("Sent", (AppStatus.SENT,)),
    ("In progress", (AppStatus.IN_PROGRESS,)),
    ("Expired, cancelled or left", (AppStatus.EXPIRED, AppStatus.CANCELLED, AppStatus.LEFT)),
    ("Reviewed", (AppStatus.REVIEWED,)),
]


def home_item(view: ApplicationView) -> list[Block]:
    text = f"*{esc(view.candidate_name)}* · {esc(view.test_name)} · {headline(view)}"
    if (
        view.invitation
        and view.status in (AppStatus.NEEDS_REVIEW, AppStatus.REVIEWED)
        and (view.share_scores_in_channel or view.card_in_dm)
    ):
        score = score_line(view.invitation)
        if score:
            text += f"\n{score}" + (f" · {verdict(view)}" if verdict(view) else "")
    blocks: list[Block] = [section(text)]
    actions = card_actions(view, in_channel=True)
    if actions:
        blocks.append({"type": "actions", "block_id": f"home_{view.id}", "elements": actions[:5]})
    return blocks


def build_home(
    *,
    jobs: Sequence[tuple[str, dict[AppStatus, int], Sequence[ApplicationView]]],
    total: int,
    shown: int,
    page: int,
    configured: bool,
    is_admin: bool,
    week: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """App Home: the queue per job, grouped by status with counts; within Slack's 100-block limit.

    `week` maps a job's normalised name to its line of this week's digest figures (no extra block)."""
    blocks: list[Block] = [
        {"type": "header", "text": plain("iMocha assessments", 150)},
        {
            "type": "actions",
            "block_id": "home_top",
            "elements": [button("Refresh", ids.HOME_REFRESH, "0"), button("New plan", ids.PLAN_NEW, "0")],
        },
    ]
    if not configured:
        blocks.append(
            section(
                ":gear: iMocha is not connected yet."
                + (" Run `/imocha setup` to paste the API key." if is_admin else " Ask a Slack admin to run `/imocha setup`.")
            )
        )
    if not jobs:
        blocks.append(section("Nothing in your queue. Cards appear here when candidates reach a planned stage, or after `/imocha send`."))
    budget = 92
    for job_name, counts, items in jobs:
        if len(blocks) >= budget:
            break
        summary = " · ".join(
            f"{label}: {sum(counts.get(s, 0) for s in statuses)}"
            for label, statuses in HOME_GROUPS
            if sum(counts.get(s, 0) for s in statuses)
        )
        blocks.append({"type": "divider"})
        figures = (week or {}).get(normalise_key(job_name))
        blocks.append(section(f"*{esc(job_name)}*\n{summary}" + (f"\n_{esc(figures)}_" if figures else "")))
        for label, statuses in HOME_GROUPS:
            group = [v for v in items if v.status in statuses]
            if not group or len(blocks) >= budget:
                continue
            blocks.append(context(f"*{label}*"))
            for view in group:
                if len(blocks) + 2 > budget:
                    break
                blocks.extend(home_item(view))
    if shown < total:
        blocks.append({"type": "divider"})
        blocks.append(context(f"Showing the newest {shown} of {total} applications."))
        blocks.append({"type": "actions", "block_id": "home_more", "elements": [button("Show more", ids.HOME_MORE, str(page + 1))]})
    return {"type": "home", "blocks": blocks[:100]}
