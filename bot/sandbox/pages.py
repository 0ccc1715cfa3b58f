"""The sandbox's HTML: the candidate's test page, the operator page, and the PDF report download."""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.sandbox.state import (
    CANCELLED,
    COMPLETE,
    EXPIRED,
    FINISHED,
    IN_PROGRESS,
    PENDING,
    TEST_LEFT,
    ImochaStateError,
    Invitation,
    score_line,
)

if TYPE_CHECKING:
    from bot.sandbox.state import ImochaState

ALREADY_APPEARED = "You have already appeared for the test. Please contact test administrator for further assistance."

CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f5f8;color:#1f2433}
header{background:#23267a;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:baseline}
header strong{font-size:17px}header span{opacity:.75;font-size:13px}
main{max-width:880px;margin:24px auto;padding:0 16px}
main.wide{max-width:1280px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(20,20,50,.08);
padding:20px 24px;margin-bottom:16px;overflow-x:auto}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}
.muted{color:#667085;font-size:13px}
fieldset{border:1px solid #e3e6ee;border-radius:6px;margin:0 0 14px;padding:10px 16px}
legend{font-weight:600;padding:0 6px}
label.opt{display:block;padding:4px 0;cursor:pointer}
button{font:inherit;border:0;border-radius:6px;padding:8px 16px;cursor:pointer;background:#23267a;color:#fff}
button.secondary{background:#e9eaf3;color:#23267a}
button.small{padding:3px 9px;font-size:12px}
button.danger{background:#fbe9e9;color:#a8231f}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceef4;vertical-align:top}
th{color:#667085;font-weight:600}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;
background:#eef0f6;white-space:nowrap}
.Pending{background:#fff4d6}.In-Progress{background:#dbeafe}.Complete{background:#dcfce7}
.Test-Left,.Terminated{background:#ffe4d5}.Cancelled,.Expired{background:#eceef2;color:#667085}
.score{font-size:20px;font-weight:600}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef0f6;
padding:1px 5px;border-radius:4px}
.nowrap{white-space:nowrap}
.actions{display:flex;flex-wrap:wrap;gap:4px;min-width:150px}
a{color:#23267a}
""".strip()


def render(title: str, body: str, *, status: int = 200, wide: bool = False) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · iMocha sandbox</title><style>{CSS}</style></head><body>"
        "<header><strong>iMocha sandbox</strong><span>a local stand-in for the iMocha API</span></header>"
        f'<main class="{"wide" if wide else ""}">{body}</main></body></html>'
    )
    return HTMLResponse(html, status)


def error_page(status: int, title: str, message: str) -> HTMLResponse:
    return render(title, f'<div class="card"><h1>{escape(title)}</h1><p>{escape(message)}</p></div>', status=status)


def _state(request: Request) -> ImochaState:
    state: ImochaState = request.app.state.imocha
    return state


def _badge(status: str) -> str:
    return f'<span class="badge {status.replace(" ", "-")}">{escape(status)}</span>'


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "—"


def _cell_time(moment: datetime | None) -> str:
    """A moment in an operator table cell, whose column header says the times are UTC."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


_BACKTICKS = re.compile(r"`([^`]+)`")


def _rich(text: str) -> str:
    """Escape `text` for HTML, showing `backticked` spans as code (question texts use them)."""
    return _BACKTICKS.sub(r"<code>\1</code>", escape(text))


# ----------------------------------------------------------------------------------------- candidate


def _closed_page(inv: Invitation) -> HTMLResponse | None:
    """The page for an invitation the candidate can no longer take, or None when it is open."""
    if inv.status in FINISHED:
        return error_page(409, "Test already submitted", ALREADY_APPEARED)
    if inv.status == CANCELLED:
        return error_page(410, "Invitation cancelled", "This test invitation has been cancelled.")
    if inv.status == EXPIRED:
        return error_page(410, "Invitation expired", "This test invitation has expired.")
    return None


def _not_open_yet(state: ImochaState, inv: Invitation) -> HTMLResponse | None:
    if inv.status == PENDING and state.now() < inv.start_at:
        return error_page(403, "Not open yet", f"This test opens at {_when(inv.start_at)}.")
    return None


def _unknown_link() -> HTMLResponse:
    return error_page(404, "Test link not found", "This test link is not valid; check your invitation.")


async def take_page(request: Request) -> Response:
    state = _state(request)
    token = request.path_params["token"]
    try:
        inv = state.invitation_by_token(token)
    except ImochaStateError:
        return _unknown_link()
    closed = _closed_page(inv) or _not_open_yet(state, inv)
    if closed is not None:
        return closed
    if inv.status == PENDING:
        try:
            inv = state.start(inv.id)
        except ImochaStateError:
            return _closed_page(state.invitation(inv.id)) or _unknown_link()
    test = state.test(inv.test_id)
    sections = "".join(
        f"<li>{escape(section.name)} <span class='muted'>· {section.questions} question(s), "
        f"{escape(f'{section.points:g}')} points</span></li>"
        for section in inv.sections
    )
    questions = []
    for index, question in enumerate(test.questions):
        options = "".join(
            f'<label class="opt"><input type="radio" name="q{index}" value="{choice}"> {_rich(option)}</label>'
            for choice, option in enumerate(question.options)
        )
        section_name = test.sections[question.section].name
        questions.append(
            f"<fieldset><legend>Question {index + 1} <span class='muted'>· {escape(section_name)}</span>"
            f"</legend><p>{_rich(question.text)}</p>{options}</fieldset>"
        )
    body = (
        f'<div class="card"><h1>{escape(inv.test_name)}</h1>'
        f'<p class="muted">Candidate: {escape(inv.name)} &lt;{escape(inv.email)}&gt; · '
        f"invitation {inv.id} · attempt {inv.attempt} · open until {_when(inv.end_at)}</p>"
        f"<h2>Sections</h2><ul>{sections}</ul></div>"
        f'<form method="post" class="card">{"".join(questions)}'
        '<button type="submit" name="action" value="submit">Submit answers</button> '
        '<button type="submit" name="action" value="leave" class="secondary" formnovalidate>'
        "Leave the test</button></form>"
    )
    return render(inv.test_name, body)


async def take_submit(request: Request) -> Response:
    state = _state(request)
    token = request.path_params["token"]
    try:
        inv = state.invitation_by_token(token)
    except ImochaStateError:
        return _unknown_link()
    closed = _closed_page(inv) or _not_open_yet(state, inv)
    if closed is not None:
        return closed
    form = await request.form()
    answers: dict[int, int] = {}
    for key, value in form.items():
        if key.startswith("q") and key[1:].isdigit() and isinstance(value, str) and value.isdigit():
            answers[int(key[1:])] = int(value)
    action = form.get("action")
    if action not in ("submit", "leave"):
        # Not the page's own form (its buttons always send an action): never finish a test on a stray POST.
        return error_page(
            400,
            "Answers not understood",
            "These answers did not come from the test page. Open your test link again and use its Submit button.",
        )
    leaving = action == "leave"
    try:
        inv = state.submit_answers(token, answers, status=TEST_LEFT if leaving else COMPLETE)
    except ImochaStateError:
        # Lost a race with another submit, a cancel or the end of the window.
        return _closed_page(state.invitation(inv.id)) or _unknown_link()
    heading = "You left the test" if leaving else "Thank you, your answers were submitted"
    redirect = f'<p><a href="{escape(inv.redirect_url)}">Continue</a></p>' if inv.redirect_url else ""
    body = (
        f'<div class="card"><h1>{escape(heading)}</h1>'
        f'<p class="muted">{escape(inv.test_name)} · {escape(inv.name)}</p>'
        f'<p class="score">{escape(score_line(inv.points, inv.total_points))}</p>'
        f"<p>Performance category: {escape(inv.category or '—')}</p>"
        f'<p><a href="{escape(inv.pdf_url(state.base_url))}">Report (PDF)</a></p>{redirect}</div>'
    )
    return render(heading, body)


# ----------------------------------------------------------------------------------------- PDF


async def report_pdf(request: Request) -> Response:
    state = _state(request)
    try:
        inv = state.invitation_by_report_token(request.path_params["token"])
    except ImochaStateError:
        return error_page(404, "Report not found", "There is no report at this address.")
    if inv.status not in FINISHED:
        return error_page(404, "No report yet", "The report is made when the candidate finishes the test.")
    from bot.sandbox.pdf import render_report_pdf

    return Response(
        render_report_pdf(inv),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="imocha-report-{inv.id}.pdf"'},
    )


# ----------------------------------------------------------------------------------------- operator

ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    # action: (button label, statuses it applies to)
    "start": ("Start", frozenset({PENDING})),
    "complete": ("Complete", frozenset({PENDING, IN_PROGRESS})),
    "leave": ("Leave", frozenset({PENDING, IN_PROGRESS})),
    "expire": ("Expire", frozenset({PENDING})),
    "cancel": ("Cancel", frozenset({PENDING})),
}


def _operator_row(state: ImochaState, inv: Invitation) -> str:
    buttons = "".join(
        f'<form method="post" action="/operator/{inv.id}/{action}">'
        f'<button class="small{" danger" if action in ("cancel", "expire") else ""}">{label}</button></form>'
        for action, (label, allowed) in ACTIONS.items()
        if inv.status in allowed
    )
    score = escape(score_line(inv.points, inv.total_points)) if inv.finished else "—"
    links = f'<a href="{escape(inv.test_url(state.base_url))}">test link</a>'
    if inv.finished:
        links += f'<br><a href="{escape(inv.pdf_url(state.base_url))}">report PDF</a>'
    lineage = f"<br><span class='muted'>after {inv.previous_invitation_id}</span>" if inv.is_reattempt else ""
    return (
        f"<tr><td>{inv.id}{lineage}</td><td>{escape(inv.test_name)}<br><span class='muted'>attempt "
        f"{inv.attempt}</span></td><td>{escape(inv.name)}<br>"
        f"<span class='muted'>{escape(inv.email)}</span></td>"
        f"<td class='nowrap'>{_badge(inv.status)}<br><span class='muted'>since {_cell_time(inv.status_changed_at)}</span></td>"
        f"<td class='nowrap'>{_cell_time(inv.start_at)} →<br>{_cell_time(inv.end_at)}</td><td class='nowrap'>{score}<br>"
        f"<span class='muted'>{escape(inv.category or '') if inv.finished else ''}</span></td>"
        f"<td class='nowrap'>{links}</td><td><div class='actions'>{buttons or '<span class=muted>—</span>'}</div></td></tr>"
    )


async def operator_page(request: Request) -> Response:
    state = _state(request)
    invitations = list(reversed(state.invitations()))
    rows = "".join(_operator_row(state, inv) for inv in invitations) or (
        '<tr><td colspan="8" class="muted">No invitations yet: invite a candidate through the API '
        "(the bot's Send button, or POST /v3/tests/{testId}/invite).</td></tr>"
    )
    tests = "".join(
        f"<tr><td>{test.test_id}</td><td>{escape(test.name)}</td><td>{test.duration} min</td>"
        f"<td>{escape(', '.join(f'{s.name} ({s.points:g})' for s in test.sections))}</td>"
        f"<td>{escape(', '.join(test.labels))}</td></tr>"
        for test in state.tests()
    )
    deliveries = (
        "".join(
            f"<tr><td class='nowrap'>{_cell_time(d.at)}</td><td>{d.payload.get('TestInvitationId')}</td>"
            f"<td>{escape(str(d.payload.get('Status')))}</td><td>{escape(d.url)}</td><td>{d.attempt}</td>"
            f"<td>{escape(str(d.status_code) if d.status_code is not None else d.error or '')}</td></tr>"
            for d in list(reversed(state.callback_deliveries))[:20]
        )
        or '<tr><td colspan="6" class="muted">No callbacks sent yet.</td></tr>'
    )
    body = (
        '<div class="card"><h1>Operator</h1><p class="muted">API base URL '
        f"<code>{escape(state.base_url)}</code> · any <code>X-API-KEY</code> starting with "
        '<code>sandbox-</code> is accepted · <a href="/">refresh</a></p></div>'
        '<div class="card"><h2>Invitations</h2><table><thead><tr><th>ID</th><th>Test</th><th>Candidate</th>'
        "<th>Status (UTC)</th><th>Window (UTC)</th><th>Score</th><th>Links</th><th>Actions</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
        '<div class="card"><h2>Tests</h2><table><thead><tr><th>ID</th><th>Name</th><th>Duration</th>'
        f"<th>Sections (points)</th><th>Labels</th></tr></thead><tbody>{tests}</tbody></table></div>"
        '<div class="card"><h2>Recent callbacks</h2><table><thead><tr><th>At (UTC)</th><th>Invitation</th>'
        "<th>Status</th><th>URL</th><th>Attempt</th><th>Answer</th></tr></thead>"
        f"<tbody>{deliveries}</tbody></table></div>"
    )
    return render("Operator", body, wide=True)


async def operator_action(request: Request) -> Response:
    state = _state(request)
    inv_id: int = request.path_params["inv_id"]
    action: str = request.path_params["action"]
    controls = {
        "start": state.start,
        "complete": state.complete,
        "leave": state.leave,
        "expire": state.expire,
        "cancel": state.cancel,
    }
    if action not in controls:
        return error_page(404, "Unknown action", f"There is no action called {action!r}.")
    try:
        controls[action](inv_id)
    except ImochaStateError as exc:
        status = 404 if exc.status_code == 404 else 409
        return render(
            "Action refused",
            f'<div class="card"><h1>Action refused</h1><p>{escape(exc.message)}</p><p><a href="/">Back to the operator page</a></p></div>',
            status=status,
        )
    return RedirectResponse("/", status_code=303)


def page_routes() -> list[Route]:
    return [
        Route("/", operator_page, methods=["GET"]),
        Route("/operator/{inv_id:int}/{action}", operator_action, methods=["POST"]),
        Route("/take/{token}", take_page, methods=["GET"]),
        Route("/take/{token}", take_submit, methods=["POST"]),
        Route("/reports/{token}.pdf", report_pdf, methods=["GET"]),
    ]
