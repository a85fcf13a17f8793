"""Deprovisioning by block, reactivation and purge (issue 13): the plan items, pure.

``sync --deprovision block`` blocks a managed user that is no longer in the source instead of deleting it
(:class:`~litellm_usersync.models.BlockUser`); a user the tool blocked who is back in the source is
reactivated (:class:`~litellm_usersync.models.ReactivateUser`); ``--purge-blocked-after`` deletes users the
tool blocked longer ago than that. The record on the user (``models.blocking``) says what a block changed.
No I/O, no clock: the time of the run comes in ``PlanOptions.now``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from litellm_usersync.models import (
    BLOCKED_ROLE,
    BlockRecord,
    BlockUser,
    DeleteUser,
    DesiredUser,
    ItemKind,
    LiveUser,
    PlanItem,
    PlanOptions,
    ReactivateUser,
    Skipped,
    Snapshot,
    UserKey,
    purge_due,
    version_tuple,
)
from litellm_usersync.models.blocking import BUDGET_NULL_MIN_VERSION

#: ``_plan_role_and_teams(want, live, snapshot, options, skipped)`` of the sync planner
RoleAndTeams = Callable[[DesiredUser, LiveUser, Snapshot, PlanOptions, list[Skipped]], PlanItem | None]


def budget_null_clears(snapshot: Snapshot) -> bool:
    """True when this proxy's ``/user/update`` clears ``max_budget`` with null (a None budget can come back)."""
    v = version_tuple(snapshot.features.version)
    return v is not None and v >= BUDGET_NULL_MIN_VERSION


def key_label(key: UserKey) -> str:
    """How the plan names a key it blocks: its alias (or the end of its hash), and its team if team-bound."""
    name = key.alias or f"…{key.token[-6:]}"
    return f"{name} (team {key.team_id})" if key.team_id else name


def delete_item(live: LiveUser, snapshot: Snapshot, email: str) -> PlanItem:
    """The seed's deprovision: delete the user (its keys go with it)."""
    team_ids = tuple(sorted(snapshot.team_ids_of(live.user_id)))
    return PlanItem(
        kind=ItemKind.DELETE,
        email=email,
        user_id=live.user_id,
        role=live.role,
        team_names=snapshot.team_names_of(live.user_id),
        actions=(DeleteUser(live.user_id, email, team_ids),),
        old_team_ids=team_ids,
        key_count=live.key_count,
        spend=live.spend,
    )


def block_item(live: LiveUser, snapshot: Snapshot, options: PlanOptions, email: str) -> PlanItem:
    """Block ``live``: its unblocked keys, role viewer, budget 0; an interrupted block is completed."""
    record = live.block_record
    keys = snapshot.keys_of(live.user_id)
    read = live.user_id in snapshot.user_keys_read
    stops = [k for k in keys if not k.blocked]
    tokens = sorted({k.token for k in stops} | set(record.tokens if record else ()))
    old_role = record.role if record else live.role
    old_budget = record.max_budget if record else live.max_budget
    zero = record.budget_zeroed if record else (old_budget is not None or budget_null_clears(snapshot))
    action = BlockUser(
        live.user_id,
        email,
        blocked_at=(record.at if record else options.now) or "",
        tokens=tuple(tokens),
        old_role=old_role,
        old_max_budget=old_budget,
        zero_budget=zero,
        resume=record is not None,
        keys_read=read,
        stops=tuple(sorted(key_label(k) for k in stops)),
        already_blocked=sum(1 for k in keys if k.blocked and k.token not in tokens),
    )
    team_ids = tuple(sorted(snapshot.team_ids_of(live.user_id)))
    return PlanItem(
        kind=ItemKind.BLOCK,
        email=email,
        user_id=live.user_id,
        role=BLOCKED_ROLE,
        team_names=snapshot.team_names(team_ids),
        actions=(action,),
        # the role it has now (a saved plan's freshness check compares it); the action keeps the one to give back
        old_role=live.role,
        old_team_names=snapshot.team_names(team_ids),
        team_ids=team_ids,
        old_team_ids=team_ids,
        key_count=len(tokens) if read else live.key_count,
        spend=live.spend,
        # a block is stamped with the time of the run: without one there is no record to write
        blocked=None if action.blocked_at else "no time for the block's record (PlanOptions.now is not set)",
    )


