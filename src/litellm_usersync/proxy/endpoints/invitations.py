"""Invitations: the link with which a new user sets a password. The invitation id is a secret."""

from __future__ import annotations

from .._base import ClientBase
from ..retries import is_retryable_before_sending


class InvitationCalls(ClientBase):
    async def create_invitation(self, user_id: str) -> str:
        """``POST /invitation/new``; returns the invitation id (masked from now on in anything logged).

        :class:`~litellm_usersync.errors.InviterMissingError` when the caller has no user row to record as
        the invitation's maker."""
        data = await self.request_object(
            "POST", "/invitation/new", body={"user_id": user_id}, retry=is_retryable_before_sending
        )
        invitation_id = str(data.get("id"))
        self.remember_secret(invitation_id)
        return invitation_id

    def invitation_url(self, invitation_id: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/ui/?invitation_id={invitation_id}&action=reset_password"
