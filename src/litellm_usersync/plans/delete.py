"""Deleting listed users (the ``delete`` command, the seed's ``del_user.py``): plan, report rows, text.

Pure. Emails are resolved against one snapshot (never one lookup per row). The result is an ordinary
:class:`Plan` of DELETE items, so the executor applies it exactly as it applies sync's deletions, and the
same mass-deletion brake refuses it when it would delete too many users.
"""

from __future__ import annotations

from dataclasses import dataclass

from litellm_usersync.models import (
    DeleteUser,
    DesiredState,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    RunReport,
    Snapshot,
)
from litellm_usersync.wording import count_users, listed, money

from .brakes import CALLER_PROTECTED, delete_limit, deletion_refusals, protection

RESULT_COLUMNS = ("email", "user_id", "status")
ERROR_COLUMNS = ("email", "user_id", "error_reason")
NOT_FOUND = "User not found in the system"
DELETED = "Deleted"


@dataclass(frozen=True)
class RowError:
    """A CSV row that will not be deleted, and why."""

    email: str
    user_id: str
    reason: str


@dataclass(frozen=True)
class DeletePlan:
    plan: Plan
    errors: tuple[RowError, ...]
    #: users the brake counts against (email, one of the four proxy roles, not default_user_id)
    managed: int
    limit: int


def build_delete_plan(desired: DesiredState, snapshot: Snapshot, *, max_delete: int | None = None) -> DeletePlan:
    """Resolve each email (trimmed, case-insensitive) to one live user and plan its deletion.

    Unknown emails, emails shared by several users, ``default_user_id`` and the identity of the
    credentials in use become :class:`RowError` rows. More deletions than ``max_delete`` (default: the
    larger of 10 and 20% of the managed users) put a refusal on the plan.
    """
    index: dict[str, list[LiveUser]] = {}
    for u in snapshot.users:
        if u.email_key:
            index.setdefault(u.email_key, []).append(u)
    items: list[PlanItem] = []
    errors: list[RowError] = []
    for want in sorted(desired.users, key=lambda u: u.email_key):
        matches = sorted(index.get(want.email_key, []), key=lambda u: u.user_id)
        if not matches:
            errors.append(RowError(want.email, "", NOT_FOUND))
            continue
        ids = ", ".join(u.user_id for u in matches)
        if len(matches) > 1:
            errors.append(
                RowError(want.email, ids, f"conflict: {len(matches)} live users share this email; none was deleted")
            )
            continue
        live = matches[0]
        # only the identity of the credentials in use: a user named in the file is to be deleted (no --protect)
        if protection(live, snapshot.caller_user_id, PlanOptions()):
            errors.append(RowError(want.email, live.user_id, f"{CALLER_PROTECTED}; never deleted"))
            continue
        team_ids = tuple(sorted(snapshot.team_ids_of(live.user_id)))
        items.append(
            PlanItem(
                kind=ItemKind.DELETE,
                email=live.email or want.email,
                user_id=live.user_id,
                role=live.role,
                team_names=snapshot.team_names(team_ids),
                actions=(DeleteUser(live.user_id, live.email or want.email, team_ids),),
                old_team_ids=team_ids,
                key_count=live.key_count,
                spend=live.spend,
                line=want.line,
            )
        )
    managed = sum(1 for u in snapshot.users if u.is_managed)
    limit = delete_limit(max_delete, managed)
    refusals = deletion_refusals(items, limit=limit, in_scope=managed)
    plan = Plan(
        items=tuple(items),
        refusals=refusals,
        fingerprint=snapshot.fingerprint_of(i.user_id for i in items),
        options=PlanOptions(allow_add=False, allow_update=False, max_delete=limit),
        team_labels={t.team_id: t.display_name for t in snapshot.teams},
    )
    return DeletePlan(plan=plan, errors=tuple(errors), managed=managed, limit=limit)


