"""The values the Harvest client returns, and the readers that make them from Harvest's JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.ats.greenhouse.errors import HarvestProtocolError
from bot.vendors.http import error_text as vendor_error_text


@dataclass(frozen=True)
class HarvestCredentials:
    """A Harvest v3 OAuth credential (client credentials flow); `repr` never shows the secret."""

    client_id: str
    client_secret: str = field(repr=False)

    def to_json(self) -> str:
        return json.dumps({"client_id": self.client_id, "client_secret": self.client_secret})

    @classmethod
    def from_json(cls, raw: str) -> HarvestCredentials:
        data = json.loads(raw)
        return cls(str(data["client_id"]), str(data["client_secret"]))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.client_id}\0{self.client_secret}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HarvestUser:
    id: int
    email: str | None
    name: str
    deactivated: bool = False


@dataclass(frozen=True)
class HarvestApplication:
    id: int
    status: str | None  # active | rejected | hired | converted …
    current_stage_id: int | None
    job_id: int | None


@dataclass(frozen=True)
class RejectionReason:
    id: int
    name: str
    type: str | None  # "We rejected them", "They rejected us", …


def gh_id(value: object, what: str) -> int:
    """A Greenhouse id (a positive integer, also as text, as the webhook and the database keep it)."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) <= 0:
        raise HarvestProtocolError(f"{value!r} is not a Greenhouse {what} id")
    return int(text)


def list_of(parse: Callable[[Any], Any]) -> Callable[[object], list[Any]]:
    """A reader of a Harvest list (a bare JSON array) whose items `parse` reads."""

    def read(data: object) -> list[Any]:
        if not isinstance(data, list):
            raise HarvestProtocolError(f"a Harvest list must be a JSON array, got {type(data).__name__}")
        try:
            return [parse(item) for item in data]
        except (ValueError, TypeError, KeyError) as exc:
            raise HarvestProtocolError(f"unexpected item in a Harvest list: {exc}") from exc

    return read


def _obj(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    if isinstance(value, dict):
        return _opt_int(value.get("id"))
    return int(str(value))


def parse_user(value: object) -> HarvestUser:
    item = _obj(value)
    email = item.get("primary_email") or item.get("primary_email_address")
    name = item.get("name") or " ".join(str(p) for p in (item.get("first_name"), item.get("last_name")) if p)
    deactivated = item.get("deactivated") is True or item.get("disabled") is True
    return HarvestUser(id=int(item["id"]), email=str(email) if email else None, name=str(name or ""), deactivated=deactivated)


def parse_user_email(value: object) -> dict[str, Any]:
    item = _obj(value)
    return {"user_id": int(item["user_id"]), "email": str(item.get("email") or "")}


def parse_application(value: object) -> HarvestApplication:
    item = _obj(value)
    stage = item.get("current_stage_id", item.get("current_stage"))
    job = item.get("job_id")
    if job is None and isinstance(item.get("jobs"), list) and item["jobs"]:
        job = item["jobs"][0]
    status = item.get("status")
    return HarvestApplication(
        id=int(item["id"]),
        status=str(status).lower() if isinstance(status, str) else None,
        current_stage_id=_opt_int(stage),
        job_id=_opt_int(job),
    )


def parse_reason(value: object) -> RejectionReason:
    item = _obj(value)
    kind = item.get("type")
    if isinstance(kind, dict):
        kind = kind.get("name")
    return RejectionReason(id=int(item["id"]), name=str(item.get("name") or ""), type=str(kind) if kind else None)


def error_text(body: object) -> str | None:
    """Harvest's `{"message", "errors": [{"message", "field"}]}`, or OAuth's `{"error", "error_description"}`, as one line."""
    if not isinstance(body, dict):
        return vendor_error_text(body)  # plain text, or nothing
    parts: list[str] = []
    for key in ("message", "error_description", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
            if key != "error_description":
                break
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and item.get("message"):
                parts.append(f"{item['field']}: {item['message']}" if item.get("field") else str(item["message"]))
            elif isinstance(item, str):
                parts.append(item)
    return "; ".join(parts)[:500] or None


__all__ = [
    "HarvestApplication",
    "HarvestCredentials",
    "HarvestUser",
    "RejectionReason",
    "error_text",
    "gh_id",
    "list_of",
    "parse_application",
    "parse_reason",
    "parse_user",
    "parse_user_email",
]
