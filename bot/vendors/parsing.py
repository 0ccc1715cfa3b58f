"""Lenient readers for what the vendors' JSON says, shared by their body parsers."""

from __future__ import annotations

from datetime import UTC, datetime


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
