"""The executor: applies a :class:`Plan` through the client and records one :class:`Outcome` per action.

Order (the seed's): add, delete, update. Updates go role changes, then joins, then leaves (a leave runs
only when the user's joins succeeded: the seed's "gradual update"), then a verification read of the moved
users, then the fallback recreation of users whose state is still wrong.

Each kind of action has one applier. An applier uses the proxy's batch endpoint when the client says the
proxy has it, and otherwise per-user calls with bounded concurrency. Roster writes to one team never run
in parallel (older proxies lose members that way); different teams proceed concurrently.

The executor never raises for a failed action: it returns outcomes. Credentials refused in the middle of a
run stop it (nothing new is started) and the report says so (``RunReport.aborted``) with everything that was
done until then. It never prints; progress goes to a callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from litellm_usersync.errors import AuthError, ConflictError, ProxyError, RefusedError, RejectedError
from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES
from litellm_usersync.models import (
    INVITE_PENDING,
    KEY_PENDING,
    MANAGED_MARKER_KEY,
    MANAGED_MARKER_VALUE,
    RECREATE_FIELDS,
    Action,
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemResult,
    LiveUser,
    Outcome,
    OutcomeStatus,
    Plan,
    PlanItem,
    PlanOptions,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    RunReport,
    Snapshot,
    without_marker,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.client import ProxyClient, RowResult, is_uncertain
from litellm_usersync.proxy.snapshot import parse_live_user, parse_team
from litellm_usersync.settings import BULK_CHUNK, DEFAULT_CONCURRENCY

log = logging.getLogger("litellm_usersync.apply.executor")

DELETE_CHUNK = 100
#: how many times one leave is sent while the team's roster read back still lists the user
LEAVE_ROUNDS = 3

ProgressCallback = Callable[[str, int, int], None]
#: ``on_key(user_id, email, api_key, note)``: a key arrived; must make it durable before returning (raise
#: ``OSError`` when it cannot: the user's marker then stays set, and the next run reissues the key)
KeyHook = Callable[[str, str, str, "str | None"], None]
LOST_KEY_NOTE = "a new API key: the proxy's answer with the first one was lost, so that key was revoked"
REISSUED_NOTE = "a new API key, replacing one lost in an interrupted run (that key was revoked: nobody had seen it)"
KEPT_NOTE = "API key recorded by an interrupted run (in its journal); kept"
T = TypeVar("T")
M = TypeVar("M", AddMembership, RemoveMembership)
A = TypeVar("A", DeleteUser, ChangeRole, RemoveMembership)


@dataclass
class _Progress:
    callback: ProgressCallback | None
    phase: str = ""
    done: int = 0
    total: int = 0

    def start(self, phase: str, total: int) -> None:
        self.phase, self.done, self.total = phase, 0, total
        if self.callback:
            self.callback(phase, 0, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.callback:
            self.callback(self.phase, self.done, self.total)


def _who(emails: Iterable[str], shown: int = 10) -> str:
    """``3 user(s): a, b, c`` for a debug line (the first ``shown`` named)."""
    names = list(emails)
    more = f", … ({len(names) - shown} more)" if len(names) > shown else ""
    return f"{len(names)} user(s): {', '.join(names[:shown])}{more}"


def _done(action: Action, **kw: Any) -> Outcome:
    return Outcome(action, OutcomeStatus.DONE, **kw)


def _failed(action: Action, error: BaseException | str) -> Outcome:
    return Outcome(action, OutcomeStatus.FAILED, error=str(error))


def _skipped(action: Action, reason: str) -> Outcome:
    return Outcome(action, OutcomeStatus.SKIPPED, error=reason)


def _outcomes_from_rows(actions: Sequence[A], rows: Sequence[RowResult], missing: str) -> list[Outcome]:
    """One outcome per action from a batch endpoint's per-row answers (matched by user id)."""
    by_id = {r.user_id: r for r in rows}
    return [
        _done(a) if (r := by_id.get(a.user_id)) and r.success else _failed(a, (r.error if r else None) or missing)
        for a in actions
    ]


def hash_key(api_key: str) -> str:
    """The proxy's id of a virtual key (``token`` in ``/key/list``): the sha256 of the plaintext key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def created_metadata(*, create_key: bool, invite: bool = False) -> dict[str, Any]:
    """A new user's metadata: the managed marker, and the "pending" markers of the secrets it will get."""
    metadata: dict[str, Any] = {MANAGED_MARKER_KEY: MANAGED_MARKER_VALUE}
    if create_key:
        metadata[KEY_PENDING] = True
    if invite:
        metadata[INVITE_PENDING] = True
    return metadata


def create_body(
    action: CreateUser | RecreateUser, *, with_teams: bool, create_key: bool, invite: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": action.user_id,
        "user_email": action.email,
        "user_role": action.role,
        "auto_create_key": create_key,
        "metadata": created_metadata(create_key=create_key, invite=invite),
    }
    if with_teams and action.team_ids:
        body["teams"] = list(action.team_ids)
    if isinstance(action, CreateUser) and action.key_alias and create_key:
        body["key_alias"] = action.key_alias
    return body


