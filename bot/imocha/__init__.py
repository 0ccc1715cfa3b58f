"""iMocha: the v3 API client, its values, errors and status vocabulary, and the callback parser.

Owns everything the bot knows about iMocha's wire format: the endpoints (`client`), their bodies as
pydantic models (`models`, on the base in `fields`), the values they become (`values`), the error
tree (`errors`), the status spellings (`status`) and the unauthenticated callback's payload
(`callbacks`). May import the standard library, httpx, pydantic and `bot.vendors` (the shared HTTP
base); nothing of the services, `handlers/` or `store/`. Import the public names from here
(`from bot.imocha import ImochaClient`): the modules behind them may move.
"""

from bot.imocha.callbacks import parse_callback
from bot.imocha.client import ImochaClient
from bot.imocha.errors import (
    AuthError,
    BadRequestError,
    ImochaConnectionError,
    ImochaError,
    ImochaProtocolError,
    ImochaStatusError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from bot.imocha.status import AttemptState, Status, normalize_status
from bot.imocha.values import (
    Attempt,
    Callback,
    CallbackReplay,
    Cancelled,
    Invitation,
    Report,
    SectionScore,
    Test,
    TestDetail,
    TestSection,
)
from bot.vendors.http import RetryPolicy, retry_after_seconds

__all__ = [
    "Attempt",
    "AttemptState",
    "AuthError",
    "BadRequestError",
    "Callback",
    "CallbackReplay",
    "Cancelled",
    "ImochaClient",
    "ImochaConnectionError",
    "ImochaError",
    "ImochaProtocolError",
    "ImochaStatusError",
    "Invitation",
    "NotFoundError",
    "RateLimitError",
    "Report",
    "RetryPolicy",
    "SectionScore",
    "ServerError",
    "Status",
    "Test",
    "TestDetail",
    "TestSection",
    "normalize_status",
    "parse_callback",
    "retry_after_seconds",
]
