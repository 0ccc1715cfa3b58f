"""The payload iMocha POSTs to an invitation's callbackUrl (reference §6), parsed."""

from __future__ import annotations

from bot.imocha.errors import lookup
from bot.imocha.models import _int, _opt_datetime, _opt_float, _opt_str
from bot.imocha.status import normalize_status
from bot.imocha.values import Callback


def parse_callback(data: object) -> Callback:
    """Parse the PascalCase JSON object iMocha POSTs to a callbackUrl (reference §6).

    Extra keys (e.g. BaseImgUrl) and nulls are tolerated; raises ValueError when `data` is not an
    object or has no integer TestInvitationId.
    """
    if not isinstance(data, dict):
        raise ValueError(f"callback payload must be a JSON object, got {type(data).__name__}")
    raw_id = lookup(data, "TestInvitationId")
    if raw_id is None:
        raise ValueError("callback payload has no TestInvitationId")
    return Callback(
        invitation_id=_int(raw_id, "callback TestInvitationId"),
        status=normalize_status(lookup(data, "Status")),
        email=_opt_str(lookup(data, "CandidateEmailId")),
        candidate_score=_opt_float(lookup(data, "CandidateScore")),
        total_score=_opt_float(lookup(data, "TotalScore")),
        pdf_url=_opt_str(lookup(data, "ReportPDFUrl")),
        performance_category=_opt_str(lookup(data, "PerformanceCategory")),
        attempted_on_utc=_opt_datetime(lookup(data, "AttemptedOnUtc")),
    )
