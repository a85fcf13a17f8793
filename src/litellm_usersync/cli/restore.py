"""``litellm-usersync restore SNAPSHOT``: plan and apply the way back to a snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from litellm_usersync.identity import PROXY_ROLES, normalize_email
from litellm_usersync.models import ItemKind, Plan, PlanOptions
from litellm_usersync.render.documents import plan_to_dict, report_to_dict
from litellm_usersync.render.markdown import MARKDOWN_LISTED, render_plan_markdown, render_summary_markdown
from litellm_usersync.render.report import render_plan, render_plan_summary, render_result_counts, render_summary
from litellm_usersync.usecases import (
    DEFAULT_RESTORE_REPORT,
    RestoreOptions,
    SafetyOptions,
    kept_notice,
    read_restore_target,
    restore,
    scope_notice,
)

from ._common import (
    CliExit,
    ExitCode,
    build_settings,
    common_options,
    err,
    exit_for_report,
    handle_errors,
    make_hooks,
    out,
    out_marked,
    output_option,
    plan_limit,
    setup_logging,
    show_all_option,
)
from ._safety import audit_log_option, backup_dir_option
from ._scope import given_scope, scope_option


def keys_notice(plan: Plan, report_path: str) -> str | None:
    """The plain statement that deleted users' API keys are gone (None when nobody is recreated)."""
    adds = [i for i in plan.of_kind(ItemKind.ADD) if not i.blocked]
    if not adds:
        return None
    lost = sum(i.key_count for i in adds)
    with_keys = sum(1 for i in adds if i.key_count)
    text = (
        f"API keys of deleted users cannot be restored: the {len(adds)} user(s) to recreate had {lost} API key(s), "
        "destroyed when they were deleted."
    )
    if with_keys and plan.options.create_keys:
        text += f" The {with_keys} that had keys get one new key each, written to {report_path} (mode 0600)."
    return text


