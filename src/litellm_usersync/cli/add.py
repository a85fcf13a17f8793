"""``litellm-usersync add`` (and ``python add_user.py``): register the users of a CSV file in bulk."""

from __future__ import annotations

from collections.abc import Callable

import click

from litellm_usersync.identity import PROXY_ROLES
from litellm_usersync.render.documents import plan_to_dict
from litellm_usersync.render.markdown import MARKDOWN_LISTED, render_plan_markdown, render_summary_markdown
from litellm_usersync.usecases import SafetyOptions, kept_notice
from litellm_usersync.usecases.add import (
    DEFAULT_CSV,
    DEFAULT_ERRORS,
    DEFAULT_RESULT,
    DEFAULT_UPDATE_LIST,
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    AddOptions,
    AddPlan,
    AddResult,
    add,
    render_add_plan,
    render_add_result_counts,
    render_add_summary,
    result_rows,
)
from litellm_usersync.wording import listed

from ._common import (
    CliExit,
    ExitCode,
    build_settings,
    common_options,
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

    def planned(add: AddPlan) -> None:
        say(render_add_plan(add, dry_run=dry_run, limit=limit))
        if output == "markdown":
            out(render_plan_markdown(add.plan, dry_run=dry_run, title="Registration", limit=md_limit))
            if add.existing:
                out(f"\n{len(add.existing):,} row(s) already exist (skipped; use sync to change them).")

    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        options = AddOptions(
            csv_file=csv_file,
            input_format=input_format(),
            default_role=user_role,
            invite=not no_invite,
            dry_run=dry_run,
            update_existing=update_existing,
            result_file=result_file,
            error_file=error_file,
            safety=SafetyOptions(backup_dir=backup_dir, no_backup=no_backup, audit_log=audit_log),
        )
        hooks = make_hooks(debug, say=say, planned=planned, applying=lambda _plan, _backup: say())
        result = add(settings, options, hooks)

    plan, outcome = result.add, result.outcome
    if outcome is None or result.result_file is None or result.error_file is None:
        if output == "json":
            print_json(
                {
                    "schema": "litellm-usersync/add-plan",
                    "version": 1,
                    "plan": plan_to_dict(plan.plan),
                    "errors": [dict(zip(ERROR_COLUMNS, r, strict=True)) for r in result.errors],
                }
            )
        _say_existing(result, say)
        raise CliExit(ExitCode.OK)

    created_lines = []
    repaired = {i.user_id for i in plan.repairs}
    for row in result_rows(plan, outcome, show_keys=False):
        email, role, user_id, _teams, _models, key, url = row
        extra = f", key {key}" if key else ""
        extra += ", invitation link created" if url else ""
        verb = "Repaired user" if user_id in repaired else "Created user"
        created_lines.append(f"✓ {verb}: {email} (role: {role}, user_id: {user_id}{extra})")
    errors = result.errors
    error_lines = [f"✗ {email} ({role}): {reason}" for email, role, reason in errors]
    for line in listed(created_lines, limit, more=f"all in {result_file}"):
        say(line)
    for line in listed(error_lines, limit, more=f"all in {error_file}"):
        say(line)
    say()
    say(render_add_summary(plan, outcome))

    written, err_path = result.result_file.path, result.error_file
    if result.result_file.kept:
        say(kept_notice(result.result_file.kept))
    keys = sum(1 for r in result_rows(plan, outcome, show_keys=True) if r[5])
    results = result_rows(plan, outcome, show_keys=False)
    say(f"\nSuccess list written to {written} (mode 0600; {len(results)} user(s), {keys} API key(s))")
    say(f"Error list written to {err_path} ({len(errors)} row(s))")
    if output == "json":
        print_json(
            {
                "schema": "litellm-usersync/add-result",
                "version": 1,
                "created": [
                    {**dict(zip(RESULT_COLUMNS, r, strict=True)), "invitation_url": bool(r[6])} for r in results
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
    _say_existing(result, say)
    say(render_add_result_counts(plan, outcome))
    exit_for_report(outcome.report, failed=result.failed)


def _say_existing(result: AddResult, say: Callable[..., None]) -> None:
    if result.existing_file is None:
        return
    written = result.existing_file
    say(
        f"Existing users written to {written} ({result.existing_count} row(s), current role and teams): "
        f"edit it, then run sync --csv-file {written} --no-delete"
    )
