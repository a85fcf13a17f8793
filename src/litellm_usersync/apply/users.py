"""Deleting users and changing their roles: the batch routes in chunks where the proxy has them, else
``/user/delete`` in chunks (a failing chunk isolated per user) and ``/user/update`` per user."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import ChangeRole, DeleteUser, Outcome, RemoveMembership
from litellm_usersync.proxy.client import ProxyClient

from .applier import apply_batched, done, failed, outcomes_from_rows
from .memberships import Memberships
from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.users")

#: user ids per ``/user/delete`` call on the per-user path
DELETE_CHUNK = 100


class UserWrites:
    """The delete and role-change phases of a run."""

    def __init__(self, client: ProxyClient, run: Run, memberships: Memberships) -> None:
        self.client = client
        self.run = run
        self.memberships = memberships

    # deletes

    async def apply_deletes(self, actions: Sequence[DeleteUser]) -> list[Outcome]:
        if not actions:
            return []
        self.run.progress.start("deleting users", len(actions))
        bulk = await self.client.supports_bulk("delete")
        return await apply_batched(
            self.run, actions, batch=self._bulk_delete if bulk else None, per_user=self._delete, what="bulk delete"
        )

    async def _bulk_delete(self, chunk: list[DeleteUser]) -> list[Outcome] | None:
        rows = await self.client.bulk_delete_users([a.user_id for a in chunk])
        return None if rows is None else outcomes_from_rows(chunk, rows, "not deleted")

    async def _delete(self, actions: list[DeleteUser]) -> list[Outcome]:
        # older proxies leave rosters behind on /user/delete: leave the teams first (not with --no-bulk on a
        # proxy whose delete cascades: that would only cost one request per team of every deleted user)
        if not await self.client.user_delete_cascades():
            leaves = [RemoveMembership(a.user_id, a.email, t) for a in actions for t in a.team_ids]
            await self.memberships.leaves(leaves, progress=False)
        chunks = [actions[i : i + DELETE_CHUNK] for i in range(0, len(actions), DELETE_CHUNK)]
        return await self.run.each(chunks, self._delete_chunk)

    async def _delete_chunk(self, chunk: list[DeleteUser]) -> list[Outcome]:
        try:
            gone = await self.client.delete_users([a.user_id for a in chunk])
        except AuthError:
            raise
        except ProxyError as exc:
            if len(chunk) == 1:
                return [failed(chunk[0], exc)]
            # isolate the failing user(s): one by one
            out: list[Outcome] = []
            for a in chunk:
                out.extend(await self._delete_chunk([a]))
            return out
        return [done(a) if a.user_id in gone else failed(a, "not deleted") for a in chunk]

    # role changes

    async def apply_role_changes(self, actions: Sequence[ChangeRole]) -> list[Outcome]:
        if not actions:
            return []
        self.run.progress.start("changing roles", len(actions))
        bulk = await self.client.supports_bulk("update")
        return await apply_batched(
            self.run,
            actions,
            batch=self._bulk_update if bulk else None,
            per_user=lambda rest: self.run.each(rest, self._change_role),
            what="bulk role change",
        )

    async def _bulk_update(self, chunk: list[ChangeRole]) -> list[Outcome] | None:
        rows = await self.client.bulk_update_users([{"user_id": a.user_id, "user_role": a.new_role} for a in chunk])
        return None if rows is None else outcomes_from_rows(chunk, rows, "not updated")

    async def _change_role(self, a: ChangeRole) -> list[Outcome]:
        log.debug("step: role of %s: %s → %s", a.email, a.old_role, a.new_role)
        try:
            await self.client.update_user(a.user_id, user_role=a.new_role)
        except AuthError:
            raise
        except ProxyError as exc:
            return [failed(a, exc)]
        return [done(a)]
