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
written (bot/claims.py: renewed while this process works on it, lapsing 3 s after it dies, when another
process resumes it), written only while the claim is sure, and recorded by compare-and-set on the
claim, so it is written by one process at a time and recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import gem, metrics
from bot.claims import ClaimKeeper, claim_holder_id
from bot.domain import normalise_key
from bot.gem_directory import GemDirectory
from bot.gem_notes import GemScoreNotes, note_body
from bot.intake import Intake, IntakeEvent, UnknownWorkspace, valid_email
from bot.workspaces import Workspaces
from store import repos
from store.models import GemApplication, Plan, Workspace

log = logging.getLogger("bot.gem")

IN_CHUNK = 500  # ids per IN (...) list
# Gem errors about one application that asking again will not fix: the move is recorded and skipped.
PERMANENT = (gem.GemNotFoundError, gem.GemBadRequestError, gem.GemProtocolError)
# After this many failed cycles in a row, a transiently failing application stops holding the checkpoint.
MAX_APPLICATION_FAILURES = 5
AUTH_RETRY = timedelta(minutes=15)  # a refused key is tried again this often (or as soon as it is replaced)
DEFAULT_RETRY_AFTER = timedelta(seconds=60)


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


@dataclass(frozen=True)
class _Target:
    """A move into a planned stage: what the intake will be told."""

    app: gem.Application
    job: gem.Ref
    stage_name: str


class GemPoller:
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
        self._intake = intake
        self._clock = clock
        self._deliver = deliver
        self._user_by_email = user_by_email
        self._overlap = overlap
        self._full_scan_every = full_scan_every
        self._max_workers = max(1, max_workers)
        self._not_before: dict[int, datetime] = {}  # per workspace, after a 429 (the notes wait for it too)
        self._refused: dict[int, tuple[str, datetime]] = {}  # per workspace: refused key, next try
        self._failures: dict[tuple[int, str], int] = {}  # (workspace, application): failed cycles
        self.directory = GemDirectory(clock, user_by_email)
        self.notes = GemScoreNotes(
            session_factory,
            workspaces,
            clients,
            self.directory,
            clock,
            self._claims,
            note_visibility=note_visibility,
            batch=writeback_batch,
            not_before=self._not_before,
        )

    def write_back(self) -> int:
        """The score notes due now (bot/gem_notes.py); claim recovery and tests call it here."""
        return self.notes.write_back()

    def note_author(self, workspace_id: int, client: gem.GemClient, job_id: str, email: str | None = None) -> str | None:
        """The Gem user a decision's note is attributed to (bot/gem_directory.py)."""
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
        with self._sf() as session:
            ws = session.get(Workspace, workspace_id)
            if ws is None or not ws.active:
                stats.skipped = "workspace inactive"
                return stats
            team_id, checkpoint, full_scan_at = ws.team_id, ws.gem_checkpoint, ws.gem_full_scan_at
            stage_ids = {str(s) for s in ws.gem_stage_ids or [] if isinstance(s, str | int)}
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
        except gem.GemAuthError as exc:
            self._refused[workspace_id] = (gem.key_fingerprint(key), now + AUTH_RETRY)
            stats.error = f"Gem refused the API key (HTTP {exc.status_code})"
            log.warning(
                "Gem poll of workspace %s stopped: Gem refused its API key (HTTP %d: %s). An admin can paste a working "
                "key in `/imocha setup`; until then this workspace is tried again every %d minutes.",
                team_id,
                exc.status_code,
                exc.message,
                AUTH_RETRY.total_seconds() // 60,
            )
            return stats
        except gem.GemRateLimitError as exc:
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFAULT_RETRY_AFTER
            self._not_before[workspace_id] = now + wait
            stats.error = "Gem rate limit (HTTP 429)"
            log.warning(
                "Gem poll of workspace %s stopped: Gem is rate-limiting its key (HTTP 429); no Gem calls for %ds, "
                "checkpoint kept, the same window is read again next cycle",
                team_id,
                wait.total_seconds(),
            )
            return stats
        except gem.GemError as exc:
            stats.error = f"{exc.__class__.__name__}: {exc.message}"
            log.warning("Gem poll of workspace %s stopped: %s; checkpoint kept, the window is read again next cycle", team_id, exc.message)
            return stats
        except UnknownWorkspace as exc:
            stats.error = str(exc)
            log.warning("Gem poll of workspace %s stopped: %s", team_id, exc)
            return stats

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
        return stats

    def _waiting(self, workspace_id: int, key: str, now: datetime, stats: GemPollStats) -> bool:
        not_before = self._not_before.get(workspace_id)
        if not_before is not None and now < not_before:
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
        stored = self._stored_stages(workspace_id, current)
        moves = [a for a in current.values() if a.id not in stored or stored[a.id] != (a.stage.id if a.stage else None)]
        stats.moved = len(moves)
        if not moves:
            return
        if stats.baseline:
            self._record(workspace_id, moves)
            return
        with self._sf() as session:
            plans = repos.plans_for(session, workspace_id)
        targets: list[_Target] = []
        unplanned: list[gem.Application] = []
        for app in moves:
            target = _match(app, plans, stage_ids)
            if target is None:
                unplanned.append(app)
            else:
                targets.append(target)
        self._record(workspace_id, unplanned)
        stats.matched = len(targets)
        if not targets:
            return

        candidates = self._candidates(client, [t.app for t in targets])
        for target in targets:
            found = candidates.get(target.app.id)
            try:
                if isinstance(found, gem.GemError):
                    raise found
                created = self._take_in(workspace_id, team_id, client, target, found)
            except (gem.GemAuthError, gem.GemRateLimitError):
                raise  # the key's problem, not this application's: the cycle stops
            except PERMANENT as exc:
                log.warning(
                    "Gem application %s entered %s but could not be read (%s); skipped", target.app.id, target.stage_name, exc.message
                )
                self._record(workspace_id, [target.app])
                continue
            except gem.GemError as exc:
                if self._failed_again(workspace_id, target.app, exc):
                    stats.failed += 1
                continue
            self._failures.pop((workspace_id, target.app.id), None)
            self._record(workspace_id, [target.app])
            stats.created += int(created)

    def _failed_again(self, workspace_id: int, app: gem.Application, exc: gem.GemError) -> bool:
        """Count a transient failure; True while the application should hold the checkpoint back."""
        key = (workspace_id, app.id)
        count = self._failures.get(key, 0) + 1
        if count >= MAX_APPLICATION_FAILURES:
            self._failures.pop(key, None)
            log.error("Gem application %s failed %d cycles in a row (%s); giving up on this stage move", app.id, count, exc.message)
            self._record(workspace_id, [app])
            return False
        self._failures[key] = count
        log.warning("Gem application %s: %s; it is tried again next cycle (%d/%d)", app.id, exc.message, count, MAX_APPLICATION_FAILURES)
        return True

    def _candidates(self, client: gem.GemClient, apps: Sequence[gem.Application]) -> dict[str, gem.Candidate | gem.GemError | None]:
        """Each application's candidate, read with bounded concurrency (the client's limiter paces them)."""

        def read(app: gem.Application) -> gem.Candidate | gem.GemError | None:
            if app.candidate_id is None:
                return None
            try:
                return client.candidate(app.candidate_id)
            except gem.GemError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(apps)), thread_name_prefix="gem") as pool:
            return dict(zip([a.id for a in apps], pool.map(read, apps), strict=True))

    def _take_in(self, workspace_id: int, team_id: str, client: gem.GemClient, target: _Target, candidate: gem.Candidate | None) -> bool:
        app = target.app
        email = _usable_email(candidate.email_candidates if candidate else [])
        if email is None:
            log.info("Gem candidate of application %s has no usable email: the card says so and offers no Send", app.id)
        name = (candidate.name if candidate else "") or "Unnamed candidate"
        event = IntakeEvent(
            source="gem",
            team_id=team_id,
            application_id=app.id,
            candidate_name=name[:200],
            candidate_email=email,
            job_id=target.job.id,
            job_name=(target.job.name or target.job.id)[:200],
            stage_name=target.stage_name[:200],
            # Gem's (application, stage) is the delivery: the same move seen twice is one card.
            delivery_id=f"{app.id}:{app.stage.id if app.stage else ''}"[:200],
            candidate_id=app.candidate_id,
            recruiter_email=self.directory.recruiter_email(workspace_id, team_id, client, target.job.id),
        )
        result = self._intake.receive(event)
        if not result.accepted:
            log.info("Gem application %s: %s", app.id, result.reason)
            return False
        metrics.INTAKE.labels(source="gem", outcome="created" if result.created else "duplicate").inc()
        if result.created and self._deliver is not None:
            try:
                self._deliver(application_id=result.application_id)
            except Exception:  # the card is queued; the outbox job delivers it later
                log.exception("delivering the card of Gem application %s failed; the outbox retries it", app.id)
        return result.created

    # -- recruiters --------------------------------------------------------------------------------

    # -- stored stages -----------------------------------------------------------------------------

    def _stored_stages(self, workspace_id: int, apps: Iterable[str]) -> dict[str, str | None]:
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

    def _record(self, workspace_id: int, apps: Sequence[gem.Application]) -> None:
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

    # -- write-back --------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------


