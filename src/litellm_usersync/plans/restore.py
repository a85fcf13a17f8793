"""The way back: a plan that turns the current live state into the one of a snapshot. Pure and deterministic.

``build_restore_plan(backup, current, options)`` compares the users of a snapshot (``backup``) with the live
state (``current``) and plans, with the same actions, brakes and protections as ``sync``:

* users deleted since are created again with the **same user_id**, email, role and teams (``ADDED`` rows);
  their API keys are gone for good: a recreated user that had keys gets one new key (``options.create_keys``);
* users whose role or teams changed get them back (``UPDATED`` rows: role change, joins, then leaves);
* users added since are deleted (``DELETED`` rows), only those ``sync`` would delete (with an email and one
  of the four proxy roles, never ``default_user_id``, never the caller, never a protected email or role),
  behind the mass-deletion brake; ``all_users=True`` (``restore --all``) widens this to users without a proxy
  role (``org_admin``, none, ...), each such deletion named by :func:`scope_notice`;
* a snapshot user whose id is gone but whose email now belongs to one new account (re-added under another id)
  is matched by email: that account gets the role and teams back and is kept (noted in ``Plan.skipped``).

Limits, each shown in the plan: teams deleted since cannot be restored (the row is blocked); users without an
email are not managed; a role outside the four proxy roles is not set; team-admin roles are not restored
(memberships come back as plain members); emails changed since are not reverted.
"""

from __future__ import annotations

from dataclasses import replace

from litellm_usersync.identity import PROXY_ROLES, normalize_email
from litellm_usersync.models import (
    INVITE_PENDING,
    KEY_PENDING,
    Action,
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    Skipped,
    Snapshot,
    UpdateUser,
)
from litellm_usersync.models.fields import (
    METADATA_PREFIX,
    USER_FIELDS,
    FieldValue,
    diff_fields,
    live_value,
)

from .brakes import RESTORE_BRAKE, delete_limit, deletion_refusals, protection
from .scoping import ScopeView
from .sync import KIND_ORDER, plan_leaves, update_refusal


def _missing_teams(team_ids: frozenset[str], backup: Snapshot, current: Snapshot) -> str | None:
    gone = sorted(t for t in team_ids if t not in current.teams_by_id)
    if not gone:
        return None
    names = ", ".join(
        f"{backup.teams_by_id[t].display_name} ({t})" if t in backup.teams_by_id and backup.teams_by_id[t].alias else t
        for t in gone
    )
    return (
        f"team(s) deleted since the snapshot cannot be restored: {names}; "
        "create the team(s) again by hand, then sync the user into them"
    )


#: metadata keys the tool itself writes: never restored from a snapshot (the markers of secrets long gone)
_OWN_METADATA = frozenset({KEY_PENDING, INVITE_PENDING, "managed_by"})


def snapshot_fields(b: LiveUser) -> tuple[tuple[str, FieldValue], ...]:
    """The managed fields of a snapshot's user: the six user fields as they were, and each metadata key it had
    (keys added since are kept: a snapshot says what was there, not what was absent)."""
    fields: list[tuple[str, FieldValue]] = [(n, live_value(b, n)) for n in USER_FIELDS]
    for key in sorted(b.metadata or {}):
        if key not in _OWN_METADATA:
            fields.append((f"{METADATA_PREFIX}{key}", live_value(b, f"{METADATA_PREFIX}{key}")))
    return tuple(fields)


def _recreate_item(b: LiveUser, backup: Snapshot, current: Snapshot, options: PlanOptions) -> PlanItem:
    target = backup.team_ids_of(b.user_id)
    blocked = _missing_teams(target, backup, current)
    role = b.role if b.role in PROXY_ROLES else None
    if role is None and not blocked:
        blocked = (
            f"the snapshot's role {b.role!r} cannot be given by this tool; recreate the user by hand"
            if b.role
            else "the snapshot has no role for this user; recreate the user by hand"
        )
    team_ids = tuple(sorted(t for t in target if t in current.teams_by_id))
    create = CreateUser(
        user_id=b.user_id,
        email=b.email or "",
        role=role or options.default_role,
        team_ids=team_ids,
        key_alias=None,
        create_key=options.create_keys and b.key_count > 0,
        fields=tuple((n, v) for n, v in snapshot_fields(b) if v not in (None, ())),
    )
    return PlanItem(
        kind=ItemKind.ADD,
        email=b.email or "",
        user_id=b.user_id,
        role=role or b.role,
        team_names=backup.team_names(target),
        actions=(create,),
        blocked=blocked,
        key_count=b.key_count,
        spend=b.spend,
        team_ids=tuple(sorted(target)),
    )


