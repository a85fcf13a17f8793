"""``--adopt``: write the tool's marker into existing users, so that the ``managed`` scope answers for them.

``/user/update`` replaces the whole ``metadata`` dict and, by ``user_id``, creates a user that does not exist
(API contract §2.4). So each user is read first: a user gone since the plan was made is not brought back, and
its own metadata (an SSO's, another script's) is kept with the marker added to it. Then one
``/user/bulk_update`` per chunk where the proxy has it, else ``/user/update`` per user (``apply_batched``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import MANAGED_MARKER_KEY, MANAGED_MARKER_VALUE, AdoptUser, Outcome
from litellm_usersync.proxy.client import ProxyClient

from .applier import apply_batched, done, failed, outcomes_from_rows
from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.adoption")
ALREADY_NOTE = "already marked as managed (by another run)"


def adopted_metadata(metadata: object) -> dict[str, Any]:
    """The user's metadata with the marker added (everything else kept)."""
    kept = dict(metadata) if isinstance(metadata, dict) else {}
    return {**kept, MANAGED_MARKER_KEY: MANAGED_MARKER_VALUE}


class Adoptions:
    """The adoption phase of a run (before the role changes: a row's changes follow its adoption)."""

    def __init__(self, client: ProxyClient, run: Run) -> None:
        self.client = client
        self.run = run
        #: user id -> the metadata to write (its own, with the marker)
        self._metadata: dict[str, dict[str, Any]] = {}

    async def apply_adoptions(self, actions: Sequence[AdoptUser]) -> list[Outcome]:
        if not actions:
            return []
        self.run.progress.start("marking adopted users as managed", len(actions))
        try:
            async with self.run.slot():
                rows = await self.client.read_users_by_ids([a.user_id for a in actions])
        except AuthError:
            raise
        except ProxyError as exc:
            return [failed(a, f"could not read the user before adopting it: {exc}") for a in actions]
        out: list[Outcome] = []
        todo: list[AdoptUser] = []
        for a in actions:
            row = rows.get(a.user_id)
            metadata = row.get("metadata") if row is not None else None
            if row is None:
                out.append(failed(a, "user not found (deleted since the plan was made?)"))
            elif isinstance(metadata, dict) and metadata.get(MANAGED_MARKER_KEY) == MANAGED_MARKER_VALUE:
                out.append(done(a, note=ALREADY_NOTE))
            else:
                self._metadata[a.user_id] = adopted_metadata(metadata)
                todo.append(a)
        self.run.progress.advance(len(out))
        bulk = await self.client.supports_bulk("update")
        out.extend(
            await apply_batched(
                self.run,
                todo,
                batch=self._bulk_adopt if bulk else None,
                per_user=lambda rest: self.run.each(rest, self._adopt),
                what="bulk adoption",
            )
        )
        return out

    async def _bulk_adopt(self, chunk: list[AdoptUser]) -> list[Outcome] | None:
        rows = await self.client.bulk_update_users(
            [{"user_id": a.user_id, "metadata": self._metadata[a.user_id]} for a in chunk]
        )
        return None if rows is None else outcomes_from_rows(chunk, rows, "not marked")

    async def _adopt(self, a: AdoptUser) -> list[Outcome]:
        log.debug("step: adopt %s (metadata.%s)", a.email, MANAGED_MARKER_KEY)
        try:
            await self.client.update_user(a.user_id, metadata=self._metadata[a.user_id])
        except AuthError:
            raise
        except ProxyError as exc:
            return [failed(a, exc)]
        return [done(a)]
