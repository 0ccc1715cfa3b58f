"""Settings: each missing or invalid variable gives one line that names it; secrets never print."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bot.runtime.config import ConfigError, load_settings
from bot.workspace.crypto import SecretBox, SecretDecryptionError, key_file_for, load_secret_box


@pytest.mark.parametrize(
    ("overrides", "starts"),
    [
        ({"slack_bot_token": "not-a-token"}, "SLACK_BOT_TOKEN"),
        ({"slack_app_token": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
        ({"imocha_poll_seconds": 0}, "IMOCHA_POLL_SECONDS"),
        ({"imocha_poll_seconds": "soon"}, "IMOCHA_POLL_SECONDS"),
        ({"database_url": "mysql://x/y"}, "DATABASE_URL"),
        ({"database_url": "::not a url::"}, "DATABASE_URL"),
        ({"imocha_base_url": "ftp://imocha"}, "IMOCHA_BASE_URL"),
        ({"public_url": "imocha.example.com"}, "PUBLIC_URL"),
        ({"port": 70000}, "PORT"),
        ({"log_level": "LOUD"}, "LOG_LEVEL"),
        ({"log_format": "xml"}, "LOG_FORMAT"),
        ({"imocha_admins": "U1,not an id"}, "IMOCHA_ADMINS"),
    ],
)
def test_an_invalid_variable_gives_one_line_naming_it(overrides: dict, starts: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **overrides)
    message = str(caught.value)
    assert message.startswith(starts)
    assert "\n" not in message


def test_run_without_slack_credentials_names_the_missing_variable() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError, match="^SLACK_BOT_TOKEN"):
        settings.require_slack()
    settings = load_settings(_env_file=None, slack_bot_token="xoxb-1")
    with pytest.raises(ConfigError, match="^SLACK_SIGNING_SECRET"):
        settings.require_slack()
    load_settings(_env_file=None, slack_bot_token="xoxb-1", slack_app_token="xapp-1").require_slack()


def test_secrets_never_appear_in_repr() -> None:
    settings = load_settings(_env_file=None, slack_bot_token="xoxb-very-secret", slack_signing_secret="sigsecret", encryption_key="k" * 44)
    text = repr(settings) + str(settings)
    assert "very-secret" not in text and "sigsecret" not in text and "k" * 44 not in text


def test_postgres_urls_are_normalised_to_psycopg_and_callbacks_follow_public_url() -> None:
    settings = load_settings(_env_file=None, database_url="postgresql://u@h/db", public_url="https://bot.example.com/")
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.callback_url == "https://bot.example.com/webhooks/imocha"
    assert not settings.public_url_is_insecure
    assert load_settings(_env_file=None, public_url="http://10.1.2.3").public_url_is_insecure
    assert not load_settings(_env_file=None, public_url="http://127.0.0.1:3000").public_url_is_insecure


def test_a_malformed_encryption_key_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="^ENCRYPTION_KEY is not a valid Fernet key"):
        load_secret_box(load_settings(_env_file=None, encryption_key="short"))


def test_postgres_requires_an_encryption_key() -> None:
    with pytest.raises(ConfigError, match="^ENCRYPTION_KEY is required with PostgreSQL"):
        load_secret_box(load_settings(_env_file=None, database_url="postgresql+psycopg://u@h/db"))


def test_sqlite_creates_a_private_key_file_beside_the_database_and_reuses_it(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    box = load_secret_box(load_settings(_env_file=None, database_url=url))
    path = key_file_for(url)
    assert path is not None and path.exists()
    assert path.stat().st_mode & 0o777 == 0o600
    token = box.encrypt("sandbox-key")
    assert load_secret_box(load_settings(_env_file=None, database_url=url)).decrypt(token) == "sandbox-key"


def test_a_wrong_key_gives_a_clear_error_not_garbage() -> None:
    token = SecretBox(Fernet.generate_key()).encrypt("secret")
    with pytest.raises(SecretDecryptionError, match="ENCRYPTION_KEY differs"):
        SecretBox(Fernet.generate_key()).decrypt(token)
    assert "key" not in repr(SecretBox(Fernet.generate_key())).replace("<key hidden>", "")