def _revert_item(
    b: LiveUser,
    live: LiveUser,
    backup: Snapshot,
    current: Snapshot,
    options: PlanOptions,
    skipped: list[Skipped],
) -> PlanItem | None:
    email = live.email or b.email or ""
    target = backup.team_ids_of(b.user_id)
    blocked = _missing_teams(target, backup, current)
    target_live = frozenset(t for t in target if t in current.teams_by_id)
    now = current.team_ids_of(live.user_id)
    protected = protection(live, current.caller_user_id, options)

    new_role = live.role
    if b.role != live.role and b.role is not None:
        if b.role not in PROXY_ROLES:
            skipped.append(Skipped(email, live.user_id, f"role not reverted: {b.role!r} is not a role this tool sets"))
        elif protected:
            skipped.append(Skipped(email, live.user_id, f"role change to {b.role} refused: {protected}"))
        else:
            new_role = b.role
    if b.email_key and live.email_key and b.email_key != live.email_key:
        skipped.append(Skipped(email, live.user_id, f"email changed since the snapshot (was {b.email}); not reverted"))

    actions: list[Action] = []
    changes = diff_fields(snapshot_fields(b), live)
    role_changes = new_role is not None and new_role != live.role
    if changes:
        actions.append(UpdateUser(live.user_id, email, live.role, new_role if role_changes else None, changes))
    elif role_changes:
        assert new_role is not None
        actions.append(ChangeRole(live.user_id, email, live.role, new_role))
    joins = [AddMembership(live.user_id, email, t) for t in sorted(target_live - now)]
    actions.extend(joins)
    # the same leaves as sync's: each says how many team keys it destroys (or --keep-team-keys re-binds them)
    leaves, destroyed, kept, error = plan_leaves(live.user_id, email, now - target_live, joins, current, options)
    actions.extend(leaves)
    if error:
        blocked = f"{blocked}; {error}" if blocked else error
    refusal = update_refusal(changes, current)
    if refusal:  # this proxy would answer success and not change it: the row fails instead
        blocked = f"{blocked}; {refusal}" if blocked else refusal

    kind = ItemKind.UPDATE if actions or blocked else ItemKind.UNCHANGED
    if kind is ItemKind.UPDATE and not blocked and not options.allow_update:
        skipped.append(Skipped(email, live.user_id, "differs from the snapshot but not reverted (--no-update)"))
        return None
    return PlanItem(
        kind=kind,
        email=email,
        user_id=live.user_id,
        role=new_role,
        team_names=backup.team_names(target),
        actions=tuple(actions),
        old_role=live.role,
        old_team_names=current.team_names(now),
        blocked=blocked,
        key_count=live.key_count,
        spend=live.spend,
        may_recreate=bool(target_live != now) and options.allow_recreate and not protected and new_role in PROXY_ROLES,
        team_ids=tuple(sorted(target_live)),
        old_team_ids=tuple(sorted(now)),
        team_keys_destroyed=destroyed,
        team_keys_rebound=kept,
    )


def _delete_item(live: LiveUser, current: Snapshot) -> PlanItem:
    teams = tuple(sorted(current.team_ids_of(live.user_id)))
    email = live.email or ""
    return PlanItem(
        kind=ItemKind.DELETE,
        email=email,
        user_id=live.user_id,
        role=live.role,
        team_names=current.team_names(teams),
        actions=(DeleteUser(live.user_id, email, teams),),
        old_role=live.role,
        old_team_names=current.team_names(teams),
        old_team_ids=teams,
        key_count=live.key_count,
        spend=live.spend,
    )


def scope_notice(plan: Plan) -> str | None:
    """What ``restore --all`` adds beyond sync's scope: the deletions of users without a proxy role (None if none)."""
    wide = [i for i in plan.of_kind(ItemKind.DELETE) if i.role not in PROXY_ROLES]
    if not wide:
        return None
    who = ", ".join(f"{i.email} ({i.role or 'no role'})" for i in wide)
    return (
        f"--all: {len(wide)} of the deletions are users sync never deletes "
        f"(no proxy role, or a role outside the four): {who}"
    )