def _match(app: gem.Application, plans: Sequence[Plan], stage_ids: set[str]) -> _Target | None:
    """Whether the application's new stage is a planned one, and the stage name the intake should see.

    A plan matches as for `/webhooks/ats`: its job is one of the application's jobs (id or name) and
    its stage is the stage's name. A stage the admin chose by id also counts when its job has plans for
    exactly one stage: that stage's name is then used, so the intake finds the same plan.
    """
    if app.stage is None or not app.jobs:
        return None
    stage_key = normalise_key(app.stage.name)
    for job in app.jobs:
        keys = {normalise_key(job.id), normalise_key(job.name)} - {""}
        for plan in plans:
            if plan.job_key in keys and plan.stage_key == stage_key:
                return _Target(app, job, app.stage.name)
    if app.stage.id in stage_ids:
        for job in app.jobs:
            keys = {normalise_key(job.id), normalise_key(job.name)} - {""}
            for_job = [p for p in plans if p.job_key in keys]
            if len({p.stage_key for p in for_job}) == 1:
                return _Target(app, job, for_job[0].stage_label)
            if for_job:
                log.warning(
                    "Gem stage %s of application %s is an assessment stage, but job %s has plans for several stages; "
                    "name the plan's stage like the Gem stage",
                    app.stage.id,
                    app.id,
                    job.name or job.id,
                )
    return None


def _usable_email(addresses: Iterable[str]) -> str | None:
    for address in addresses:
        if valid_email(address.strip()):
            return address.strip()
    return None


__all__ = ["GemPollStats", "GemPoller", "note_body"]
