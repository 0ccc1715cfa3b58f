"""Secrets at rest: Fernet encryption of iMocha/Gem API keys and Slack tokens, and where its key comes from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from bot.runtime.config import ConfigError, Settings

log = logging.getLogger("bot.workspace.crypto")


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted: ENCRYPTION_KEY is not the key it was stored with."""


class SecretBox:
    """Encrypts and decrypts short secrets; `repr` never shows the key."""

    def __init__(self, key: str | bytes):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes; make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretDecryptionError(
                "a stored secret could not be decrypted: ENCRYPTION_KEY differs from the key it was "
                "saved with (restore the old key, or run /imocha setup again)"
            ) from None


def key_file_for(database_url: str) -> Path | None:
    """The key file that sits beside a SQLite database file (None for in-memory or other databases)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    db_path = Path(url.database).expanduser()
    return db_path.with_name(db_path.name + ".key")


def load_secret_box(settings: Settings, *, create: bool = True) -> SecretBox:
    """ENCRYPTION_KEY if set; else, for SQLite, a 0600 key file beside the database (created on first run)."""
    if settings.encryption_key is not None:
        return SecretBox(settings.encryption_key.get_secret_value())
    if not settings.is_sqlite:
        raise ConfigError("ENCRYPTION_KEY is required with PostgreSQL (every replica must share one key)")
    path = key_file_for(settings.database_url)
    if path is None:
        # An in-memory database lives only as long as the process: an ephemeral key fits it.
        return SecretBox(Fernet.generate_key())
    try:
        if path.exists():
            return SecretBox(path.read_bytes().strip())
        if not create:
            raise ConfigError(
                f"ENCRYPTION_KEY is not set and no key file exists at {path}: set ENCRYPTION_KEY to the key the "
                "secrets were saved with, or start `imocha-bot run` once, which creates the file"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
    except OSError as exc:
        raise ConfigError(
            f"ENCRYPTION_KEY is not set and the key file {path} cannot be used ({exc.strerror or exc}); "
            f"set ENCRYPTION_KEY, or let this user read and write {path.parent}"
        ) from None
    log.warning("created an encryption key at %s (mode 0600): back it up with the database", path)
    return SecretBox(key)
