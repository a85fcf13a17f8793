"""Reading the whole live state once: every user page, every team page, the rosters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from litellm_usersync.models import (
    INVITE_PENDING,
    KEY_PENDING,
    MANAGED_MARKER_KEY,
    MANAGED_MARKER_VALUE,
    LiveUser,
    Plan,
    RemoveMembership,
    Snapshot,
    Team,
    TeamKey,
    TeamMember,
)
from litellm_usersync.models.live import shared_strings

from .client import ProxyClient

#: metadata shared between users whose metadata is equal (most carry only the managed marker): a snapshot of
#: 100,000 users keeps a handful of dicts, not 100,000 (nobody mutates a LiveUser's metadata)
_SHARED_METADATA: dict[str, dict[str, Any]] = {}
_SHARED_METADATA_MAX = 1024


def _shared_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        key = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return dict(metadata)
    shared = _SHARED_METADATA.get(key)
    if shared is None:
        shared = dict(metadata)
        if len(_SHARED_METADATA) < _SHARED_METADATA_MAX:
            _SHARED_METADATA[key] = shared
    return shared


def parse_live_user(row: Mapping[str, Any]) -> LiveUser:
    """One ``/user/list`` row as a :class:`LiveUser`. Values repeated across users (roles, team ids, the email
    that equals the user id, common metadata) are shared, not copied: what 100,000 users cost (issue 14)."""
    metadata = row.get("metadata") or {}
    models = row.get("models") or ()
    # interned: a team roster lists the same ids and emails again (parse_team); one string for both
    user_id = sys.intern(str(row.get("user_id")))
    email = sys.intern(str(row["user_email"])) if row.get("user_email") else None
    role = row.get("user_role")
    created, updated = row.get("created_at"), row.get("updated_at")
    return LiveUser(
        user_id=user_id,
        email=user_id if email == user_id else email,
        role=sys.intern(role) if isinstance(role, str) else role,
        team_ids=shared_strings(row.get("teams") or ()),
        key_count=int(row.get("key_count") or 0),
        spend=float(row.get("spend") or 0.0),
        user_alias=row.get("user_alias"),
        max_budget=row.get("max_budget"),
        models=shared_strings(models) if isinstance(models, list) else (),
        created_at=created,
        updated_at=created if updated == created else updated,
        managed_marker=isinstance(metadata, dict) and metadata.get(MANAGED_MARKER_KEY) == MANAGED_MARKER_VALUE,
        key_pending=isinstance(metadata, dict) and bool(metadata.get(KEY_PENDING)),
        invite_pending=isinstance(metadata, dict) and bool(metadata.get(INVITE_PENDING)),
        budget_duration=_opt_str(row.get("budget_duration")),
        tpm_limit=_opt_int(row.get("tpm_limit")),
        rpm_limit=_opt_int(row.get("rpm_limit")),
        max_parallel_requests=_opt_int(row.get("max_parallel_requests")),
        sso_user_id=_opt_str(row.get("sso_user_id")),
        metadata=_shared_metadata(metadata) if isinstance(metadata, dict) and metadata else None,
        model_max_budget=dict(mmb) if isinstance(mmb := row.get("model_max_budget"), dict) and mmb else None,
    )


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_team(row: Mapping[str, Any]) -> Team:
    members = []
    for m in row.get("members_with_roles") or ():
        if isinstance(m, dict):
            members.append(
                TeamMember(  # the strings of the user rows (parse_live_user interns them too): 100,000
                    # members would otherwise hold a second copy of every id and email (~15 MB)
                    user_id=(sys.intern(str(m["user_id"])) if m.get("user_id") else None),
                    email=sys.intern(e) if isinstance(e := m.get("user_email"), str) else e,
                    role=sys.intern(str(m.get("role") or "user")),
                )
            )
    models = row.get("models")
    budget = row.get("max_budget")
    return Team(
        team_id=str(row.get("team_id")),
        alias=row.get("team_alias") or None,
        members=tuple(members),
        # a row without members_with_roles has no roster to trust: the users' own lists stand in for it
        roster_read=isinstance(row.get("members_with_roles"), list),
        max_budget=float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
        budget_duration=_opt_str(row.get("budget_duration")),
        models=tuple(str(m) for m in models) if isinstance(models, list) else (),
        tpm_limit=_opt_int(row.get("tpm_limit")),
        rpm_limit=_opt_int(row.get("rpm_limit")),
    )


async def read_snapshot(
    client: ProxyClient,
    *,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> Snapshot:
    """Read every user and team once (pages in parallel, totals checked) into an indexed :class:`Snapshot`,
    with the proxy's features (:meth:`ProxyClient.detect_features`)."""

    def progress(what: str) -> Callable[[int, int], None] | None:
        if on_progress is None:
            return None
        cb = on_progress
        return lambda done, total: cb(what, done, total)

    # the proxy's features are detected once, with this read (the executor asks the same client later)
    features, caller = await asyncio.gather(client.detect_features(), client.check_auth())
    # rows are parsed page by page: the raw rows (29 fields each) never all live at once
    users, teams = await asyncio.gather(
        client.read_all_users(on_page=progress("reading users"), parse=parse_live_user),
        client.read_all_teams(on_page=progress("reading teams"), parse=parse_team),
    )
    return Snapshot(
        users=tuple(users),
        teams=tuple(teams),
        proxy_version=features.version,
        caller_user_id=caller,
        features=features,
    )


async def with_team_keys(client: ProxyClient, snapshot: Snapshot, plan: Plan) -> Snapshot:
    """``snapshot`` with the keys a team leave of ``plan`` would destroy (API contract §2.12).

    One batched read: the keys of each team the plan removes someone holding keys from (``/key/list?team_id=``,
    not one read per user), kept for the users removed from it. On proxies whose leave keeps keys, or when
    nobody leaving holds a key: no read at all.
    """
    leaves: dict[str, set[str]] = {}
    for item in plan.items:
        for a in item.actions:
            if isinstance(a, RemoveMembership):
                leaves.setdefault(a.team_id, set()).add(a.user_id)
    # a user without any key (``key_count`` 0: /user/list counts every key of the user but the UI's session
    # keys) has no team key to lose: a team whose leaving users hold none is not read (a nightly move costs
    # no key read unless someone moved holds keys; the users a plan moves were just re-read by id)
    by_id = snapshot.users_by_id
    leaves = {t: ids for t, ids in leaves.items() if any(u is None or u.key_count for u in map(by_id.get, ids))}
    if not leaves or not await client.leave_destroys_team_keys():
        return snapshot
    sem = asyncio.Semaphore(max(client.settings.concurrency, 1))

    async def one(team_id: str) -> list[TeamKey]:
        async with sem:
            rows = await client.list_team_keys(team_id)
        users = leaves[team_id]
        return [
            TeamKey(str(r["token"]), str(r["user_id"]), team_id, r.get("key_alias"))
            for r in rows
            if r.get("user_id") in users and (r.get("team_id") in (None, team_id))
        ]

    found = [k for keys in await asyncio.gather(*(one(t) for t in sorted(leaves))) for k in keys]
    return dataclasses.replace(snapshot, team_keys=tuple(found)) if found else snapshot
