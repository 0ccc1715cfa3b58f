"""Gem ATS: the API client, the polling that turns Gem's applications into cards, and the notes written back.

client.py is the Gem API (pydantic bodies, errors, pacing per key) and what `from bot.ats import gem`
gives; poller.py is the scheduled poll (one replica at a time) over intake.py (which application at
which stage becomes a card), stages.py (stage snapshots), directory.py (jobs and users, cached per
workspace) and notes.py (the score note queue). Decisions written back as Gem notes are
bot/ats/writeback/gem.py.
"""

from __future__ import annotations

from bot.ats.gem.client import (
    NOTE_MAX_CHARS,
    Application,
    Candidate,
    EmailAddress,
    GemAuthError,
    GemBadRequestError,
    GemClient,
    GemClients,
    GemConnectionError,
    GemError,
    GemNotFoundError,
    GemProtocolError,
    GemRateLimitError,
    GemServerError,
    GemStatusError,
    Job,
    JobStage,
    Note,
    RateLimiter,
    Ref,
    RetryPolicy,
    User,
    iso_utc,
    key_fingerprint,
)

__all__ = [
    "NOTE_MAX_CHARS",
    "Application",
    "Candidate",
    "EmailAddress",
    "GemAuthError",
    "GemBadRequestError",
    "GemClient",
    "GemClients",
    "GemConnectionError",
    "GemError",
    "GemNotFoundError",
    "GemProtocolError",
    "GemRateLimitError",
    "GemServerError",
    "GemStatusError",
    "Job",
    "JobStage",
    "Note",
    "RateLimiter",
    "Ref",
    "RetryPolicy",
    "User",
    "iso_utc",
    "key_fingerprint",
]
