"""Gem ATS intake by polling: detect applications entering a planned stage, and write results back as notes.

Gem has no webhooks for ATS events, so each cycle reads the active applications whose
`last_activity_at` is inside an overlapping window and compares each one's `current_stage.id` with
the stage stored for it (`GemApplication`). Whether a stage move updates `last_activity_at` is not
confirmed, so a full scan of every active application runs at least hourly as a safety net. A move
into a stage that a plan covers goes through the same `Intake` as `/webhooks/ats`.

The first cycle of a workspace records where every application stands without creating cards:
applications already sitting in a planned stage when Gem is connected may have been handled in Gem
already, and a backlog of old candidates in a channel is worse than a recruiter running
`/imocha send` for the few that need it.

Results go back as one note per completed invitation (`GemWriteback`). A note is claimed before it is
written (bot/runtime/claims.py: renewed while this process works on it, lapsing 3 s after it dies, when another
process resumes it), written only while the claim is sure, and recorded by compare-and-set on the
claim, so it is written by one process at a time and recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.ats import gem
from bot.ats.gem.directory import GemDirectory
from bot.ats.gem.intake import MAX_APPLICATION_FAILURES, PERMANENT, GemTakeIn, Target, match
from bot.ats.gem.notes import GemScoreNotes, note_body
from bot.ats.gem.stages import GemStages
from bot.ats.intake import Intake, UnknownWorkspace
from bot.runtime.claims import ClaimKeeper, claim_holder_id
from bot.vendors.pacing import Holds
from bot.workspace.settings import Workspaces
from store import repos
from store.models import Workspace

log = logging.getLogger("bot.ats.gem")

AUTH_RETRY = timedelta(minutes=15)  # a refused key is tried again this often (or as soon as it is replaced)


@dataclass
class GemPollStats:
    """What one Gem cycle of one workspace did."""

    workspace_id: int
    full_scan: bool = False
    baseline: bool = False  # the first cycle: stages recorded, no cards
    window_start: datetime | None = None
    seen: int = 0  # applications read
    moved: int = 0  # stage changes recorded
    matched: int = 0  # moves into a planned stage
    created: int = 0  # cards created
    failed: int = 0  # applications left for the next cycle
    skipped: str | None = None  # why nothing was asked of Gem
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed == 0


class GemPoller:
    """Each cycle: read a workspace's recent Gem applications, record stage moves, take planned ones in."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        workspaces: Workspaces,
        clients: Callable[[str], gem.GemClient],
        intake: Intake,
        clock: Callable[[], datetime],
        *,
        deliver: Callable[..., object] | None = None,
        user_by_email: Callable[[str, str], str | None] | None = None,
        overlap: timedelta = timedelta(minutes=10),
        full_scan_every: timedelta = timedelta(hours=1),
        max_workers: int = 4,
        note_visibility: str = "private",
        writeback_batch: int = 50,
        claims: ClaimKeeper | None = None,
    ):
        self._sf = session_factory
        self._claims = claims or ClaimKeeper(session_factory, holder=claim_holder_id(), clock=clock)
        self._workspaces = workspaces
        self._clients = clients
        self._clock = clock
        self._overlap = overlap
        self._full_scan_every = full_scan_every
        # Per workspace, after a 429: the score notes and the decision write-back's Gem notes wait for it too.
        self.holds = Holds()
        self._refused: dict[int, tuple[str, datetime]] = {}  # per workspace: refused key, next try
        self.directory = GemDirectory(clock, user_by_email)
        self.stages = GemStages(session_factory, clock)
        self.take_in = GemTakeIn(intake, self.directory, self.stages, deliver=deliver, max_workers=max_workers)
        self.notes = GemScoreNotes(
            session_factory,
            workspaces,
            clients,
            self.directory,
            clock,
            self._claims,
            note_visibility=note_visibility,
            batch=writeback_batch,
            holds=self.holds,
        )

    def write_back(self) -> int:
        """The score notes due now (bot/ats/gem/notes.py); claim recovery and tests call it here."""
        return self.notes.write_back()

    def note_author(self, workspace_id: int, client: gem.GemClient, job_id: str, email: str | None = None) -> str | None:
        """The Gem user a decision's note is attributed to (bot/ats/gem/directory.py)."""
        return self.directory.note_author(workspace_id, client, job_id, email)

    # -- the scheduler's entry point ---------------------------------------------------------------

    def run(self) -> None:
        """One cycle of the `gem.poll` job: poll every workspace, then write pending notes back."""
        try:
            self.poll_all()
        finally:
            self.notes.write_back()  # results reach Gem even while polling fails

    # -- polling -----------------------------------------------------------------------------------

    def poll_all(self) -> list[GemPollStats]:
        with self._sf() as session:
            rows = session.execute(
                select(Workspace.id, Workspace.team_id).where(Workspace.active.is_(True), Workspace.gem_key_enc.is_not(None))
            ).all()
        results = []
        for workspace_id, team_id in rows:
            try:
                results.append(self.poll_workspace(workspace_id))
            except Exception as exc:  # one workspace's database or data problem must not stop the others
                log.exception("Gem poll of workspace %s (%s) failed", workspace_id, team_id)
                results.append(GemPollStats(workspace_id, error=f"{exc.__class__.__name__}: {exc}"))
        return results

    def poll_workspace(self, workspace_id: int) -> GemPollStats:
        now = self._clock()
        stats = GemPollStats(workspace_id)
        loaded = self._load(workspace_id, stats)
        if loaded is None:
            return stats
        team_id, checkpoint, full_scan_at, stage_ids = loaded
        key = self._workspaces.gem_key(workspace_id)
        if key is None:
            stats.skipped = "no Gem key"
            return stats
        if self._waiting(workspace_id, key, now, stats):
            return stats

        stats.baseline = checkpoint is None
        stats.full_scan = stats.baseline or full_scan_at is None or now - full_scan_at >= self._full_scan_every
        since = None if stats.full_scan or checkpoint is None else checkpoint - self._overlap
        stats.window_start = since
        client = self._clients(key)
        try:
            apps = client.applications(last_activity_after=since, status="active")
            stats.seen = len(apps)
            self._process(workspace_id, team_id, client, apps, stage_ids, stats)
        except (gem.GemError, UnknownWorkspace) as exc:
            self._stopped(workspace_id, team_id, key, now, exc, stats)
            return stats
        self._finish(workspace_id, team_id, now, stats)
        return stats

    def _load(self, workspace_id: int, stats: GemPollStats) -> tuple[str, datetime | None, datetime | None, set[str]] | None:
        """The workspace's team, checkpoint, last full scan and chosen stage ids; None when it is inactive."""
        with self._sf() as session:
            ws = session.get(Workspace, workspace_id)
            if ws is None or not ws.active:
                stats.skipped = "workspace inactive"
                return None
            stage_ids = {str(s) for s in ws.gem_stage_ids or [] if isinstance(s, str | int)}
            return ws.team_id, ws.gem_checkpoint, ws.gem_full_scan_at, stage_ids

    def _stopped(
        self, workspace_id: int, team_id: str, key: str, now: datetime, exc: gem.GemError | UnknownWorkspace, stats: GemPollStats
    ) -> None:
        """Hold the key back after a refusal or a 429, and say why the cycle stopped."""
        held = timedelta(0)
        if isinstance(exc, gem.GemAuthError):
            self._refused[workspace_id] = (gem.key_fingerprint(key), now + AUTH_RETRY)
        elif isinstance(exc, gem.GemRateLimitError):
            held = self.holds.after_429(workspace_id, now, exc.retry_after)
        _report_stop(team_id, exc, stats, held)

    def _finish(self, workspace_id: int, team_id: str, now: datetime, stats: GemPollStats) -> None:
        """Move the checkpoint on unless an application failed, and log what the cycle did."""
        if stats.failed:
            log.warning(
                "Gem poll of workspace %s: %d application(s) could not be taken in; checkpoint kept, they are tried again next cycle",
                team_id,
                stats.failed,
            )
        else:
            with self._sf.begin() as session:
                ws = session.get(Workspace, workspace_id)
                if ws is not None:
                    ws.gem_checkpoint = now
                    if stats.full_scan:
                        ws.gem_full_scan_at = now
        _report_cycle(team_id, stats)

    def _waiting(self, workspace_id: int, key: str, now: datetime, stats: GemPollStats) -> bool:
        not_before = self.holds.until(workspace_id, now)
        if not_before is not None:
            stats.skipped = f"rate-limited until {not_before.isoformat()}"
            return True
        refused = self._refused.get(workspace_id)
        if refused is not None:
            fingerprint, retry_at = refused
            if fingerprint == gem.key_fingerprint(key) and now < retry_at:
                stats.skipped = "Gem refused this key"
                return True
            del self._refused[workspace_id]  # a new key, or time to try the old one again
        return False

    def _process(
        self,
        workspace_id: int,
        team_id: str,
        client: gem.GemClient,
        apps: Sequence[gem.Application],
        stage_ids: set[str],
        stats: GemPollStats,
    ) -> None:
        current = {a.id: a for a in apps if a.deleted_at is None and a.status in (None, "active")}
        stored = self.stages.stored(workspace_id, current)
        moves = [a for a in current.values() if a.id not in stored or stored[a.id] != (a.stage.id if a.stage else None)]
        stats.moved = len(moves)
        if not moves:
            return
        if stats.baseline:
            self.stages.record(workspace_id, moves)
            return
        with self._sf() as session:
            plans = repos.plans_for(session, workspace_id)
        targets: list[Target] = []
        unplanned: list[gem.Application] = []
        for app in moves:
            target = match(app, plans, stage_ids)
            if target is None:
                unplanned.append(app)
            else:
                targets.append(target)
        self.stages.record(workspace_id, unplanned)
        stats.matched = len(targets)
        if not targets:
            return

        created, failed = self.take_in.all(workspace_id, team_id, client, targets)
        stats.created += created
        stats.failed += failed


