"""Applying the managed fields: the ``/user/update`` body of a role or field change, and the team actions.

The bodies are pure (:func:`update_body`); :func:`apply_team_actions` creates and updates teams through the
client, one outcome per action, before any user action of the plan runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ConflictError, ProxyError
from litellm_usersync.models import (
    ChangeRole,
    CreateTeam,
    LiveUser,
    Outcome,
    OutcomeStatus,
    TeamAction,
    UpdateTeam,
    UpdateUser,
)
from litellm_usersync.models.fields import (
    FieldChange,
    create_fields,
    is_metadata_field,
    metadata_key,
    team_update_fields,
    user_update_fields,
)
from litellm_usersync.proxy.client import ProxyClient, is_uncertain

log = logging.getLogger("litellm_usersync.executor")

#: the fields ``/user/update`` fills with the proxy's internal-user defaults (``max_internal_user_budget``,
#: ``internal_user_budget_duration``) when a role becomes ``internal_user`` without them (API contract §1.3)
INTERNAL_USER_DEFAULTED = ("max_budget", "budget_duration")


def needs_metadata(action: ChangeRole | UpdateUser) -> bool:
    """True when the update merges metadata keys (the user's current metadata is read first)."""
    return isinstance(action, UpdateUser) and any(is_metadata_field(c.name) for c in action.changes)


def update_body(
    action: ChangeRole | UpdateUser,
    *,
    metadata: Mapping[str, Any] | None = None,
    before: LiveUser | None = None,
) -> dict[str, Any]:
    """The ``/user/update`` (or one ``/user/bulk_update`` entry) of a role change or a field change.

    ``metadata`` is the user's metadata as it is now (the managed keys are merged into it). When the role becomes
    ``internal_user`` the user's budget and its period are sent as they are (``before``: the snapshot's user),
    unless the update sets them: the proxy would otherwise write its internal-user defaults over them, a change
    the CSV never asked for.
    """
    body: dict[str, Any] = {"user_id": action.user_id}
    if action.new_role is not None:
        body["user_role"] = action.new_role
    if isinstance(action, UpdateUser):
        body.update(user_update_fields(action.changes, metadata))
    if action.new_role == "internal_user" and before is not None:
        for name in INTERNAL_USER_DEFAULTED:
            if name not in body:
                body[name] = getattr(before, name)
    return body


def with_changes(user: LiveUser | None, changes: Sequence[FieldChange]) -> LiveUser | None:
    """``user`` as it is once ``changes`` are applied: what a fallback recreation must bring back."""
    if user is None or not changes:
        return user
    values: dict[str, Any] = {}
    metadata = dict(user.metadata or {})
    for c in changes:
        if is_metadata_field(c.name):
            if c.new is None:
                metadata.pop(metadata_key(c.name), None)
            else:
                metadata[metadata_key(c.name)] = c.new
        else:
            values[c.name] = c.new if c.new is not None or c.name != "models" else ()
    return dataclasses.replace(user, metadata=metadata or None, **values)


def _done(action: TeamAction, note: str | None = None) -> Outcome:
    return Outcome(action, OutcomeStatus.DONE, note=note)


def _failed(action: TeamAction, error: BaseException | str) -> Outcome:
    return Outcome(action, OutcomeStatus.FAILED, error=str(error))


async def _create_team(client: ProxyClient, a: CreateTeam) -> Outcome:
    fields = create_fields(a.fields)
    try:
        await client.create_team(a.name, team_id=a.team_id, **fields)
    except AuthError:
        raise
    except ConflictError as exc:
        # the id is taken: a retry of a create whose answer was lost, or a team made meanwhile. Ours only if it
        # has our name
        try:
            row = await client.read_team(a.team_id)
        except ProxyError as read_exc:
            return _failed(a, f"team {a.name} could not be created: {exc}; reading it back failed: {read_exc}")
        if row is not None and str(row.get("team_alias") or "") == a.name:
            return _done(a, note="the team already existed with this id and name (an earlier attempt landed)")
        return _failed(a, f"team {a.name} could not be created: id {a.team_id} is taken by another team")
    except ProxyError as exc:
        if is_uncertain(exc):  # the create may have landed (a timeout, a reset): ours if it has our id and name
            try:
                row = await client.read_team(a.team_id)
            except ProxyError:
                row = None
            if row is not None and str(row.get("team_alias") or "") == a.name:
                return _done(a, note="created (the proxy's answer was lost; read back)")
        return _failed(a, f"team {a.name} could not be created: {exc}")
    return _done(a)


async def _update_team(client: ProxyClient, a: UpdateTeam) -> Outcome:
    try:
        await client.update_team(a.team_id, **team_update_fields(a.changes))
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"team {a.name} could not be updated: {exc}")
    return _done(a)


async def apply_team_actions(
    client: ProxyClient,
    actions: Sequence[TeamAction],
    *,
    concurrency: int,
    stopping: Callable[[], bool],
) -> list[Outcome]:
    """Create and update ``actions``' teams (bounded concurrency); one outcome each, never raising for one."""
    sem = asyncio.Semaphore(max(1, concurrency))
    out: list[Outcome] = []

    async def one(a: TeamAction) -> None:
        async with sem:
            if stopping():
                return
            log.debug("step: team %s: %s", a.name, "create" if isinstance(a, CreateTeam) else "update")
            out.append(await (_create_team(client, a) if isinstance(a, CreateTeam) else _update_team(client, a)))

    await asyncio.gather(*(one(a) for a in actions))
    return out
