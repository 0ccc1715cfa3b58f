"""Who may do what (SPEC §8): admins, full members, guests; and who may act on a card."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.domain import ApplicationView, NotAllowed
from bot.slack.gateway import SlackGateway

log = logging.getLogger("bot.slack.access")


class Access:
    def __init__(self, *, gateway: SlackGateway, admin_ids: frozenset[str]):
        self._gateway = gateway
        self._admin_ids = admin_ids

    def is_admin(self, team_id: str, user_id: str) -> bool:
        if user_id in self._admin_ids:
            return True
        try:
            return self._gateway.user(team_id, user_id).is_admin
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return False

    def require_admin(self, team_id: str, user_id: str, what: str) -> None:
        if not self.is_admin(team_id, user_id):
            raise NotAllowed(f"Only Slack workspace admins and owners (or users in IMOCHA_ADMINS) can {what}.")

    def require_member(self, team_id: str, user_id: str) -> None:
        """Full members only: guests get a polite refusal."""
        if user_id in self._admin_ids:
            return
        try:
            user = self._gateway.user(team_id, user_id)
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
            raise NotAllowed("I couldn't check your Slack account just now; please try again.") from None
        if user.is_guest:
            raise NotAllowed("Sorry, guests can't use iMocha assessments here. Ask a full member of the hiring team.")

    def require_card_access(
        self, team_id: str, user_id: str, view: ApplicationView, *, channel_id: str | None = None, message_ts: str | None = None
    ) -> None:
        """The owner, an admin, or someone who can see the card (they clicked it, or are in its channel)."""
        self.require_member(team_id, user_id)
        if user_id == view.owner_user_id or user_id in self._admin_ids:
            return
        if view.card_channel_id and channel_id == view.card_channel_id and not view.card_in_dm:
            return  # the click came from the card (or its thread) in the hiring channel: they can see it
        if view.card_channel_id and not view.card_in_dm and self._gateway.is_member(team_id, view.card_channel_id, user_id):
            return
        if self.is_admin(team_id, user_id):
            return
        raise NotAllowed("You can act only on cards you own or that live in a channel you're in.")

    def can_see_channel(self, team_id: str, user_id: str, channel_id: str) -> bool:
        return self._gateway.is_member(team_id, channel_id, user_id)

    def can_see(self, team_id: str, user_id: str, view: ApplicationView) -> bool:
        if user_id == view.owner_user_id:
            return True
        if view.card_in_dm or not view.card_channel_id:
            return False
        return self._gateway.is_member(team_id, view.card_channel_id, user_id)
