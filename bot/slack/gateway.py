"""The bot's side of the Slack Web API: a client per workspace, and cached user and channel facts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.web import SlackResponse

from bot.slack.pacing import LIMITS, LocalBudget, budget_key

log = logging.getLogger("bot.slack")


@dataclass(frozen=True)
class SlackUser:
    id: str
    is_admin: bool
    is_guest: bool
    is_bot: bool
    email: str | None
    deleted: bool = False
    tz: str | None = None  # the user's IANA time zone, as their Slack profile says


class SlackUnavailable(Exception):
    """No usable token for the workspace (not installed, or uninstalled)."""


class _TTLCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._data: dict[object, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: object) -> object | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] < self._clock():
                return None
            return hit[1]

    def put(self, key: object, value: object) -> None:
        with self._lock:
            if len(self._data) > 50_000:
                self._data.clear()
            self._data[key] = (self._clock() + self._ttl, value)

    def drop(self, key: object) -> None:
        with self._lock:
            self._data.pop(key, None)


# Methods the handlers call while a user waits, paced in this process (the outbox paces its own calls
# in the shared budget: bot/slack/pacing.py).
PACED_HERE = ("views.publish", "chat.postEphemeral")


class HookedWebClient(WebClient):
    """A WebClient that calls `before_call()` before each Web API call (the work pool yields to acks
    there) and keeps PACED_HERE methods inside their rate limit for its workspace."""

    def __init__(
        self,
        *args: Any,
        before_call: Callable[[], None] | None = None,
        team_id: str = "",
        budget: LocalBudget | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._before_call = before_call
        self._team_id = team_id
        self._budget = budget

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        if self._before_call is not None:
            self._before_call()
        if self._budget is not None and api_method in PACED_HERE:
            waited = self._budget.wait_for(budget_key(self._team_id, api_method), LIMITS[api_method])
            if waited > 0:
                log.info("%s for %s waited %.2fs for Slack's rate limit", api_method, self._team_id, waited)
        return super().api_call(api_method, **kwargs)


class SlackGateway:
    """Builds per-workspace WebClients and answers the questions authorisation needs, with caching."""

    def __init__(
        self,
        *,
        base_url: str,
        token_for: Callable[[str], str | None],
        timeout: int = 10,
        before_call: Callable[[], None] | None = None,
    ):
        self._base_url = base_url
        self._before_call = before_call
        self._budget = LocalBudget()
        self._token_for = token_for
        self._timeout = timeout
        self._users = _TTLCache(300)
        self._members = _TTLCache(60)
        self._dms = _TTLCache(3600)
        self._emails = _TTLCache(600)

    def client(self, team_id: str) -> WebClient:
        token = self._token_for(team_id)
        if not token:
            raise SlackUnavailable(f"no Slack token for workspace {team_id}")
        return HookedWebClient(
            token=token,
            base_url=self._base_url,
            timeout=self._timeout,
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)],
            before_call=self._before_call,
            team_id=team_id,
            budget=self._budget,
        )

    def user(self, team_id: str, user_id: str) -> SlackUser:
        cached = self._users.get((team_id, user_id))
        if isinstance(cached, SlackUser):
            return cached
        data = self.client(team_id).users_info(user=user_id)["user"]
        user = SlackUser(
            id=user_id,
            is_admin=bool(data.get("is_admin") or data.get("is_owner") or data.get("is_primary_owner")),
            is_guest=bool(data.get("is_restricted") or data.get("is_ultra_restricted")),
            is_bot=bool(data.get("is_bot")),
            email=(data.get("profile") or {}).get("email"),
            deleted=bool(data.get("deleted")),
            tz=data.get("tz") or None,
        )
        self._users.put((team_id, user_id), user)
        return user

    def user_by_email(self, team_id: str, email: str) -> str | None:
        key = (team_id, email.lower())
        cached = self._emails.get(key)
        if cached is not None:
            return str(cached) or None
        try:
            user_id = self.client(team_id).users_lookupByEmail(email=email)["user"]["id"]
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                raise
            user_id = ""
        self._emails.put(key, user_id)
        return user_id or None

    def is_member(self, team_id: str, channel_id: str, user_id: str) -> bool:
        key = (team_id, channel_id)
        members = self._members.get(key)
        if not isinstance(members, frozenset):
            collected: set[str] = set()
            try:
                cursor = None
                client = self.client(team_id)
                while True:
                    page = client.conversations_members(channel=channel_id, cursor=cursor, limit=1000)
                    collected.update(page.get("members") or [])
                    cursor = (page.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
            except SlackApiError as exc:
                log.info("conversations.members failed for %s: %s", channel_id, exc.response.get("error"))
            members = frozenset(collected)
            self._members.put(key, members)
        return user_id in members

    def dm_channel(self, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        cached = self._dms.get(key)
        if cached:
            return str(cached)
        channel_id = str(self.client(team_id).conversations_open(users=user_id)["channel"]["id"])
        self._dms.put(key, channel_id)
        return channel_id

    def forget_team(self, team_id: str) -> None:
        """Drop nothing durable; tokens come from the store. Kept for symmetry with uninstall handling."""
        log.info("workspace %s: Slack caches left to expire after uninstall", team_id)