def build_restore_plan(
    backup: Snapshot, current: Snapshot, options: PlanOptions | None = None, *, all_users: bool = False
) -> Plan:
    """Plan the way from ``current`` back to ``backup`` (see the module docstring). Pure and deterministic.

    ``options`` work as for ``sync``: ``allow_add`` (recreate deleted users), ``allow_update`` (revert roles
    and teams), ``allow_delete`` (remove users added since), ``max_delete`` (the brake; default: the larger of
    10 and 20% of the live users in scope), ``protected_emails``/``protected_roles``, ``create_keys`` (a new
    key for recreated users that had keys), ``allow_recreate`` (the executor's fallback after a failed team
    move). Brakes end up in ``Plan.refusals``; ``Plan.fingerprint`` covers every touched user of ``current``.

    Users added since are deleted only within sync's scope (``LiveUser.is_managed``: a proxy role); the others
    are left alone and listed in ``Plan.skipped``, unless ``all_users`` (every user with an email).
    """
    options = options or PlanOptions()
    items: list[PlanItem] = []
    skipped: list[Skipped] = []
    claimed: set[str] = set()  # current user ids that answer for a snapshot user
    # the scope step (plans/scoping.py): a user outside options.scope is not recreated, reverted or deleted
    scope = ScopeView(current, options, frozenset(u.email_key for u in backup.users if u.email_key))
    outside = f"outside the scope ({options.scope.describe()})"

    for b in sorted(backup.users, key=lambda u: (u.email_key, u.user_id)):
        live = current.users_by_id.get(b.user_id)
        if not b.is_manageable:
            if live is None and b.user_id != backup.caller_user_id:
                why = "default_user_id is never managed" if b.email_key else "users without an email are not managed"
                skipped.append(Skipped(b.email or "", b.user_id, f"not recreated: {why}"))
            continue
        if live is None:
            candidates = [
                u
                for u in current.users_by_email_key.get(b.email_key, ())
                if u.user_id not in backup.users_by_id and u.user_id not in claimed
            ]
            if len(candidates) > 1:
                ids = ", ".join(sorted(u.user_id for u in candidates))
                claimed.update(u.user_id for u in candidates)
                items.append(
                    PlanItem(
                        kind=ItemKind.ADD,
                        email=b.email or "",
                        user_id=b.user_id,
                        role=b.role,
                        team_names=backup.team_names_of(b.user_id),
                        blocked=f"conflict: {len(candidates)} live users now share this email ({ids}); none touched",
                    )
                )
                continue
            if candidates:
                live = candidates[0]
                claimed.add(live.user_id)
                skipped.append(
                    Skipped(
                        live.email or "",
                        live.user_id,
                        f"user id changed since the snapshot (was {b.user_id}): "
                        "its role and teams are restored on the current account, which is kept",
                    )
                )
            elif not options.allow_add:
                skipped.append(
                    Skipped(b.email or "", b.user_id, "deleted since the snapshot; not recreated (--no-add)")
                )
                continue
            elif not options.scope.contains(b, backup):  # as it was in the snapshot: it has no live state
                skipped.append(
                    Skipped(b.email or "", b.user_id, f"deleted since the snapshot; not recreated: {outside}")
                )
                continue
            else:
                recreate = _recreate_item(b, backup, current, options)
                others = sorted(u.user_id for u in current.users_by_email_key.get(b.email_key, ()))
                if others and not recreate.blocked:
                    blocked = f"another live user has this email now ({', '.join(others)}); not recreated"
                    recreate = replace(recreate, blocked=blocked)
                items.append(recreate)
                continue
        claimed.add(live.user_id)
        if not scope.contains(live):
            skipped.append(Skipped(live.email or "", live.user_id, f"not reverted: {outside}"))
            continue
        item = _revert_item(b, live, backup, current, options, skipped)
        if item is not None:
            items.append(item)

    deletions: list[PlanItem] = []
    manageable = [u for u in current.users if u.is_manageable and scope.contains(u)]
    in_scope = manageable if all_users else [u for u in manageable if u.is_managed]
    for live in manageable:
        if live.user_id in backup.users_by_id or live.user_id in claimed:
            continue
        if not all_users and not live.is_managed:
            role = repr(live.role) if live.role else "no role"
            skipped.append(
                Skipped(
                    live.email or "",
                    live.user_id,
                    f"added since the snapshot; not deleted: {role} is outside sync's scope (restore --all deletes it)",
                )
            )
            continue
        reason = protection(live, current.caller_user_id, options)
        if reason:
            skipped.append(Skipped(live.email or "", live.user_id, f"added since the snapshot; not deleted: {reason}"))
        elif not options.allow_delete:
            skipped.append(
                Skipped(live.email or "", live.user_id, "added since the snapshot; not deleted (--no-delete)")
            )
        else:
            deletions.append(_delete_item(live, current))
    items.extend(deletions)

    limit = delete_limit(options.max_delete, len(in_scope))
    refusals = (
        *scope.refusals,
        *deletion_refusals(
            items,
            limit=limit,
            in_scope=len(in_scope),
            source_empty=not any(u.is_manageable for u in backup.users),
            wording=RESTORE_BRAKE,
        ),
    )

    items.sort(key=lambda i: (KIND_ORDER[i.kind], i.email_key, i.user_id))
    touched = [i.user_id for i in items if i.actions and not i.blocked]
    plan = Plan(
        items=tuple(items),
        skipped=tuple(sorted(skipped, key=lambda s: (normalize_email(s.email), s.user_id, s.reason))),
        refusals=refusals,
        options=options,
        team_labels={
            **{t.team_id: t.display_name for t in backup.teams},
            **{t.team_id: t.display_name for t in current.teams},
        },
        delete_limit=limit,
        out_of_scope=scope.outside,
    )
    return replace(plan, fingerprint=current.fingerprint_of(touched, plan.fingerprint_fields()))
