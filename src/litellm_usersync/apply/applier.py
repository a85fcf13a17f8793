"""The one "batch endpoint where the proxy has it, else bounded per-user calls" applier, and the outcomes
it builds.

Every kind of write goes through :func:`apply_batched`: creates, deletes and role changes (chunks of
``BULK_CHUNK`` through the ``/management/v1/users/bulk*`` routes), joins and leaves (one team's members in
one roster write). A chunk the batch endpoint refuses as a whole falls back to per-user calls for that chunk
only; the chunks before it keep what they did, the chunks after it still go in bulk. A proxy without the
route (the batch call answers ``None``) sends everything left per user.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import Action, Outcome, OutcomeStatus
from litellm_usersync.proxy.client import RowResult
from litellm_usersync.settings import BULK_CHUNK

from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.applier")

A = TypeVar("A", bound=Action)
#: one chunk through a batch endpoint: an outcome per action, or None when the proxy has no such route;
#: a :class:`ProxyError` means the chunk failed as a whole
Batch = Callable[[list[A]], Awaitable[list[Outcome] | None]]
PerUser = Callable[[list[A]], Awaitable[list[Outcome]]]


def done(action: Action, **kw: Any) -> Outcome:
    return Outcome(action, OutcomeStatus.DONE, **kw)


def failed(action: Action, error: BaseException | str, **kw: Any) -> Outcome:
    return Outcome(action, OutcomeStatus.FAILED, error=str(error), **kw)


def skipped(action: Action, reason: str) -> Outcome:
    return Outcome(action, OutcomeStatus.SKIPPED, error=reason)


def outcomes_from_rows(actions: Sequence[A], rows: Sequence[RowResult], missing: str) -> list[Outcome]:
    """One outcome per action from a batch endpoint's per-row answers (matched by user id)."""
    by_id = {r.user_id: r for r in rows}
    out: list[Outcome] = []
    for a in actions:
        r = by_id.get(a.user_id)
        out.append(done(a) if r is not None and r.success else failed(a, (r.error if r else None) or missing))
    return out


async def apply_batched(
    run: Run,
    actions: Sequence[A],
    *,
    batch: Batch[A] | None,
    per_user: PerUser[A],
    what: str,
    chunk: int = BULK_CHUNK,
    after_chunk: Callable[[], Awaitable[None]] | None = None,
    advance: bool = True,
) -> list[Outcome]:
    """Apply ``actions``: through ``batch`` in chunks of ``chunk`` when it is given, else (and for every chunk
    the batch endpoint failed) through ``per_user``, which gets the actions left in one list and bounds its
    calls itself (``Run.each``).

    The progress advances chunk by chunk (``advance``; off where the caller counts, e.g. one team's batch
    inside ``Run.each``). Nothing new is sent in bulk once the run is stopping; ``per_user`` still sees the
    actions left and starts none of them (``Run.each``), but may finish bookkeeping. ``after_chunk`` runs
    after each chunk sent (e.g. clearing the key markers of the keys it brought). Bad credentials propagate.
    """
    if not actions:
        return []
    out: list[Outcome] = []
    rest: list[A] = [] if batch is not None else list(actions)
    if batch is not None:
        for i in range(0, len(actions), max(1, chunk)):
            if run.stopping:
                break  # the actions left are not attempted
            part = list(actions[i : i + chunk])
            try:
                async with run.slot():
                    got = await batch(part)
            except AuthError:
                raise
            except ProxyError as exc:  # only this chunk falls back: the others keep what they did
                log.info("%s: a batch of %d failed as a whole (%s); per-user calls for it", what, len(part), exc)
                rest.extend(part)
            else:
                if got is None:  # the proxy has no such route: everything left goes per user
                    rest.extend(actions[i:])
                    break
                out.extend(got)
                if advance:
                    run.progress.advance(len(got))
            if after_chunk is not None:
                await after_chunk()
    if rest:
        out.extend(await per_user(rest))
    return out
