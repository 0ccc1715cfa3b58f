"""The sandbox's iMocha v3 HTTP API (and the candidate/operator pages) as one Starlette app."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot.sandbox.state import (
    ATTEMPT_STATES,
    ATTEMPTS_SPELLING,
    FINISHED,
    REPORT_SPELLING,
    Call,
    ForeignInvitations,
    ImochaState,
    ImochaStateError,
    InvalidRequest,
    Invitation,
    json_number,
    parse_utc,
)

ACCESS_DENIED = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
BAD_DATES = "Date & time is not invalid or incorrect format"  # sic, as documented (§8.2)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_PAGE_SIZE = 100
MAX_PROCESS_IDS = 100

Body = dict[str, Any]
Handler = Callable[[Request, ImochaState, Body], Awaitable[Response]]


class DroppedConnection(Exception):
    """Raised after a partial response so uvicorn closes the socket (fault injection)."""


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


class _DropResponse(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"testInvitationId":', "more_body": True})
        raise DroppedConnection()


def _errors(*messages: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": list(messages)}, status)


def _result_errors(*messages: str) -> JSONResponse:
    # Retrieve Invites and Process Callbacks answer even validation problems with 401 (§2, §8).
    return JSONResponse({"result": None, "errors": list(messages)}, 401)


def _status_message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status)


def _state(request: Request) -> ImochaState:
    state: ImochaState = request.app.state.imocha
    return state


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an API handler: log the call, add latency, inject faults, check the key, parse JSON."""

    async def endpoint(request: Request) -> Response:
        state = _state(request)
        raw = await request.body()
        body: Any = None
        json_error: str | None = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                json_error = f"The request body is not valid JSON: {exc}."
        api_key = request.headers.get("x-api-key")
        state.record_call(Call(request.method, request.url.path, dict(request.query_params), body, api_key))
        if state.latency:
            await asyncio.sleep(state.latency)
        fault = state.take_fault(request.url.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                return _DropResponse()
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return JSONResponse(fault.response_body(), fault.status, headers=headers)
        if not state.is_valid_key(api_key):
            return _status_message(401, ACCESS_DENIED)
        if json_error:
            return _errors(json_error)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return _errors("The request body must be a JSON object.")
        # Field binding on iMocha's side is case-insensitive (callbackUrl / callbackURL / CallbackUrl).
        return await handler(request, state, {str(key).lower(): value for key, value in body.items()})

    return endpoint


def _int_param(request: Request, name: str) -> int:
    value: int = request.path_params[name]
    return value


# ----------------------------------------------------------------------------------------- tests


async def list_tests(request: Request, state: ImochaState, body: Body) -> Response:
    try:
        page_no = int(request.query_params.get("pageNo") or 0) or 1
        page_size = int(request.query_params.get("pageSize") or 0) or MAX_PAGE_SIZE
    except ValueError:
        return _errors("'pageNo' and 'pageSize' must be whole numbers.")
    if page_no < 1 or page_size < 1:
        return _errors("'pageNo' and 'pageSize' must be greater than 0.")
    page_size = min(page_size, MAX_PAGE_SIZE)
    tests = state.tests()
    label = (request.query_params.get("labelsFilter") or "").strip().lower()
    if label:
        tests = [test for test in tests if label in (item.lower() for item in test.labels)]
    page = tests[(page_no - 1) * page_size : page_no * page_size]
    return JSONResponse(
        {
            "tests": [
                {
                    "testId": test.test_id,
                    "testName": test.name,
                    "status": test.status,
                    "duration": test.duration,
                    "labels": test.labels,
                }
                for test in page
            ],
            "count": len(tests),
        }
    )


async def get_test(request: Request, state: ImochaState, body: Body) -> Response:
    try:
        test = state.test(_int_param(request, "test_id"))
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    per_section = [0] * len(test.sections)
    for question in test.questions:
        per_section[question.section] += 1
    return JSONResponse(
        {
            "testId": test.test_id,
            "testName": test.name,
            "status": test.status,
            "duration": test.duration,
            "questions": len(test.questions),
            "labels": test.labels,
            "sections": [
                {
                    "sectionId": section.section_id,
                    "sectionName": section.name,
                    "sectionType": "MCQ",
                    "questions": per_section[index],
                    "duration": section.duration,
                    "sectionScore": json_number(section.points),
                }
                for index, section in enumerate(test.sections)
            ],
        }
    )


async def list_test_links(request: Request, state: ImochaState, body: Body) -> Response:
    try:
        test = state.test(_int_param(request, "test_id"))
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    return JSONResponse(
        {
            "testLinks": [
                {
                    "testLinkId": link.test_link_id,
                    "testId": link.test_id,
                    "testLinkName": link.name,
                    "testLink": link.key,
                    "testLinkStatus": "active",
                    "invitationType": "email",
                    "isApiLink": link.is_api_link,
                    "proctoringSettings": {"proctoringMode": "disabled"},
                    "stakeholderEmails": "",
                    "invitationSchedule": {
                        "scheduleType": "validityindays",
                        "scheduleDetails": {"invitationValidityInDays": 7, "timeZoneId": 200},
                    },
                }
                for link in test.links
            ]
        }
    )


# ----------------------------------------------------------------------------------------- invitations


def _text(body: Body, *names: str) -> str | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, str):
            return value
        if value is not None:
            return str(value)
    return None


