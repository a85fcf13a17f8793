"""Is a saved plan still true? The stale-plan check (like ``terraform apply PLANFILE``). Pure.

A plan file (``files/planfile``) carries ``Plan.fingerprint``: ``Snapshot.fingerprint_of`` the users it
touches. Before it is applied, the live state is read again and :func:`check_plan_fresh` compares.
"""

from __future__ import annotations

from litellm_usersync.errors import RefusedError
from litellm_usersync.identity import normalize_email, normalize_team_name
from litellm_usersync.models import CreateTeam, ItemKind, Plan, PlanItem, Scope, Snapshot
from litellm_usersync.models.fields import field_label, format_value, live_value


def touched_user_ids(plan: Plan) -> list[str]:
    """The users the plan would change (items with actions, not blocked): what ``Plan.fingerprint`` covers."""
    return [i.user_id for i in plan.items if i.actions and not i.blocked]


def _describe_change(item: PlanItem, current: Snapshot) -> str | None:
    """What changed about one touched user since the plan was made, as far as the item's "before" view tells."""
    live = current.users_by_id.get(item.user_id)
    who = item.email or item.user_id
    if item.kind is ItemKind.ADD:
        if live is not None:
            return f"{who} (user id {item.user_id}) now exists"
        others = [u.user_id for u in current.users_by_email_key.get(normalize_email(item.email), ())]
        if others:
            return f"{who} now exists as user id {', '.join(sorted(others))}"
        return None
    if live is None:
        return f"{who} (user id {item.user_id}) no longer exists"
    parts: list[str] = []
    if normalize_email(item.email) != live.email_key:
        parts.append(f"email is now {live.email or '(none)'}")
    if item.old_role != live.role and item.kind is not ItemKind.DELETE:
        parts.append(f"role {item.old_role} -> {live.role}")
    elif item.kind is ItemKind.DELETE and item.role != live.role:
        parts.append(f"role {item.role} -> {live.role}")
    for c in item.field_changes:
        now = live_value(live, c.name)
        if now != c.old:
            parts.append(f"{field_label(c.name)} {format_value(c.name, c.old)} -> {format_value(c.name, now)}")
    teams_now = current.team_ids_of(item.user_id)
    if frozenset(item.old_team_ids) != teams_now:
        before = ", ".join(sorted(item.old_team_ids)) or "-"
        after = ", ".join(sorted(teams_now)) or "-"
        parts.append(f"teams {before} -> {after}")
    if parts:
        return f"{who}: {'; '.join(parts)}"
    return None


def changed_users(plan: Plan, current: Snapshot) -> list[str]:
    """One line per touched user whose live state differs from what the plan saw (may be empty)."""
    out = []
    for item in plan.items:
        if item.actions and not item.blocked:
            change = _describe_change(item, current)
            if change:
                out.append(change)
    out.extend(_changed_teams(plan, current))
    return out


def _changed_teams(plan: Plan, current: Snapshot) -> list[str]:
    """The teams the plan creates that exist now, and those it updates that changed since."""
    out = []
    for t in plan.teams:
        team = current.teams_by_id.get(t.team_id)
        if isinstance(t, CreateTeam):
            if team is not None or current.team_ids_by_name.get(normalize_team_name(t.name)):
                out.append(f"team {t.name} now exists")
        elif team is None:
            out.append(f"team {t.name} (id {t.team_id}) no longer exists")
        else:
            for c in t.changes:
                now = live_value(team, c.name)
                if now != c.old:
                    was, shown = format_value(c.name, c.old), format_value(c.name, now)
                    out.append(f"team {t.name}: {field_label(c.name)} {was} -> {shown}")
    return out


def check_plan_fresh(plan: Plan, current: Snapshot) -> None:
    """Refuse a saved plan whose users changed since it was made (like ``terraform apply PLANFILE``).

    Compares ``current.fingerprint_of(touched_user_ids(plan))`` with ``plan.fingerprint`` and, for the message,
    each touched user's state with the item's "before" view. A new user that now exists under another id with
    the plan's email also makes the plan stale. Raises :class:`RefusedError` ``"stale plan: ..."``.
    """
    changes = changed_users(plan, current)
    fresh = current.fingerprint_of(touched_user_ids(plan), plan.fingerprint_fields()) == plan.fingerprint
    if fresh and not changes:
        return
    shown = changes[:10]
    more = f" (and {len(changes) - 10} more)" if len(changes) > 10 else ""
    detail = "; ".join(shown) + more if shown else "the users it touches changed (their fingerprint differs)"
    raise RefusedError(
        f"stale plan: the proxy changed since the plan was made: {detail}. Nothing was changed; make a new plan."
    )


def check_plan_scope(plan: Plan, scope: Scope | None) -> None:
    """Refuse to apply a saved plan under another scope than the one it was made with (``scope`` None: none was
    given, the plan's own applies). A plan from before scopes (version 1) has the default scope."""
    if scope is None or scope == plan.options.scope:
        return
    raise RefusedError(
        f"the saved plan was made for the scope {plan.options.scope.describe()}, this run's scope is "
        f"{scope.describe()} (--scope or USERSYNC_SCOPE); nothing was changed. Make a new plan with this scope, "
        "or apply this one with its own"
    )