def describe_deletion(item: PlanItem) -> str:
    teams = ", ".join(item.team_names) or "-"
    return (
        f"- {item.email} (user_id: {item.user_id}, Role: {item.role}, Team: {teams})"
        f" — destroys {item.key_count} API key(s), spend {money(item.spend)}"
    )


def render_delete_counts(dp: DeletePlan) -> str:
    """The plan's counts on one line, the plan's last line (``| tail -1``)."""
    text = f"Deletion plan: {len(dp.plan.items):,} to delete, {len(dp.errors):,} cannot be deleted."
    if dp.plan.refusals:
        text += " REFUSED (see the reason on stderr); nothing was changed."
    return text


def render_delete_plan(dp: DeletePlan, *, dry_run: bool, limit: int | None = None, with_refusals: bool = True) -> str:
    """The plan as text; ``limit`` lists at most that many rows per group, ``with_refusals`` False leaves the
    ``Refused:`` lines to the caller (the CLI prints them on stderr). The counts end the plan."""
    items = dp.plan.items
    keys = sum(i.key_count for i in items)
    spend = sum(i.spend for i in items)
    lines = [
        "Deletion Plan:",
        f"  Users to delete: {len(items)} (limit {dp.limit}, {dp.managed} managed users)",
        f"  API keys destroyed with them: {keys}",
        f"  Spend recorded on them: {money(spend)}",
        f"  Rows that cannot be deleted: {len(dp.errors)}",
        "",
        "DRY RUN - Users that would be deleted:" if dry_run else "Users to be deleted:",
    ]
    lines.extend(listed([describe_deletion(i) for i in items], limit, "  "))
    if not items:
        lines.append("  (none)")
    if dp.errors:
        lines.append("")
        lines.append("  Not deleted:")
        lines.extend(
            listed([f"✗ {e.email}{f' ({e.user_id})' if e.user_id else ''}: {e.reason}" for e in dp.errors], limit, "  ")
        )
    if dp.plan.refusals and with_refusals:
        lines.append("")
        lines.extend(f"Refused: {r}" for r in dp.plan.refusals)
    lines.append("")
    lines.append(render_delete_counts(dp))
    return "\n".join(lines)


def result_rows(report: RunReport) -> list[tuple[str, str, str]]:
    """Rows of ``user_del_result.csv``: the users deleted."""
    return [(r.item.email, r.item.user_id, DELETED) for r in report.results if r.success]


def error_rows(dp: DeletePlan, report: RunReport | None) -> list[tuple[str, str, str]]:
    """Rows of ``user_del_error.csv``: rows never planned (not found, protected, ...) and failed deletions."""
    rows = [(e.email, e.user_id, e.reason) for e in dp.errors]
    if report is not None:
        rows.extend((r.item.email, r.item.user_id, r.error or "not deleted") for r in report.results if not r.success)
    return sorted(rows, key=lambda r: (r[0].casefold(), r[1]))


def render_delete_summary(dp: DeletePlan, report: RunReport) -> str:
    deleted = sum(1 for r in report.results if r.success)
    failed = len(report.results) - deleted
    lines = [
        "Summary:",
        f"  Deleted: {count_users(deleted)}",
        f"  Failed: {count_users(failed)}",
        f"  Not deleted (not found, protected, ambiguous): {len(dp.errors)} row" + ("" if len(dp.errors) == 1 else "s"),
    ]
    if report.interrupted:
        lines.append("  Interrupted: the remaining users were not deleted; run again to finish.")
    return "\n".join(lines)


def render_delete_result_counts(dp: DeletePlan, report: RunReport) -> str:
    """The run's counts on one line, the last line of a run (``| tail -1``)."""
    deleted = sum(1 for r in report.results if r.success)
    failed = len(report.results) - deleted
    text = f"Deletion result: {deleted:,} deleted, {len(dp.errors):,} not deleted, " + (
        f"{failed:,} FAILED" if failed else "0 failed"
    )
    return text + ("; interrupted." if report.interrupted else ".")
