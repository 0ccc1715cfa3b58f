"""Reading the vendors' JSON, shared by the iMocha, Gem and Greenhouse clients: lenient readers of
single values, one pydantic base for their bodies, and one `load` that turns a validation failure into
a one-line ValueError naming the first problems.

Each client declares its own models on `VendorBody` (bot/imocha/fields.py and models.py,
bot/ats/gem/client.py, bot/ats/greenhouse/models.py) and maps the ValueError to its own protocol error.
Fields a vendor sends and a model leaves out are ignored, so a vendor adding fields breaks nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


def opt_datetime(value: object) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; a naive timestamp is taken as UTC; anything else is None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class VendorBody(BaseModel):
    """One JSON object of a vendor's; `what` names it in errors."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    what: ClassVar[str] = "body"
    not_an_object: ClassVar[str] = "{what} must be a JSON object, got {kind}"

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(cls.not_an_object.format(what=cls.what, kind=type(data).__name__))
        return cls.prepare(data)

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> Any:
        """What the fields are validated from (a model may refuse the body here, or pick its spellings)."""
        return data


_B = TypeVar("_B", bound=VendorBody)


def load(model: type[_B], data: object) -> _B:
    """Validate `data` as `model`; a ValueError naming the first problems when it does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{model.what} {where}: {message}" if where else message)
        raise ValueError("; ".join(problems)) from None


__all__ = ["VendorBody", "load", "opt_datetime"]
