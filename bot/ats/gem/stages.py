"""Where each Gem application stood when last seen (`GemApplication` rows), so a stage move is seen once.

Owns reading and writing those snapshots for the Gem poller (bot/ats/gem/poller.py). May import the
store, `bot.ats.gem` (for its `Application` value) and the standard library; nothing that talks to Slack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.ats import gem
from store import repos
from store.models import GemApplication

IN_CHUNK = 500  # ids per IN (...) list


class GemStages:
    """The stage stored for each (workspace, Gem application)."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sf = session_factory
        self._clock = clock

    def stored(self, workspace_id: int, apps: Iterable[str]) -> dict[str, str | None]:
        """The stage id stored for each of these application ids that has a snapshot."""
        ids = list(apps)
        stored: dict[str, str | None] = {}
        with self._sf() as session:
            for offset in range(0, len(ids), IN_CHUNK):
                chunk = ids[offset : offset + IN_CHUNK]
                rows = session.execute(
                    select(GemApplication.gem_application_id, GemApplication.stage_id).where(
                        GemApplication.workspace_id == workspace_id, GemApplication.gem_application_id.in_(chunk)
                    )
                )
                stored.update({app_id: stage_id for app_id, stage_id in rows})
        return stored

    def record(self, workspace_id: int, apps: Sequence[gem.Application]) -> None:
        """Remember each application's current stage (insert or update), so the move is not seen again."""
        if not apps:
            return
        now = self._clock()
        with self._sf.begin() as session:
            for app in apps:
                stage_id = app.stage.id if app.stage else None
                values = {"workspace_id": workspace_id, "gem_application_id": app.id, "stage_id": stage_id, "seen_at": now}
                if not repos.insert_ignore(session, GemApplication, values, ["workspace_id", "gem_application_id"]):
                    session.execute(
                        update(GemApplication)
                        .where(GemApplication.workspace_id == workspace_id, GemApplication.gem_application_id == app.id)
                        .values(stage_id=stage_id, seen_at=now)
                    )


__all__ = ["IN_CHUNK", "GemStages"]
