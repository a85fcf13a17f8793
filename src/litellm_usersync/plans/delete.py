"""Deleting listed users (the ``delete`` command, the seed's ``del_user.py``): plan, report rows, text.

Pure. Emails are resolved against one snapshot (never one lookup per row). The result is an ordinary
:class:`Plan` of DELETE items, so the executor applies it exactly as it applies sync's deletions, and the
same mass-deletion brake refuses it when it would delete too many users.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
from .deprovision import block_item, describe_block

RESULT_COLUMNS = ("email", "user_id", "status")
ERROR_COLUMNS = ("email", "user_id", "error_reason")
NOT_FOUND = "User not found in the system"
DELETED = "Deleted"
BLOCKED = "Blocked"


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
    #: ``delete --block``: the listed users are blocked (``plans.deprovision``), not deleted
    block: bool = False

    @property
    def verb(self) -> str:
        return "block" if self.block else "delete"

    @property
    def done(self) -> str:
        return "blocked" if self.block else "deleted"


def build_delete_plan(
    desired: DesiredState,
    snapshot: Snapshot,
    *,
    max_delete: int | None = None,
    block: bool = False,
    now: str | None = None,
) -> DeletePlan:
    """Resolve each email (trimmed, case-insensitive) to one live user and plan its deletion (``block``: its
    block, stamped ``now``; a user the tool blocked already is a row error, not a second block).

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
    verb = "block" if block else "delete"
    done = "blocked" if block else "deleted"
    options = PlanOptions(allow_add=False, allow_update=False, max_delete=max_delete, deprovision=verb, now=now)
    for want in sorted(desired.users, key=lambda u: u.email_key):
        matches = sorted(index.get(want.email_key, []), key=lambda u: u.user_id)
        if not matches:
            errors.append(RowError(want.email, "", NOT_FOUND))
            continue
        ids = ", ".join(u.user_id for u in matches)
        if len(matches) > 1:
            errors.append(
                RowError(want.email, ids, f"conflict: {len(matches)} live users share this email; none was {done}")
            )
            continue
        live = matches[0]
        # only the identity of the credentials in use: a user named in the file is to be deleted (no --protect)
        if protection(live, snapshot.caller_user_id, PlanOptions()):
            errors.append(RowError(want.email, live.user_id, f"{CALLER_PROTECTED}; never {done}"))
            continue
        if block:
            record = live.block_record
            if record is not None and record.state == "blocked":
                errors.append(RowError(want.email, live.user_id, f"already blocked (since {record.at})"))
                continue
            items.append(replace(block_item(live, snapshot, options, live.email or want.email), line=want.line))
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
        options=replace(options, max_delete=limit),
        team_labels={t.team_id: t.display_name for t in snapshot.teams},
    )
    return DeletePlan(plan=plan, errors=tuple(errors), managed=managed, limit=limit, block=block)


def describe_deletion(item: PlanItem) -> str:
    if item.kind is ItemKind.BLOCK:
        return describe_block(item)
    teams = ", ".join(item.team_names) or "-"
    return (
        f"- {item.email} (user_id: {item.user_id}, Role: {item.role}, Team: {teams})"
        f" — destroys {item.key_count} API key(s), spend {money(item.spend)}"
    )


def render_delete_counts(dp: DeletePlan) -> str:
    """The plan's counts on one line, the plan's last line (``| tail -1``)."""
    if dp.block:
        text = f"Block plan: {len(dp.plan.items):,} to block, {len(dp.errors):,} cannot be blocked."
    else:
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
    if dp.block:
        lines = [
            "Block Plan:",
            f"  Users to block: {len(items)} (limit {dp.limit}, {dp.managed} managed users)",
            f"  API keys blocked with them: {keys} (kept: a reactivation unblocks them)",
            f"  Spend recorded on them (kept): {money(spend)}",
            f"  Rows that cannot be blocked: {len(dp.errors)}",
            "",
            "DRY RUN - Users that would be blocked:" if dry_run else "Users to be blocked:",
        ]
    else:
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
        lines.append(f"  Not {dp.done}:")
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
    """Rows of ``user_del_result.csv``: the users deleted (``Blocked`` for a block)."""
    return [
        (r.item.email, r.item.user_id, BLOCKED if r.item.kind is ItemKind.BLOCK else DELETED)
        for r in report.results
        if r.success
    ]


def error_rows(dp: DeletePlan, report: RunReport | None) -> list[tuple[str, str, str]]:
    """Rows of ``user_del_error.csv``: rows never planned (not found, protected, ...) and failed deletions."""
    rows = [(e.email, e.user_id, e.reason) for e in dp.errors]
    if report is not None:
        rows.extend(
            (r.item.email, r.item.user_id, r.error or f"not {dp.done}") for r in report.results if not r.success
        )
    return sorted(rows, key=lambda r: (r[0].casefold(), r[1]))


def render_delete_summary(dp: DeletePlan, report: RunReport) -> str:
    deleted = sum(1 for r in report.results if r.success)
    failed = len(report.results) - deleted
    v = dp.done
    lines = [
        "Summary:",
        f"  {v.capitalize()}: {count_users(deleted)}",
        f"  Failed: {count_users(failed)}",
        f"  Not {v} (not found, protected, ambiguous): {len(dp.errors)} row" + ("" if len(dp.errors) == 1 else "s"),
    ]
    if report.interrupted:
        lines.append(f"  Interrupted: the remaining users were not {v}; run again to finish.")
    return "\n".join(lines)


def render_delete_result_counts(dp: DeletePlan, report: RunReport) -> str:
    """The run's counts on one line, the last line of a run (``| tail -1``)."""
    deleted = sum(1 for r in report.results if r.success)
    failed = len(report.results) - deleted
    v = dp.done
    head = "Block" if dp.block else "Deletion"
    text = f"{head} result: {deleted:,} {v}, {len(dp.errors):,} not {v}, " + (
        f"{failed:,} FAILED" if failed else "0 failed"
    )
    return text + ("; interrupted." if report.interrupted else ".")
