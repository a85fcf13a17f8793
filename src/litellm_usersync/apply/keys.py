"""The API keys of a run: each handed to ``on_key`` (the journal) as it arrives, then its user's "key
pending" marker cleared (batched); a key nobody saw revoked and issued again; the repairs of keys an
interrupted run lost (:class:`ReissueKey`).

The markers are what makes a lost key findable: a user is created with ``KEY_PENDING`` set, and the marker
is cleared only once its key is durable. A failure in between leaves the marker, and the next run reissues
the key (or keeps the one the journal recorded).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import (
    INVITE_PENDING,
    KEY_PENDING,
    MANAGED_MARKER_KEY,
    MANAGED_MARKER_VALUE,
    CreateUser,
    Outcome,
    RecreateUser,
    ReissueKey,
    without_marker,
)
from litellm_usersync.models.fields import create_fields
from litellm_usersync.proxy.client import ProxyClient, is_uncertain

from .applier import done, failed
from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.keys")

#: ``on_key(user_id, email, api_key, note)``: a key arrived; must make it durable before returning (raise
#: ``OSError`` when it cannot: the user's marker then stays set, and the next run reissues the key)
KeyHook = Callable[[str, str, str, "str | None"], None]
LOST_KEY_NOTE = "a new API key: the proxy's answer with the first one was lost, so that key was revoked"
REISSUED_NOTE = "a new API key, replacing one lost in an interrupted run (that key was revoked: nobody had seen it)"
KEPT_NOTE = "API key recorded by an interrupted run (in its journal); kept"


def hash_key(api_key: str) -> str:
    """The proxy's id of a virtual key (``token`` in ``/key/list``): the sha256 of the plaintext key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def created_metadata(
    *, create_key: bool, invite: bool = False, action: CreateUser | RecreateUser | None = None
) -> dict[str, Any]:
    """A new user's metadata: the CSV's ``metadata.<key>`` values (``action``), the managed marker, and the
    "pending" markers of the secrets it will get."""
    metadata: dict[str, Any] = {}
    if isinstance(action, CreateUser):
        metadata.update(create_fields(action.fields).get("metadata", {}))
    metadata[MANAGED_MARKER_KEY] = MANAGED_MARKER_VALUE
    if create_key:
        metadata[KEY_PENDING] = True
    if invite:
        metadata[INVITE_PENDING] = True
    return metadata


