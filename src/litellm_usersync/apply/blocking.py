"""Applying blocks and reactivations (issue 13), one user at a time; the executor runs them bounded.

A block, in an order that a kill at any point leaves resumable (the record says how far it got):

1. read the user (its metadata now) and its keys;
2. one ``/user/update``: role ``internal_user_viewer``, ``max_budget`` 0, and the record (state ``blocking``,
   the keys it is about to block, the role and budget it replaces) — from here the user cannot make a key
   or spend on a personal key;
3. ``/key/block`` each key that was not blocked (keys blocked before, by an admin, are not recorded: a
   reactivation leaves them blocked);
4. the record's state becomes ``blocked``: a rerun plans nothing for the user.

A reactivation: the record's state becomes ``unblocking``; ``/key/unblock`` each key the record names; one
``/user/update`` gives back the role and budget and clears the record. A run killed in between leaves a record
that is not ``blocked``: the next run completes the reactivation (the user is in the source) or the block
(it is not), never leaving keys unblocked on a user it shows as blocked.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import (
    BLOCK_RECORD,
    BLOCKED_BUDGET,
    BLOCKED_ROLE,
    BlockRecord,
    BlockUser,
    Outcome,
    ReactivateUser,
    without_marker,
)
from litellm_usersync.models.blocking import block_record_of
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.userkeys import read_user_keys

from .applier import done, failed

log = logging.getLogger("litellm_usersync.apply.blocking")


def _failed(action: BlockUser | ReactivateUser, error: str) -> list[Outcome]:
    return [failed(action, error)]


def _done(action: BlockUser | ReactivateUser, note: str | None = None) -> list[Outcome]:
    return [done(action, note=note)]


async def _metadata(client: ProxyClient, user_id: str) -> dict[str, Any] | None:
    """The user's metadata as it is now (None: no such user). ``/user/update`` replaces the whole dict, so
    the record is merged into what is there at this moment, not into what the plan saw."""
    rows = await client.read_users_by_ids([user_id])
    row = rows.get(user_id)
    if row is None:
        return None
    raw = row.get("metadata")
    return dict(raw) if isinstance(raw, dict) else {}


def _with_record(metadata: dict[str, Any], record: BlockRecord) -> dict[str, Any]:
    return {**metadata, BLOCK_RECORD: record.to_json()}


async def block_user(client: ProxyClient, a: BlockUser) -> list[Outcome]:
    """Block one user (see the module's docstring). Never raises but for bad credentials."""
    try:
        metadata = await _metadata(client, a.user_id)
        if metadata is None:
            return _failed(a, "user not found")
        existing = block_record_of(metadata)
        if existing is not None and existing.state == "blocked":
            return _done(a, "already blocked (by another run)")
        keys = await read_user_keys(client, a.user_id)
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"could not read the user and its keys before blocking it; nothing changed: {exc}")
    # the keys to block: the unblocked ones now, and (an interrupted block) those its record already names
    recorded = set(existing.tokens) if existing else set()
    tokens = tuple(sorted(recorded | {k.token for k in keys if not k.blocked}))
    if existing is not None:
        record = dataclasses.replace(existing, state="blocking", tokens=tokens)
    else:
        record = BlockRecord(
            at=a.blocked_at,
            state="blocking",
            tokens=tokens,
            role=a.old_role,
            max_budget=a.old_max_budget,
            budget_zeroed=a.zero_budget,
        )
    fields: dict[str, Any] = {"user_role": BLOCKED_ROLE, "metadata": _with_record(metadata, record)}
    if record.budget_zeroed:
        fields["max_budget"] = BLOCKED_BUDGET
    try:
        await client.update_user(a.user_id, **fields)
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"could not record the block on the user; nothing was blocked: {exc}")
    gone = 0
    for n, token in enumerate(tokens):
        try:
            if not await client.block_key(token):
                gone += 1  # deleted since it was read: nothing left to block
        except AuthError:
            raise
        except ProxyError as exc:
            return _failed(
                a,
                f"blocked {n - gone} of {len(tokens)} API key(s), then: {exc}; the user is demoted and its block "
                "is recorded as unfinished: the next run blocks the rest",
            )
    try:
        await client.update_user(
            a.user_id, metadata=_with_record(metadata, dataclasses.replace(record, state="blocked"))
        )
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"blocked its {len(tokens) - gone} API key(s), but could not mark the block done: {exc}")
    note = f"blocked {len(tokens) - gone} API key(s)"
    if gone:
        note += f" ({gone} deleted since the plan)"
    already = sum(1 for k in keys if k.blocked and k.token not in recorded)
    if already:
        note += f"; {already} blocked before stay blocked"
    return _done(a, note)


async def reactivate_user(client: ProxyClient, a: ReactivateUser) -> list[Outcome]:
    """Undo the tool's block of one user, as its record says (see the module's docstring)."""
    try:
        metadata = await _metadata(client, a.user_id)
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"could not read the user before reactivating it; nothing changed: {exc}")
    if metadata is None:
        return _failed(a, "user not found")
    record = block_record_of(metadata)
    if record is None:
        return _done(a, "not blocked any more (reactivated by another run)")
    try:
        if record.state != "unblocking":
            unblocking = dataclasses.replace(record, state="unblocking")
            await client.update_user(a.user_id, metadata=_with_record(metadata, unblocking))
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"could not mark the reactivation on the user; nothing changed: {exc}")
    gone = 0
    for n, token in enumerate(record.tokens):
        try:
            if not await client.unblock_key(token):
                gone += 1
        except AuthError:
            raise
        except ProxyError as exc:
            return _failed(
                a, f"unblocked {n - gone} of {len(record.tokens)} API key(s), then: {exc}; the next run finishes"
            )
    fields: dict[str, Any] = {"metadata": without_marker(metadata, BLOCK_RECORD)}
    if a.role:
        fields["user_role"] = a.role
    if record.budget_zeroed:
        # the plan's budget: the record's, or the CSV's where it manages max_budget; None is sent as null (the
        # budget it had, none, comes back)
        fields["max_budget"] = a.max_budget if a.restore_budget else record.max_budget
    try:
        await client.update_user(a.user_id, **fields)
    except AuthError:
        raise
    except ProxyError as exc:
        return _failed(a, f"unblocked its API keys, but could not give back its role and budget: {exc}")
    note = f"unblocked {len(record.tokens) - gone} API key(s)"
    if gone:
        note += f" ({gone} deleted while it was blocked)"
    return _done(a, note)