def deprovision_item(live: LiveUser, snapshot: Snapshot, options: PlanOptions, email: str) -> PlanItem | None:
    """What happens to a managed, unprotected user no longer in the source (None: nothing, it is blocked)."""
    record = live.block_record
    if options.deprovision != "block":
        return delete_item(live, snapshot, email)
    if record is None or record.state != "blocked":
        return block_item(live, snapshot, options, email)  # a new block, or an interrupted one completed
    if purge_due(record, options.now, options.purge_blocked_after_s):
        return delete_item(live, snapshot, email)
    return None  # blocked already: a rerun sends nothing


def reactivation_item(
    want: DesiredUser,
    live: LiveUser,
    record: BlockRecord,
    snapshot: Snapshot,
    options: PlanOptions,
    skipped: list[Skipped],
    role_and_teams: RoleAndTeams,
) -> PlanItem | None:
    """``live`` was blocked by the tool and is in the source again: undo the block exactly (the keys the
    record names, the role and budget it kept; the CSV's role where it gives one), and make the row's
    team changes as any update does."""
    email = live.email or want.email
    if not options.allow_update:
        skipped.append(Skipped(email, live.user_id, "blocked; not reactivated: --no-update"))
        return None
    role = want.role or record.role or options.default_role
    # the budget the block zeroed comes back as the record kept it, or as the CSV's max_budget column says
    # (a managed field: the CSV wins); the reactivation writes it once, the field diff then sees no change
    wanted = dict(want.fields)
    csv_budget = wanted.get("max_budget")
    budget = float(csv_budget) if isinstance(csv_budget, (int, float)) else None
    if "max_budget" not in wanted:
        budget = record.max_budget
    after = replace(live, role=role, max_budget=budget) if record.budget_zeroed else replace(live, role=role)
    # plan the rest (teams, the other managed fields) against the user as it will be once reactivated: the role
    # and the budget are not written a second time
    item = role_and_teams(replace(want, role=role), after, snapshot, options, skipped)
    if item is None:
        return None
    reactivate = ReactivateUser(
        live.user_id,
        email,
        role,
        tokens=record.tokens,
        max_budget=budget if record.budget_zeroed else record.max_budget,
        restore_budget=record.budget_zeroed,
    )
    # a reactivation's team changes are not verified by re-reading: the fallback never recreates such a user
    return replace(
        item, kind=ItemKind.REACTIVATE, old_role=live.role, actions=(reactivate, *item.actions), may_recreate=False
    )


# --------------------------------------------------------------------------------------------------
# how a block reads (render.deprovision and the delete command use these)


def block_of(item: PlanItem) -> BlockUser | None:
    return next((a for a in item.actions if isinstance(a, BlockUser)), None)


def team_list(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "-"


def stops_text(block: BlockUser) -> str:
    """``blocks 2 API key(s): alice-1, alice-eng (team team-eng)``: what the block stops."""
    if not block.keys_read:
        return "its API keys are read and blocked when the block is applied"
    n = len(block.tokens)
    names = f": {', '.join(block.stops)}" if block.stops else ""
    text = f"blocks {n} API key(s){names}"
    if block.resume:
        text += " (completes an interrupted block)"
    if block.already_blocked:
        text += f"; {block.already_blocked} key(s) blocked before stay blocked"
    return text


def describe_block(item: PlanItem) -> str:
    """The plan line of a BLOCK item (``⊘ email (...) — blocks N API key(s): ...``)."""
    block = block_of(item)
    budget = "; budget → 0" if block is not None and block.zero_budget else ""
    was = block.old_role if block is not None else item.old_role
    text = f"⊘ {item.email} (Role: {was} → {item.role}{budget}; Team: {team_list(item.team_names)} kept)"
    if block is not None:
        text += f" — {stops_text(block)}; spend ${item.spend:,.2f} kept"
    return text