class Executor:
    """Applies plans through one :class:`ProxyClient`."""

    def __init__(
        self,
        client: ProxyClient,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
        stop: asyncio.Event | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_key: KeyHook | None = None,
        recorded_keys: Mapping[str, str] | None = None,
        invite: bool = False,
        before: Snapshot | None = None,
        backup_file: str | None = None,
    ) -> None:
        self.client = client
        #: the snapshot the plan was made from (what a recreation carries over) and where it was saved
        self._before = before
        self._backup_file = backup_file
        self._caller = before.caller_user_id if before is not None else DEFAULT_USER_ID
        self._on_outcome = on_outcome
        self._on_key = on_key
        #: ``user_id -> key`` recorded by earlier interrupted runs: such a key is kept, never revoked
        self._recorded = dict(recorded_keys or {})
        #: new users also get an invitation link after this run (``add``): marked pending for it too
        self._invite = invite
        #: ``user_id -> metadata`` to write once their key is recorded (clears ``KEY_PENDING``), batched
        self._clear: dict[str, dict[str, Any]] = {}
        self._markers_left: set[str] = set()
        self._keys_unknown: set[str] = set()
        self._label: Callable[[str], str] = str
        #: users whose state could not be read back (no fallback for them: their state is unknown)
        self._unverified: set[str] = set()
        self.concurrency = max(1, concurrency)
        self._sem = asyncio.Semaphore(self.concurrency)
        self._progress = _Progress(on_progress)
        self._stop = stop or asyncio.Event()
        self._fatal: AuthError | None = None

    # ---------------------------------------------------------------------------------------------
    # helpers

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or self._fatal is not None

    async def _bounded(self, fn: Callable[[], Awaitable[T]]) -> T:
        async with self._sem:
            return await fn()

    async def _each(self, items: Sequence[T], fn: Callable[[T], Awaitable[list[Outcome]]]) -> list[Outcome]:
        """Run ``fn`` for every item with bounded concurrency; stop starting new ones when asked to."""
        out: list[Outcome] = []

        async def one(item: T) -> None:
            async with self._sem:
                if self.stopping:
                    return
                try:
                    res = await fn(item)
                except AuthError as exc:  # bad credentials end the run
                    self._fatal = self._fatal or exc
                    return
            out.extend(res)
            self._progress.advance(len(res))

        await asyncio.gather(*(one(i) for i in items))
        return out

    # ---------------------------------------------------------------------------------------------
    # keys: recorded as they arrive, then the user's "key pending" marker is cleared (batched)

    def _received(self, user_id: str, email: str, api_key: str, note: str | None, metadata: dict[str, Any]) -> bool:
        """A key arrived: hand it to ``on_key`` (which makes it durable), then queue the marker's clearing.

        False when it could not be recorded: the marker stays, so the next run reissues the key."""
        if self._on_key is not None:
            try:
                self._on_key(user_id, email, api_key, note)
            except OSError as exc:
                log.warning("could not record the API key of %s (%s): its marker stays set", user_id, exc)
                self._keys_unknown.add(user_id)
                return False
        self._keys_unknown.discard(user_id)
        self._clear[user_id] = without_marker(metadata, KEY_PENDING)
        return True

    async def _flush_markers(self) -> None:
        """Clear the "key pending" marker of every user whose key is recorded: one ``/user/bulk_update`` per
        500 users where the proxy has it (per-user updates otherwise). A failure only leaves markers set:
        the next run finds those keys in the journal and keeps them."""
        if not self._clear:
            return
        todo, self._clear = self._clear, {}
        updates = [{"user_id": uid, "metadata": md} for uid, md in todo.items()]
        if await self.client.supports_bulk("update"):
            try:
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
            async with self._sem:
                try:
                    await self.client.update_user(u["user_id"], metadata=u["metadata"])
                except AuthError:
                    raise
                except ProxyError as exc:
                    log.warning("could not clear the key marker of %s: %s", u["user_id"], exc)
                    self._markers_left.add(u["user_id"])

        await asyncio.gather(*(one(u) for u in updates))

    async def _reissue(self, user_id: str, key_alias: str | None) -> tuple[str, bool]:
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

    async def _replace_lost_key(self, a: CreateUser) -> Outcome:
        """A create whose answer (with the key) was lost: the key exists but nobody saw it. Revoke it and
        issue a new one, so the row ends with a working key; if even that fails, the row says so (FAILED)
        and the marker stays for the next run."""
        try:
            key, _kept = await self._reissue(a.user_id, a.key_alias)
        except AuthError:
            raise
        except ProxyError as exc:
            self._keys_unknown.add(a.user_id)
            return Outcome(
                a,
                OutcomeStatus.FAILED,
                error=f"created, but its API key is unknown (the proxy's answer was lost, and issuing a new key "
                f"failed: {exc}); the next run issues one",
                partial=True,
            )
        metadata = created_metadata(create_key=True, invite=self._invite)
        if not self._received(a.user_id, a.email, key, LOST_KEY_NOTE, metadata):
            return Outcome(
                a,
                OutcomeStatus.FAILED,
                api_key=key,
                error="created, but its new API key could not be recorded",
                partial=True,
            )
        return _done(a, api_key=key, note=LOST_KEY_NOTE)

    async def apply_reissues(self, actions: Sequence[ReissueKey]) -> list[Outcome]:
        """Repairs planned from the markers an interrupted run left (see :class:`ReissueKey`)."""
        if not actions:
            return []
        self._progress.start("reissuing API keys lost by an interrupted run", len(actions))
        try:
            rows = await self.client.read_users_by_ids([a.user_id for a in actions])
        except AuthError:
            raise
        except ProxyError as exc:
            return [_failed(a, f"could not read the user before reissuing its key: {exc}") for a in actions]

        async def one(a: ReissueKey) -> list[Outcome]:
            row = rows.get(a.user_id)
            if row is None:
                return [_failed(a, "user not found")]
            raw = row.get("metadata")
            metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if not metadata.get(KEY_PENDING):  # another run repaired it since the plan was made
                return [_done(a, note="its API key was already recorded by another run")]
            try:
                key, kept = await self._reissue(a.user_id, a.key_alias)
            except AuthError:
                raise
            except ProxyError as exc:
                self._keys_unknown.add(a.user_id)
                return [_failed(a, f"could not reissue the API key lost by an interrupted run: {exc}")]
            note = KEPT_NOTE if kept else REISSUED_NOTE
            if not self._received(a.user_id, a.email, key, note, metadata):
                return [Outcome(a, OutcomeStatus.FAILED, api_key=key, error="the new API key could not be recorded")]
            return [_done(a, api_key=key, note=note)]

        out = await self._each(actions, one)
        await self._flush_markers()
        return out

    # ---------------------------------------------------------------------------------------------
    # appliers, one per kind

    async def apply_creates(self, actions: Sequence[CreateUser]) -> list[Outcome]:
        if not actions:
            return []
        self._progress.start("adding users", len(actions))
        outcomes: list[Outcome] = []
        per_user: list[CreateUser] = list(actions)
        if await self.client.supports_bulk("create"):
            per_user = []
            for i in range(0, len(actions), BULK_CHUNK):
                chunk = list(actions[i : i + BULK_CHUNK])
                if self.stopping:
                    break
                try:
                    chunk_outcomes = await self._bulk_creates(chunk)
                except AuthError:
                    raise
                except ProxyError as exc:
                    # only this chunk falls back: earlier chunks are created and keep their keys
                    log.info("bulk create of %d users failed as a whole (%s); per-user calls", len(chunk), exc)
                    chunk_outcomes = None
                if chunk_outcomes is None:
                    per_user.extend(chunk)
                else:
                    outcomes.extend(chunk_outcomes)
                await self._flush_markers()  # one bulk_update per chunk: the keys are in the journal now
        if not per_user:
            return outcomes
        created = await self._each(per_user, self._create_one)
        await self._flush_markers()
        # join teams batched per team: one roster write per team instead of one per user
        joins = [
            AddMembership(o.action.user_id, o.action.email, t)
            for o in created
            if o.ok and isinstance(o.action, CreateUser)
            for t in o.action.team_ids
        ]
        join_outcomes = {
            (o.action.user_id, o.action.team_id): o
            for o in await self._joins(joins, progress=False)
            if isinstance(o.action, AddMembership)
        }
        if not await self.client.user_delete_cascades():
            await self._rejoin_stale_rosters([o for o in join_outcomes.values() if o.ok])
        for o in created:
            a = o.action
            if o.ok and isinstance(a, CreateUser):
                errors = []
                for t in a.team_ids:
                    joined = join_outcomes.get((a.user_id, t))
                    if joined is None:
                        errors.append(f"created, but not yet added to team {self._label(t)} (run interrupted)")
                    elif not joined.ok:
                        errors.append(f"created, but joining team {self._label(t)} failed: {joined.error}")
                if errors:
                    o = Outcome(
                        a, OutcomeStatus.FAILED, error="; ".join(errors), api_key=o.api_key, note=o.note, partial=True
                    )
            outcomes.append(o)
        return outcomes

    async def _rejoin_stale_rosters(self, joined: list[Outcome]) -> None:
        """Where ``/user/delete`` leaves rosters behind (1.74.0), a new user whose id was deleted there before
        (by anyone) is still on those rosters: its join answers "already in team" and its ``user.teams`` stays
        without the team. The new users are read back; such a join is done again: leave, then join."""
        actions = [o.action for o in joined if isinstance(o.action, AddMembership)]
        if not actions or self.stopping:
            return
        try:
            rows = await self.client.read_users_by_ids(sorted({a.user_id for a in actions}))
        except AuthError:
            raise
        except ProxyError as exc:  # the joins answered success; the verification of a sync reads again later
            log.info("could not read the new users back after their joins (%s)", exc)
            return
        for a in actions:
            row = rows.get(a.user_id)
            if row is None or a.team_id in (row.get("teams") or ()):
                continue
            log.info("%s: a stale roster entry on team %s; leaving and joining again", a.email, self._label(a.team_id))
            try:
                await self.client.remove_team_member(a.team_id, a.user_id)
                await self.client.add_team_members(a.team_id, [(a.user_id, a.email)])
            except AuthError:
                raise
            except ProxyError as exc:
                log.info("rejoining %s to team %s failed (%s)", a.email, self._label(a.team_id), exc)

    async def _create_one(self, a: CreateUser) -> list[Outcome]:
        try:
            created = await self.client.create_user(
                create_body(a, with_teams=False, create_key=a.create_key, invite=self._invite)
            )
        except AuthError:
            raise
        except ConflictError as exc:
            return [_failed(a, f"User already exists: {exc.message}")]
        except ProxyError as exc:
            return [_failed(a, exc)]
        if created.recovered and a.create_key:
            return [await self._replace_lost_key(a)]
        if created.api_key:
            metadata = created_metadata(create_key=True, invite=self._invite)
            if not self._received(a.user_id, a.email, created.api_key, None, metadata):
                return [
                    Outcome(a, OutcomeStatus.FAILED, api_key=created.api_key, error="its API key could not be recorded")
                ]
        return [_done(a, api_key=created.api_key)]

    async def _bulk_creates(self, actions: Sequence[CreateUser]) -> list[Outcome] | None:
        bodies = [create_body(a, with_teams=True, create_key=a.create_key, invite=self._invite) for a in actions]
        rows = await self.client.bulk_create_users(bodies)
        if rows is None:
            return None
        by_id = {r.user_id: r for r in rows if r.user_id}
        metadata = created_metadata(create_key=True, invite=self._invite)
        unrecorded: set[str] = set()  # created, but the key could not be made durable
        for a in actions:  # record every key of the chunk first (durable), then repair the lost ones
            r = by_id.get(a.user_id)
            if (
                r is not None
                and r.success
                and r.api_key
                and a.create_key
                and not self._received(a.user_id, a.email, r.api_key, None, metadata)
            ):
                unrecorded.add(a.user_id)
        lost = [a for a in actions if (r := by_id.get(a.user_id)) and r.success and not r.api_key and a.create_key]
        replaced = {o.action.user_id: o for o in await self._each(lost, lambda a: self._one_lost(a))}
        outcomes: list[Outcome] = []
        for a in actions:
            r = by_id.get(a.user_id)
            if r is None:
                outcomes.append(_failed(a, "the proxy did not answer for this user"))
            elif a.user_id in unrecorded:
                error = "created, but its API key could not be recorded"
                outcomes.append(Outcome(a, OutcomeStatus.FAILED, api_key=r.api_key, error=error, partial=True))
            elif not r.success:
                err = r.error or "rejected"
                if "already exists" in err.lower() or "duplicate" in err.lower():
                    err = f"User already exists: {err}"
                outcomes.append(_failed(a, err))
            else:
                missing = ", ".join(self._label(t) for t in a.team_ids if t not in r.teams)
                key, note, error = r.api_key, None, None
                if a.user_id in replaced:
                    o = replaced[a.user_id]
                    key, note, error = o.api_key, o.note, o.error
                elif a in lost:  # stopped before its key was replaced: the marker stays, the next run does it
                    self._keys_unknown.add(a.user_id)
                    error = "created, but its API key is unknown (the answer was lost; run interrupted); run again"
                if missing:
                    why = f"created, but not added to team(s) {missing}: {r.error or '?'}"
                    error = f"{why}; {error}" if error else why
                if error:  # the user exists: a later step failed
                    outcomes.append(Outcome(a, OutcomeStatus.FAILED, api_key=key, error=error, note=note, partial=True))
                else:
                    outcomes.append(_done(a, api_key=key, note=note))
            if a.user_id not in replaced:  # _each advanced those already
                self._progress.advance()
        return outcomes

    async def _one_lost(self, a: CreateUser) -> list[Outcome]:
        return [await self._replace_lost_key(a)]

    async def apply_deletes(self, actions: Sequence[DeleteUser]) -> list[Outcome]:
        if not actions:
            return []
        self._progress.start("deleting users", len(actions))
        bulk = await self.client.supports_bulk("delete")
        done: list[Outcome] = []
        if bulk and not self.stopping:
            done, rest = await self._in_bulk_chunks(
                actions, lambda chunk: self.client.bulk_delete_users([a.user_id for a in chunk]), "not deleted"
            )
            if not rest:
                return done
            actions = rest
        # older proxies leave rosters behind on /user/delete: leave the teams first (not with --no-bulk on a
        # proxy whose delete cascades: that would only cost one request per team of every deleted user)
        if not await self.client.user_delete_cascades():
            leaves = [RemoveMembership(a.user_id, a.email, t) for a in actions for t in a.team_ids]
            await self._leaves(leaves, progress=False)
        chunks = [list(actions[i : i + DELETE_CHUNK]) for i in range(0, len(actions), DELETE_CHUNK)]
        return done + await self._each(chunks, self._delete_chunk)

    async def _delete_chunk(self, chunk: list[DeleteUser]) -> list[Outcome]:
        try:
            gone = await self.client.delete_users([a.user_id for a in chunk])
        except AuthError:
            raise
        except ProxyError as exc:
            if len(chunk) == 1:
                return [_failed(chunk[0], exc)]
            # isolate the failing user(s): one by one
            out: list[Outcome] = []
            for a in chunk:
                out.extend(await self._delete_chunk([a]))
            return out
        return [_done(a) if a.user_id in gone else _failed(a, "not deleted") for a in chunk]

    async def apply_role_changes(self, actions: Sequence[ChangeRole]) -> list[Outcome]:
        if not actions:
            return []
        self._progress.start("changing roles", len(actions))
        done: list[Outcome] = []
        if await self.client.supports_bulk("update") and not self.stopping:
            done, rest = await self._in_bulk_chunks(
                actions,
                lambda chunk: self.client.bulk_update_users(
                    [{"user_id": a.user_id, "user_role": a.new_role} for a in chunk]
                ),
                "not updated",
            )
            if not rest:
                return done
            actions = rest

        async def one(a: ChangeRole) -> list[Outcome]:
            log.debug("step: role of %s: %s → %s", a.email, a.old_role, a.new_role)
            try:
                await self.client.update_user(a.user_id, user_role=a.new_role)
            except AuthError:
                raise
            except ProxyError as exc:
                return [_failed(a, exc)]
            return [_done(a)]

        return done + await self._each(actions, one)

    async def _in_bulk_chunks(
        self,
        actions: Sequence[A],
        call: Callable[[list[A]], Awaitable[list[RowResult] | None]],
        missing: str,
    ) -> tuple[list[Outcome], list[A]]:
        """Send ``actions`` through a batch endpoint one chunk at a time, so progress advances by what was done.

        Returns the outcomes of the chunks sent in bulk and the actions left for per-user calls: all of them
        when the proxy has no such route, the rest when a chunk fails as a whole or the run is stopping.
        """
        out: list[Outcome] = []
        for i in range(0, len(actions), BULK_CHUNK):
            if self.stopping:
                return out, list(actions[i:])
            chunk = list(actions[i : i + BULK_CHUNK])
            rows = await self._guard(partial(call, chunk))
            if not isinstance(rows, list):
                return out, list(actions[i:])
            got = _outcomes_from_rows(chunk, rows, missing)
            out.extend(got)
            self._progress.advance(len(got))
        return out, []

    async def _guard(self, fn: Callable[[], Awaitable[T]]) -> T | ProxyError:
        try:
            return await fn()
        except AuthError:
            raise
        except ProxyError as exc:
            log.info("batch call failed as a whole (%s); falling back to per-user calls", exc)
            return exc

    @staticmethod
    def _rounds(actions: Sequence[M]) -> list[dict[str, list[M]]]:
        """Split roster writes into rounds of ``team_id -> actions`` where no user appears twice in a round.

        Writes to one team are one batch (never parallel); batches of one round run in parallel, and since
        a user is in at most one batch per round, no two concurrent writes touch the same user's ``teams``
        (the proxy rewrites that list without a per-user lock: parallel leaves of one user lose updates).
        """
        per_user: dict[str, int] = defaultdict(int)
        rounds: list[dict[str, list[M]]] = []
        for a in sorted(actions, key=lambda x: (x.team_id, x.user_id)):
            n = per_user[a.user_id]
            per_user[a.user_id] += 1
            if n == len(rounds):
                rounds.append(defaultdict(list))
            rounds[n][a.team_id].append(a)
        return rounds

    async def _joins(self, actions: Sequence[AddMembership], *, progress: bool = True) -> list[Outcome]:
        """Joins, one ``member_add`` with a member list per team; teams in parallel, one team at a time."""
        if not actions:
            return []
        if progress:
            self._progress.start("adding team memberships", len(actions))

        async def team(batch: list[AddMembership]) -> list[Outcome]:
            tid = batch[0].team_id
            if log.isEnabledFor(logging.DEBUG):
                log.debug("step: team %s: add %s", self._label(tid), _who(a.email for a in batch))
            try:
                ok = await self.client.add_team_members(tid, [(a.user_id, a.email) for a in batch])
            except AuthError:
                raise
            except ProxyError as exc:
                if len(batch) == 1:
                    return [_failed(batch[0], exc)]
                out: list[Outcome] = []  # isolate the member that makes the batch fail
                for a in batch:
                    out.extend(await team([a]))
                return out
            lost = f"not on team {self._label(tid)} after member_add"
            return [_done(a) if a.user_id in ok else _failed(a, lost) for a in batch]

        outcomes: list[Outcome] = []
        for batches in self._rounds(actions):
            outcomes.extend(await self._each(list(batches.values()), team))
        return outcomes

    async def _leaves(self, actions: Sequence[RemoveMembership], *, progress: bool = True) -> list[Outcome]:
        if not actions:
            return []
        if progress:
            self._progress.start("removing team memberships", len(actions))
        bulk = await self.client.supports_bulk("leave")

        async def team(batch: list[RemoveMembership]) -> list[Outcome]:
            tid = batch[0].team_id
            if log.isEnabledFor(logging.DEBUG):
                log.debug("step: team %s: remove %s", self._label(tid), _who(a.email for a in batch))
            if bulk and len(batch) > 1:
                try:
                    rows = await self.client.bulk_remove_team_members(tid, [a.user_id for a in batch])
                except AuthError:
                    raise
                except ProxyError as exc:
                    rows = None
                    log.info("bulk leave for team %s failed (%s); one by one", tid, exc)
                if rows is not None:
                    return _outcomes_from_rows(batch, rows, "not removed")
            return await self._leave_one_by_one(tid, batch)

        outcomes: list[Outcome] = []
        for batches in self._rounds(actions):
            outcomes.extend(await self._each(list(batches.values()), team))
        return outcomes

    async def _leave_one_by_one(self, tid: str, batch: list[RemoveMembership]) -> list[Outcome]:
        """``member_delete`` per user (sequential within one team), then the roster read back: a user it still
        lists gets the leave again, at most :data:`LEAVE_ROUNDS` times in all. An answer alone (200, or 400
        "not found in team") is not proof: older proxies write rosters without a lock, and the roster, not
        ``user.teams`` (which 1.74.15.post2 can leave repeating the team), is the truth for membership.

        A user still listed after the last round keeps its "done" outcome (every call answered success):
        the verification after the updates finds it and the fallback applies, as for any silent failure.
        """
        out: dict[str, Outcome] = {}
        pending = list(batch)
        for attempt in range(1, LEAVE_ROUNDS + 1):
            for a in pending:
                if self._stop.is_set():
                    break
                try:
                    await self.client.remove_team_member(tid, a.user_id)
                    out[a.key] = _done(a)
                except AuthError:
                    raise
                except ProxyError as exc:
                    out[a.key] = _failed(a, exc)
            answered = [a for a in pending if a.key in out and out[a.key].ok]
            if not answered or self._stop.is_set():
                break
            try:
                roster = (await self.client.read_team_rosters([tid])).get(tid, frozenset())
            except AuthError:
                raise
            except ProxyError as exc:  # not knowing is not "wrong": the verification reads again later
                log.info("could not read team %s back after its leaves (%s)", self._label(tid), exc)
                break
            pending = [a for a in answered if a.user_id in roster]
            if not pending:
                break
            if attempt < LEAVE_ROUNDS:
                log.info(
                    "%d user(s) still on team %s after a leave answered success (attempt %d of %d): sending again",
                    len(pending),
                    self._label(tid),
                    attempt,
                    LEAVE_ROUNDS,
                )
        return [out[a.key] for a in batch if a.key in out]

    async def apply_joins(self, actions: Sequence[AddMembership]) -> list[Outcome]:
        return await self._joins(actions)

    async def apply_rebinds(self, actions: Sequence[RebindKeys], finished: dict[str, Outcome]) -> list[Outcome]:
        """--keep-team-keys: bind the keys a leave would delete to the user's new team (``/key/update``)."""
        if not actions:
            return []
        self._progress.start("re-binding team keys", len(actions))

        async def one(a: RebindKeys) -> list[Outcome]:
            if any(k not in finished or not finished[k].ok for k in a.requires):
                return [_skipped(a, "team keys not re-bound because joining the new team failed")]
            for token in a.tokens:
                try:
                    await self.client.update_key(token, team_id=a.to_team)
                except AuthError:
                    raise
                except ProxyError as exc:
                    return [_failed(a, f"re-binding a team key to {self._label(a.to_team)} failed: {exc}")]
            return [_done(a, note=f"{len(a.tokens)} team key(s) re-bound to {self._label(a.to_team)}")]

        return await self._each(actions, one)

    async def apply_leaves(self, actions: Sequence[RemoveMembership], finished: dict[str, Outcome]) -> list[Outcome]:
        ready: list[RemoveMembership] = []
        out: list[Outcome] = []
        for a in actions:
            failed = [k for k in a.requires if k not in finished or not finished[k].ok]
            if any(k.startswith("rebind:") for k in failed):
                out.append(_skipped(a, "not removed from the old team because its team keys could not be re-bound"))
            elif failed:
                out.append(_skipped(a, "not removed from the old team because joining the new team failed"))
            else:
                ready.append(a)
        return out + await self._leaves(ready)

    # ---------------------------------------------------------------------------------------------
    # verification and fallback

    async def _read_back(self, user_ids: Sequence[str], team_ids: Iterable[str]) -> Snapshot:
        """The touched users and the rosters of the touched teams, as a :class:`Snapshot` (what the planner reads)."""
        rows = await self.client.read_users_by_ids(list(user_ids))
        wanted = set(team_ids)
        teams = [t for t in await self.client.read_all_teams(parse=parse_team) if t.team_id in wanted] if wanted else []
        return Snapshot(
            users=tuple(parse_live_user(r) for r in rows.values()),
            teams=tuple(teams),
            caller_user_id=self._caller,
        )

    def _left_undone(self, items: Sequence[PlanItem], now: Snapshot, plan: Plan) -> dict[str, str]:
        """``user_id -> what is still not converged``: the same :func:`build_plan` on the re-read state.

        One definition of "in sync": a user is converged when planning it again leaves nothing to do.
        """
        teams = now.teams_by_id
        desired = DesiredState(
            tuple(
                DesiredUser(
                    email=i.email,
                    role=i.role,
                    team_names=tuple(teams[t].display_name if t in teams else plan.team_label(t) for t in i.team_ids),
                )
                for i in items
            ),
            source="verification",
        )
        options = PlanOptions(
            allow_add=False, allow_delete=False, allow_recreate=False, default_role=plan.options.default_role
        )
        again = {v.user_id: v for v in build_plan(desired, now, options).items}
        left: dict[str, str] = {}
        for i in items:
            v = again.get(i.user_id)
            if v is None:
                if i.user_id in now.users_by_id:
                    left[i.user_id] = "its email no longer matches"
                elif "," in i.user_id:  # the proxy splits user_ids on commas: such an id cannot be read back
                    self._unverified.add(i.user_id)
                    left[i.user_id] = "could not verify: the user id contains a comma"
                else:
                    left[i.user_id] = "user not found when verifying"
                continue
            if v.blocked:  # e.g. a target team deleted meanwhile: not a silent failure a recreation could fix
                self._unverified.add(i.user_id)
                left[i.user_id] = f"could not verify: {v.blocked}"
                continue
            parts = []
            for a in v.actions:
                if isinstance(a, ChangeRole):
                    parts.append(f"role is {a.old_role}, expected {a.new_role}")
            joins = [self._label(a.team_id) for a in v.actions if isinstance(a, AddMembership)]
            leaves = [self._label(a.team_id) for a in v.actions if isinstance(a, RemoveMembership)]
            if joins:
                parts.append(f"not in team(s) {', '.join(joins)}")
            if leaves:
                parts.append(f"still in team(s) {', '.join(leaves)}")
            if parts:
                left[i.user_id] = "; ".join(parts)
        return left

    async def verify(self, items: Sequence[PlanItem], plan: Plan) -> tuple[dict[str, str], Snapshot | None]:
        """Read back the users whose teams changed; return ``user_id -> what is still wrong`` and the re-read."""
        if not items:
            return {}, None
        self._progress.start("verifying", len(items))
        try:
            now = await self._read_back(
                [i.user_id for i in items], {t for i in items for t in (*i.team_ids, *i.old_team_ids)}
            )
        except AuthError:
            raise
        except (ProxyError, RefusedError) as exc:  # RefusedError: the teams changed while they were read
            # not knowing is not "wrong": the rows fail with this reason, and nothing is recreated
            self._unverified = {i.user_id for i in items}
            return {i.user_id: f"could not verify: {exc}" for i in items}, None
        log.debug("verify: read back %d user(s) whose teams changed", len(items))
        left = self._left_undone(items, now, plan)
        for i in items:
            if i.user_id in left:
                log.debug("verify: %s: %s", i.email, left[i.user_id])
        log.debug("verify: %d of %d as planned", len(items) - len(left), len(items))
        self._progress.advance(len(items))
        return left, now

    def _recreate_body(self, a: RecreateUser, before: LiveUser | None, *, create_key: bool) -> dict[str, Any]:
        """``/user/new`` for a recreation: id, email, role, and every field the user had that a create can set."""
        body = create_body(a, with_teams=False, create_key=create_key)
        if before is not None:
            # the user's own metadata (stale "pending" markers dropped), plus the marker of the key it gets now
            kept = {k: v for k, v in (before.metadata or {}).items() if k not in (KEY_PENDING, INVITE_PENDING)}
            body["metadata"] = {**kept, **({KEY_PENDING: True} if create_key else {})}
            for name in RECREATE_FIELDS:
                value = getattr(before, name)
                if name == "metadata" or value in (None, (), {}):
                    continue
                body[name] = (
                    list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
                )
        return body

    @staticmethod
    def _not_carried(before: LiveUser | None, keys: int) -> list[str]:
        """What a recreation cannot bring back, named on the row."""
        if before is None:
            return ["the user's fields other than role and teams (no snapshot of them)"]
        lost = []
        if keys:
            lost.append(f"its {keys} API key(s) (deleted)")
        if before.spend:
            lost.append(f"its spend ${before.spend:,.2f} (restarts at 0)")
        if before.created_at:
            lost.append(f"its created_at {before.created_at}")
        return lost

    def _protected(self, item: PlanItem, plan: Plan) -> bool:
        """The planner's protection rule (--protect, --protect-role, the caller's identity), for one item."""
        return (
            item.user_id in (DEFAULT_USER_ID, self._caller)
            or item.email_key in plan.options.protected_emails
            or (item.old_role or "") in plan.options.protected_roles
        )

    async def recreate(
        self,
        a: RecreateUser,
        *,
        create_key: bool = True,
        before: LiveUser | None = None,
        current_teams: Iterable[str] = (),
        keys: int = 0,
    ) -> Outcome:
        """The seed's fallback: delete the user, create it again with the right role and teams, and every field
        ``before`` (the pre-run snapshot) had that a create can set."""
        body = self._recreate_body(a, before, create_key=create_key)
        # older proxies leave rosters behind on /user/delete (as apply_deletes knows): leave the teams first
        if not await self.client.user_delete_cascades():
            for tid in sorted(current_teams):
                try:
                    await self.client.remove_team_member(tid, a.user_id)
                except AuthError:
                    raise
                except ProxyError as exc:
                    return _failed(
                        a,
                        f"User recreation failed: leaving team {self._label(tid)} first failed ({exc}); "
                        "the user was not deleted",
                    )
        try:
            keys_note = f"its {keys} API key(s) are deleted with it" if keys else "it holds no API key"
            log.debug("fallback for %s: 1/3 delete the user (%s)", a.email, keys_note)
            await self.client.delete_users([a.user_id])
        except AuthError:
            raise
        except ProxyError as exc:
            return _failed(a, f"User recreation failed: the delete failed ({exc}); the user was not recreated")
        created = None
        last: ProxyError | None = None
        for _attempt in range(2):  # a create that fails after the delete is tried once more from the backup's data
            try:
                log.debug("fallback for %s: 2/3 create it again (id %s, role %s)", a.email, a.user_id, a.role)
                created = await self.client.create_user(body)
                break
            except AuthError:
                raise
            except ProxyError as exc:
                last = exc
        if created is None:
            where = (
                f"restore it from the backup: litellm-usersync restore {self._backup_file} --no-delete"
                if self._backup_file
                else "no backup was written (--no-backup): create it again by hand"
            )
            return _failed(
                a, f"User recreation failed: the user was deleted, but creating it again failed ({last}); {where}"
            )
        if created.api_key:  # recorded before anything else; a key lost here is reissued by the next run
            self._received(a.user_id, a.email, created.api_key, None, dict(body["metadata"]))
        lost = self._not_carried(before, keys)
        teams_before = self._before.teams_by_id if self._before is not None else {}
        missing = []
        if log.isEnabledFor(logging.DEBUG):
            teams = ", ".join(self._label(t) for t in a.team_ids) or "none"
            log.debug("fallback for %s: 3/3 add it to its team(s): %s", a.email, teams)
        for tid in a.team_ids:
            was_admin = tid in teams_before and any(
                m.user_id == a.user_id and m.role == "admin" for m in teams_before[tid].members
            )
            try:
                if was_admin:  # the team role comes back where the proxy allows it (an Enterprise licence)
                    try:
                        await self.client.add_team_members(tid, [(a.user_id, a.email)], role="admin")
                        continue
                    except RejectedError:
                        lost.append(f"its admin role in team {self._label(tid)} (re-added as a member)")
                await self.client.add_team_members(tid, [(a.user_id, a.email)])
            except AuthError:
                raise
            except ProxyError as exc:
                missing.append(f"{self._label(tid)}: {exc}")
        note = "recreated by the fallback" + (f"; not carried over: {', '.join(lost)}" if lost else "")
        if missing:
            return Outcome(
                a,
                OutcomeStatus.FAILED,
                api_key=created.api_key,
                note=note,
                error=f"User recreation failed: recreated, but not added to team(s) {'; '.join(missing)}",
            )
        return _done(a, api_key=created.api_key, note=note)

    async def _fallback(
        self,
        plan: Plan,
        moved: Sequence[PlanItem],
        finished: dict[str, Outcome],
        record: Callable[[Iterable[Outcome]], None],
    ) -> tuple[dict[str, str], dict[str, Outcome]]:
        """Verify the moved users; recreate those the proxy claims to have moved but did not, within the brakes."""
        recreated: dict[str, Outcome] = {}
        left, now = await self.verify(moved, plan)
        wrong = {
            uid: (why if why.startswith("could not verify") else f"not converged: {why}") for uid, why in left.items()
        }
        candidates: list[tuple[PlanItem, int]] = []
        for i in moved:
            if i.user_id not in left or i.user_id in self._unverified:
                continue
            # a call that *failed* is reported as such; only a silent failure (every call answered success,
            # yet the state is wrong) calls for the destructive fallback
            if not all(finished[a.key].ok for a in i.actions):
                continue
            if not plan.options.allow_recreate or i.role not in PROXY_ROLES or self._protected(i, plan):
                continue
            live = now.users_by_id.get(i.user_id) if now is not None else None
            keys = live.key_count if live is not None else i.key_count
            held = keys or (0 if i.may_recreate else i.key_count)
            if held and not plan.options.recreate_with_keys:
                wrong[i.user_id] += (
                    f"; not recreated: the user holds {held} API key(s) (--recreate-with-keys allows it)"
                )
                continue
            if not i.may_recreate:
                continue
            candidates.append((i, keys))
        if not candidates or self.stopping:
            return wrong, recreated
        limit = plan.delete_limit if plan.delete_limit is not None else plan.options.max_delete
        deletions = sum(1 for a in plan.actions if isinstance(a, DeleteUser))
        used = deletions + plan.team_keys_destroyed
        if limit is not None and used + len(candidates) > limit:
            doomed = f", {plan.team_keys_destroyed} destroyed team key(s)" if plan.team_keys_destroyed else ""
            why = (
                f"recreation refused by --max-delete: {len(candidates)} recreation(s) and {deletions} deletion(s)"
                f"{doomed} would exceed the limit of {limit}"
            )
            for i, _ in candidates:
                wrong[i.user_id] += f", {why}"
            return wrong, recreated
        before = self._before.users_by_id if self._before is not None else {}
        for i, keys in candidates:
            if self.stopping:
                break
            log.info("verification failed for %s (%s): recreating", i.email, left[i.user_id])
            action = RecreateUser(i.user_id, i.email, str(i.role), i.team_ids)
            teams_now = now.team_ids_of(i.user_id) if now is not None else frozenset(i.old_team_ids)
            try:
                recreated[i.user_id] = await self.recreate(
                    action,
                    create_key=plan.options.create_keys,
                    # the pre-run snapshot; without one the re-read (the move changes no other field)
                    before=before.get(i.user_id) or (now.users_by_id.get(i.user_id) if now is not None else None),
                    current_teams=teams_now,
                    keys=keys,
                )
            except AuthError as exc:
                self._fatal = self._fatal or exc
                break
            record([recreated[i.user_id]])
        # a recreation is judged by the same rule: read back, plan again, nothing may be left
        done = [i for i, _ in candidates if i.user_id in recreated and recreated[i.user_id].ok]
        if done and not self.stopping:
            again, _ = await self.verify(done, plan)
            for i in done:
                if i.user_id in again:
                    o = recreated[i.user_id]
                    recreated[i.user_id] = Outcome(
                        o.action,
                        OutcomeStatus.FAILED,
                        api_key=o.api_key,
                        note=o.note,
                        error=f"User recreation failed: recreated, but not converged: {again[i.user_id]}",
                    )
                    record([recreated[i.user_id]])
        return wrong, recreated

    # ---------------------------------------------------------------------------------------------

    async def apply_plan(self, plan: Plan) -> RunReport:
        """Apply every unblocked action of ``plan``; never raises for a failed action."""
        finished: dict[str, Outcome] = {}
        self._label = plan.team_label

        def record(outcomes: Iterable[Outcome]) -> None:
            for o in outcomes:
                finished[o.action.key] = o
                if self._on_outcome:
                    self._on_outcome(o)

        actions = plan.actions
        phases: list[tuple[type, Callable[[list[Any]], Awaitable[list[Outcome]]]]] = [
            (CreateUser, self.apply_creates),
            (ReissueKey, self.apply_reissues),
            (DeleteUser, self.apply_deletes),
            (ChangeRole, self.apply_role_changes),
            (AddMembership, self.apply_joins),
            (RebindKeys, lambda acts: self.apply_rebinds(acts, finished)),
            (RemoveMembership, lambda acts: self.apply_leaves(acts, finished)),
        ]
        for kind, applier in phases:
            if self.stopping:
                break
            todo = [a for a in actions if isinstance(a, kind)]
            if todo:
                try:
                    record(await applier(todo))
                except AuthError as exc:  # credentials refused mid-run: stop, but report what was done
                    self._fatal = self._fatal or exc

        recreated: dict[str, Outcome] = {}
        wrong: dict[str, str] = {}
        moved = [
            i
            for i in plan.items
            if i.kind.name == "UPDATE"
            and not i.blocked
            and any(isinstance(a, (AddMembership, RemoveMembership)) for a in i.actions)
            and all(a.key in finished for a in i.actions)
        ]
        if moved and not self.stopping:
            try:
                wrong, recreated = await self._fallback(plan, moved, finished, record)
            except AuthError as exc:
                self._fatal = self._fatal or exc

        try:
            await self._flush_markers()  # the fallback's recreations
        except AuthError as exc:
            self._fatal = self._fatal or exc
        aborted = str(self._fatal) if self._fatal is not None else None
        interrupted = self._stop.is_set() or aborted is not None
        why = f"run aborted: {aborted}" if aborted else "run interrupted"
        results = [self._item_result(i, finished, wrong, recreated, why) for i in plan.items]
        outcomes = list(finished.values())
        return RunReport(
            results=tuple(results),
            outcomes=tuple(outcomes),
            interrupted=interrupted,
            aborted=aborted,
            keys_unknown=tuple(sorted(self._keys_unknown)),
            markers_left=tuple(sorted(self._markers_left | set(self._clear))),
        )

    @staticmethod
    def _item_result(
        item: PlanItem,
        finished: dict[str, Outcome],
        wrong: dict[str, str],
        recreated: dict[str, Outcome],
        why_missing: str = "run interrupted",
    ) -> ItemResult:
        if item.blocked:
            return ItemResult(item, success=False, error=item.blocked)
        if not item.actions:
            return ItemResult(item, success=True)
        outs = [finished.get(a.key) for a in item.actions]
        api_key = next((o.api_key for o in outs if o and o.api_key), None)
        notes = [o.note for o in outs if o and o.note]
        if item.user_id in recreated:
            r = recreated[item.user_id]
            return ItemResult(item, success=r.ok, error=r.error, api_key=r.api_key, note=r.note, recreated=True)
        errors = []
        not_attempted = partial = False
        for a, o in zip(item.actions, outs, strict=True):
            if o is None:
                not_attempted = True
                errors.append(f"{a.key.split(':')[0]}: not attempted ({why_missing})")
            elif not o.ok:
                partial = partial or o.partial
                errors.append(o.error or "failed")
        if not errors and item.user_id in wrong:
            errors.append(wrong[item.user_id])
        if item.team_keys_destroyed and any(
            isinstance(a, RemoveMembership) and a.destroys_keys and (o := finished.get(a.key)) is not None and o.ok
            for a in item.actions
        ):
            notes.append(f"destroyed {item.team_keys_destroyed} team key(s)")
        return ItemResult(
            item,
            success=not errors,
            error="; ".join(errors) or None,
            api_key=api_key,
            note="; ".join(notes) or None,
            partial=partial and bool(errors),
            not_attempted=not_attempted,
        )


async def apply_plan(
    client: ProxyClient,
    plan: Plan,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_key: KeyHook | None = None,
    recorded_keys: Mapping[str, str] | None = None,
    invite: bool = False,
    before: Snapshot | None = None,
    backup_file: str | None = None,
) -> RunReport:
    """Apply ``plan`` through ``client``. See :class:`Executor`. ``on_outcome`` sees every outcome as it lands;
    ``on_key`` every API key as it arrives, before the user's "key pending" marker is cleared.

    ``before`` is the snapshot the plan was made from: a fallback recreation carries every field it holds of
    the user over; ``backup_file`` is where it was saved (named on a row whose recreation failed half-way).
    """
    executor = Executor(
        client,
        concurrency=concurrency,
        on_progress=on_progress,
        stop=stop,
        on_outcome=on_outcome,
        on_key=on_key,
        recorded_keys=recorded_keys,
        invite=invite,
        before=before,
        backup_file=backup_file,
    )
    return await executor.apply_plan(plan)
