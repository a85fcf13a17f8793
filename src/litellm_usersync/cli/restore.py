"""``litellm-usersync restore SNAPSHOT``: plan and apply the way back to a snapshot."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import click

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.files.audit import AuditLog
from litellm_usersync.files.backups import read_snapshot_file, snapshot_created_at
from litellm_usersync.files.journal import KeyJournal
from litellm_usersync.identity import PROXY_ROLES, normalize_email
from litellm_usersync.models import ItemKind, Plan, PlanOptions, RunReport
from litellm_usersync.plans.restore import build_restore_plan, scope_notice
from litellm_usersync.proxy.snapshot import read_snapshot, with_team_keys
from litellm_usersync.render.report import (
    MARKDOWN_LISTED,
    SYNC_REPORT_COLUMNS,
    plan_to_dict,
    render_plan,
    render_plan_markdown,
    render_plan_summary,
    render_result_counts,
    render_summary,
    render_summary_markdown,
    report_to_dict,
    result_rows,
)

from ._common import (
    CliExit,
    ExitCode,
    build_settings,
    common_options,
    debug_plan,
    err,
    exit_for_report,
    handle_errors,
    make_client,
    out,
    out_marked,
    output_option,
    plan_limit,
    run_async,
    setup_logging,
    show_all_option,
)
from ._lock import hold_run_lock
from ._progress import progress_bar
from ._safety import (
    audit_hook,
    audit_log_option,
    backup_dir_option,
    finish_journal,
    key_hook,
    open_journal,
    prepare_safety_net,
    write_partial_report,
    write_secret_report,
)

DEFAULT_RESTORE_REPORT = "user_restore_result.csv"


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


@dataclass
class _Run:
    plan: Plan
    report: RunReport | None = None
    backup_file: Path | None = None
    audit: AuditLog | None = None
    journal: KeyJournal | None = None


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

    Exit codes: 0 done (or nothing to do), 1 some rows failed, 2 nothing could be done (bad snapshot
    file, bad credentials, proxy unreachable), 3 refused by a safety brake, 130 interrupted.
    """
    setup_logging(debug)
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        target, doc = read_snapshot_file(snapshot_file)
        if not dry_run:
            hold_run_lock(settings.base_url, command="restore")
        options = PlanOptions(
            allow_delete=not no_delete,
            allow_recreate=False,  # a restore never deletes a user it means to keep
            max_delete=max_delete,
            keep_team_keys=keep_team_keys,
            protected_emails=frozenset(normalize_email(e) for e in protect),
            protected_roles=frozenset(protect_role),
        )
        if output == "text":
            out(f"Restoring to {snapshot_file} (taken {snapshot_created_at(doc)} by '{doc.get('command', '?')}').")
            out()

        async def run(stop: asyncio.Event) -> _Run:
            async with make_client(settings) as client:
                with progress_bar(not debug) as progress:
                    current = await read_snapshot(client, on_progress=progress)
                plan = build_restore_plan(target, current, options, all_users=all_users)
                # a team leave deletes the user's keys bound to that team: read them (one read per team left)
                # and plan again, so the plan shows, counts and (--keep-team-keys) keeps them, and the backup
                # names them
                keyed = await with_team_keys(client, current, plan)
                if keyed is not current:
                    current = keyed
                    plan = build_restore_plan(target, current, options, all_users=all_users)
                debug_plan(plan)
                if dry_run or plan.refusals:
                    return _Run(plan)
                result = _Run(plan)
                if plan.has_changes:
                    net = prepare_safety_net(
                        current,
                        command="restore",
                        backup_dir=backup_dir,
                        no_backup=False,
                        audit_log=audit_log,
                        master_key=settings.master_key,
                        report_paths=(report_path,),
                    )
                    result.audit, result.backup_file = net.audit, net.backup_file
                if output == "text":
                    if plan.has_changes:
                        out_marked(render_plan(plan, dry_run=False, title="restore", limit=plan_limit(show_all)))
                    else:
                        out(render_plan_summary(plan, title="restore"))
                    for notice in (scope_notice(plan), keys_notice(plan, report_path)):
                        if notice:
                            out(f"\n{notice}")
                    if result.backup_file:
                        out(f"\nThe state before this restore is saved in {result.backup_file}.")
                    out()
                result.journal = open_journal(report_path, plan, command="restore", say=err)
                try:
                    with progress_bar(not debug and plan.has_changes) as progress:
                        result.report = await apply_plan(
                            client,
                            plan,
                            concurrency=concurrency,
                            on_progress=progress,
                            stop=stop,
                            on_outcome=audit_hook(result.audit, plan),
                            on_key=key_hook(result.journal, plan),
                            recorded_keys=result.journal.recorded if result.journal else None,
                        )
                except BaseException:  # a second signal, a run-ending error: the keys received so far
                    write_partial_report(result.journal, report_path, SYNC_REPORT_COLUMNS, err)
                    raise
                return result

        result = run_async(run)

    plan, report = result.plan, result.report
    if report is None:
        _show_plan_only(plan, output=output, report_path=report_path, show_all=show_all, all_users=all_users)
        return
    written = write_secret_report(report_path, SYNC_REPORT_COLUMNS, result_rows(report, show_keys=True), err)
    finish_journal(result.journal, report)
    audit_file = result.audit.path if result.audit and result.audit.lines_written else None
    if output == "json":
        data = report_to_dict(report)
        data.update(
            scope="all" if all_users else "sync",
            scope_notice=scope_notice(plan),
            report_file=str(written),
            backup_file=str(result.backup_file) if result.backup_file else None,
            audit_log=str(audit_file) if audit_file else None,
        )
        out(json.dumps(data, indent=2))
    elif output == "markdown":
        out(render_summary_markdown(report, title="restore", limit=None if show_all else MARKDOWN_LISTED))
        out(f"\nReport: `{written}` (mode 0600)")
    else:
        if not plan.has_changes and not plan.has_blocked:
            out("Nothing to change: the proxy already matches the snapshot.")
        out_marked(render_summary(report, limit=plan_limit(show_all)))
        keys = sum(1 for r in report.results if r.api_key)
        note = f" (mode 0600; holds {keys} new API key(s))" if keys else " (mode 0600)"
        out(f"\nReport written to {written}{note}")
        if audit_file:
            out(f"Audit log: {audit_file} ({result.audit.lines_written if result.audit else 0} line(s) appended)")
        out(render_result_counts(report, title="restore"))
    if result.audit and result.audit.write_errors:
        errors = result.audit.write_errors
        err(f"Warning: {len(errors)} audit line(s) could not be written to {result.audit.path}: {errors[0]}")
    exit_for_report(report, failed=bool(report.failed))


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
