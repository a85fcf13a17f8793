"""The executor: applies a :class:`Plan` through the client and records one :class:`Outcome` per action.

Order (the seed's): add, delete, update. Updates go role changes, then joins, then leaves (a leave runs
only when the user's joins succeeded: the seed's "gradual update"), then a verification read of the moved
users, then the fallback recreation of users whose state is still wrong. Where the order buys nothing it is
not kept: the role and field changes of users no add, delete, block or reactivation touches (they write only
that user's row), and their joins of teams no add or delete writes, run beside those phases, not after them.

This module keeps that order and the per-row results; the rooms do the work: ``scheduling`` (bounded
workers, the stop flag, rounds of one team's roster writes), ``applier`` (the one "batch endpoint in chunks
where the proxy has it, else bounded per-user calls" applier every phase uses), ``creates``, ``users``
(deletes, role changes), ``memberships`` (joins, leaves, team-key re-binds), ``keys`` (the journal hand-off,
the "key pending" markers, reissues), ``verify`` (re-read and re-plan) and ``fallback`` (recreation).

The executor never raises for a failed action: it returns outcomes. Credentials refused in the middle of a
run stop it (nothing new is started) and the report says so (``RunReport.aborted``) with everything that was
done until then. It never prints; progress goes to a callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from litellm_usersync.errors import AuthError
from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import (
    Action,
    AddMembership,
    AdoptUser,
    BlockUser,
    ChangeRole,
    CreateTeam,
    CreateUser,
    DeleteUser,
    ItemResult,
    LiveUser,
    Outcome,
    Plan,
    PlanItem,
    ReactivateUser,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    RunReport,
    Snapshot,
    UpdateTeam,
    UpdateUser,
)
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import DEFAULT_CONCURRENCY

from .adoption import Adoptions
from .applier import skipped
from .blocking import block_user, reactivate_user
from .creates import Creates, create_body
from .fallback import Fallback
from .fields import apply_team_actions
from .keys import KEPT_NOTE, LOST_KEY_NOTE, REISSUED_NOTE, KeyHook, Keys, created_metadata, hash_key
from .memberships import LEAVE_ROUNDS, Memberships
from .scheduling import ProgressCallback, Run
from .users import DELETE_CHUNK, UserWrites
from .verify import Verifier

__all__ = [
    "DELETE_CHUNK",
    "KEPT_NOTE",
    "LEAVE_ROUNDS",
    "LOST_KEY_NOTE",
    "REISSUED_NOTE",
    "Executor",
    "KeyHook",
    "ProgressCallback",
    "apply_plan",
    "create_body",
    "created_metadata",
    "hash_key",
]


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
        self._on_outcome = on_outcome
        caller = before.caller_user_id if before is not None else DEFAULT_USER_ID
        self._run = Run(concurrency=concurrency, stop=stop, on_progress=on_progress)
        self._keys = Keys(client, self._run, on_key=on_key, recorded_keys=recorded_keys, invite=invite)
        self._memberships = Memberships(client, self._run)
        self._creates = Creates(client, self._run, self._keys, self._memberships)
        self._users = UserWrites(
            client, self._run, self._memberships, before.users_by_id if before is not None else None
        )
        self._adoptions = Adoptions(client, self._run)
        self._verifier = Verifier(client, self._run, caller=caller)
        self._fallback = Fallback(
            client, self._run, self._keys, self._verifier, before=before, backup_file=backup_file, caller=caller
        )

    @property
    def concurrency(self) -> int:
        return self._run.concurrency

    @property
    def stopping(self) -> bool:
        return self._run.stopping

    # the phases, each usable on its own

    async def apply_creates(self, actions: Sequence[CreateUser]) -> list[Outcome]:
        """The creates, and their "key pending" markers cleared before it returns (in a whole plan the
        clears run beside the phases that follow: :meth:`apply_plan`)."""
        outcomes = await self._creates.apply(actions)
        await self._keys.flush()
        return outcomes

    async def apply_reissues(self, actions: Sequence[ReissueKey]) -> list[Outcome]:
        """Repairs planned from the markers an interrupted run left (see :class:`ReissueKey`)."""
        return await self._keys.apply_reissues(actions)

    async def apply_deletes(self, actions: Sequence[DeleteUser]) -> list[Outcome]:
        return await self._users.apply_deletes(actions)

    async def apply_adoptions(self, actions: Sequence[AdoptUser]) -> list[Outcome]:
        """``--adopt``: the tool's marker into each user's own metadata (:mod:`.adoption`)."""
        return await self._adoptions.apply_adoptions(actions)

    async def apply_blocks(self, actions: Sequence[BlockUser]) -> list[Outcome]:
        """``--deprovision block`` (apply/blocking.py), one user at a time, bounded."""
        self._run.progress.start("blocking users", len(actions))
        return await self._run.each(actions, partial(block_user, self.client))

    async def apply_reactivations(self, actions: Sequence[ReactivateUser]) -> list[Outcome]:
        self._run.progress.start("reactivating users", len(actions))
        return await self._run.each(actions, partial(reactivate_user, self.client))

    async def apply_role_changes(self, actions: Sequence[ChangeRole | UpdateUser]) -> list[Outcome]:
        """Role changes and managed-field changes (``UpdateUser``: the fields and the role in one update)."""
        return await self._users.apply_role_changes(actions)

    async def apply_teams(self, plan: Plan, record: Callable[[Iterable[Outcome]], None]) -> tuple[Action, ...]:
        """Create and update the plan's teams first; returns the user actions left to apply: an action on a team
        that could not be created is skipped (its outcome recorded) with that reason."""
        user_actions = tuple(a for a in plan.actions if not isinstance(a, (CreateTeam, UpdateTeam)))
        run = self._run
        if not plan.teams or run.stopping:
            return user_actions
        run.progress.start("creating and updating teams", len(plan.teams))
        outcomes = await apply_team_actions(
            self.client, plan.teams, concurrency=run.concurrency, stopping=lambda: run.stopping
        )
        run.progress.advance(len(outcomes))
        record(outcomes)
        finished = {o.action.key for o in outcomes}
        failed = {
            o.action.team_id: o.error or "failed" for o in outcomes if not o.ok and isinstance(o.action, CreateTeam)
        }
        failed.update(
            (t.team_id, "not created (run stopped)")
            for t in plan.teams
            if isinstance(t, CreateTeam) and t.key not in finished
        )
        if not failed:
            return user_actions
        left: list[Action] = []
        for a in user_actions:
            teams = a.team_ids if isinstance(a, CreateUser) else (a.team_id,) if isinstance(a, AddMembership) else ()
            why = next((failed[t] for t in teams if t in failed), None)
            if why is None:
                left.append(a)
            else:
                record([skipped(a, why)])
        return tuple(left)

    async def apply_joins(self, actions: Sequence[AddMembership]) -> list[Outcome]:
        return await self._memberships.joins(actions)

    async def apply_rebinds(self, actions: Sequence[RebindKeys], finished: Mapping[str, Outcome]) -> list[Outcome]:
        """--keep-team-keys: bind the keys a leave would delete to the user's new team (``/key/update``)."""
        return await self._memberships.apply_rebinds(actions, finished)

    async def apply_leaves(self, actions: Sequence[RemoveMembership], finished: Mapping[str, Outcome]) -> list[Outcome]:
        return await self._memberships.apply_leaves(actions, finished)

    async def verify(self, items: Sequence[PlanItem], plan: Plan) -> tuple[dict[str, str], Snapshot | None]:
        """Read back the users whose teams changed; return ``user_id -> what is still wrong`` and the re-read."""
        return await self._verifier.verify(items, plan)

    async def recreate(
        self,
        a: RecreateUser,
        *,
        create_key: bool = True,
        before: LiveUser | None = None,
        current_teams: Iterable[str] = (),
        keys: int = 0,
    ) -> Outcome:
        """The seed's fallback for one user: delete it, create it again (see :meth:`Fallback.recreate`)."""
        return await self._fallback.recreate(
            a, create_key=create_key, before=before, current_teams=current_teams, keys=keys
        )

    # ---------------------------------------------------------------------------------------------

    async def apply_plan(self, plan: Plan) -> RunReport:
        """Apply every unblocked action of ``plan``; never raises for a failed action."""
        run = self._run
        finished: dict[str, Outcome] = {}
        run.label = plan.team_label

        def record(outcomes: Iterable[Outcome]) -> None:
            for o in outcomes:
                finished[o.action.key] = o
                if self._on_outcome:
                    self._on_outcome(o)

        # the plan's teams first (the joins need them), then the seed's order: add, delete, update (roles and
        # fields, joins, re-binds, then leaves: joins before leaves); the role changes of users nothing else
        # touches beside the adds and deletes
        try:
            actions = await self.apply_teams(plan, record)
        except AuthError as exc:
            run.abort(exc)
            actions = ()
        Phases = list[tuple[type | tuple[type, ...], Callable[[list[Any]], Awaitable[list[Outcome]]]]]
        lifecycle: Phases = [
            (CreateUser, self._creates.apply),  # the markers are cleared beside what follows (keys.flush_soon)
            (ReissueKey, self.apply_reissues),
            (DeleteUser, self.apply_deletes),
            (AdoptUser, self.apply_adoptions),
            (BlockUser, self.apply_blocks),
            (ReactivateUser, self.apply_reactivations),
        ]
        roles: Phases = [((ChangeRole, UpdateUser), self.apply_role_changes)]
        joins: Phases = [(AddMembership, self.apply_joins)]
        rosters: Phases = [
            *joins,
            (RebindKeys, lambda acts: self.apply_rebinds(acts, finished)),
            (RemoveMembership, lambda acts: self.apply_leaves(acts, finished)),
        ]

        async def apply_phases(phases: Phases, todo: Sequence[Action]) -> None:
            for kind, applier in phases:
                if run.stopping:
                    break
                these = [a for a in todo if isinstance(a, kind)]
                if these:
                    try:
                        record(await applier(these))
                    except AuthError as exc:  # credentials refused mid-run: stop, but report what was done
                        run.abort(exc)

        # The phases overlap where nothing depends on their order (issue 14), beside the adds and deletes:
        # - a role or field change of a user no add, delete, block or reactivation touches: it writes that
        #   user's row and nothing else (no roster: API contract §2.4/§2.6);
        # - a join of such a user (without a role change) to a team no add or delete writes the roster of: one
        #   team's roster is still never written twice at once, one user's teams never twice at once.
        # Everything else keeps the seed's order; the leaves wait for every join (joins before leaves).
        busy = {a.user_id for a in actions if isinstance(a, tuple(k for k, _ in lifecycle))}
        busy_teams = {t for a in actions if isinstance(a, (CreateUser, DeleteUser)) for t in a.team_ids}
        changing = {a.user_id for a in actions if isinstance(a, (ChangeRole, UpdateUser))}
        beside: list[Action] = []
        after: list[Action] = []
        for a in actions:
            free = a.user_id not in busy and (
                isinstance(a, (ChangeRole, UpdateUser))
                or (isinstance(a, AddMembership) and a.team_id not in busy_teams and a.user_id not in changing)
            )
            (beside if free else after).append(a)
        await asyncio.gather(apply_phases(lifecycle, after), apply_phases(roles, beside), apply_phases(joins, beside))
        await apply_phases(roles, after)
        await apply_phases(rosters, after)

        # then the verification of the moved users, and the recreations (the fallback deletes before it creates)
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
        if moved and not run.stopping:
            try:
                wrong, recreated = await self._fallback.apply(plan, moved, finished, record)
            except AuthError as exc:
                run.abort(exc)

        try:
            await self._keys.flush()  # the creates' markers still being cleared, and the fallback's recreations
        except AuthError as exc:
            run.abort(exc)
        aborted = str(run.fatal) if run.fatal is not None else None
        interrupted = run.stop.is_set() or aborted is not None
        why = f"run aborted: {aborted}" if aborted else "run interrupted"
        results = [item_result(i, finished, wrong, recreated, why) for i in plan.items]
        return RunReport(
            results=tuple(results),
            outcomes=tuple(finished.values()),
            interrupted=interrupted,
            aborted=aborted,
            keys_unknown=tuple(sorted(self._keys.unknown)),
            markers_left=self._keys.markers_left,
            scope=tuple(plan.options.scope.values()),
        )


def item_result(
    item: PlanItem,
    finished: Mapping[str, Outcome],
    wrong: Mapping[str, str],
    recreated: Mapping[str, Outcome],
    why_missing: str = "run interrupted",
) -> ItemResult:
    """One plan row's result from its actions' outcomes, the verification and the fallback."""
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
