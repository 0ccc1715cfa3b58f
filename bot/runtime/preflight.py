"""Start-up checks of the database and Slack, each failure worded as one line that names the setting to fix."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.error import URLError

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.runtime.config import ConfigError, Settings

# Slack answers auth.test in well under a second; a start-up that hangs for slack_sdk's 30 s (twice,
# with its retry) looks like a hung process.
STARTUP_TIMEOUT = 10.0

# slack_sdk logs every failed request at ERROR before raising it; the one line below says it better.
_quiet = logging.getLogger("bot.runtime.preflight.slack_sdk")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

# Errors Slack gives for a token it does not accept (as opposed to a URL that is not Slack's API).
_REFUSED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}


def network_reason(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words: refused, DNS, TLS, timeout."""
    reason: object = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted: {reason.verify_message}"
    if isinstance(reason, ssl.SSLError):
        return f"the TLS handshake failed: {reason.reason or reason}"
    if isinstance(reason, TimeoutError):
        return f"no answer within {STARTUP_TIMEOUT:.0f} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, http.client.HTTPException):
        return f"the answer is not HTTP ({reason.__class__.__name__})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)[:160]


def slack_unreachable(settings: Settings, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"SLACK_API_URL: Slack's Web API at {settings.slack_api_url} cannot be reached ({network_reason(exc)}); "
        "check the URL and that this machine can reach it (network, proxy, firewall)"
    )


NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


def slack_api_error(settings: Settings, exc: Any, *, variable: str = "SLACK_BOT_TOKEN") -> ConfigError:
    """A SlackApiError as one line: a refused token, or a URL that does not answer like Slack's API."""
    response = exc.response
    error = response.get("error") if isinstance(response.data, dict) else None
    if response.status_code == 200 and error in _REFUSED:
        where = (
            "the App-Level Token (xapp-..., scope connections:write) from Basic Information"
            if variable == "SLACK_APP_TOKEN"
            else "the Bot User OAuth Token (xoxb-...) from OAuth & Permissions"
        )
        return ConfigError(f"{variable} was refused by Slack ({error}): copy {where}")
    if response.status_code == 200 and error and not str(error).startswith("Received a response in a non-JSON format"):
        return ConfigError(f"{variable}: Slack answered {error}")
    return ConfigError(
        f"SLACK_API_URL: {settings.slack_api_url} answered HTTP {response.status_code}, not like Slack's Web API; "
        "fix the URL (the default is https://slack.com/api/)"
    )


def check_slack(settings: Settings) -> str:
    """Ask Slack who the bot is (auth.test; api.test in OAuth mode) and describe it; ConfigError when it cannot."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=int(STARTUP_TIMEOUT), retry_handlers=[], logger=_quiet)
    try:
        if token is None:
            client.api_test()
            return f"Web API at {settings.slack_api_url} answers; OAuth mode: tokens come from installations"
        auth = client.auth_test()
    except SlackApiError as exc:
        raise slack_api_error(settings, exc) from None
    except NETWORK_ERRORS as exc:
        raise slack_unreachable(settings, exc) from None
    return f"bot {auth.get('user')} in workspace {auth.get('team')} ({auth.get('team_id')})"


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite database file, or None for PostgreSQL and in-memory SQLite."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def database_error(settings: Settings, exc: BaseException) -> ConfigError:
    """A database failure as one line naming DATABASE_URL and what to do."""
    orig = getattr(exc, "orig", None) or exc
    detail = (str(orig).strip().splitlines() or [orig.__class__.__name__])[0][:200]
    path = sqlite_path(settings)
    if path is not None:
        return ConfigError(
            f"DATABASE_URL: the SQLite database {path} cannot be opened or written ({detail}); "
            f"check that the directory {path.parent} exists and that this user may write to it"
        )
    if isinstance(exc, ImportError):
        return ConfigError(f"DATABASE_URL: its driver is not installed ({detail}); use postgresql+psycopg:// or sqlite:///")
    if not isinstance(exc, SQLAlchemyError) or not hasattr(exc, "orig"):
        return ConfigError(f"DATABASE_URL cannot be used ({exc.__class__.__name__}: {detail}); use postgresql+psycopg:// or sqlite:///")
    return ConfigError(
        f"DATABASE_URL: the database does not answer ({detail}); start it, or fix the host, port, user, password "
        "or database name in DATABASE_URL"
    )


def open_database(settings: Settings, *, must_exist: bool = False) -> Engine:
    """An engine whose database answered; with `must_exist`, a missing SQLite file is an error, never created."""
    from store.db import make_engine, ping

    path = sqlite_path(settings)
    if must_exist and path is not None and not path.is_file():
        raise ConfigError(
            f"DATABASE_URL: the SQLite database {path} does not exist yet; "
            "`imocha-bot run` or `imocha-bot db upgrade` creates it (or fix DATABASE_URL)"
        )
    kwargs: dict[str, Any] = {}
    url = make_url(settings.database_url)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": int(STARTUP_TIMEOUT)}
    try:
        engine = make_engine(settings.database_url, **kwargs)
    except (ImportError, SQLAlchemyError) as exc:
        raise database_error(settings, exc) from None
    try:
        ping(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise database_error(settings, exc) from None
    return engine


def show_database(engine: Engine) -> str:
    """The database URL without its password."""
    return engine.url.render_as_string(hide_password=True)