@click.command("restore")
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show the restore plan; change nothing.")
@click.option("--no-delete", is_flag=True, help="Do not delete users added since the snapshot.")
@click.option(
    "--all",
    "all_users",
    is_flag=True,
    help="Also delete users added since that sync never deletes (no proxy role, org_admin, ...).",
)
@click.option(
    "--max-delete",
    type=click.IntRange(0),
    default=None,
    help="Refuse to run if more users would be deleted [default: the larger of 10 and 20% of the users].",
)
@click.option(
    "--keep-team-keys",
    is_flag=True,
    help="A team move deletes the user's keys bound to the old team: re-bind them to the new team "
    "instead (a move from one team to one other; other moves of such users are refused).",
)
@click.option("--protect", multiple=True, metavar="EMAIL", help="Never delete or demote this user (repeatable).")
@click.option(
    "--protect-role", multiple=True, type=click.Choice(PROXY_ROLES), help="Never delete users with this role."
)
@click.option(
    "--report",
    "report_path",
    default=DEFAULT_RESTORE_REPORT,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the report (mode 0600: it holds recreated users' new API keys).",
)
@scope_option
@backup_dir_option
@audit_log_option
@output_option
@show_all_option
@common_options
def restore_command(
    snapshot_file: str,
    dry_run: bool,
    no_delete: bool,
    all_users: bool,
    max_delete: int | None,
    keep_team_keys: bool,
    protect: tuple[str, ...],
    protect_role: tuple[str, ...],
    report_path: str,
    scope_values: tuple[str, ...],
    backup_dir: str,
    audit_log: str | None,
    output: str,
    show_all: bool,
    base_url: str,
    master_key: str | None,
    debug: bool,
    concurrency: int,
    timeout_s: float,
    bulk: bool,
) -> None:
    """Bring the proxy's users, roles and team memberships back to a SNAPSHOT file.

    Users deleted since the snapshot are created again with the same user id, email, role and teams;
    roles and team memberships changed since are reverted; users added since are deleted (behind the
    same brakes as sync: --max-delete, --protect, --protect-role, never default_user_id or users
    without an email), only those sync would delete: a user added since without a proxy role
    (org_admin, none, ...) is kept unless --all. API keys of deleted users cannot be restored: a
    recreated user that had keys gets one new key, written to the report. Teams deleted since cannot
    be restored either (those rows fail). A team move destroys the user's keys bound to the team it
    leaves (the plan says how many; they count against --max-delete) unless --keep-team-keys re-binds
    them. Before changing anything the current state is saved to
    --backup-dir, and every change is appended to the audit log.

    \b
    Examples:
      litellm-usersync restore usersync-backups/snapshot-20261127T030738Z-sync.json --dry-run
      litellm-usersync restore before-migration.json --no-delete
      litellm-usersync restore usersync-backups/snapshot-20261127T030738Z-sync.json --scope managed

    Exit codes: 0 done (or nothing to do), 1 some rows failed, 2 nothing could be done (bad snapshot
    file, bad credentials, proxy unreachable), 3 refused by a safety brake, 130 interrupted.
    """
    setup_logging(debug)

    def applying(plan: Plan, backup_file: Path | None) -> None:
        if output == "text":
            if plan.has_changes:
                out_marked(render_plan(plan, dry_run=False, title="restore", limit=plan_limit(show_all)))
            else:
                out(render_plan_summary(plan, title="restore"))
            for notice in (scope_notice(plan), keys_notice(plan, report_path)):
                if notice:
                    out(f"\n{notice}")
            if backup_file:
                out(f"\nThe state before this restore is saved in {backup_file}.")
            out()

    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        target = read_restore_target(snapshot_file)

        def started() -> None:
            if output == "text":
                out(f"Restoring to {snapshot_file} (taken {target.taken_at} by '{target.command}').")
                out()

        options = RestoreOptions(
            target=target,
            plan=PlanOptions(
                allow_delete=not no_delete,
                allow_recreate=False,  # a restore never deletes a user it means to keep
                max_delete=max_delete,
                keep_team_keys=keep_team_keys,
                protected_emails=frozenset(normalize_email(e) for e in protect),
                protected_roles=frozenset(protect_role),
            ),
            scope=given_scope(scope_values),
            all_users=all_users,
            dry_run=dry_run,
            report_path=report_path,
            safety=SafetyOptions(backup_dir=backup_dir, audit_log=audit_log),
        )
        result = restore(settings, options, make_hooks(debug, say=err, started=started, applying=applying))

    plan, report, written = result.plan, result.report, result.report_file
    if report is None or written is None:
        _show_plan_only(plan, output=output, report_path=report_path, show_all=show_all, all_users=all_users)
        return
    if written.kept:
        err(kept_notice(written.kept))
    audit_file = result.audit_file
    if output == "json":
        data = report_to_dict(report)
        data.update(
            scope="all" if all_users else "sync",
            scope_notice=scope_notice(plan),
            report_file=str(written.path),
            backup_file=str(result.backup_file) if result.backup_file else None,
            audit_log=str(audit_file) if audit_file else None,
        )
        out(json.dumps(data, indent=2))
    elif output == "markdown":
        out(render_summary_markdown(report, title="restore", limit=None if show_all else MARKDOWN_LISTED))
        out(f"\nReport: `{written.path}` (mode 0600)")
    else:
        if not plan.has_changes and not plan.has_blocked:
            out("Nothing to change: the proxy already matches the snapshot.")
        out_marked(render_summary(report, limit=plan_limit(show_all)))
        keys = sum(1 for r in report.results if r.api_key)
        note = f" (mode 0600; holds {keys} new API key(s))" if keys else " (mode 0600)"
        out(f"\nReport written to {written.path}{note}")
        if audit_file:
            out(f"Audit log: {audit_file} ({result.audit_lines} line(s) appended)")
        out(render_result_counts(report, title="restore"))
    if result.audit_errors:
        errors = result.audit_errors
        err(f"Warning: {len(errors)} audit line(s) could not be written to {result.audit_log}: {errors[0]}")
    exit_for_report(report, failed=result.failed)


def _show_plan_only(
    plan: Plan, *, output: str, report_path: str, show_all: bool = False, all_users: bool = False
) -> None:
    """A dry run, or a plan refused by a brake: show it and pick the exit code. Refusals go to stderr."""
    notice = keys_notice(plan, report_path)
    wide = scope_notice(plan)
    if output == "json":
        data = plan_to_dict(plan)
        data["notice"] = notice
        data["scope"] = "all" if all_users else "sync"
        data["scope_notice"] = wide
        out(json.dumps(data, indent=2))
    elif output == "markdown":
        out(render_plan_markdown(plan, title="restore", limit=None if show_all else MARKDOWN_LISTED))
        for text in (wide, notice):
            if text:
                out(f"\n> {text}")
    else:
        out_marked(render_plan(plan, dry_run=True, title="restore", limit=plan_limit(show_all), with_refusals=False))
        for text in (wide, notice):
            if text:
                out(f"\n{text}")
    for r in plan.refusals:
        err(f"Refused: {r}")
    if plan.refusals:
        raise CliExit(ExitCode.REFUSED)
    raise CliExit(ExitCode.OK)
