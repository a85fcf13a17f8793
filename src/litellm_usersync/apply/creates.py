"""Creating users: ``/management/v1/users/bulk`` in chunks where the proxy has it (teams and keys in the same
call), else ``/user/new`` per user followed by one roster write per team; every key recorded as it arrives.

A create that landed although a later step of its row failed (a team join, its key) is FAILED with
``partial=True``: the user exists, and ``add`` lists it as created.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ConflictError, ProxyError
from litellm_usersync.models import AddMembership, CreateUser, Outcome, RecreateUser
from litellm_usersync.models.fields import create_fields
from litellm_usersync.proxy.client import ProxyClient, RowErrorKind

from .applier import apply_batched, done, failed
from .keys import Keys, created_metadata
from .memberships import Memberships
from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.creates")


def create_body(
    action: CreateUser | RecreateUser, *, with_teams: bool, create_key: bool, invite: bool = False
) -> dict[str, Any]:
    """The ``/user/new`` (or bulk row) body of a create: id, email, role, key, the markers, maybe the teams."""
    body: dict[str, Any] = {
        "user_id": action.user_id,
        "user_email": action.email,
        "user_role": action.role,
        "auto_create_key": create_key,
        "metadata": created_metadata(create_key=create_key, invite=invite, action=action),
    }
    if isinstance(action, CreateUser):  # the managed fields of the CSV row, at creation
        body.update({k: v for k, v in create_fields(action.fields).items() if k != "metadata"})
    if with_teams and action.team_ids:
        body["teams"] = list(action.team_ids)
    if isinstance(action, CreateUser) and action.key_alias and create_key:
        body["key_alias"] = action.key_alias
    return body


class Creates:
    """The create phase of a run."""

    def __init__(self, client: ProxyClient, run: Run, keys: Keys, memberships: Memberships) -> None:
        self.client = client
        self.run = run
        self.keys = keys
        self.memberships = memberships

    async def apply(self, actions: Sequence[CreateUser]) -> list[Outcome]:
        if not actions:
            return []
        self.run.progress.start("adding users", len(actions))
        bulk = await self.client.supports_bulk("create")
        return await apply_batched(
            self.run,
            actions,
            batch=self._bulk if bulk else None,
            per_user=self._per_user,
            what="bulk create",
            # one bulk_update per chunk (the keys are in the journal now), beside the writes that follow
            after_chunk=self._clear_markers_soon,
        )

    async def _clear_markers_soon(self) -> None:
        self.keys.flush_soon()

    # per user

    async def _per_user(self, actions: list[CreateUser]) -> list[Outcome]:
        created = await self.run.each(actions, self._create_one)
        await self.keys.flush()
        # join teams batched per team: one roster write per team instead of one per user
        joins = [
            AddMembership(o.action.user_id, o.action.email, t)
            for o in created
            if o.ok and isinstance(o.action, CreateUser)
            for t in o.action.team_ids
        ]
        join_outcomes = {
            (o.action.user_id, o.action.team_id): o
            for o in await self.memberships.joins(joins, progress=False)
            if isinstance(o.action, AddMembership)
        }
        if not await self.client.user_delete_cascades():
            await self._rejoin_stale_rosters([o for o in join_outcomes.values() if o.ok])
        outcomes: list[Outcome] = []
        for o in created:
            a = o.action
            if o.ok and isinstance(a, CreateUser):
                errors = []
                for t in a.team_ids:
                    joined = join_outcomes.get((a.user_id, t))
                    if joined is None:
                        errors.append(f"created, but not yet added to team {self.run.label(t)} (run interrupted)")
                    elif not joined.ok:
                        errors.append(f"created, but joining team {self.run.label(t)} failed: {joined.error}")
                if errors:
                    o = failed(a, "; ".join(errors), api_key=o.api_key, note=o.note, partial=True)
            outcomes.append(o)
        return outcomes

    async def _create_one(self, a: CreateUser) -> list[Outcome]:
        try:
            created = await self.client.create_user(
                create_body(a, with_teams=False, create_key=a.create_key, invite=self.keys.invite)
            )
        except AuthError:
            raise
        except ConflictError as exc:
            return [failed(a, f"User already exists: {exc.message}")]
        except ProxyError as exc:
            return [failed(a, exc)]
        if created.recovered and a.create_key:
            return [await self.keys.replace_lost_key(a)]
        if created.api_key:
            metadata = created_metadata(create_key=True, invite=self.keys.invite, action=a)
            if not self.keys.received(a.user_id, a.email, created.api_key, None, metadata):
                return [failed(a, "its API key could not be recorded", api_key=created.api_key)]
        return [done(a, api_key=created.api_key)]

    async def _rejoin_stale_rosters(self, joined: list[Outcome]) -> None:
        """Where ``/user/delete`` leaves rosters behind (1.74.0), a new user whose id was deleted there before
        (by anyone) is still on those rosters: its join answers "already in team" and its ``user.teams`` stays
        without the team. The new users are read back; such a join is done again: leave, then join."""
        actions = [o.action for o in joined if isinstance(o.action, AddMembership)]
        if not actions or self.run.stopping:
            return
        try:
            async with self.run.slot():
                rows = await self.client.read_users_by_ids(sorted({a.user_id for a in actions}))
        except AuthError:
            raise
        except ProxyError as exc:  # the joins answered success; the verification of a sync reads again later
            log.info("could not read the new users back after their joins (%s)", exc)
            return
        for a in actions:
            row = rows.get(a.user_id)
            if row is None or a.team_id in (row.get("teams") or ()):
                continue
            label = self.run.label(a.team_id)
            log.info("%s: a stale roster entry on team %s; leaving and joining again", a.email, label)
            try:
                async with self.run.slot():
                    await self.client.remove_team_member(a.team_id, a.user_id)
                    await self.client.add_team_members(a.team_id, [(a.user_id, a.email)])
            except AuthError:
                raise
            except ProxyError as exc:
                log.info("rejoining %s to team %s failed (%s)", a.email, label, exc)

    # in bulk

    async def _bulk(self, actions: list[CreateUser]) -> list[Outcome] | None:
        """One chunk through the bulk route: every key recorded first (durable), then the lost ones replaced."""
        bodies = [create_body(a, with_teams=True, create_key=a.create_key, invite=self.keys.invite) for a in actions]
        rows = await self.client.bulk_create_users(bodies)
        if rows is None:
            return None
        by_id = {r.user_id: r for r in rows if r.user_id}
        unrecorded: set[str] = set()  # created, but the key could not be made durable
        for a in actions:
            r = by_id.get(a.user_id)
            metadata = created_metadata(create_key=True, invite=self.keys.invite, action=a)
            if (
                r is not None
                and r.success
                and r.api_key
                and a.create_key
                and not self.keys.received(a.user_id, a.email, r.api_key, None, metadata)
            ):
                unrecorded.add(a.user_id)
        lost = [a for a in actions if (r := by_id.get(a.user_id)) and r.success and not r.api_key and a.create_key]
        replaced = {
            o.action.user_id: o for o in await self.run.each(lost, self._one_lost, advance=False)
        }  # the applier advances the progress by the whole chunk
        outcomes: list[Outcome] = []
        for a in actions:
            r = by_id.get(a.user_id)
            if r is None:
                outcomes.append(failed(a, "the proxy did not answer for this user"))
            elif a.user_id in unrecorded:
                # (the key is left out of the row, as before the split: the next run reissues it)
                outcomes.append(failed(a, "created, but its API key could not be recorded", partial=True))
            elif not r.success:
                err = r.error or "rejected"
                if r.kind in (RowErrorKind.ALREADY_EXISTS, RowErrorKind.DUPLICATE):
                    err = f"User already exists: {err}"
                outcomes.append(failed(a, err))
            else:
                missing = ", ".join(self.run.label(t) for t in a.team_ids if t not in r.teams)
                key, note, error = r.api_key, None, None
                if a.user_id in replaced:
                    o = replaced[a.user_id]
                    key, note, error = o.api_key, o.note, o.error
                elif a in lost:  # stopped before its key was replaced: the marker stays, the next run does it
                    self.keys.unknown.add(a.user_id)
                    error = "created, but its API key is unknown (the answer was lost; run interrupted); run again"
                if missing:
                    why = f"created, but not added to team(s) {missing}: {r.error or '?'}"
                    error = f"{why}; {error}" if error else why
                if error:  # the user exists: a later step failed
                    outcomes.append(failed(a, error, api_key=key, note=note, partial=True))
                else:
                    outcomes.append(done(a, api_key=key, note=note))
        return outcomes

    async def _one_lost(self, a: CreateUser) -> list[Outcome]:
        return [await self.keys.replace_lost_key(a)]
