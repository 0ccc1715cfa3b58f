"""Results written back to Gem: one note per completed invitation (`GemWriteback`), claimed before it is
written (bot/runtime/claims.py), written only while the claim is sure, recorded by compare-and-set on the claim."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.ats import gem
from bot.ats.gem.directory import GemDirectory
from bot.runtime.backoff import Backoff
from bot.runtime.claims import ClaimKeeper, ClaimTable
from bot.vendors.pacing import Holds
from bot.workspace.settings import Workspaces
from store.models import Application, GemWriteback, Invitation

log = logging.getLogger("bot.ats.gem")

PERMANENT = (gem.GemNotFoundError, gem.GemBadRequestError, gem.GemProtocolError)
WRITEBACK_MAX_ATTEMPTS = 24  # with the backoff below, about a day of retries
WRITEBACK_BACKOFF = Backoff(first=60.0, cap=3600.0)  # 1 min doubling, at most 1 h
WRITEBACK_CLAIMS = ClaimTable(
    "gem_writebacks",
    GemWriteback,
    GemWriteback.claimed_by,
    GemWriteback.next_attempt_at,
    GemWriteback.done_at.is_(None) & (GemWriteback.attempts < WRITEBACK_MAX_ATTEMPTS),
)


class GemScoreNotes:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clients: Callable[[str], gem.GemClient],
        directory: GemDirectory,
        clock: Callable[[], datetime],
        claims: ClaimKeeper,
        *,
        note_visibility: str = "private",
        batch: int = 50,
        holds: Holds | None = None,
    ):
        self._sf = session_factory
        self._workspaces = workspaces
        self._clients = clients
        self._directory = directory
        self._clock = clock
        self._claims = claims
        self._visibility = note_visibility
        self._writeback_batch = batch
        # Per workspace, after a 429 the client gave up on (shared with polling, bot/ats/gem/poller.py); see Holds.
        self._holds = holds if holds is not None else Holds()

    def write_back(self) -> int:
        """Add a note to the Gem candidate of each completed assessment that is due; returns notes written.

        Runs in the background job only, so Gem being slow or down never delays anything in Slack.
        """
        now = self._clock()
        with self._sf() as session:
            due = list(
                session.scalars(
                    select(GemWriteback.id)
                    .where(
                        GemWriteback.done_at.is_(None),
                        GemWriteback.attempts < WRITEBACK_MAX_ATTEMPTS,
                        GemWriteback.next_attempt_at <= now,
                    )
                    .order_by(GemWriteback.next_attempt_at, GemWriteback.id)
                    .limit(self._writeback_batch)
                )
            )
        written = 0
        for row_id in due:
            try:
                written += int(self._write_one(row_id, now))
            except Exception:  # one row's surprise must not stop the others; its claim lapses and it comes back
                log.exception("Gem note %s failed unexpectedly", row_id)
        return written

    def _write_one(self, row_id: int, now: datetime) -> bool:
        since = self._claims.mark()
        claimed_at = self._clock()  # not the cycle's start: the claim must last from now
        with self._sf.begin() as session:
            claimed: Any = session.execute(
                update(GemWriteback)
                .where(GemWriteback.id == row_id, GemWriteback.done_at.is_(None), GemWriteback.next_attempt_at <= claimed_at)
                .values(next_attempt_at=self._claims.expiry(claimed_at), claimed_by=self._claims.holder)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                return False  # another run took it
            wb = session.get(GemWriteback, row_id)
            app = session.get(Application, wb.application_id) if wb else None
            inv = session.get(Invitation, wb.invitation_id) if wb else None
            if wb is None or app is None or inv is None:
                return False
            workspace_id, attempts = wb.workspace_id, wb.attempts
            candidate_id, job_id = app.external_candidate_id, app.job.external_id
            body = note_body(app, inv)
        if not self._claims.take(WRITEBACK_CLAIMS, [row_id], since):
            return False  # this process is writing it already (on another thread)
        try:
            return self._write_claimed(row_id, now, workspace_id, attempts, candidate_id, job_id, body)
        finally:
            self._claims.release(WRITEBACK_CLAIMS, row_id)

    def _write_claimed(
        self, row_id: int, now: datetime, workspace_id: int, attempts: int, candidate_id: str | None, job_id: str, body: str
    ) -> bool:
        if not candidate_id:
            self._writeback_failed(row_id, now, attempts, "the application has no Gem candidate id", permanent=True)
            return False
        not_before = self._holds.until(workspace_id, now)
        if not_before is not None:
            self._writeback_later(row_id, not_before, "waiting for Gem's rate limit")
            return False
        key = self._workspaces.gem_key(workspace_id)
        if key is None:
            self._writeback_failed(row_id, now, attempts, "the workspace has no Gem key")
            return False
        client = self._clients(key)
        try:
            author = self._directory.score_note_author(workspace_id, client, job_id)
            if not self._claims.holds(WRITEBACK_CLAIMS, row_id):
                log.warning("Gem note %s left unwritten: this process's claim on it may have lapsed", row_id)
                return False
            client.add_note(candidate_id, body=body, user_id=author, visibility=self._visibility)
        except gem.GemRateLimitError as exc:
            wait = self._holds.after_429(workspace_id, now, exc.retry_after)
            self._writeback_later(row_id, now + wait, f"HTTP 429: {exc.message}")
            log.warning("Gem note %s postponed %ds: Gem is rate-limiting the key (HTTP 429)", row_id, wait.total_seconds())
            return False
        except PERMANENT as exc:
            self._writeback_failed(row_id, now, attempts, f"{exc.__class__.__name__}: {exc.message}", permanent=True)
            return False
        except gem.GemAuthError as exc:
            error = f"Gem refused the workspace's API key (HTTP {exc.status_code}); an admin can paste a new one in /imocha setup"
            self._writeback_failed(row_id, now, attempts, error)
            return False
        except gem.GemError as exc:
            self._writeback_failed(row_id, now, attempts, f"{exc.__class__.__name__}: {exc.message}")
            return False
        with self._sf.begin() as session:
            recorded: Any = session.execute(
                update(GemWriteback)
                .where(GemWriteback.id == row_id, self._mine())
                .values(done_at=now, attempts=attempts + 1, last_error=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
        if recorded.rowcount != 1:
            log.error("Gem note %s was written, but another process had taken it over: the candidate may get it twice", row_id)
        log.info("Gem note written for candidate %s (invitation row %s)", candidate_id, row_id)
        return True

    def _mine(self) -> Any:
        """Notes this process still holds: outcomes are recorded by compare-and-set on the claim."""
        return (GemWriteback.claimed_by == self._claims.holder) & GemWriteback.done_at.is_(None)

    def _writeback_later(self, row_id: int, when: datetime, error: str) -> None:
        with self._sf.begin() as session:
            session.execute(
                update(GemWriteback)
                .where(GemWriteback.id == row_id, self._mine())
                .values(next_attempt_at=when, last_error=error[:1000], claimed_by=None)
                .execution_options(synchronize_session=False)
            )

    def _writeback_failed(self, row_id: int, now: datetime, attempts: int, error: str, *, permanent: bool = False) -> None:
        attempts = WRITEBACK_MAX_ATTEMPTS if permanent else attempts + 1
        delay = timedelta(seconds=WRITEBACK_BACKOFF.after(attempts))
        with self._sf.begin() as session:
            session.execute(
                update(GemWriteback)
                .where(GemWriteback.id == row_id, self._mine())
                .values(attempts=attempts, next_attempt_at=now + delay, last_error=error[:1000], claimed_by=None)
                .execution_options(synchronize_session=False)
            )
        if attempts >= WRITEBACK_MAX_ATTEMPTS:
            log.error("Gem note %s given up after %d attempt(s): %s", row_id, attempts if not permanent else 1, error)
        else:
            log.warning(
                "Gem note %s failed (%s); attempt %d/%d, next in %ds",
                row_id,
                error,
                attempts,
                WRITEBACK_MAX_ATTEMPTS,
                delay.total_seconds(),
            )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def note_body(app: Application, inv: Invitation) -> str:
    """The plain-text note for the candidate's Gem activity feed: test, score, pass/fail, report."""
    finished = "terminated" if inv.status == "terminated" else "completed"
    attempt = f" (attempt {inv.attempt})" if inv.attempt > 1 else ""
    lines = [f"iMocha assessment {finished}: {inv.test_name}{attempt}"]
    if inv.candidate_points is not None and inv.total_points is not None:
        pct = inv.percentage if inv.percentage is not None else (100 * inv.candidate_points / inv.total_points if inv.total_points else 0)
        lines.append(f"Score: {_number(inv.candidate_points)} / {_number(inv.total_points)} points ({_number(pct)}%)")
    elif inv.percentage is not None:
        lines.append(f"Score: {_number(inv.percentage)}%")
    if inv.percentage is not None and app.pass_mark is not None:
        verdict = "Passed" if inv.percentage >= app.pass_mark else "Below pass mark"
        lines.append(f"Result: {verdict} (pass mark {app.pass_mark}%)")
    if inv.performance_category:
        lines.append(f"Performance category: {inv.performance_category}")
    if inv.report_url:
        lines.append(f"iMocha report: {inv.report_url}")
    lines.append(f"Job: {app.job.name}. Posted by the iMocha Slack bot (iMocha invitation {inv.imocha_id}).")
    return "\n".join(lines)[: gem.NOTE_MAX_CHARS]
