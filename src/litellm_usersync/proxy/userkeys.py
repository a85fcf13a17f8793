"""Reading the keys of the users a plan blocks (issue 13): what each block stops, for the plan to show."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from litellm_usersync.models import BlockUser, Plan, Snapshot, UserKey

from .client import ProxyClient


def parse_user_key(row: Mapping[str, Any], user_id: str) -> UserKey | None:
    """One row of ``/key/list?user_id=...&return_full_object=true`` (None without a hash)."""
    token = row.get("token")
    if not token:
        return None
    team = row.get("team_id")
    return UserKey(
        token=str(token),
        user_id=user_id,
        team_id=str(team) if team else None,
        alias=row.get("key_alias") or None,
        blocked=row.get("blocked") is True,
    )


async def read_user_keys(client: ProxyClient, user_id: str) -> list[UserKey]:
    """Every key of ``user_id``, personal and team-bound (``/key/list`` filters exactly by ``user_id``)."""
    rows = await client.list_user_keys(user_id)
    return [k for r in rows if (k := parse_user_key(r, user_id)) is not None]


def users_to_block(plan: Plan) -> list[str]:
    return sorted({a.user_id for i in plan.items if not i.blocked for a in i.actions if isinstance(a, BlockUser)})


async def with_user_keys(client: ProxyClient, snapshot: Snapshot, plan: Plan | Iterable[str]) -> Snapshot:
    """``snapshot`` with the keys of every user ``plan`` blocks (one ``/key/list`` per user, bounded), so that
    the plan made again names what each block stops. Users whose keys were read already are not read again;
    nothing to read: ``snapshot`` itself. A failed read raises (a block whose keys are unknown is not shown)."""
    wanted = users_to_block(plan) if isinstance(plan, Plan) else sorted(set(plan))
    todo = [u for u in wanted if u not in snapshot.user_keys_read]
    if not todo:
        return snapshot
    sem = asyncio.Semaphore(max(client.settings.concurrency, 1))

    async def one(user_id: str) -> list[UserKey]:
        async with sem:
            return await read_user_keys(client, user_id)

    found = [k for keys in await asyncio.gather(*(one(u) for u in todo)) for k in keys]
    return dataclasses.replace(
        snapshot,
        user_keys=(*snapshot.user_keys, *found),
        user_keys_read=snapshot.user_keys_read | frozenset(todo),
    )
