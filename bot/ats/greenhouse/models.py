"""The values the Harvest client returns, and the pydantic models that read them from Harvest's JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AliasChoices, Field, PlainValidator, model_validator

from bot.ats.greenhouse.errors import HarvestProtocolError
from bot.vendors.http import error_text as vendor_error_text
from bot.vendors.parsing import VendorBody, load


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


# Harvest's items as pydantic models: each declares the fields read and how (extra fields are ignored).
# Ids go through int() as they always have (a number or its text); a missing or unusable one fails, as
# does an item that is not an object. The other fields take what Harvest sends.


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"must be an integer, got {type(value).__name__}") from None


def _ref_id(value: object) -> int | None:
    """An id, or an `{"id": ...}` object's; null, "" and booleans are none."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    if isinstance(value, dict):
        return _ref_id(value.get("id"))
    return int(str(value))


def _type_name(value: object) -> str | None:
    """A rejection reason's type: `{id, name}` (its name) or a bare name."""
    name = value.get("name") if isinstance(value, dict) else value
    return str(name) if name else None


Int = Annotated[int, PlainValidator(_int)]
RefId = Annotated[int | None, PlainValidator(_ref_id)]
Text = Annotated[str, PlainValidator(lambda value: str(value or ""))]
OptText = Annotated[str | None, PlainValidator(lambda value: str(value) if value else None)]  # falsy is none
Lower = Annotated[str | None, PlainValidator(lambda value: value.lower() if isinstance(value, str) else None)]
IsTrue = Annotated[bool, PlainValidator(lambda value: value is True)]


class _Item(VendorBody):
    """One JSON object in a Harvest list; `what` names it in errors."""

    what = "item"
    not_an_object = "expected an object, got {kind}"


class UserItem(_Item):
    what = "user"

    id: Int
    primary_email: OptText = None
    primary_email_address: OptText = None
    name: OptText = None
    first_name: OptText = None
    last_name: OptText = None
    deactivated: IsTrue = False
    disabled: IsTrue = False

    def value(self) -> HarvestUser:
        name = self.name or " ".join(part for part in (self.first_name, self.last_name) if part)
        email = self.primary_email or self.primary_email_address
        return HarvestUser(id=self.id, email=email, name=name, deactivated=self.deactivated or self.disabled)


class UserEmailItem(_Item):
    what = "user email"

    user_id: Int
    email: Text = ""


class ApplicationItem(_Item):
    what = "application"

    id: Int
    status: Lower = None
    stage: RefId = Field(None, validation_alias=AliasChoices("current_stage_id", "current_stage"))  # the first one sent
    job_id: RefId = None

    @model_validator(mode="before")
    @classmethod
    def _first_job(cls, data: Any) -> Any:
        """Without a `job_id`, the first of `jobs` (an id or an `{id}` object)."""
        if isinstance(data, dict) and data.get("job_id") is None and isinstance(data.get("jobs"), list) and data["jobs"]:
            return {**data, "job_id": data["jobs"][0]}
        return data

    def value(self) -> HarvestApplication:
        return HarvestApplication(id=self.id, status=self.status, current_stage_id=self.stage, job_id=self.job_id)


class ReasonItem(_Item):
    what = "rejection reason"

    id: Int
    name: Text = ""
    type: Annotated[str | None, PlainValidator(_type_name)] = None

    def value(self) -> RejectionReason:
        return RejectionReason(id=self.id, name=self.name, type=self.type)


def parse_user(value: object) -> HarvestUser:
    return load(UserItem, value).value()


def parse_user_email(value: object) -> dict[str, Any]:
    item = load(UserEmailItem, value)
    return {"user_id": item.user_id, "email": item.email}


def parse_application(value: object) -> HarvestApplication:
    return load(ApplicationItem, value).value()


def parse_reason(value: object) -> RejectionReason:
    return load(ReasonItem, value).value()


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
