"""The bot's one typed, frozen settings object, read from the environment and `.env` (SPEC §6)."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A configuration problem, worded as one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///imocha-bot.db"
    imocha_base_url: str = "https://apiv3.imocha.io"
    imocha_poll_seconds: int = Field(default=120, ge=1)
    encryption_key: SecretStr | None = None
    public_url: str | None = None
    ats_webhook_secret: SecretStr | None = None
    greenhouse_webhook_secret: SecretStr | None = None
    imocha_admins: str = ""
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    gem_base_url: str = "https://api.gem.com"
    # Greenhouse Harvest v3 and its OAuth token endpoint, for decisions written back (bot/ats/greenhouse/).
    greenhouse_harvest_url: str = "https://harvest.greenhouse.io"
    greenhouse_auth_url: str = "https://auth.greenhouse.io"
    # Only for a Gem partner integration, which sends an application secret with each customer's key.
    gem_application_secret: SecretStr | None = None
    # Signed outgoing events (bot/ats/events.py): every state change POSTed here, signed with the secret.
    events_webhook_url: str | None = None
    events_webhook_secret: SecretStr | None = None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _normalise_case(cls, value: object, info: object) -> object:
        if isinstance(value, str):
            name = getattr(info, "field_name", "")
            return value.strip().upper() if name == "log_level" else value.strip().lower()
        return value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_client_secret",
        "encryption_key",
        "ats_webhook_secret",
        "greenhouse_webhook_secret",
        "gem_application_secret",
        "events_webhook_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("slack_client_id", "public_url", "events_webhook_url", mode="before")
    @classmethod
    def _blank_str_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_api_url", "imocha_base_url", "gem_base_url", "greenhouse_harvest_url", "greenhouse_auth_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @field_validator("events_webhook_url")
    @classmethod
    def _events_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        value = value.strip()
        if value.startswith("postgres://"):  # Heroku-style URLs
            value = "postgresql+psycopg://" + value.removeprefix("postgres://")
        elif value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL (try sqlite:///imocha-bot.db)") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("imocha_admins")
    @classmethod
    def _admins(cls, value: str) -> str:
        for user_id in (part.strip() for part in value.split(",")):
            if user_id and not user_id.isalnum():
                raise ValueError(f"{user_id!r} is not a Slack user ID (expected e.g. U0123ABCD)")
        return value

    @model_validator(mode="after")
    def _oauth_pair(self) -> Settings:
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            raise ValueError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET must be set together")
        if self.events_webhook_url and self.events_webhook_secret is None:
            raise ValueError("EVENTS_WEBHOOK_SECRET is required with EVENTS_WEBHOOK_URL: receivers verify each event's X-Signature with it")
        if self.events_webhook_secret is not None and not self.events_webhook_url:
            raise ValueError("EVENTS_WEBHOOK_URL is not set, so EVENTS_WEBHOOK_SECRET has nothing to sign: set both or neither")
        return self

    # -- derived values -------------------------------------------------------------------------

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.imocha_admins.split(",") if part.strip())

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def callback_url(self) -> str | None:
        return f"{self.public_url}/webhooks/imocha" if self.public_url else None

    @property
    def public_url_is_insecure(self) -> bool:
        """True for an http:// public URL that does not point at this machine (worth a warning)."""
        if not self.public_url or self.public_url.startswith("https://"):
            return False
        host = urlsplit(self.public_url).hostname or ""
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True

    def require_slack(self) -> None:
        """Fail with one line when `run` lacks what it needs to talk to Slack."""
        if self.oauth_enabled:
            if not self.socket_mode and self.slack_signing_secret is None:
                raise ConfigError("SLACK_SIGNING_SECRET is required in HTTP mode (set it from Basic Information)")
            return
        if self.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from your Slack app")
        if not self.socket_mode and self.slack_signing_secret is None:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode needs it (or set SLACK_APP_TOKEN for Socket Mode)")


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning a validation failure into one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if loc:
            raise ConfigError(f"{loc[0].upper()} {message}") from None
        raise ConfigError(message) from None
