"""The seed's fallback: a moved user whose every call answered success, yet whose state the verification
finds wrong, is deleted and created again with the right role and teams, within the brakes.

Only a *silent* failure calls for it (a failed call is reported as such), never for a protected user, a role
the tool does not manage, or a user holding API keys unless ``--recreate-with-keys``; the recreations count
against ``--max-delete`` with the plan's deletions, and each recreation is verified by the same re-plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from litellm_usersync.errors import AuthError, ProxyError, RejectedError
from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES
from litellm_usersync.models import (
    INVITE_PENDING,
    KEY_PENDING,
    RECREATE_FIELDS,
    BlockUser,
    DeleteUser,
    LiveUser,
    Outcome,
    Plan,
    PlanItem,
    RecreateUser,
    Snapshot,
)
from litellm_usersync.proxy.client import ProxyClient

from .applier import done, failed
from .creates import create_body
from .fields import with_changes
from .keys import Keys
from .scheduling import Run
from .verify import Verifier

log = logging.getLogger("litellm_usersync.apply.fallback")


def recreate_body(a: RecreateUser, before: LiveUser | None, *, create_key: bool) -> dict[str, Any]:
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


def not_carried(before: LiveUser | None, keys: int) -> list[str]:
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


class Fallback:
    """Recreations of the users the verification found wrong."""

    def __init__(
        self,
        client: ProxyClient,
        run: Run,
        keys: Keys,
        verifier: Verifier,
        *,
        before: Snapshot | None = None,
        backup_file: str | None = None,
        caller: str = DEFAULT_USER_ID,
    ) -> None:
        self.client = client
        self.run = run
        self.keys = keys
        self.verifier = verifier
        #: the snapshot the plan was made from (what a recreation carries over) and where it was saved
        self._before = before
        self._backup_file = backup_file
        self._caller = caller

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
        """Delete the user, create it again with the right role and teams, and every field ``before`` (the
        pre-run snapshot) had that a create can set."""
        label = self.run.label
        body = recreate_body(a, before, create_key=create_key)
        # older proxies leave rosters behind on /user/delete (as the deletes know): leave the teams first
        if not await self.client.user_delete_cascades():
            for tid in sorted(current_teams):
                try:
                    await self.client.remove_team_member(tid, a.user_id)
                except AuthError:
                    raise
                except ProxyError as exc:
                    return failed(
                        a,
                        f"User recreation failed: leaving team {label(tid)} first failed ({exc}); "
                        "the user was not deleted",
                    )
        try:
            keys_note = f"its {keys} API key(s) are deleted with it" if keys else "it holds no API key"
            log.debug("fallback for %s: 1/3 delete the user (%s)", a.email, keys_note)
            await self.client.delete_users([a.user_id])
        except AuthError:
            raise
        except ProxyError as exc:
            return failed(a, f"User recreation failed: the delete failed ({exc}); the user was not recreated")
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
            return failed(
                a, f"User recreation failed: the user was deleted, but creating it again failed ({last}); {where}"
            )
        if created.api_key:  # recorded before anything else; a key lost here is reissued by the next run
            self.keys.received(a.user_id, a.email, created.api_key, None, dict(body["metadata"]))
        lost = not_carried(before, keys)
        teams_before = self._before.teams_by_id if self._before is not None else {}
        missing = []
        if log.isEnabledFor(logging.DEBUG):
            teams = ", ".join(label(t) for t in a.team_ids) or "none"
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
                        lost.append(f"its admin role in team {label(tid)} (re-added as a member)")
                await self.client.add_team_members(tid, [(a.user_id, a.email)])
            except AuthError:
                raise
            except ProxyError as exc:
                missing.append(f"{label(tid)}: {exc}")
        note = "recreated by the fallback" + (f"; not carried over: {', '.join(lost)}" if lost else "")
        if missing:
            return failed(
                a,
                f"User recreation failed: recreated, but not added to team(s) {'; '.join(missing)}",
                api_key=created.api_key,
                note=note,
            )
        return done(a, api_key=created.api_key, note=note)

    async def apply(
        self,
        plan: Plan,
        moved: Sequence[PlanItem],
        finished: Mapping[str, Outcome],
        record: Callable[[Iterable[Outcome]], None],
    ) -> tuple[dict[str, str], dict[str, Outcome]]:
        """Verify the moved users; recreate those the proxy claims to have moved but did not, within the brakes.

        Returns ``user_id -> what is still wrong`` and ``user_id -> the recreation's outcome``."""
        recreated: dict[str, Outcome] = {}
        left, now = await self.verifier.verify(moved, plan)
        unknown = self.verifier.unverified  # "could not verify: …": not known to be wrong
        wrong = {uid: why if uid in unknown else f"not converged: {why}" for uid, why in left.items()}
        candidates = self._candidates(plan, moved, finished, left, wrong, now)
        if not candidates or self.run.stopping:
            return wrong, recreated
        limit = plan.delete_limit if plan.delete_limit is not None else plan.options.max_delete
        deletions = sum(1 for a in plan.actions if isinstance(a, (DeleteUser, BlockUser)))  # blocks count too
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
            if self.run.stopping:
                break
            log.info("verification failed for %s (%s): recreating", i.email, left[i.user_id])
            action = RecreateUser(i.user_id, i.email, str(i.role), i.team_ids)
            teams_now = now.team_ids_of(i.user_id) if now is not None else frozenset(i.old_team_ids)
            try:
                recreated[i.user_id] = await self.recreate(
                    action,
                    create_key=plan.options.create_keys,
                    # the pre-run snapshot; without one the re-read (the move changes no other field)
                    before=with_changes(
                        before.get(i.user_id) or (now.users_by_id.get(i.user_id) if now is not None else None),
                        i.field_changes,
                    ),
                    current_teams=teams_now,
                    keys=keys,
                )
            except AuthError as exc:
                self.run.abort(exc)
                break
            record([recreated[i.user_id]])
        # a recreation is judged by the same rule: read back, plan again, nothing may be left
        converged = [i for i, _ in candidates if i.user_id in recreated and recreated[i.user_id].ok]
        if converged and not self.run.stopping:
            again, _ = await self.verifier.verify(converged, plan)
            for i in converged:
                if i.user_id in again:
                    o = recreated[i.user_id]
                    recreated[i.user_id] = failed(
                        o.action,
                        f"User recreation failed: recreated, but not converged: {again[i.user_id]}",
                        api_key=o.api_key,
                        note=o.note,
                    )
                    record([recreated[i.user_id]])
        return wrong, recreated

    def _candidates(
        self,
        plan: Plan,
        moved: Sequence[PlanItem],
        finished: Mapping[str, Outcome],
        left: Mapping[str, str],
        wrong: dict[str, str],
        now: Snapshot | None,
    ) -> list[tuple[PlanItem, int]]:
        """The wrong users a recreation may fix, with the keys each holds; the reason on the others' rows."""
        candidates: list[tuple[PlanItem, int]] = []
        for i in moved:
            if i.user_id not in left or i.user_id in self.verifier.unverified:
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
        return candidates
