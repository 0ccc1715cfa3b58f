"""Taking Gem applications in: each move into a planned stage becomes an `IntakeEvent`, and its card.

Owns matching a Gem stage move to a plan (`match`), reading the candidates (bounded concurrency),
building the intake event, counting an application's transient failures, and handing a created card
to delivery. May import `bot.ats.gem`, `bot.ats.intake`, `bot.ats.gem.directory`, `bot.ats.gem.stages`, `bot.runtime.metrics`,
`bot.domain` and the store's models; it writes no Slack text (the card is the outbox's to build).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.ats import gem
from bot.ats.gem.directory import GemDirectory
from bot.ats.gem.stages import GemStages
from bot.ats.intake import Intake, IntakeEvent, valid_email
from bot.domain import normalise_key
from bot.runtime import metrics
from store.models import Plan

log = logging.getLogger("bot.ats.gem")

# Gem errors about one application that asking again will not fix: the move is recorded and skipped.
PERMANENT = (gem.GemNotFoundError, gem.GemBadRequestError, gem.GemProtocolError)
# After this many failed cycles in a row, a transiently failing application stops holding the checkpoint.
MAX_APPLICATION_FAILURES = 5


@dataclass(frozen=True)
class Target:
    """A move into a planned stage: what the intake will be told."""

    app: gem.Application
    job: gem.Ref
    stage_name: str


class GemTakeIn:
    """Moves into planned stages, taken in one by one; a failing one is tried again next cycle."""

    def __init__(
        self,
        intake: Intake,
        directory: GemDirectory,
        stages: GemStages,
        *,
        deliver: Callable[..., object] | None = None,
        max_workers: int = 4,
    ) -> None:
        self._intake = intake
        self.directory = directory
        self.stages = stages
        self._deliver = deliver
        self._max_workers = max(1, max_workers)
        self._failures: dict[tuple[int, str], int] = {}  # (workspace, application): failed cycles

    def all(self, workspace_id: int, team_id: str, client: gem.GemClient, targets: Sequence[Target]) -> tuple[int, int]:
        """Take every target in: (cards created, applications left for the next cycle).

        A refused key or a 429 is the key's problem, not an application's: it stops the cycle (raised).
        """
        made = failed = 0
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
                self.stages.record(workspace_id, [target.app])
                continue
            except gem.GemError as exc:
                if self._failed_again(workspace_id, target.app, exc):
                    failed += 1
                continue
            self._failures.pop((workspace_id, target.app.id), None)
            self.stages.record(workspace_id, [target.app])
            made += int(created)

        return made, failed

    def _failed_again(self, workspace_id: int, app: gem.Application, exc: gem.GemError) -> bool:
        """Count a transient failure; True while the application should hold the checkpoint back."""
        key = (workspace_id, app.id)
        count = self._failures.get(key, 0) + 1
        if count >= MAX_APPLICATION_FAILURES:
            self._failures.pop(key, None)
            log.error("Gem application %s failed %d cycles in a row (%s); giving up on this stage move", app.id, count, exc.message)
            self.stages.record(workspace_id, [app])
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

    def _take_in(self, workspace_id: int, team_id: str, client: gem.GemClient, target: Target, candidate: gem.Candidate | None) -> bool:
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


def match(app: gem.Application, plans: Sequence[Plan], stage_ids: set[str]) -> Target | None:
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
                return Target(app, job, app.stage.name)
    if app.stage.id in stage_ids:
        for job in app.jobs:
            keys = {normalise_key(job.id), normalise_key(job.name)} - {""}
            for_job = [p for p in plans if p.job_key in keys]
            if len({p.stage_key for p in for_job}) == 1:
                return Target(app, job, for_job[0].stage_label)
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


__all__ = ["MAX_APPLICATION_FAILURES", "PERMANENT", "GemTakeIn", "Target", "match"]
