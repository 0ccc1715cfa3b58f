"""The payload iMocha POSTs to an invitation's callbackUrl (reference §6), parsed."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bot.imocha.errors import lookup
from bot.imocha.fields import AnyStatus, Body, Id, OptFloat, OptStr, OptTime, names
from bot.imocha.status import Status
from bot.imocha.values import Callback
from bot.vendors.parsing import load


class CallbackBody(Body):
    """PascalCase, as iMocha sends it; extra keys (e.g. BaseImgUrl) are ignored."""

    what = "callback payload"

    invitation_id: Id = Field(validation_alias=names("TestInvitationId"))
    status: AnyStatus = Field(Status.UNKNOWN, validation_alias=names("Status"))
    email: OptStr = Field(None, validation_alias=names("CandidateEmailId"))
    candidate_score: OptFloat = Field(None, validation_alias=names("CandidateScore"))
    total_score: OptFloat = Field(None, validation_alias=names("TotalScore"))
    pdf_url: OptStr = Field(None, validation_alias=names("ReportPDFUrl"))
    performance_category: OptStr = Field(None, validation_alias=names("PerformanceCategory"))
    attempted_on_utc: OptTime = Field(None, validation_alias=names("AttemptedOnUtc"))

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if lookup(data, "TestInvitationId") is None:
            raise ValueError("callback payload has no TestInvitationId")


def parse_callback(data: object) -> Callback:
    """Parse the JSON object iMocha POSTs to a callbackUrl (reference §6).

    Extra keys and nulls are tolerated; raises ValueError when `data` is not an object or has no
    integer TestInvitationId.
    """
    body = load(CallbackBody, data)
    return Callback(
        invitation_id=body.invitation_id,
        status=body.status,
        email=body.email,
        candidate_score=body.candidate_score,
        total_score=body.total_score,
        pdf_url=body.pdf_url,
        performance_category=body.performance_category,
        attempted_on_utc=body.attempted_on_utc,
    )