class Keys:
    """The keys one run received, the markers still to clear, and the users whose key nobody knows."""

    def __init__(
        self,
        client: ProxyClient,
        run: Run,
        *,
        on_key: KeyHook | None = None,
        recorded_keys: Mapping[str, str] | None = None,
        invite: bool = False,
    ) -> None:
        self.client = client
        self.run = run
        self._on_key = on_key
        #: ``user_id -> key`` recorded by earlier interrupted runs: such a key is kept, never revoked
        self._recorded = dict(recorded_keys or {})
        #: new users also get an invitation link after this run (``add``): marked pending for it too
        self.invite = invite
        #: ``user_id -> metadata`` to write once their key is recorded (clears ``KEY_PENDING``), batched
        self._clear: dict[str, dict[str, Any]] = {}
        self._markers_left: set[str] = set()
        #: users created (or repaired) whose API key is known to no report: the next run reissues them
        self.unknown: set[str] = set()
        #: marker clears started by :meth:`flush_soon`, awaited by :meth:`flush`
        self._pending: list[asyncio.Task[None]] = []

    @property
    def markers_left(self) -> tuple[str, ...]:
        """Users whose marker is still set although their key is recorded (a failed or pending clear)."""
        return tuple(sorted(self._markers_left | set(self._clear)))

    def received(self, user_id: str, email: str, api_key: str, note: str | None, metadata: dict[str, Any]) -> bool:
        """A key arrived: hand it to ``on_key`` (which makes it durable), then queue the marker's clearing.

        False when it could not be recorded: the marker stays, so the next run reissues the key."""
        if self._on_key is not None:
            try:
                self._on_key(user_id, email, api_key, note)
            except OSError as exc:
                log.warning("could not record the API key of %s (%s): its marker stays set", user_id, exc)
                self.unknown.add(user_id)
                return False
        self.unknown.discard(user_id)
        self._clear[user_id] = without_marker(metadata, KEY_PENDING)
        return True

    def flush_soon(self) -> None:
        """Clear the markers queued so far in the background, beside the writes that follow (the keys are on
        disk already: nothing waits for the markers but the end of the run); :meth:`flush` waits for it."""
        if self._clear:
            self._pending.append(self.run.background(self._flush_now()))

    async def flush(self) -> None:
        """Clear the "key pending" marker of every user whose key is recorded: one ``/user/bulk_update`` per
        500 users where the proxy has it (per-user updates otherwise), after the clears started by
        :meth:`flush_soon`. A failure only leaves markers set: the next run finds those keys in the journal and
        keeps them. Runs even when the run is stopping: it is the bookkeeping of work already done. Bad
        credentials propagate (after every clear in flight has ended)."""
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        await self._flush_now()
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _flush_now(self) -> None:
        if not self._clear:
            return
        todo, self._clear = self._clear, {}
        updates = [{"user_id": uid, "metadata": md} for uid, md in todo.items()]
        if await self.client.supports_bulk("update"):
            try:
                async with self.run.slot():
                    rows = await self.client.bulk_update_users(updates)
            except AuthError:
                raise
            except ProxyError as exc:
                log.warning("could not clear the key markers of %d user(s): %s", len(updates), exc)
                self._markers_left.update(todo)
                return
            if rows is not None:
                ok = {r.user_id for r in rows if r.success}
                self._markers_left.update(uid for uid in todo if uid not in ok)
                return

        async def one(u: dict[str, Any]) -> None:
            try:
                await self.client.update_user(u["user_id"], metadata=u["metadata"])
            except AuthError:
                raise
            except ProxyError as exc:
                log.warning("could not clear the key marker of %s: %s", u["user_id"], exc)
                self._markers_left.add(u["user_id"])

        await self.run.bounded(updates, one)

    async def reissue(self, user_id: str, key_alias: str | None) -> tuple[str, bool]:
        """Revoke the user's keys that nobody holds and issue a new one: ``(key, kept)``.

        A key recorded by an interrupted run (``recorded_keys``) that still exists is kept instead (``kept``
        True): it is in a journal, so someone may hold it. Team-bound keys are never touched (the key
        ``/user/new`` mints is not bound to a team)."""
        keys = await self.client.list_user_keys(user_id)
        recorded = self._recorded.get(user_id)
        if recorded and any(k.get("token") == hash_key(recorded) for k in keys):
            return recorded, True
        for attempt in range(1, self.client.settings.retry.attempts + 1):
            orphans = [str(k["token"]) for k in keys if k.get("token") and not k.get("team_id")]
            await self.client.delete_keys(orphans)
            try:
                return await self.client.generate_key(user_id, key_alias=key_alias), False
            except ProxyError as exc:
                # the new key may exist, unseen: revoke it too and ask again
                if not is_uncertain(exc) or attempt == self.client.settings.retry.attempts:
                    raise
                log.info("issuing a key for %s: answer lost (%s); revoking and asking again", user_id, exc)
                keys = await self.client.list_user_keys(user_id)
        raise RuntimeError("unreachable")  # pragma: no cover

    async def replace_lost_key(self, a: CreateUser) -> Outcome:
        """A create whose answer (with the key) was lost: the key exists but nobody saw it. Revoke it and
        issue a new one, so the row ends with a working key; if even that fails, the row says so (FAILED,
        partial: the user exists) and the marker stays for the next run."""
        try:
            key, _kept = await self.reissue(a.user_id, a.key_alias)
        except AuthError:
            raise
        except ProxyError as exc:
            self.unknown.add(a.user_id)
            return failed(
                a,
                f"created, but its API key is unknown (the proxy's answer was lost, and issuing a new key "
                f"failed: {exc}); the next run issues one",
                partial=True,
            )
        metadata = created_metadata(create_key=True, invite=self.invite, action=a)
        if not self.received(a.user_id, a.email, key, LOST_KEY_NOTE, metadata):
            return failed(a, "created, but its new API key could not be recorded", api_key=key, partial=True)
        return done(a, api_key=key, note=LOST_KEY_NOTE)

    async def apply_reissues(self, actions: Sequence[ReissueKey]) -> list[Outcome]:
        """Repairs planned from the markers an interrupted run left (see :class:`ReissueKey`)."""
        if not actions:
            return []
        self.run.progress.start("reissuing API keys lost by an interrupted run", len(actions))
        try:
            async with self.run.slot():
                rows = await self.client.read_users_by_ids([a.user_id for a in actions])
        except AuthError:
            raise
        except ProxyError as exc:
            return [failed(a, f"could not read the user before reissuing its key: {exc}") for a in actions]

        async def one(a: ReissueKey) -> list[Outcome]:
            row = rows.get(a.user_id)
            if row is None:
                return [failed(a, "user not found")]
            raw = row.get("metadata")
            metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if not metadata.get(KEY_PENDING):  # another run repaired it since the plan was made
                return [done(a, note="its API key was already recorded by another run")]
            try:
                key, kept = await self.reissue(a.user_id, a.key_alias)
            except AuthError:
                raise
            except ProxyError as exc:
                self.unknown.add(a.user_id)
                return [failed(a, f"could not reissue the API key lost by an interrupted run: {exc}")]
            note = KEPT_NOTE if kept else REISSUED_NOTE
            if not self.received(a.user_id, a.email, key, note, metadata):
                return [failed(a, "the new API key could not be recorded", api_key=key)]
            return [done(a, api_key=key, note=note)]

        out = await self.run.each(actions, one)
        await self.flush()
        return out
