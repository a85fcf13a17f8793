"""Verification after the updates: the moved users and their teams' rosters read back into a
:class:`Snapshot`, and the same :func:`build_plan` run on it. Whatever is left to do is "not converged".

One definition of "in sync" for the planner and the executor: no second diff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from litellm_usersync.errors import AuthError, ProxyError, RefusedError
from litellm_usersync.models import (
    AddMembership,
    ChangeRole,
    DesiredState,
    DesiredUser,
    Plan,
    PlanItem,
    PlanOptions,
    RemoveMembership,
    Snapshot,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.snapshot import parse_live_user, parse_team

from .scheduling import Run

log = logging.getLogger("litellm_usersync.apply.verify")


class Verifier:
    """Reads back what a run changed and plans it again."""

    def __init__(self, client: ProxyClient, run: Run, *, caller: str) -> None:
        self.client = client
        self.run = run
        self._caller = caller
        #: users whose state could not be read back (no fallback for them: their state is unknown)
        self.unverified: set[str] = set()

    async def read_back(self, user_ids: Sequence[str], team_ids: Iterable[str]) -> Snapshot:
        """The touched users and the rosters of the touched teams, as a :class:`Snapshot` (what the planner reads)."""
        rows = await self.client.read_users_by_ids(list(user_ids))
        wanted = set(team_ids)
        teams = [t for t in await self.client.read_all_teams(parse=parse_team) if t.team_id in wanted] if wanted else []
        return Snapshot(
            users=tuple(parse_live_user(r) for r in rows.values()),
            teams=tuple(teams),
            caller_user_id=self._caller,
        )

    def left_undone(self, items: Sequence[PlanItem], now: Snapshot, plan: Plan) -> dict[str, str]:
        """``user_id -> what is still not converged``: the same :func:`build_plan` on the re-read state.

        One definition of "in sync": a user is converged when planning it again leaves nothing to do.
        """
        label = self.run.label
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
                    self.unverified.add(i.user_id)
                    left[i.user_id] = "could not verify: the user id contains a comma"
                else:
                    left[i.user_id] = "user not found when verifying"
                continue
            if v.blocked:  # e.g. a target team deleted meanwhile: not a silent failure a recreation could fix
                self.unverified.add(i.user_id)
                left[i.user_id] = f"could not verify: {v.blocked}"
                continue
            parts = []
            for a in v.actions:
                if isinstance(a, ChangeRole):
                    parts.append(f"role is {a.old_role}, expected {a.new_role}")
            joins = [label(a.team_id) for a in v.actions if isinstance(a, AddMembership)]
            leaves = [label(a.team_id) for a in v.actions if isinstance(a, RemoveMembership)]
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
        self.run.progress.start("verifying", len(items))
        try:
            now = await self.read_back(
                [i.user_id for i in items], {t for i in items for t in (*i.team_ids, *i.old_team_ids)}
            )
        except AuthError:
            raise
        except (ProxyError, RefusedError) as exc:  # RefusedError: the teams changed while they were read
            # not knowing is not "wrong": the rows fail with this reason, and nothing is recreated
            self.unverified = {i.user_id for i in items}
            return {i.user_id: f"could not verify: {exc}" for i in items}, None
        log.debug("verify: read back %d user(s) whose teams changed", len(items))
        left = self.left_undone(items, now, plan)
        for i in items:
            if i.user_id in left:
                log.debug("verify: %s: %s", i.email, left[i.user_id])
        log.debug("verify: %d of %d as planned", len(items) - len(left), len(items))
        self.run.progress.advance(len(items))
        return left, now
