"""Multi-workspace OAuth: slack_sdk's SQLAlchemy installation store, with tokens encrypted at rest."""

from __future__ import annotations

import threading
from typing import Any

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import Engine

from bot.workspace.crypto import SecretBox

# Least privilege; each scope is justified in the README.
BOT_SCOPES = [
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "users:read.email",
    "channels:read",
    "groups:read",
    "files:write",  # the weekly digest's chart (files_upload_v2)
    "channels:join",  # sharing a file in a public channel needs membership, which chat:write.public does not give
]

_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


class EncryptedInstallationStore(SQLAlchemyInstallationStore):
    """Stores bot and user tokens Fernet-encrypted; hands them back decrypted."""

    def __init__(self, *, client_id: str, engine: Engine, box: SecretBox, **kwargs: Any):
        super().__init__(client_id=client_id, engine=engine, **kwargs)
        self._box = box
        self._saving = threading.local()  # its tables come from the migrations (store/migrations 0002)

    def _encrypt(self, obj: Any) -> Any:
        changes = {f: self._box.encrypt(getattr(obj, f)) for f in _TOKEN_FIELDS if getattr(obj, f, None)}
        copy = _clone(obj)
        for key, value in changes.items():
            setattr(copy, key, value)
        return copy

    def _decrypt(self, obj: Any) -> Any:
        if obj is None:
            return None
        for key in _TOKEN_FIELDS:
            value = getattr(obj, key, None)
            if value:
                setattr(obj, key, self._box.decrypt(value))
        return obj

    def save(self, installation: Installation) -> None:
        # The parent's save() ends with self.save_bot(installation.to_bot()): that bot is already encrypted.
        self._saving.installation = True
        try:
            super().save(self._encrypt(installation))
        finally:
            self._saving.installation = False

    def save_bot(self, bot: Bot) -> None:
        super().save_bot(bot if getattr(self._saving, "installation", False) else self._encrypt(bot))

    def find_bot(self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> Bot | None:
        return self._decrypt(super().find_bot(enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install))

    def find_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None, is_enterprise_install: bool | None = False
    ) -> Installation | None:
        return self._decrypt(
            super().find_installation(
                enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, is_enterprise_install=is_enterprise_install
            )
        )


def _clone(obj: Any) -> Any:
    import copy

    return copy.copy(obj)
