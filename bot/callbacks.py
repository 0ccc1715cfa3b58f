"""iMocha's unauthenticated callback is only a hint: re-read the report from iMocha and act on that."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import imocha
from bot.lifecycle import Observation, observe
from bot.workspaces import Workspaces
from store.models import Invitation

log = logging.getLogger("bot.callbacks")


class CallbackHandler:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clock: Callable[[], datetime],
        after_change: Callable[[], object] | None = None,
    ):
        self._sf = session_factory
        self._workspaces = workspaces
        self._clock = clock
        self._after_change = after_change

    def handle(self, callback: imocha.Callback) -> int:
        """Returns how many applications changed. Unknown invitation ids are ignored."""
        with self._sf() as session:
            workspace_ids = list(session.scalars(select(Invitation.workspace_id).where(Invitation.imocha_id == callback.invitation_id)))
        if not workspace_ids:
            log.info("callback for unknown iMocha invitation %s ignored", callback.invitation_id)
            return 0
        changed = 0
        for workspace_id in workspace_ids:
            client = self._workspaces.imocha_by_id(workspace_id)
            if client is None:
                continue
            try:
                report = client.report(callback.invitation_id)
            except imocha.ImochaError as exc:
                log.warning(
                    "callback for invitation %s: report read failed (%s); the poller will catch up",
                    callback.invitation_id,
                    exc.__class__.__name__,
                )
                continue
            if report.status != callback.status:
                log.info(
                    "callback for invitation %s said %s but iMocha reports %s: acting on the report",
                    callback.invitation_id,
                    callback.status.value,
                    report.status.value,
                )
            with self._sf.begin() as session:
                changed += len(observe(session, workspace_id, [Observation(callback.invitation_id, report.status, report)], self._clock()))
        if changed and self._after_change is not None:
            self._after_change()
        return changed
