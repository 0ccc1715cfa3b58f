"""Gem's jobs and users per workspace, read in full and kept for DIRECTORY_TTL: who recruits for a job,
and which Gem user a note is attributed to."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.ats import gem

log = logging.getLogger("bot.ats.gem")

DIRECTORY_TTL = timedelta(minutes=15)  # jobs (hiring teams) and users change rarely
DIRECTORY_MISS_TTL = timedelta(minutes=1)  # an unknown job id reloads the directory, at most this often


@dataclass
class _Directory:
    """A workspace's Gem jobs (for hiring teams) and users (for emails), cached a while."""

    loaded_at: datetime
    jobs: dict[str, gem.Job] = field(default_factory=dict)
    users: dict[str, gem.User] = field(default_factory=dict)


class GemDirectory:
    def __init__(self, clock: Callable[[], datetime], user_by_email: Callable[[str, str], str | None] | None = None):
        self._clock = clock
        self._user_by_email = user_by_email
        self._directories: dict[int, _Directory] = {}

    def directory(self, workspace_id: int, client: gem.GemClient, job_id: str | None = None) -> _Directory:
        now = self._clock()
        directory = self._directories.get(workspace_id)
        stale = directory is None or now - directory.loaded_at >= DIRECTORY_TTL
        if not stale and directory is not None and job_id is not None and job_id not in directory.jobs:
            stale = now - directory.loaded_at >= DIRECTORY_MISS_TTL  # a job created since the last read
        if stale or directory is None:
            directory = _Directory(
                loaded_at=now,
                jobs={job.id: job for job in client.jobs()},
                users={user.id: user for user in client.users()},
            )
            self._directories[workspace_id] = directory
        return directory

    def recruiter_email(self, workspace_id: int, team_id: str, client: gem.GemClient, job_id: str) -> str | None:
        """The email of the job's first recruiter (then coordinator) who is a member of the Slack workspace,
        else of the first who has one; None when the job has no hiring team."""
        directory = self.directory(workspace_id, client, job_id)
        job = directory.jobs.get(job_id)
        if job is None:
            return None
        emails = [
            user.email
            for user in (directory.users.get(uid) for uid in (*job.recruiter_ids, *job.coordinator_ids))
            if user is not None and user.email and not user.disabled
        ]
        if not emails:
            return None
        if self._user_by_email is not None:
            for email in emails:
                try:
                    if self._user_by_email(team_id, email):
                        return email
                except Exception as exc:  # Slack being down must not stop the intake: the plan's author owns the card
                    log.info("Slack lookup of a Gem recruiter failed (%s)", exc.__class__.__name__)
                    break
        return emails[0]

    def note_author(self, workspace_id: int, client: gem.GemClient, job_id: str, email: str | None = None) -> str | None:
        """The Gem user a decision's note is attributed to: the active Gem user with `email` (the Slack
        email of who decided), else the score note's author (below)."""
        if email:
            directory = self.directory(workspace_id, client, job_id if not job_id.startswith("name:") else None)
            wanted = email.strip().lower()
            for user in directory.users.values():
                if not user.disabled and (user.email or "").strip().lower() == wanted:
                    return user.id
        return self.score_note_author(workspace_id, client, job_id)

    def score_note_author(self, workspace_id: int, client: gem.GemClient, job_id: str) -> str | None:
        """The Gem user a note is attributed to: the job's first recruiter, else a site admin, else anyone
        active. Gem's note takes a `user_id`; whether it may be left out is not documented."""
        directory = self.directory(workspace_id, client, job_id if not job_id.startswith("name:") else None)
        job = directory.jobs.get(job_id)
        active = [u for u in directory.users.values() if not u.disabled]
        for uid in (*(job.recruiter_ids if job else ()), *(job.coordinator_ids if job else ())):
            user = directory.users.get(uid)
            if user is not None and not user.disabled:
                return user.id
        admins = [u for u in active if u.site_admin]
        return (admins or active)[0].id if (admins or active) else None