def _window(body: Body, start_key: str, end_key: str) -> tuple[datetime | None, datetime | None, list[str]]:
    errors: list[str] = []
    moments: list[datetime | None] = []
    for key, label in ((start_key, "StartDateTime"), (end_key, "EndDateTime")):
        value = body.get(key)
        if value in (None, ""):
            moments.append(None)
            continue
        try:
            moments.append(parse_utc(value))
        except ValueError:
            errors.append(f"'{label}' must be a UTC date and time such as 2020-06-11T16:00:00Z.")
            moments.append(None)
    return moments[0], moments[1], errors


def _send_email(body: Body, errors: list[str]) -> bool:
    value = body.get("sendemail")
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    errors.append("'sendEmail' must be 'yes' or 'no'.")
    return False


def _time_zone(body: Body, errors: list[str]) -> int | None:
    value = body.get("timezoneid")
    if value in (None, "", 0):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        errors.append("'TimeZoneId' must be a number.")
        return None


async def invite(request: Request, state: ImochaState, body: Body) -> Response:
    test_id = _int_param(request, "test_id")
    link_id: int | None = request.path_params.get("link_id")
    try:
        state.test(test_id)
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    errors: list[str] = []
    email = (_text(body, "email", "emailid") or "").strip()
    name = (_text(body, "name", "fullname") or "").strip()
    generated = bool(body.get("disablemandatoryfields"))
    if not email:
        if generated:
            email = f"candidate-{secrets.token_hex(4)}@sandbox.invalid"
        else:
            errors.append("'Email' must not be empty.")
    elif not EMAIL.match(email):
        errors.append("'Email' is not a valid email address.")
    if not name:
        if generated:
            name = "Anonymous candidate"
        else:
            errors.append("'Name' must not be empty.")
    send_email = _send_email(body, errors)
    time_zone_id = _time_zone(body, errors)
    start: datetime | None = None
    end: datetime | None = None
    if link_id is None:
        # A test-link invite takes its schedule from the link (§5.2); only the default link takes dates.
        start, end, date_errors = _window(body, "startdatetime", "enddatetime")
        errors.extend(date_errors)
    if errors:
        return _errors(*errors)
    try:
        inv, _created = state.invite(
            test_id,
            email=email,
            name=name,
            callback_url=_text(body, "callbackurl") or None,
            redirect_url=_text(body, "redirecturl") or None,
            start=start,
            end=end,
            send_email=send_email,
            time_zone_id=time_zone_id,
            test_link_id=link_id,
        )
    except InvalidRequest as exc:
        return _errors(exc.message)
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    return JSONResponse({"testInvitationId": inv.id, "testUrl": inv.test_url(state.base_url), "status": inv.status}, 201)


