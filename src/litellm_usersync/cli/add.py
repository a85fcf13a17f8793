"""``litellm-usersync add`` (and ``python add_user.py``): register the users of a CSV file in bulk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import click

from litellm_usersync.apply.invitations import apply_registrations
from litellm_usersync.files.csvfile import check_output_path, read_users_csv, write_csv_file
from litellm_usersync.files.journal import KeyJournal
from litellm_usersync.identity import PROXY_ROLES
from litellm_usersync.models import ItemKind
from litellm_usersync.plans.add import (
    ERROR_COLUMNS,
    EXISTING_COLUMNS,
    RESULT_COLUMNS,
    AddOutcome,
    AddPlan,
    build_add_plan,
    error_rows,
    existing_rows,
    render_add_plan,
    render_add_result_counts,
    render_add_summary,
    result_rows,
)
from litellm_usersync.proxy.snapshot import read_snapshot
from litellm_usersync.render.report import MARKDOWN_LISTED, plan_to_dict, render_plan_markdown, render_summary_markdown
from litellm_usersync.wording import listed

from ._common import (
    CliExit,
    ExitCode,
    build_settings,
    common_options,
    debug_plan,
    exit_for_report,
    handle_errors,
    make_client,
    out,
    output_option,
    plan_limit,
    print_json,
    printer,
    run_async,
    setup_logging,
    show_all_option,
)
from ._input import input_format, input_options
from ._lock import hold_run_lock
from ._progress import progress_bar
from ._safety import (
    apply_safely,
    finish_journal,
    link_hook,
    open_journal,
    safety_options,
    write_partial_report,
    write_secret_report,
)

DEFAULT_CSV = "user_addlist.csv"
DEFAULT_RESULT = "user_reg_result.csv"
DEFAULT_ERRORS = "user_reg_error.csv"
DEFAULT_UPDATE_LIST = "user_update_list.csv"


@click.command("add")
@safety_options
@output_option
@show_all_option
@click.option(
    "--csv-file",
    default=DEFAULT_CSV,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Input CSV (or .xlsx): email,role,team_name,key_name (all but email optional; teams separated by ';').",
)
@click.option(
    "--user-role",
    type=click.Choice(PROXY_ROLES),
    default="proxy_admin",
    show_default=True,
    help="Role for users whose CSV row has no role.",
)
@click.option("--dry-run", is_flag=True, help="Show who would be created; change nothing.")
@click.option(
    "--update-existing",
    "update_existing",
    is_flag=False,
    flag_value=DEFAULT_UPDATE_LIST,
    default=None,
    metavar="[PATH]",
    help=f"Also write the rows whose users already exist, with their current role and teams, to PATH "
    f"(default {DEFAULT_UPDATE_LIST}) in sync's input format: edit it, then run sync --no-delete with it.",
)
@click.option(
    "--no-invite",
    is_flag=True,
    help="Do not create invitation links (users then set no password through the UI link).",
)
@click.option(
    "--result-file",
    default=DEFAULT_RESULT,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Created users, their API keys and invitation links (mode 0600).",
)
@click.option(
    "--error-file",
    default=DEFAULT_ERRORS,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Rows that were not created (or got no invitation link), with the reason.",
)
@input_options
@common_options
def add_command(
    csv_file: str,
    user_role: str,
    dry_run: bool,
    update_existing: str | None,
    no_invite: bool,
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
    """Register the users of a CSV file: create each in its team(s), with an API key and an invitation link.

    Users that already exist (same email, compared trimmed and case-insensitively) are skipped and
    reported as errors ("User already exists"); change them with sync. A row whose team does not exist
    fails ("Team not found: NAME"); the others are still created. key_name becomes the alias of the
    user's API key. The invitation link (BASE/ui/?invitation_id=ID&action=reset_password) lets the user
    set a password; when the proxy cannot make invitations the users are kept and the reason is reported.

    \b
    Output files (written on every real run):
      user_reg_result.csv  email,role,user_id,team_name,models,api_keys,invitation_url  (mode 0600)
      user_reg_error.csv   email,role,error_reason

    \b
    Examples:
      litellm-usersync add --csv-file user_addlist.csv --dry-run
      litellm-usersync add --csv-file user_addlist.csv
      litellm-usersync add --update-existing

    Exit codes: 0 every row created, 1 some rows failed or already existed, 2 nothing could be done
    (bad CSV, bad credentials, proxy unreachable), 130 interrupted.
    """
    setup_logging(debug)
    say = printer(output)
    limit = plan_limit(show_all)
    md_limit = None if show_all else MARKDOWN_LISTED
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        desired = read_users_csv(csv_file, with_key_name=True, fmt=input_format())
        if not dry_run:
            hold_run_lock(settings.base_url, command="add")

        journals: list[KeyJournal | None] = []

        async def run(stop: asyncio.Event) -> tuple[AddPlan, AddOutcome | None]:
            async with make_client(settings) as client:
                with progress_bar(not debug) as progress:
                    snapshot = await read_snapshot(client, on_progress=progress)
                add = build_add_plan(desired, snapshot, default_role=user_role, invite=not no_invite)
                debug_plan(add.plan)
                say(render_add_plan(add, dry_run=dry_run, limit=limit))
                if output == "markdown":
                    out(render_plan_markdown(add.plan, dry_run=dry_run, title="Registration", limit=md_limit))
                    if add.existing:
                        out(f"\n{len(add.existing):,} row(s) already exist (skipped; use sync to change them).")
                if dry_run:
                    return add, None
                say()
                check_output_path(result_file)
                journal = open_journal(result_file, add.plan, command="add", say=say, changes=add.has_changes)
                journals.append(journal)
                try:
                    report = await apply_safely(
                        client,
                        add.plan,
                        snapshot,
                        command="add",
                        backup_dir=backup_dir,
                        no_backup=no_backup,
                        audit_log=audit_log,
                        concurrency=concurrency,
                        show_progress=not debug,
                        stop=stop,
                        report_paths=(result_file, error_file),
                        journal=journal,
                        invite=not no_invite,
                    )
                    with progress_bar(not debug) as progress:
                        created = [r.item.user_id for r in AddOutcome(report).created if r.item.kind is ItemKind.ADD]
                        registrations = await apply_registrations(
                            client,
                            created + [u for u in add.invite_repairs if u not in created],
                            invite=not no_invite,
                            concurrency=concurrency,
                            on_progress=progress,
                            stop=stop,
                            on_link=link_hook(journal),
                        )
                except BaseException:  # a second signal, a run-ending error: the keys and links received so far
                    write_partial_report(journal, result_file, RESULT_COLUMNS, say)
                    raise
                return add, AddOutcome(report, registrations)

        add, outcome = run_async(run)

    if outcome is None:
        if output == "json":
            print_json(
                {
                    "schema": "litellm-usersync/add-plan",
                    "version": 1,
                    "plan": plan_to_dict(add.plan),
                    "errors": [dict(zip(ERROR_COLUMNS, r, strict=True)) for r in error_rows(add, None)],
                }
            )
        _write_existing(add, update_existing, say)
        raise CliExit(ExitCode.OK)

    created_lines = []
    repaired = {i.user_id for i in add.repairs}
    for row in result_rows(add, outcome, show_keys=False):
        email, role, user_id, _teams, _models, key, url = row
        extra = f", key {key}" if key else ""
        extra += ", invitation link created" if url else ""
        verb = "Repaired user" if user_id in repaired else "Created user"
        created_lines.append(f"✓ {verb}: {email} (role: {role}, user_id: {user_id}{extra})")
    errors = error_rows(add, outcome)
    error_lines = [f"✗ {email} ({role}): {reason}" for email, role, reason in errors]
    for line in listed(created_lines, limit, more=f"all in {result_file}"):
        say(line)
    for line in listed(error_lines, limit, more=f"all in {error_file}"):
        say(line)
    say()
    say(render_add_summary(add, outcome))

    results = result_rows(add, outcome, show_keys=True)
    written = write_secret_report(result_file, RESULT_COLUMNS, results, say)
    journal = journals[0] if journals else None
    if journal is not None and any(r.marker_left for r in outcome.registrations.values()):
        journal.close()  # some markers are still set: the next run finds those links in it
    else:
        finish_journal(journal, outcome.report)
    keys = sum(1 for r in results if r[5])
    say(f"\nSuccess list written to {written} (mode 0600; {len(results)} user(s), {keys} API key(s))")
    err_path = write_csv_file(error_file, ERROR_COLUMNS, errors)
    say(f"Error list written to {err_path} ({len(errors)} row(s))")
    if output == "json":
        print_json(
            {
                "schema": "litellm-usersync/add-result",
                "version": 1,
                "created": [
                    {**dict(zip(RESULT_COLUMNS, r, strict=True)), "invitation_url": bool(r[6])}
                    for r in result_rows(add, outcome, show_keys=False)
                ],
                "errors": [dict(zip(ERROR_COLUMNS, r, strict=True)) for r in errors],
                "interrupted": outcome.report.interrupted,
                "aborted": outcome.report.aborted,
                "files": {"result": str(written), "errors": str(err_path)},
            }
        )
    elif output == "markdown":
        out(render_summary_markdown(outcome.report, title="Registration", limit=md_limit))
        out(f"\nResult: `{written}` (mode 0600), errors: `{err_path}`")
    _write_existing(add, update_existing, say)
    say(render_add_result_counts(add, outcome))
    exit_for_report(outcome.report, failed=bool(errors) or bool(outcome.report.keys_unknown))


def _write_existing(add: AddPlan, path: str | None, say: Callable[..., None]) -> None:
    if not path:
        return
    rows = existing_rows(add)
    written = write_csv_file(path, EXISTING_COLUMNS, rows)
    say(
        f"Existing users written to {written} ({len(rows)} row(s), current role and teams): "
        f"edit it, then run sync --csv-file {written} --no-delete"
    )
