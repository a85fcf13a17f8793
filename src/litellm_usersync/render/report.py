"""Renderers: plans and run reports as text, CSV rows and JSON-ready dicts. Pure; nothing is written here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from litellm_usersync.identity import join_team_names
from litellm_usersync.masking import mask_secret
from litellm_usersync.models import (
    AdoptUser,
    CreateTeam,
    ItemKind,
    Plan,
    PlanItem,
    RebindKeys,
    ReissueKey,
    RemoveMembership,
    RunReport,
    TeamAction,
)
from litellm_usersync.models.fields import (
    describe_changes,
    field_label,
    format_value,
)
from litellm_usersync.wording import count_of, listed, money

from . import deprovision as _dep

SYNC_REPORT_COLUMNS = ("action", "email", "user_id", "role", "team_name", "api_keys", "status", "error_reason")
#: more users left alone for one reason than this are summed up in one line of the plan
SKIPPED_LISTED = 10
#: on a terminal a plan lists at most this many users of each kind (``--show-all``: every one)
TTY_LISTED = 20


def teams_text(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "-"


def wanted_teams(item: PlanItem) -> str:
    """The teams an item asks for; a team that does not resolve is marked ``✗ name (why)``."""
    bad = dict(item.unresolved_teams)
    if not bad:
        return teams_text(item.team_names)
    good = [n for n in item.team_names if n not in bad]
    return ", ".join([*good, *(f"✗ {name} ({why})" for name, why in item.unresolved_teams)])


REISSUE_TEXT = "API key lost by an interrupted run: revoke it, issue a new one"


def reissues(item: PlanItem) -> bool:
    """True when the item repairs a key an interrupted run left unrecorded."""
    return any(isinstance(a, ReissueKey) for a in item.actions)


def count_reissues(plan: Plan) -> int:
    return sum(1 for i in plan.items if reissues(i) and not i.blocked)


ADOPT_TEXT = "adopt: mark as managed by litellm-usersync"


def adopts(item: PlanItem) -> bool:
    """True when the item marks an existing user as managed (``--adopt``)."""
    return any(isinstance(a, AdoptUser) for a in item.actions)


def scope_line(plan: Plan) -> str | None:
    """``Scope: managed (1,204 users outside the scope, left alone)``; None for the default scope."""
    scope = plan.options.scope
    if scope.is_default:
        return None
    return f"Scope: {scope.describe()} ({count_of(plan.out_of_scope, 'user')} outside the scope, left alone)"


def _fields_text(item: PlanItem) -> str:
    """``, Budget: 10, Models: gpt-4o``: the managed fields a new user gets."""
    return "".join(f", {field_label(n)}: {format_value(n, v)}" for n, v in item.new_fields)


def describe_item(item: PlanItem, label: Callable[[str], str] = str) -> str:
    """One line of the dry-run listing, in the seed's format. The one place a plan item becomes text.

    ``label`` names a team id (``Plan.team_label``)."""
    if item.kind is ItemKind.ADD:
        default = " (default: no role in the CSV)" if item.role_from_default else ""
        text = f"+ {item.email} (Role: {item.role}{default}, Team: {wanted_teams(item)}{_fields_text(item)})"
    elif item.kind is ItemKind.DELETE:
        text = f"- {item.email} (Role: {item.role}, Team: {teams_text(item.team_names)})"
        text += f" — destroys {item.key_count} API key(s), spend {money(item.spend)}"
    elif item.kind is ItemKind.UPDATE:
        parts = []
        if item.role is not None and item.role != item.old_role:
            parts.append(f"Role: {item.old_role} → {item.role}")
        if item.unresolved_teams or tuple(item.team_names) != tuple(item.old_team_names):
            parts.append(f"Teams: {teams_text(item.old_team_names)} → {wanted_teams(item)}")
        parts.extend(describe_changes(item.field_changes))
        if reissues(item):
            parts.append(REISSUE_TEXT)
        if adopts(item):
            parts.insert(0, ADOPT_TEXT)
        text = f"~ {item.email} ({', '.join(parts) or 'no change'})"
        if item.team_keys_destroyed:
            text += f" — destroys {item.team_keys_destroyed} team key(s)"
        if item.team_keys_rebound:
            to = sorted({label(a.to_team) for a in item.actions if isinstance(a, RebindKeys)})
            text += f" — re-binds {item.team_keys_rebound} team key(s) to {teams_text(to)}"
        if item.may_recreate:
            lost = f": its {item.key_count} API key(s) would be lost" if item.key_count else ""
            text += f" [recreated if verification fails{lost}]"
    elif item.kind is ItemKind.BLOCK:
        text = _dep.describe_block(item)
    elif item.kind is ItemKind.REACTIVATE:
        text = _dep.describe_reactivation(item)
    else:
        text = f"= {item.email} (Role: {item.role}, Team: {teams_text(item.team_names)})"
    if item.blocked:
        text += f"  ✗ will FAIL: {item.blocked}"
    return text


def explain_item(item: PlanItem) -> str:
    """Why a user is in the plan (``--debug``'s difference detection): what the CSV says against the proxy."""
    where = f"CSV line {item.line}" if item.line else "the source"
    if item.kind is ItemKind.ADD:
        why = f"{item.email}: in {where}, no user with this email in the proxy → create"
    elif item.kind is ItemKind.DELETE:
        why = f"{item.email} (user_id {item.user_id}, role {item.role}): in the proxy, not in the source → delete"
    elif item.kind in (ItemKind.BLOCK, ItemKind.REACTIVATE):
        why = _dep.explain(item, where)
    else:
        diffs = []
        if item.role is not None and item.role != item.old_role:
            diffs.append(f"role {item.old_role} in the proxy, {item.role} in {where}")
        if item.unresolved_teams or tuple(item.team_names) != tuple(item.old_team_names):
            diffs.append(f"teams [{', '.join(item.old_team_names)}] in the proxy, [{wanted_teams(item)}] in {where}")
        diffs.extend(
            f"{field_label(c.name)} {format_value(c.name, c.old)} in the proxy, {format_value(c.name, c.new)} "
            f"in {where}"
            for c in item.field_changes
        )
        if item.kind is ItemKind.UNCHANGED:
            why = f"{item.email}: role and teams match {where} → nothing to do"
        else:
            why = f"{item.email}: {'; '.join(diffs) or 'differs'} → " + (", ".join(a.key for a in item.actions) or "-")
    if item.blocked:
        why += f" (cannot be applied: {item.blocked})"
    return why


def explain_plan(plan: Plan) -> list[str]:
    """One line per user of the plan and per user left alone, saying why (for ``--debug``)."""
    lines = [f"plan: {explain_item(i)}" for i in plan.items]
    lines.extend(f"plan: {s.email or s.user_id}: left alone ({s.reason})" for s in plan.skipped)
    lines.extend(f"plan: team {describe_team(t)}" for t in plan.teams)
    lines.extend(f"plan: refused: {r}" for r in plan.refusals)
    return lines


def describe_team(t: TeamAction) -> str:
    """``+ Eng (Budget: 10)`` / ``~ Ops (Budget: 5 → 10)``: one team of the plan."""
    if isinstance(t, CreateTeam):
        settings = ", ".join(f"{field_label(n)}: {format_value(n, v)}" for n, v in t.fields)
        return f"+ {t.name}" + (f" ({settings})" if settings else "")
    return f"~ {t.name} ({', '.join(describe_changes(t.changes))})"


#: title of each kind of plan: what the summary and the listing are headed with
TITLES = {"sync": "Synchronization", "restore": "Restore"}


def render_plan_summary(plan: Plan, *, title: str = "sync") -> str:
    c = plan.counts
    lines = [
        f"{TITLES.get(title, title)} Plan:",
        f"  Users to add: {c[ItemKind.ADD]:,}",
        f"  Users to delete: {c[ItemKind.DELETE]:,}",
        f"  Users to update: {c[ItemKind.UPDATE]:,}",
        f"  Users unchanged: {c[ItemKind.UNCHANGED]:,}",
    ]
    if c[ItemKind.BLOCK] or plan.options.deprovision == "block":
        lines.insert(3, f"  Users to block: {c[ItemKind.BLOCK]:,}")
    if c[ItemKind.REACTIVATE]:
        lines.insert(-1, f"  Users to reactivate: {c[ItemKind.REACTIVATE]:,}")
    if plan.team_creates:
        lines.append(f"  Teams to create: {len(plan.team_creates):,}")
    if plan.team_updates:
        lines.append(f"  Teams to update: {len(plan.team_updates):,}")
    if plan.skipped:
        lines.append(f"  Users left alone: {len(plan.skipped):,}")
    if n := count_reissues(plan):
        lines.append(f"  API keys to reissue (lost by an interrupted run): {n:,}")
    if plan.adoptions:
        lines.append(f"  Users to adopt (marked as managed, --adopt): {plan.adoptions:,}")
    if scoped := scope_line(plan):
        lines.append(f"  {scoped}")
    if plan.team_keys_destroyed:
        lines.append(f"  Team keys destroyed by team moves: {plan.team_keys_destroyed:,}")
    rebound = sum(i.team_keys_rebound for i in plan.items if not i.blocked)
    if rebound:
        lines.append(f"  Team keys re-bound to the new team (--keep-team-keys): {rebound:,}")
    blocked = sum(1 for i in plan.items if i.blocked)
    if blocked:
        lines.append(f"  Rows that cannot be applied: {blocked:,}")
    return "\n".join(lines)


def render_plan_counts(plan: Plan, *, title: str = "sync") -> str:
    """The plan's counts on one line: the last line of every plan, so ``| tail -1`` shows them."""
    c = plan.counts
    parts = [
        f"{c[ItemKind.ADD]:,} to add",
        f"{c[ItemKind.DELETE]:,} to delete",
        f"{c[ItemKind.UPDATE]:,} to update",
        f"{c[ItemKind.UNCHANGED]:,} unchanged",
    ]
    if c[ItemKind.BLOCK]:
        parts.insert(2, f"{c[ItemKind.BLOCK]:,} to block")
    if c[ItemKind.REACTIVATE]:
        parts.insert(-1, f"{c[ItemKind.REACTIVATE]:,} to reactivate")
    if plan.skipped:
        parts.append(f"{len(plan.skipped):,} left alone")
    if plan.out_of_scope:
        parts.append(f"{plan.out_of_scope:,} outside the scope")
    if plan.team_creates:
        parts.append(f"{count_of(len(plan.team_creates), 'team')} to create")
    if plan.team_updates:
        parts.append(f"{count_of(len(plan.team_updates), 'team')} to update")
    blocked = sum(1 for i in plan.items if i.blocked)
    if blocked:
        parts.append(f"{blocked:,} cannot be applied")
    text = f"{TITLES.get(title, title)} plan: {', '.join(parts)}."
    if plan.refusals:
        text += " REFUSED (see the reason on stderr); nothing was changed."
    return text


def render_plan_changes(
    plan: Plan, *, header: str = "DRY RUN - Changes that would be made:", limit: int | None = None
) -> str:
    """The plan's items grouped by kind. ``limit``: list at most this many of each kind (None: all)."""
    lines = [header]
    if plan.team_creates:
        lines.append("")
        lines.append(f"  Teams to CREATE: {', '.join(t.name for t in plan.team_creates)}")
        lines.extend(f"    {describe_team(t)}" for t in plan.team_creates if t.fields)
    if plan.team_updates:
        lines.append("")
        lines.append("  Teams to UPDATE:")
        lines.extend(f"    {describe_team(t)}" for t in plan.team_updates)
    for kind, title in LISTED_KINDS:
        items = plan.of_kind(kind)
        if items:
            lines.append("")
            lines.append(f"  Users to {title}:")
            lines.extend(listed([describe_item(i, plan.team_label) for i in items], limit, "    "))
    if plan.skipped or plan.out_of_scope:
        lines.append("")
        lines.append("  Users left alone:")
    if plan.out_of_scope:  # one line, never one per user: a proxy with several sources may have thousands
        outside = count_of(plan.out_of_scope, "user")
        lines.append(f"    ! {outside} outside the scope ({plan.options.scope.describe()}), left alone")
    if plan.skipped:
        by_reason: dict[str, list[str]] = {}
        for sk in plan.skipped:
            by_reason.setdefault(sk.reason, []).append(sk.email or sk.user_id)
        for reason, who in by_reason.items():
            if len(who) > SKIPPED_LISTED:  # --no-delete on a big proxy: one line, not hundreds
                shown = ", ".join(who[:3])
                lines.append(f"    ! {count_of(len(who), 'user')} ({reason}; e.g. {shown}, …)")
            else:
                lines.extend(f"    ! {w} ({reason})" for w in who)
    if len(lines) == 1:
        lines.append("")
        lines.append("  Nothing to change.")
    return "\n".join(lines)


#: the kinds a plan lists, in order, with their heading (``Users to BLOCK:``)
LISTED_KINDS = (
    (ItemKind.ADD, "ADD"),
    (ItemKind.DELETE, "DELETE"),
    (ItemKind.BLOCK, "BLOCK"),
    (ItemKind.UPDATE, "UPDATE"),
    (ItemKind.REACTIVATE, "REACTIVATE"),
)


def render_refusals(plan: Plan) -> str:
    return "\n".join(f"Refused: {r}" for r in plan.refusals)


def plan_header(*, dry_run: bool, refused: bool, title: str = "sync") -> str:
    restore = title == "restore"
    if dry_run:
        return "DRY RUN - Changes the restore would make:" if restore else "DRY RUN - Changes that would be made:"
    if refused:
        return "Changes that were refused (nothing was changed):"
    return "Changes the restore will make:" if restore else "Changes to be made:"


def render_plan(
    plan: Plan,
    *,
    dry_run: bool = True,
    limit: int | None = None,
    title: str = "sync",
    with_refusals: bool = True,
) -> str:
    """The whole plan as text: summary, the items grouped by kind, the counts again on the last line.

    ``limit`` lists at most that many items of each kind (a terminal; None lists all, as for a pipe).
    ``with_refusals`` False leaves the ``Refused:`` lines out (the CLI prints them on stderr).
    """
    header = plan_header(dry_run=dry_run, refused=bool(plan.refusals), title=title)
    text = render_plan_summary(plan, title=title) + "\n\n" + render_plan_changes(plan, header=header, limit=limit)
    if plan.refusals and with_refusals:
        text += "\n\n" + render_refusals(plan)
    return text + "\n\n" + render_plan_counts(plan, title=title)


# --------------------------------------------------------------------------------------------------
# Results


def result_rows(report: RunReport, *, show_keys: bool) -> Iterator[tuple[str, ...]]:
    """Rows of ``user_sync_result.csv``. ``show_keys`` False masks API keys (for the screen)."""
    for r in report.results:
        item = r.item
        key = r.api_key or ""
        if key and not show_keys:
            key = mask_secret(key)
        reason = r.error or ""
        if r.success and r.note:
            reason = r.note
        elif r.note:
            reason = f"{reason}; {r.note}"
        teams = item.team_names
        role = item.role
        if item.blocked and item.kind is ItemKind.UPDATE:  # nothing was sent: the row keeps what the user has
            teams, role = item.old_team_names, item.old_role
        yield (
            item.kind.value,
            item.email,
            item.user_id,
            role or "",
            join_team_names(teams),
            key,
            "SUCCESS" if r.success else "FAILED",
            reason,
        )


def render_summary(report: RunReport, *, limit: int | None = None) -> str:
    """The result of a run; ``limit`` lists at most that many failed rows (the report file has them all)."""
    not_started = [r for r in report.failed if r.not_attempted]
    counts: dict[tuple[str, str], int] = {}
    for r in report.results:
        # a row an interruption left unstarted did not fail: it is counted as not started (run again to finish)
        k = (r.item.kind.value, "ok" if r.success else "not started" if r in not_started else "FAILED")
        counts[k] = counts.get(k, 0) + 1
    lines = ["Synchronization Result:"]
    for kind in ItemKind:
        if kind in (ItemKind.BLOCK, ItemKind.REACTIVATE) and not any(k[0] == kind.value for k in counts):
            continue  # only runs that block or reactivate show these lines
        line = f"  {kind.value:<9} {counts.get((kind.value, 'ok'), 0):,} succeeded"
        for what in ("FAILED", "not started"):
            n = counts.get((kind.value, what), 0)
            line += f", {n:,} {what}" if n else ""
        lines.append(line)
    destroyed = sum(o.action.destroys_keys for o in report.outcomes if isinstance(o.action, RemoveMembership) and o.ok)
    adopted = sum(1 for o in report.outcomes if isinstance(o.action, AdoptUser) and o.ok)
    if adopted:
        lines.append(f"  Adopted (marked as managed): {adopted:,}")
    if report.scope:
        lines.append(f"  Scope: {', '.join(report.scope)}")
    if destroyed:
        lines.append(f"  Team keys destroyed by team moves: {destroyed:,}")
    recreated = [r for r in report.results if r.recreated]
    if recreated:
        lines.append(f"  Recreated by the fallback: {len(recreated)} (each row names what could not be carried over)")
    if report.keys_unknown:
        lines.append(
            f"  Users with no known API key: {len(report.keys_unknown)} (run again: the next run issues new keys)"
        )
    if report.aborted:
        lines.append(f"  Aborted: {report.aborted}; {len(not_started)} row(s) not started.")
    elif report.interrupted and not_started:
        lines.append(f"  Interrupted: {len(not_started):,} row(s) not started; run again to finish.")
    elif report.interrupted:
        lines.append("  Interrupted after every change had been sent; run again to check.")
    failed = [r for r in report.failed if r not in not_started]
    if failed:
        lines.append("")
        lines.append("Failed:")
        lines.extend(listed([f"✗ {r.item.kind.value} {r.item.email}: {r.error}" for r in failed], limit, "  "))
    if not_started:
        lines.append("")
        lines.append(
            f"Not started ({len(not_started):,}; see the report): "
            + ", ".join(r.item.email for r in not_started[:5])
            + (", …" if len(not_started) > 5 else "")
        )
    return "\n".join(lines)


def render_result_counts(report: RunReport, *, title: str = "sync") -> str:
    """The run's counts on one line: the last line of every run, so ``| tail -1`` shows them."""
    done: dict[ItemKind, int] = {}
    not_started = sum(1 for r in report.failed if r.not_attempted)
    for r in report.results:
        if r.success:
            done[r.item.kind] = done.get(r.item.kind, 0) + 1
    text = (
        f"{TITLES.get(title, title)} result: {done.get(ItemKind.ADD, 0):,} added, "
        f"{done.get(ItemKind.DELETE, 0):,} deleted, {done.get(ItemKind.UPDATE, 0):,} updated, "
        f"{done.get(ItemKind.UNCHANGED, 0):,} unchanged, "
        + "".join(
            f"{done.get(k, 0):,} {k.value.lower()}, "
            for k in (ItemKind.BLOCK, ItemKind.REACTIVATE)
            if any(r.item.kind is k for r in report.results)
        )
        + (f"{len(report.failed) - not_started:,} FAILED" if len(report.failed) > not_started else "0 failed")
        + (f", {not_started:,} not started" if not_started else "")
    )
    if report.aborted:
        text += "; aborted"
    elif report.interrupted:
        text += "; interrupted"
    return text + "."
