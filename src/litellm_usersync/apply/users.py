"""Deleting users, changing their roles and their managed fields: the batch routes in chunks where the proxy
has them, else ``/user/delete`` in chunks (a failing chunk isolated per user) and ``/user/update`` per user."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import ChangeRole, DeleteUser, LiveUser, Outcome, RemoveMembership, UpdateUser
from litellm_usersync.proxy.client import ProxyClient

from .applier import apply_batched, done, failed, outcomes_from_rows
from .fields import needs_metadata, update_body
from .memberships import Memberships
from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.users")

#: user ids per ``/user/delete`` call on the per-user path
DELETE_CHUNK = 100


class UserWrites:
    """The delete and role-change phases of a run."""

    def __init__(
        self, client: ProxyClient, run: Run, memberships: Memberships, before: Mapping[str, LiveUser] | None = None
    ) -> None:
        self.client = client
        self.run = run
        self.memberships = memberships
        #: the users as the plan saw them (a role becoming internal_user keeps their budget: ``update_body``)
        self.before: Mapping[str, LiveUser] = before or {}

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

    # role changes and field changes

    async def apply_role_changes(self, actions: Sequence[ChangeRole | UpdateUser]) -> list[Outcome]:
        """Role changes and field changes: one ``/user/update`` per user (``/user/bulk_update`` where the proxy has
        it). An update that merges metadata keys reads the users' metadata first (``/user/update`` replaces it);
        one whose user cannot be read fails alone, with the reason."""
        if not actions:
            return []
        fields = any(isinstance(a, UpdateUser) for a in actions)
        self.run.progress.start("updating users" if fields else "changing roles", len(actions))
        metadata: dict[str, dict[str, Any]] = {}
        unsent: list[Outcome] = []
        merging = [a for a in actions if needs_metadata(a)]
        if merging:
            try:
                async with self.run.slot():
                    rows = await self.client.read_users_by_ids([a.user_id for a in merging])
            except AuthError:
                raise
            except ProxyError as exc:
                rows = {}
                why = f"could not read the user's metadata before merging it: {exc}"
            else:
                why = "user not found"
            metadata = {uid: dict(md) if isinstance(md := r.get("metadata"), dict) else {} for uid, r in rows.items()}
            unsent = [failed(a, why) for a in merging if a.user_id not in rows]
            actions = [a for a in actions if not needs_metadata(a) or a.user_id in rows]
            self.run.progress.advance(len(unsent))

        def body(a: ChangeRole | UpdateUser) -> dict[str, Any]:
            return update_body(a, metadata=metadata.get(a.user_id), before=self.before.get(a.user_id))

        async def bulk(chunk: list[ChangeRole | UpdateUser]) -> list[Outcome] | None:
            rows = await self.client.bulk_update_users([body(a) for a in chunk])
            return None if rows is None else outcomes_from_rows(chunk, rows, "not updated")

        async def one(a: ChangeRole | UpdateUser) -> list[Outcome]:
            log.debug("step: update of %s: %s", a.email, a.key)
            sent = body(a)
            sent.pop("user_id")
            try:
                await self.client.update_user(a.user_id, **sent)
            except AuthError:
                raise
            except ProxyError as exc:
                return [failed(a, exc)]
            return [done(a)]

        use_bulk = await self.client.supports_bulk("update")
        return unsent + await apply_batched(
            self.run,
            actions,
            batch=bulk if use_bulk else None,
            per_user=lambda rest: self.run.each(rest, one),
            what="bulk update",
        )
