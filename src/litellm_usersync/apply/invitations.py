"""After ``add`` created users: an invitation link each (to set a password), and their models read back.

I/O through the one :class:`ProxyClient`, bounded concurrency, and never an exception for one user: a
proxy that cannot make invitations still keeps its new users, with the reason recorded per user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from litellm_usersync.errors import AuthError, InviterMissingError, ProxyError
from litellm_usersync.models import INVITE_PENDING, without_marker
from litellm_usersync.plans.add import Registration
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import DEFAULT_CONCURRENCY

from .scheduling import run_bounded

log = logging.getLogger("litellm_usersync.apply.invitations")

CALLER_ROW_HINT = (
    "the proxy cannot record who made the invitation: the master key's user (default_user_id) has no user "
    "row yet; creating a team with the master key or logging into the admin UI once creates it"
)


def explain_invitation_error(exc: ProxyError) -> str:
    """The proxy's message, plus what it really means when it blames a user id that we just created."""
    if isinstance(exc, InviterMissingError):  # the proxy blames the invited user id; the caller's row is missing
        return f"{exc.message} ({CALLER_ROW_HINT})"
    return exc.message


async def apply_registrations(
    client: ProxyClient,
    user_ids: Sequence[str],
    *,
    invite: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[str, int, int], None] | None = None,
    stop: asyncio.Event | None = None,
    on_link: Callable[[str, str], None] | None = None,
) -> dict[str, Registration]:
    """Create one invitation per user (unless ``invite`` is False) and read back the users' models.

    ``on_link(user_id, url)`` makes each link durable as it arrives (the key journal); then the user's
    "invitation pending" marker (set at creation, see ``models.INVITE_PENDING``) is cleared, batched.
    Returns ``user_id -> Registration``. Bad credentials end the run (:class:`AuthError` propagates);
    any other failure is recorded for that user only.
    """
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    try:  # before the invitations: their metadata (markers) and models
        rows = await client.read_users_by_ids(ids)
    except AuthError:
        raise
    except ProxyError as exc:  # the models column is informative only; markers then stay for the next run
        log.info("could not read back the new users' models: %s", exc)
        rows = {}
    recorded: list[str] = []
    links: dict[str, tuple[str | None, str | None]] = {}
    done = 0

    async def one(uid: str) -> None:
        nonlocal done
        if stop is not None and stop.is_set():
            links[uid] = (None, "not attempted (run interrupted)")
            return
        try:
            inv_id = await client.create_invitation(uid)
        except AuthError:
            raise
        except ProxyError as exc:
            log.info("invitation for %s failed: %s", uid, exc)
            links[uid] = (None, explain_invitation_error(exc))
        else:
            url = client.invitation_url(inv_id)
            links[uid] = (url, None)
            try:
                if on_link is not None:
                    on_link(uid, url)
                recorded.append(uid)
            except OSError as exc:
                log.warning("could not record the invitation link of %s (%s): its marker stays", uid, exc)
        done += 1
        if on_progress:
            on_progress("creating invitations", done, len(ids))

    if invite:
        if on_progress:
            on_progress("creating invitations", 0, len(ids))
        await run_bounded(ids, one, concurrency)  # bounded workers, not one task per user

    left = await _clear_invite_markers(client, rows, recorded)
    models: dict[str, tuple[str, ...]] = {}
    for uid, row in rows.items():
        raw = row.get("models") or []
        models[uid] = tuple(str(m) for m in raw) if isinstance(raw, list) else ()

    result: dict[str, Registration] = {}
    for uid in ids:
        url, error = links.get(uid, (None, None))
        result[uid] = Registration(
            invitation_url=url, invitation_error=error, models=models.get(uid, ()), marker_left=uid in left
        )
    return result


async def _clear_invite_markers(
    client: ProxyClient, rows: dict[str, dict[str, Any]], recorded: Sequence[str]
) -> set[str]:
    """Clear ``INVITE_PENDING`` of the users whose link is recorded (one ``/user/bulk_update`` per 500 where
    the proxy has it). Returns the users whose marker is still set."""
    updates: list[dict[str, Any]] = []
    for uid in recorded:
        md = rows.get(uid, {}).get("metadata")
        if isinstance(md, dict) and md.get(INVITE_PENDING):
            updates.append({"user_id": uid, "metadata": without_marker(md, INVITE_PENDING)})
    if not updates:
        return set()
    left: set[str] = {str(u["user_id"]) for u in updates}
    try:
        bulk = await client.bulk_update_users(updates) if await client.supports_bulk("update") else None
        if bulk is not None:
            return {uid for uid in left if uid not in {r.user_id for r in bulk if r.success}}
        for u in updates:
            await client.update_user(u["user_id"], metadata=u["metadata"])
            left.discard(u["user_id"])
    except AuthError:
        raise
    except ProxyError as exc:
        log.warning("could not clear the invitation markers: %s", exc)
    return left