# --------------------------------------------------------------------------------------------------
# What a cycle says
# --------------------------------------------------------------------------------------------------


def _report_stop(team_id: str, exc: gem.GemError | UnknownWorkspace, stats: GemPollStats, held: timedelta) -> None:
    """Why the cycle stopped, on the stats and in the log; the checkpoint stays where it was."""
    if isinstance(exc, UnknownWorkspace):
        stats.error = str(exc)
        log.warning("Gem poll of workspace %s stopped: %s", team_id, exc)
    elif isinstance(exc, gem.GemAuthError):
        stats.error = f"Gem refused the API key (HTTP {exc.status_code})"
        log.warning(
            "Gem poll of workspace %s stopped: Gem refused its API key (HTTP %d: %s). An admin can paste a working "
            "key in `/imocha setup`; until then this workspace is tried again every %d minutes.",
            team_id,
            exc.status_code,
            exc.message,
            AUTH_RETRY.total_seconds() // 60,
        )
    elif isinstance(exc, gem.GemRateLimitError):
        stats.error = "Gem rate limit (HTTP 429)"
        log.warning(
            "Gem poll of workspace %s stopped: Gem is rate-limiting its key (HTTP 429); no Gem calls for %ds, "
            "checkpoint kept, the same window is read again next cycle",
            team_id,
            held.total_seconds(),
        )
    else:
        stats.error = f"{exc.__class__.__name__}: {exc.message}"
        log.warning("Gem poll of workspace %s stopped: %s; checkpoint kept, the window is read again next cycle", team_id, exc.message)


def _report_cycle(team_id: str, stats: GemPollStats) -> None:
    log.log(
        logging.INFO if stats.moved or stats.baseline else logging.DEBUG,
        "Gem poll of workspace %s (%s): %d applications read, %d stage moves, %d into planned stages, %d cards created",
        team_id,
        "first sync, stages recorded" if stats.baseline else ("full scan" if stats.full_scan else "incremental"),
        stats.seen,
        stats.moved,
        stats.matched,
        stats.created,
    )


__all__ = ["MAX_APPLICATION_FAILURES", "PERMANENT", "GemPollStats", "GemPoller", "note_body"]
