"""``litellm-usersync delete`` (and ``python del_user.py``): delete the users listed in a CSV file."""

from __future__ import annotations

import click

from litellm_usersync.render.documents import plan_to_dict
from litellm_usersync.render.markdown import MARKDOWN_LISTED, render_plan_markdown, render_summary_markdown
from litellm_usersync.usecases import SafetyOptions
from litellm_usersync.usecases.delete import (
    DEFAULT_CSV,
    DEFAULT_ERRORS,
    DEFAULT_RESULT,
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    DeleteOptions,
    DeletePlan,
    delete,
    render_delete_plan,
    render_delete_result_counts,
    render_delete_summary,
)
from litellm_usersync.wording import listed

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
    output_option,
    plan_limit,
    print_json,
    printer,
    setup_logging,
    show_all_option,
)
from ._input import input_format, input_options
from ._safety import safety_options


@click.command("delete")
@safety_options
@output_option
@show_all_option
@click.option(
    "--csv-file",
    default=DEFAULT_CSV,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Input CSV (or .xlsx) with an 'email' column (role/team_name, if present, are checked but not used).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted (with key counts and spend); change nothing.")
@click.option(
    "--block",
    is_flag=True,
    help="Block the listed users instead of deleting them: every key blocked, role internal_user_viewer, budget 0, "
    "teams and spend kept (sync reactivates them when they are in its CSV again).",
)
@click.option(
    "--max-delete",
    type=click.IntRange(0),
    default=None,
    help="Refuse to run if more users would be deleted [default: the larger of 10 and 20% of managed users].",
)
@click.option(
    "--result-file",
    default=DEFAULT_RESULT,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Deleted users: email,user_id,status.",
)
@click.option(
    "--error-file",
    default=DEFAULT_ERRORS,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Rows not deleted: email,user_id,error_reason.",
)
@input_options
@common_options
def delete_command(
    csv_file: str,
    dry_run: bool,
    block: bool,
    max_delete: int | None,
    result_file: str,
    error_file: str,
    output: str,
    show_all: bool,
    backup_dir: str,
    no_backup: bool,
    audit_log: str | None,
    base_url: str,
    master_key: str | None,
    debug: bool,
    concurrency: int,
    timeout_s: float,
    bulk: bool,
) -> None:
    """Delete the users whose emails a CSV file lists, with their API keys and team memberships.

    Emails are matched trimmed and case-insensitively against one full read of the proxy. Unknown
    emails go to the error file ("User not found in the system"); so do emails shared by several users
    and the identity of the master key (default_user_id), which is never deleted. The plan shows what
    each deletion destroys (API keys, spend). Like sync, the run is refused (exit 3, nothing deleted)
    when it would delete more users than --max-delete. With --block the users are blocked instead
    (reversible: see docs/delete.md); blocks count against --max-delete the same way.

    \b
    Output files (written on every real run):
      user_del_result.csv  email,user_id,status
      user_del_error.csv   email,user_id,error_reason

    \b
    Examples:
      litellm-usersync delete --csv-file user_dellist.csv --dry-run
      litellm-usersync delete --csv-file user_dellist.csv
      litellm-usersync delete --csv-file offboarding.csv --max-delete 50

    Exit codes: 0 every listed user deleted, 1 some rows failed or were not found, 2 nothing could be
    done (bad CSV, bad credentials, proxy unreachable), 3 refused by the brake, 130 interrupted.
    """
    setup_logging(debug)
    say = printer(output)
    limit = plan_limit(show_all)
    md_limit = None if show_all else MARKDOWN_LISTED

    def planned(dp: DeletePlan) -> None:
        say(render_delete_plan(dp, dry_run=dry_run, limit=limit, with_refusals=False))
        if output == "markdown":
            out(render_plan_markdown(dp.plan, dry_run=dry_run, title="Deletion", limit=md_limit))
        for r in dp.plan.refusals:  # on stderr: a cron job that drops stdout still logs why it exited 3
            err(f"Refused: {r}")

    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        options = DeleteOptions(
            csv_file=csv_file,
            input_format=input_format(),
            max_delete=max_delete,
            block=block,
            dry_run=dry_run,
            result_file=result_file,
            error_file=error_file,
            safety=SafetyOptions(backup_dir=backup_dir, no_backup=no_backup, audit_log=audit_log),
        )
        hooks = make_hooks(debug, say=say, planned=planned, applying=lambda _plan, _backup: say())
        result = delete(settings, options, hooks)

    dp, report, errors = result.delete, result.report, result.errors
    if report is None:
        if output == "json":
            print_json(
                {
                    "schema": "litellm-usersync/delete-plan",
                    "version": 1,
                    "plan": plan_to_dict(dp.plan),
                    "errors": [dict(zip(ERROR_COLUMNS, r, strict=True)) for r in errors],
                }
            )
        raise CliExit(ExitCode.REFUSED if result.refused else ExitCode.OK)
    deleted_lines = [f"✓ {status} user: {email} ({user_id})" for email, user_id, status in result.deleted]
    error_lines = [f"✗ {email}{f' ({user_id})' if user_id else ''}: {reason}" for email, user_id, reason in errors]
    for line in listed(deleted_lines, limit, more=f"all in {result_file}"):
        say(line)
    for line in listed(error_lines, limit, more=f"all in {error_file}"):
        say(line)
    say()
    say(render_delete_summary(dp, report))
    say(f"\n{'Blocked' if block else 'Deleted'} users written to {result.result_file} ({len(result.deleted)} row(s))")
    say(f"Error list written to {result.error_file} ({len(errors)} row(s))")
    if output == "json":
        print_json(
            {
                "schema": "litellm-usersync/delete-result",
                "version": 1,
                "deleted": [dict(zip(RESULT_COLUMNS, r, strict=True)) for r in result.deleted],
                "errors": [dict(zip(ERROR_COLUMNS, r, strict=True)) for r in errors],
                "interrupted": report.interrupted,
                "aborted": report.aborted,
                "files": {"result": str(result.result_file), "errors": str(result.error_file)},
            }
        )
    elif output == "markdown":
        out(render_summary_markdown(report, title="Deletion", limit=md_limit))
        out(f"\nResult: `{result.result_file}`, errors: `{result.error_file}`")
    say(render_delete_result_counts(dp, report))
    exit_for_report(report, failed=result.failed)
