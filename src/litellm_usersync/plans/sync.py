"""The planner: desired state + live snapshot -> plan. Pure and deterministic (sorted by identity key).

No I/O, no clock, no randomness. The brakes (``plans.brakes``, shared by every planner) are reported as
``Plan.refusals``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from litellm_usersync.identity import (
    PROXY_ROLES,
    nfc_email,
    normalize_email,
    resolve_team,
    team_problem,
)
from litellm_usersync.models import (
    Action,
    AddMembership,
    ChangeRole,
    CreateUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    RebindKeys,
    ReissueKey,
    RemoveMembership,
    Skipped,
    Snapshot,
    UpdateUser,
    version_tuple,
)
from litellm_usersync.models.blocking import BUDGET_NULL_MIN_VERSION
from litellm_usersync.models.fields import FieldChange, diff_fields

from .brakes import CALLER_PROTECTED, CSV_BRAKE, SCOPED_BRAKE, delete_limit, deletion_refusals, protection
from .deprovision import deprovision_item, reactivation_item
from .scoping import ScopeView, with_adoption
from .teams import create_teams_refusal, keep_used_creates, plan_teams

#: the order of a plan's items (then by email key and user id): adds, deletions, blocks, updates,
#: reactivations, unchanged
KIND_ORDER = {
    ItemKind.ADD: 0,
    ItemKind.DELETE: 1,
    ItemKind.BLOCK: 2,
    ItemKind.UPDATE: 3,
    ItemKind.REACTIVATE: 4,
    ItemKind.UNCHANGED: 5,
}


#: from here ``/user/update`` has ``user_alias`` (LiteLLM 1.74's UpdateUserRequest lacks it: an alias sent is
#: silently ignored, API contract §2.4)
ALIAS_UPDATE_MIN_VERSION = (1, 100)
#: the user fields a clear (``-``) sends as an explicit null, which ``/user/update`` applies only from
#: ``BUDGET_NULL_MIN_VERSION`` (before, the null is dropped and the value stays; API contract §2.4)
NULL_CLEARED_FIELDS = frozenset({"max_budget", "budget_duration", "tpm_limit", "rpm_limit"})


def _shown(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def update_refusal(changes: Sequence[FieldChange], snapshot: Snapshot) -> str | None:
    """Why this proxy's ``/user/update`` cannot make ``changes`` (None: it can, or the version is unknown).

    LiteLLM 1.74 answers success to both and changes nothing: an alias change, and a clear that needs an explicit
    null. The row is blocked instead, so that its report never says done for a change that was not made. A new
    user (``/user/new``) is not concerned. Shared by ``sync`` and ``restore``."""
    version = snapshot.features.version or snapshot.proxy_version
    v = version_tuple(version)
    if v is None or not changes:
        return None
    problems = []
    if v < ALIAS_UPDATE_MIN_VERSION and any(c.name == "user_alias" for c in changes):
        problems.append(
            f"user_alias: LiteLLM {version}'s /user/update cannot change a user's alias "
            f"(needs LiteLLM >= {_shown(ALIAS_UPDATE_MIN_VERSION)})"
        )
    cleared = [c.name for c in changes if c.new is None and c.name in NULL_CLEARED_FIELDS]
    if v < BUDGET_NULL_MIN_VERSION and cleared:
        problems.append(
            f"{', '.join(cleared)}: LiteLLM {version}'s /user/update cannot clear "
            f"{'it' if len(cleared) == 1 else 'them'} (it ignores an explicit null; "
            f"needs LiteLLM >= {_shown(BUDGET_NULL_MIN_VERSION)})"
        )
    return f"{'; '.join(problems)}; nothing was sent for this row" if problems else None


def user_id_for(email: str) -> str:
    """The user id we give a new user: its normalised email, so a retried create is detected (409)."""
    return normalize_email(email)


def _resolve_teams(names: tuple[str, ...], snapshot: Snapshot) -> tuple[tuple[str, ...], list[str]]:
    ids: list[str] = []
    errors: list[str] = []
    for name in names:
        tid, err = resolve_team(name, snapshot.team_ids_by_name)
        if err:
            errors.append(err)
        elif tid is not None and tid not in ids:
            ids.append(tid)
    return tuple(ids), errors


def _unresolved(names: tuple[str, ...], snapshot: Snapshot) -> tuple[tuple[str, str], ...]:
    """The names that resolve to no single team, each with why (for the plan line ``✗ suport (...)``)."""
    index = snapshot.team_ids_by_name
    return tuple((n, why) for n in names if (why := team_problem(n, index)) is not None)


def _id_taken(user_id: str, snapshot: Snapshot) -> str:
    """A new user's id is taken by a user without this email (added to a team by id, e.g. ``user_id`` = the
    email and no ``user_email``): say what to run instead of 'fix it by hand'."""
    live = snapshot.users_by_id[user_id]
    if live.email:
        return (
            f"a user with id {user_id} already exists with email {live.email}; "
            "change that user's email or this row, then run again"
        )
    return (
        f"a user with id {user_id} already exists without an email (added to a team by id?): give it this email "
        f'with POST /user/update {{"user_id": "{user_id}", "user_email": "{user_id}"}} '
        "(see docs/sync.md), then run again and the sync manages it as this row"
    )


def _plan_new_user(want: DesiredUser, snapshot: Snapshot, options: PlanOptions) -> PlanItem:
    role = want.role or options.default_role
    team_ids, errors = _resolve_teams(want.team_names or (), snapshot)
    user_id = user_id_for(want.email)
    blocked = "; ".join(errors) or None
    if not blocked and user_id in snapshot.users_by_id:
        blocked = _id_taken(user_id, snapshot)
    create = CreateUser(
        user_id=user_id,
        email=nfc_email(want.email),
        role=role,
        team_ids=team_ids,
        key_alias=want.key_name,
        create_key=options.create_keys,
        fields=tuple((n, v) for n, v in want.fields if v is not None),
    )
    return PlanItem(
        kind=ItemKind.ADD,
        email=nfc_email(want.email),
        user_id=user_id,
        role=role,
        team_names=snapshot.team_names(team_ids) if not errors else tuple(want.team_names or ()),
        actions=(create,),
        blocked=blocked,
        line=want.line,
        team_ids=team_ids,
        role_from_default=want.role is None,
        unresolved_teams=_unresolved(want.team_names or (), snapshot) if errors else (),
    )


def _plan_existing_user(
    want: DesiredUser, live: LiveUser, snapshot: Snapshot, options: PlanOptions, skipped: list[Skipped]
) -> PlanItem | None:
    record = live.block_record
    if record is not None:  # blocked by the tool, and back in the source
        return reactivation_item(want, live, record, snapshot, options, skipped, _plan_role_and_teams)
    item = _plan_role_and_teams(want, live, snapshot, options, skipped)
    if not live.key_pending or not options.create_keys:
        return item
    # created by an interrupted run that died before recording its key: nobody holds that key
    reissue = ReissueKey(live.user_id, live.email or want.email, want.key_name)
    if item is None:  # --no-update: the role and teams stay as they are, the key is still repaired
        return repair_only_item(want, live, snapshot, (reissue,))
    if item.blocked:
        return item
    kind = ItemKind.UPDATE if item.kind is ItemKind.UNCHANGED else item.kind
    return replace(item, kind=kind, actions=(reissue, *item.actions))


def plan_leaves(
    user_id: str,
    email: str,
    leaving: frozenset[str],
    joins: Sequence[AddMembership],
    snapshot: Snapshot,
    options: PlanOptions,
) -> tuple[list[Action], int, int, str | None]:
    """The leaves of one user's team move, after its ``joins``: ``(actions, keys destroyed, keys re-bound, error)``.

    A leave destroys the user's keys bound to that team (API contract §2.12; ``snapshot.team_keys``, read by
    :func:`~litellm_usersync.proxy.snapshot.with_team_keys`): each ``RemoveMembership`` says how many. With
    ``options.keep_team_keys`` a move from one team to one other re-binds them first (``RebindKeys``); any other
    move holding team keys gets ``error`` (the row must be blocked). Shared by ``sync`` and ``restore``.
    """
    actions: list[Action] = []
    requires = tuple(j.key for j in joins)
    ordered = sorted(leaving)
    doomed = {t: snapshot.team_keys_of(user_id, t) for t in ordered}
    kept = 0
    error = None
    if options.keep_team_keys and any(doomed.values()):
        if len(ordered) == 1 and len(joins) == 1:
            # one team -> one other: the keys move with the user (before the leave that would delete them)
            keys = doomed[ordered[0]]
            rebind = RebindKeys(
                user_id, email, ordered[0], joins[0].team_id, tuple(k.token for k in keys), requires=requires
            )
            actions.append(rebind)
            requires = (*requires, rebind.key)
            kept, doomed = len(keys), {}
        else:
            n = sum(len(k) for k in doomed.values())
            error = (
                f"--keep-team-keys: {n} team key(s) can only be re-bound when the user moves from one team to "
                "one other; move this user by hand"
            )
    actions.extend(
        RemoveMembership(user_id, email, t, requires=requires, destroys_keys=len(doomed.get(t, ()))) for t in ordered
    )
    return actions, sum(len(k) for k in doomed.values()), kept, error


def _plan_role_and_teams(
    want: DesiredUser, live: LiveUser, snapshot: Snapshot, options: PlanOptions, skipped: list[Skipped]
) -> PlanItem | None:
    current = snapshot.team_ids_of(live.user_id)
    current_names = snapshot.team_names(current)
    protected = protection(live, snapshot.caller_user_id, options)
    errors: list[str] = []
    target = current
    if want.team_names is not None:
        ids, errors = _resolve_teams(want.team_names, snapshot)
        target = frozenset(ids)
    new_role = want.role if want.role is not None else live.role
    if protected and new_role != live.role:
        skipped.append(Skipped(live.email or "", live.user_id, f"role change to {new_role} refused: {protected}"))
        new_role = live.role
    actions: list[Action] = []
    role_changes = new_role is not None and new_role != live.role
    changes = diff_fields(want.fields, live)
    if changes:  # the fields and the role in one /user/update (the proxy's internal_user defaults never win)
        actions.append(
            UpdateUser(live.user_id, live.email or want.email, live.role, new_role if role_changes else None, changes)
        )
    elif role_changes:
        assert new_role is not None
        actions.append(ChangeRole(live.user_id, live.email or want.email, live.role, new_role))
    email = live.email or want.email
    joins = [AddMembership(live.user_id, email, t) for t in sorted(target - current)]
    actions.extend(joins)
    leaves, destroyed, kept, error = plan_leaves(live.user_id, email, current - target, joins, snapshot, options)
    actions.extend(leaves)
    if error:
        errors.append(error)
    refusal = update_refusal(changes, snapshot)
    if refusal:
        errors.append(refusal)
    base = {
        "email": live.email or want.email,
        "user_id": live.user_id,
        "role": new_role,
        "team_names": snapshot.team_names(target),
        "old_role": live.role,
        "old_team_names": current_names,
        "line": want.line,
        "key_count": live.key_count,
        "spend": live.spend,
        "team_ids": snapshot.sorted_team_ids(target),
        "old_team_ids": snapshot.sorted_team_ids(current),
        "team_keys_destroyed": destroyed,
        "team_keys_rebound": kept,
    }
    if errors and not options.allow_update:
        skipped.append(Skipped(live.email or "", live.user_id, f"not updated: --no-update; {'; '.join(errors)}"))
        return None
    if errors:
        if want.team_names is not None:
            # the row's teams as written (the user still has its old ones: nothing is sent for a blocked row)
            base["team_names"] = want.team_names
        return PlanItem(
            kind=ItemKind.UPDATE,
            actions=tuple(actions),
            blocked="; ".join(errors),
            unresolved_teams=_unresolved(want.team_names, snapshot) if want.team_names is not None else (),
            **base,  # type: ignore[arg-type]
        )
    if not actions:
        return PlanItem(kind=ItemKind.UNCHANGED, **base)  # type: ignore[arg-type]
    if not options.allow_update:
        skipped.append(Skipped(live.email or "", live.user_id, "differs but not updated: --no-update"))
        return None
    has_team_change = target != current
    return PlanItem(
        kind=ItemKind.UPDATE,
        actions=tuple(actions),
        # only a role /user/new accepts can be recreated (else the fallback would delete a user it cannot bring back)
        # nor one holding API keys, unless asked to (the seed promises "existing API keys are not changed")
        may_recreate=has_team_change
        and options.allow_recreate
        and not protected
        and new_role in PROXY_ROLES
        and (live.key_count == 0 or options.recreate_with_keys),
        **base,  # type: ignore[arg-type]
    )


def build_plan(desired: DesiredState, snapshot: Snapshot, options: PlanOptions | None = None) -> Plan:
    """Turn the desired state and the live snapshot into a :class:`Plan`. Pure and deterministic."""
    options = options or PlanOptions()
    # the teams to create or update first; the rows are planned against the teams as they will be
    seen = snapshot  # what was read (the fingerprint's view): the planned teams do not exist yet
    teams, snapshot, team_refusals = plan_teams(desired, snapshot, options)
    items: list[PlanItem] = []
    skipped: list[Skipped] = []
    by_email = snapshot.users_by_email_key
    # the scope step: who this plan answers for (plans/scoping.py); nobody outside it is deleted, demoted or moved
    scope = ScopeView(snapshot, options, frozenset(desired.by_email_key))
    # default_user_id is never manageable; a CSV row with its email must not create a second account either
    untouchable = {u.email_key: u for u in snapshot.users if u.email_key and not u.is_manageable}

    for want in sorted(desired.users, key=lambda u: u.email_key):
        matches = by_email.get(want.email_key, ())
        if not matches and want.email_key in untouchable:
            admin = untouchable[want.email_key]
            skipped.append(Skipped(want.email, admin.user_id, CALLER_PROTECTED))
            continue
        if len(matches) > 1:
            ids = ", ".join(sorted(u.user_id for u in matches))
            items.append(
                PlanItem(
                    kind=ItemKind.UPDATE,
                    email=want.email,
                    user_id=ids,
                    role=want.role,
                    team_names=tuple(want.team_names or ()),
                    line=want.line,
                    blocked=f"conflict: {len(matches)} live users share this email ({ids}); none was touched",
                )
            )
            continue
        if not matches:
            if options.allow_add:
                items.append(_plan_new_user(want, snapshot, options))
            else:
                skipped.append(Skipped(want.email, "", "not added: --no-add"))
            continue
        live = matches[0]
        in_scope, adopt, left_alone = scope.listed_user(want.email, live)
        if not in_scope:
            assert left_alone is not None
            skipped.append(left_alone)
            continue
        item = _plan_existing_user(want, live, snapshot, options, skipped)
        if adopt is not None:  # --adopt: the tool's marker first, then whatever the row changes
            item = with_adoption(item, adopt, repair_only_item(want, live, snapshot, ()))
        if item is not None:
            items.append(item)

    deletions: list[PlanItem] = []
    managed = scope.managed
    for key in sorted({u.email_key for u in managed}):
        if key in desired.by_email_key:
            continue
        group = by_email.get(key, ())
        if len(group) > 1:
            ids = ", ".join(sorted(u.user_id for u in group))
            skipped.append(
                Skipped(group[0].email or key, ids, f"conflict: {len(group)} live users share this email; not deleted")
            )
            continue
        live = group[0]
        if not live.is_managed:
            continue
        reason = protection(live, snapshot.caller_user_id, options)
        verb = "blocked" if options.deprovision == "block" else "deleted"
        if reason:
            skipped.append(Skipped(live.email or key, live.user_id, f"not {verb}: {reason}"))
            continue
        if not options.allow_delete:
            if live.block_record is None or options.deprovision != "block":
                skipped.append(Skipped(live.email or key, live.user_id, f"not {verb}: --no-delete"))
            continue
        item = deprovision_item(live, snapshot, options, live.email or key)
        if item is not None:
            deletions.append(item)
    items.extend(deletions)

    joined = {
        t
        for i in items
        if not i.blocked
        for a in i.actions
        for t in (a.team_ids if isinstance(a, CreateUser) else (a.team_id,) if isinstance(a, AddMembership) else ())
    }
    teams = keep_used_creates(teams, joined, desired)
    team_brake = create_teams_refusal(teams, options)
    limit = delete_limit(options.max_delete, len(managed))
    wording = CSV_BRAKE if options.scope.is_default else SCOPED_BRAKE
    refusals = (
        *scope.refusals,
        *team_refusals,
        *((team_brake,) if team_brake else ()),
        *deletion_refusals(items, limit=limit, in_scope=len(managed), source_empty=not desired.users, wording=wording),
    )

    items.sort(key=lambda i: (KIND_ORDER[i.kind], i.email_key, i.user_id))
    touched = [i.user_id for i in items if i.actions and not i.blocked]
    plan = Plan(
        items=tuple(items),
        skipped=tuple(sorted(skipped, key=lambda s: (normalize_email(s.email), s.user_id))),
        refusals=refusals,
        options=options,
        team_labels={t.team_id: t.display_name for t in snapshot.teams},
        delete_limit=limit,
        out_of_scope=scope.outside,
        teams=teams,
    )
    return replace(plan, fingerprint=seen.fingerprint_of(touched, plan.fingerprint_fields()))


def repair_only_item(want: DesiredUser, live: LiveUser, snapshot: Snapshot, actions: tuple[Action, ...]) -> PlanItem:
    """An UPDATE that changes nothing of the user but repairs what an interrupted run left (``actions``:
    a key to reissue, an invitation link): role and teams as they are. Used by sync (``--no-update``) and add."""
    current = snapshot.team_ids_of(live.user_id)
    return PlanItem(
        kind=ItemKind.UPDATE,
        email=live.email or want.email,
        user_id=live.user_id,
        role=live.role,
        team_names=snapshot.team_names(current),
        actions=actions,
        old_role=live.role,
        old_team_names=snapshot.team_names(current),
        line=want.line,
        key_count=live.key_count,
        spend=live.spend,
        team_ids=tuple(sorted(current)),
        old_team_ids=tuple(sorted(current)),
    )
