"""The pydantic base of iMocha's bodies: case-blind field names, lenient scalars, and clear errors.

iMocha's docs and live responses disagree on casing (`Status` vs `status`, `callbackURL` vs
`callbackUrl`), send ids as numbers or strings, and leave fields null or out. Every body model
derives from `Body`: its aliases list the spellings a field is read from (the first non-null one
wins, exact names before case-blind ones), and its scalar types take what iMocha sends and turn
anything unusable into None rather than an error. Only a missing or malformed required field (an
id, a test URL) fails, and `load` words that failure as one line.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BeforeValidator, PlainValidator

from bot.imocha.errors import lookup
from bot.imocha.status import Status, normalize_status
from bot.vendors.parsing import (
    VendorBody,
    opt_datetime,  # iMocha's naive timestamps (e.g. AttemptedOnUtc) are UTC
)

_INTEGER = re.compile(r"-?[0-9]+")


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())  # ids are Integer64, but the report documents testId as a String
    return None


def integer(value: object) -> int:
    result = opt_int(value)
    if result is None:
        raise ValueError(f"must be an integer, got {short(value)}")
    return result


def opt_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def opt_str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def text(value: object) -> str:
    result = opt_str(value)
    if result is None:
        raise ValueError(f"must be a non-empty string, got {short(value)}")
    return result


def array(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a JSON array, got {type(value).__name__}")
    return value


def opt_integer(value: object) -> int | None:
    return None if value is None else integer(value)


Id = Annotated[int, PlainValidator(integer)]
OptId = Annotated[int | None, PlainValidator(opt_integer)]  # absent is fine, junk is not
OptInt = Annotated[int | None, PlainValidator(opt_int)]
OptFloat = Annotated[float | None, PlainValidator(opt_float)]
OptStr = Annotated[str | None, PlainValidator(opt_str)]
Text = Annotated[str, PlainValidator(text)]
OptTime = Annotated[datetime | None, PlainValidator(opt_datetime)]
AnyStatus = Annotated[Status, PlainValidator(normalize_status)]  # any spelling; UNKNOWN when unrecognised
_Item = TypeVar("_Item")
Array = Annotated[list[_Item], BeforeValidator(array)]


def names(*spellings: str) -> AliasChoices:
    """The spellings a field is read from, in order of preference."""
    return AliasChoices(*spellings)


class Body(VendorBody):
    """One JSON object of iMocha's; `what` names it in errors. Its fields are read from the first of
    their spellings that iMocha sent (`names(...)`)."""

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> Any:
        cls.check(data)
        picked: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            spellings = [str(s) for s in alias.choices] if isinstance(alias, AliasChoices) else [alias if isinstance(alias, str) else name]
            value = lookup(data, *spellings)
            if value is not None:
                picked[spellings[0]] = value
        return picked

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        """Refuse a body by what it holds as sent (before spellings are picked); ValueError to refuse."""
