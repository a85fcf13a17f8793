"""Before the writes of a run planned on a cached read (issue 14): the users it destroys something of, read again.

Nothing destructive rests on the cache alone: the users a plan deletes, recreates, demotes, blocks or moves out
of a team are read again by id right before the writes (one batched read, 100 ids a request); when any of them differs
from what the plan was made from, the caller plans again from the returned snapshot.
"""

from __future__ import annotations

import dataclasses
import logging

from litellm_usersync.models import (
    BlockUser,
    ChangeRole,
    DeleteUser,
    LiveUser,
    Plan,
    RebindKeys,
    RecreateUser,
    RemoveMembership,
    Snapshot,
    UpdateUser,
)

from .client import ProxyClient
from .snapshot import parse_live_user

log = logging.getLogger("litellm_usersync.read")


def destructive_user_ids(plan: Plan) -> set[str]:
    """The users a plan deletes, recreates, demotes (any role change), blocks, updates or moves out of a team."""
    ids: set[str] = set()
    for item in plan.items:
        for a in item.actions:
            if isinstance(
                a, DeleteUser | RecreateUser | ChangeRole | RemoveMembership | RebindKeys | BlockUser | UpdateUser
            ):
                ids.add(a.user_id)
    return ids


async def reread_for_plan(client: ProxyClient, snapshot: Snapshot, plan: Plan) -> tuple[Snapshot, bool]:
    """``snapshot`` with the users :func:`destructive_user_ids` names read again by id (one batched read: 100 ids a
    request), and whether any of them differs from what the plan was made from (role, email, teams, keys,
    spend): then the caller plans again from the returned snapshot."""
    ids = destructive_user_ids(plan)
    if not ids:
        return snapshot, False
    rows = await client.read_users_by_ids(sorted(ids))
    fresh = {uid: parse_live_user(row) for uid, row in rows.items()}
    by_id = dict(snapshot.users_by_id)
    if not any(_differs(by_id.get(uid), fresh.get(uid)) for uid in ids):
        return snapshot, False
    for uid in ids:
        if uid in fresh:
            by_id[uid] = fresh[uid]
        else:
            by_id.pop(uid, None)
    log.info("the users the plan deletes, demotes or moves changed since the cached read: planning again")
    return dataclasses.replace(snapshot, users=tuple(by_id[uid] for uid in sorted(by_id))), True


def _differs(a: LiveUser | None, b: LiveUser | None) -> bool:
    if a is None or b is None:
        return a is not b
    return (a.email, a.role, sorted(set(a.team_ids)), a.key_count, a.spend, a.metadata) != (
        b.email,
        b.role,
        sorted(set(b.team_ids)),
        b.key_count,
        b.spend,
        b.metadata,
    )