async def reattempt(request: Request, state: ImochaState, body: Body) -> Response:
    errors: list[str] = []
    start, end, date_errors = _window(body, "startdatetime", "enddatetime")
    errors.extend(date_errors)
    send_email = _send_email(body, errors)
    time_zone_id = _time_zone(body, errors)
    if errors:
        return _errors(*errors)
    try:
        inv = state.reattempt(
            _int_param(request, "inv_id"),
            start=start,
            end=end,
            callback_url=_text(body, "callbackurl") or None,
            redirect_url=_text(body, "redirecturl") or None,
            send_email=send_email,
            time_zone_id=time_zone_id,
        )
    except InvalidRequest as exc:
        return _errors(exc.message)
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    return JSONResponse(
        {
            "testInvitationId": inv.id,
            "testUrl": inv.test_url(state.base_url),
            "callbackUrlRegistered": inv.callback_url,
            "redirectUrlRegistered": inv.redirect_url,
        }
    )


async def cancel(request: Request, state: ImochaState, body: Body) -> Response:
    try:
        inv = state.cancel(_int_param(request, "inv_id"))
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    return JSONResponse({"testInvitationId": inv.id, "status": "cancelled"})


# ----------------------------------------------------------------------------------------- reports


def _attempted_on(inv: Invitation) -> str | None:
    if inv.attempted_at is None:
        return None
    return inv.attempted_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{inv.attempted_at.microsecond // 1000:03d}Z"


def report_json(inv: Invitation, base_url: str, report_type: int = 1) -> dict[str, Any]:
    """The §7.1 report, with the camelCase keys live responses use."""
    finished = inv.status in FINISHED
    report: dict[str, Any] = {
        "testInvitationId": inv.id,
        "testId": inv.test_id,
        "candidateEmail": inv.email,
        "candidateName": inv.name,
        "attemptedOn": _attempted_on(inv),
        "status": REPORT_SPELLING[inv.status],
        "score": json_number(inv.points) if finished else 0,
        "scorePercentage": inv.percent if finished else 0,
        "candidatePoints": json_number(inv.points) if finished else 0,
        "totalTestPoints": json_number(inv.total_points),
        "testName": inv.test_name,
        "pdfReportUrl": inv.pdf_url(base_url) if finished else None,
        "performanceCategory": inv.category if finished else None,
        "timeTaken": inv.time_taken if finished else 0,
        "testDuration": sum(section.duration for section in inv.sections),
    }
    if report_type in (1, 3):
        report["sections"] = [
            {
                "sectionId": section.section_id,
                "sectionName": section.name,
                "candidateScore": json_number(section.score) if finished else 0,
                "sectionScore": json_number(section.points),
                "noOfQue": section.questions,
                "sectionTime": section.duration,
                "sectionTimeTaken": section.time_taken if finished else 0,
            }
            for section in inv.sections
        ]
    if report_type in (2, 3):
        # The skill array's name is not documented; one skill per section, 3rd-party field names.
        report["skills"] = [
            {
                "qbId": section.section_id,
                "qbName": section.name,
                "candidateQbScore": json_number(section.score) if finished else 0,
                "qbScore": json_number(section.points),
                "noOfQue": section.questions,
                "sectionId": section.section_id,
                "sectionName": section.name,
            }
            for section in inv.sections
        ]
    return report


async def get_report(request: Request, state: ImochaState, body: Body) -> Response:
    raw_type = request.query_params.get("reportType") or "1"
    if raw_type not in ("1", "2", "3"):
        return _errors("'reportType' must be 1, 2 or 3.")
    try:
        inv = state.invitation(_int_param(request, "inv_id"))
    except ImochaStateError as exc:
        return _status_message(exc.status_code, exc.message)
    return JSONResponse(report_json(inv, state.base_url, int(raw_type)))


# ----------------------------------------------------------------------------------------- callback API


async def test_attempts(request: Request, state: ImochaState, body: Body) -> Response:
    wanted = (request.query_params.get("state") or "completed").strip().lower()
    if wanted not in ATTEMPT_STATES:
        return _result_errors(f"Invalid state '{wanted}'. Allowed values are completed, cancelled, expired.")
    try:
        start = parse_utc(body.get("startdatetime"))
        end = parse_utc(body.get("enddatetime"))
    except ValueError:
        return _result_errors(BAD_DATES)
    if end < start:
        return _result_errors(BAD_DATES)
    attempts = [
        {
            "testInvitationId": inv.id,
            "testId": inv.test_id,
            "name": inv.name,
            "email": inv.email,
            "invitationtype": "api",
            "testStatus": ATTEMPTS_SPELLING[inv.status],
        }
        for inv in state.attempts_between(wanted, start, end)
    ]
    return JSONResponse({"result": {"testAttempts": attempts}, "errors": None})


async def process_callbacks(request: Request, state: ImochaState, body: Body) -> Response:
    ids = body.get("testinvitationids")
    if not isinstance(ids, list) or not ids:
        return _result_errors("testinvitationIds is required")
    if len(ids) > MAX_PROCESS_IDS:
        return _result_errors(f"At most {MAX_PROCESS_IDS} testinvitationIds can be processed per request.")
    parsed: list[int] = []
    foreign: list[str] = []
    for value in ids:
        if isinstance(value, bool):
            foreign.append(str(value))
            continue
        try:
            parsed.append(int(value))
        except (TypeError, ValueError):
            foreign.append(str(value))
    if foreign:
        return _result_errors("testinvitationIds does not belong to account or not found", *foreign)
    try:
        successful, failed = state.process_callbacks(parsed)
    except ForeignInvitations as exc:
        return _result_errors(exc.message, *(str(inv_id) for inv_id in exc.unknown))
    return JSONResponse({"result": {"testinvitationIds": {"successful": successful, "failed": failed}}, "errors": None})


# ----------------------------------------------------------------------------------------- the app


def api_routes() -> list[Route]:
    return [
        Route("/v3/tests", api(list_tests), methods=["GET"]),
        Route("/v3/tests/{test_id:int}", api(get_test), methods=["GET"]),
        Route("/v3/tests/{test_id:int}/testlinks", api(list_test_links), methods=["GET"]),
        Route("/v3/tests/{test_id:int}/invite", api(invite), methods=["POST"]),
        Route("/v3/tests/{test_id:int}/testlinks/{link_id:int}/invite", api(invite), methods=["POST"]),
        Route("/v3/invitations/{inv_id:int}/reattempt", api(reattempt), methods=["POST"]),
        Route("/v3/invitations/{inv_id:int}/cancel", api(cancel), methods=["POST"]),
        Route("/v3/reports/{inv_id:int}", api(get_report), methods=["GET"]),
        Route("/v3/candidates/testattempts", api(test_attempts), methods=["POST"]),
        Route("/v3/callbacks/process", api(process_callbacks), methods=["POST"]),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "Resource not found" if exc.status_code == 404 else exc.detail
    if request.url.path.startswith("/v3"):
        return _status_message(exc.status_code, message)
    from bot.sandbox.pages import error_page

    return error_page(exc.status_code, message, exc.detail)


def create_app(state: ImochaState) -> Starlette:
    """The whole sandbox: `/v3` API, candidate pages, operator page and PDF reports over one state.

    The state lives on `app.state.imocha`; replacing it there swaps the account under a running server.
    """
    from bot.sandbox.pages import page_routes

    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_DropFilter())
    app = Starlette(routes=[*api_routes(), *page_routes()], exception_handlers={HTTPException: _http_error})
    app.state.imocha = state
    return app
