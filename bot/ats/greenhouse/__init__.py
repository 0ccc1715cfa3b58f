"""Greenhouse Harvest API v3: the client decisions are written back with (bot/ats/writeback/).

Owns the Harvest client on the shared vendor request path (`client`: users by email, applications,
move / reject / unreject, and what a Harvest status means), the OAuth client-credentials tokens per
acting user, `sub=` (`tokens`), the values and JSON readers (`models`) and the Harvest error classes on
the vendor error tree (`errors`); the notes on what Harvest v3 does are in `client`'s docstring. May
import the standard library, httpx and `bot.vendors`; nothing else of ours, so the write-back, setup
and the workspace registry can all use it without an import cycle. Every public name is re-exported
here: `from bot import greenhouse; greenhouse.HarvestClient` and `from bot.ats.greenhouse import
HarvestClient` both work.
"""

from bot.ats.greenhouse.client import AUTH_URL, DEFAULT_RETRY, HARVEST_URL, HarvestClient, HarvestClients
from bot.ats.greenhouse.errors import (
    HarvestActingUserError,
    HarvestAuthError,
    HarvestConnectionError,
    HarvestError,
    HarvestForbiddenError,
    HarvestNotFoundError,
    HarvestProtocolError,
    HarvestRateLimitError,
    HarvestServerError,
    HarvestStatusError,
    HarvestValidationError,
)
from bot.ats.greenhouse.models import HarvestApplication, HarvestCredentials, HarvestUser, RejectionReason, gh_id
from bot.ats.greenhouse.tokens import DEFAULT_TOKEN_LIFE, TOKEN_MARGIN, HarvestTokens, TokenCache

__all__ = [
    "AUTH_URL",
    "DEFAULT_RETRY",
    "DEFAULT_TOKEN_LIFE",
    "HARVEST_URL",
    "TOKEN_MARGIN",
    "HarvestActingUserError",
    "HarvestApplication",
    "HarvestAuthError",
    "HarvestClient",
    "HarvestClients",
    "HarvestConnectionError",
    "HarvestCredentials",
    "HarvestError",
    "HarvestForbiddenError",
    "HarvestNotFoundError",
    "HarvestProtocolError",
    "HarvestRateLimitError",
    "HarvestServerError",
    "HarvestStatusError",
    "HarvestTokens",
    "HarvestUser",
    "HarvestValidationError",
    "RejectionReason",
    "TokenCache",
    "gh_id",
]
