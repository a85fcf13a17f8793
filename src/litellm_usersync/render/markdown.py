"""Plans and run results as Markdown: a pull-request comment (the plan of the CSV in the PR, the result of the
apply on merge). Pure; the counterpart of the text renderers in ``render/report``."""

from __future__ import annotations

from litellm_usersync.models import ItemKind, Plan, PlanItem, RunReport
from litellm_usersync.models.fields import describe_changes, field_label, format_value
from litellm_usersync.wording import count_of, money

from .deprovision import markdown_note
from .report import (
    LISTED_KINDS,
    TITLES,
    describe_team,
    render_plan_counts,
    render_result_counts,
    scope_line,
    teams_text,
    wanted_teams,
)

#: a Markdown plan lists at most this many users of each kind unless told otherwise (a PR comment holds 65,536
#: characters)
MARKDOWN_LISTED = 50

_MD_KIND = {
    ItemKind.ADD: "+ add",
    ItemKind.DELETE: "- delete",
    ItemKind.UPDATE: "~ update",
    ItemKind.UNCHANGED: "= unchanged",
    ItemKind.BLOCK: "⊘ block",
    ItemKind.REACTIVATE: "↺ reactivate",
}


def _md(text: object) -> str:
    """A table cell: pipes escaped, no line breaks, no HTML."""
    return (
        str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    )


def _md_row(item: PlanItem) -> str:
    """The Markdown form of one plan item (the counterpart of :func:`describe_item`)."""
    role = item.role or ""
    if item.kind is ItemKind.UPDATE and item.role is not None and item.role != item.old_role:
        role = f"{item.old_role} → {item.role}"
    teams = wanted_teams(item)
    if item.kind is ItemKind.UPDATE and (item.unresolved_teams or tuple(item.team_names) != tuple(item.old_team_names)):
        teams = f"{teams_text(item.old_team_names)} → {teams}"
    notes = describe_changes(item.field_changes)
    notes.extend(f"{field_label(n)}: {format_value(n, v)}" for n, v in item.new_fields)
    if item.kind is ItemKind.DELETE:
        notes.append(f"destroys {item.key_count} API key(s), spend {money(item.spend)}")
    if item.role_from_default:
        notes.append("role by default: none in the CSV")
    if note := markdown_note(item):
        notes.append(_md(note))
    if item.team_keys_destroyed:
        notes.append(f"destroys {item.team_keys_destroyed} team key(s)")
    if item.team_keys_rebound:
        notes.append(f"re-binds {item.team_keys_rebound} team key(s) to the new team")
    if item.may_recreate:
        lost = f" (its {item.key_count} API key(s) would be lost)" if item.key_count else ""
        notes.append(f"recreated if verification fails{lost}")
    if item.blocked:
        notes.append(f"**✗ will FAIL:** {_md(item.blocked)}")
    cells = [_MD_KIND[item.kind], f"`{item.email.replace('`', '')}`", _md(role), _md(teams)]
    return "| " + " | ".join(cells) + " | " + "; ".join(notes) + " |"


def render_plan_markdown(
    plan: Plan, *, dry_run: bool = True, title: str = "sync", limit: int | None = MARKDOWN_LISTED
) -> str:
    """The plan as a Markdown summary and table, for a pull-request comment. Refusals are a warning on top."""
    heading = f"### {TITLES.get(title, title)} plan" + (" (dry run)" if dry_run else "")
    lines = [heading, "", f"**{render_plan_counts(plan, title=title).split(': ', 1)[1].rstrip('.')}**", ""]
    if scoped := scope_line(plan):
        lines.extend([_md(scoped), ""])
    for r in plan.refusals:
        lines.extend([f"> **Refused, nothing will be changed:** {_md(r)}", ""])
    if plan.teams:
        lines.extend([f"- team {_md(describe_team(t))}" for t in plan.teams] + [""])
    changes = [i for i in plan.items if i.kind is not ItemKind.UNCHANGED]
    if changes:
        lines.append("| | user | role | teams | note |")
        lines.append("|---|---|---|---|---|")
        for kind, _title in LISTED_KINDS:
            items = plan.of_kind(kind)
            shown = items if limit is None else items[:limit]
            lines.extend(_md_row(i) for i in shown)
            if len(items) > len(shown):
                lines.append(
                    f"| {_MD_KIND[kind]} | … and {len(items) - len(shown):,} more | | | `--show-all` lists every one |"
                )
    else:
        lines.append("Nothing to change.")
    if plan.skipped:
        lines.extend(["", f"<details><summary>{count_of(len(plan.skipped), 'user')} left alone</summary>", ""])
        by_reason: dict[str, int] = {}
        for sk in plan.skipped:
            by_reason[sk.reason] = by_reason.get(sk.reason, 0) + 1
        lines.extend(f"- {count_of(n, 'user')}: {_md(reason)}" for reason, n in by_reason.items())
        lines.extend(["", "</details>"])
    return "\n".join(lines)


def render_summary_markdown(report: RunReport, *, title: str = "sync", limit: int | None = MARKDOWN_LISTED) -> str:
    """A run's result as Markdown: the counts, then a table of the rows that failed."""
    lines = [f"### {TITLES.get(title, title)} result", "", f"**{render_result_counts(report).split(': ', 1)[1]}**"]
    failed = list(report.failed)
    if failed:
        lines.extend(["", "| | user | error |", "|---|---|---|"])
        shown = failed if limit is None else failed[:limit]
        lines.extend(f"| {_MD_KIND[r.item.kind]} | `{r.item.email}` | {_md(r.error or 'failed')} |" for r in shown)
        if len(failed) > len(shown):
            lines.append(f"| | … and {len(failed) - len(shown):,} more | see the report file |")
    return "\n".join(lines)
