"""After ``add`` created users: an invitation link each (to set a password), and their models read back.

I/O through the one :class:`ProxyClient`, bounded concurrency, and never an exception for one user: a
proxy that cannot make invitations still keeps its new users, with the reason recorded per user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from .client import ProxyClient
from .errors import AuthError, ProxyError
from .registration import Registration
from .settings import DEFAULT_CONCURRENCY

log = logging.getLogger("litellm_usersync.invitations")

#: what the proxy says when the *caller's* user row is missing (it blames the invited user id)
_CALLER_ROW_MISSING = "does not exist in 'litellm_usertable'"
CALLER_ROW_HINT = (
    "the proxy cannot record who made the invitation: the master key's user (default_user_id) has no user "
    "row yet; creating a team with the master key or logging into the admin UI once creates it"
)


def explain_invitation_error(exc: ProxyError) -> str:
    """The proxy's message, plus what it really means when it blames a user id that we just created."""
    text = exc.message
    if _CALLER_ROW_MISSING in text.lower():
        return f"{text} ({CALLER_ROW_HINT})"
    return text


async def apply_registrations(
    client: ProxyClient,
    user_ids: Sequence[str],
    *,
    invite: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[str, int, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Registration]:
    """Create one invitation per user (unless ``invite`` is False) and read back the users' models.

    Returns ``user_id -> Registration``. Bad credentials end the run (:class:`AuthError` propagates);
    any other failure is recorded for that user only.
    """
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    links: dict[str, tuple[str | None, str | None]] = {}
    sem = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(uid: str) -> None:
        nonlocal done
        async with sem:
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
                links[uid] = (client.invitation_url(inv_id), None)
        done += 1
        if on_progress:
            on_progress("creating invitations", done, len(ids))

    if invite:
        if on_progress:
            on_progress("creating invitations", 0, len(ids))
        await asyncio.gather(*(one(u) for u in ids))

    models: dict[str, tuple[str, ...]] = {}
    try:
        rows = await client.read_users_by_ids(ids)
    except AuthError:
        raise
    except ProxyError as exc:  # the models column is informative only
        log.info("could not read back the new users' models: %s", exc)
        rows = {}
    for uid, row in rows.items():
        raw = row.get("models") or []
        models[uid] = tuple(str(m) for m in raw) if isinstance(raw, list) else ()

    result: dict[str, Registration] = {}
    for uid in ids:
        url, error = links.get(uid, (None, None))
        result[uid] = Registration(invitation_url=url, invitation_error=error, models=models.get(uid, ()))
    return result
