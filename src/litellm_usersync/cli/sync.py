"""``litellm-usersync sync`` (and ``python sync_user.py``): reconcile the proxy with a CSV file."""

from __future__ import annotations

import json
from typing import Any

import click

from litellm_usersync import __version__
from litellm_usersync.identity import PROXY_ROLES, normalize_email
from litellm_usersync.models import Plan, PlanOptions, ProxyFeatures
from litellm_usersync.render.documents import plan_to_dict, report_to_dict
from litellm_usersync.render.markdown import MARKDOWN_LISTED, render_plan_markdown, render_summary_markdown
from litellm_usersync.render.report import render_plan, render_plan_summary, render_result_counts, render_summary
from litellm_usersync.usecases import SafetyOptions, SyncOptions, kept_notice, sync
from litellm_usersync.usecases.sync import DEFAULT_REPORT

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
from ._deprovision import deprovision_options, deprovision_plan_options
from ._duration import DURATION
from ._input import INPUT_PARAMS, input_format, input_options
from ._safety import safety_options
from ._scope import adopt_option, given_scope, scope_option


def sync_options(f: Any) -> Any:
    opts = [
        click.option(
            "--csv-file",
            default="user_list.csv",
            show_default=True,
            type=click.Path(dir_okay=False),
            help="Input CSV (or .xlsx): email,role,team_name (role and team_name optional; teams separated by ';').",
        ),
        click.option(
            "--user-role",
            type=click.Choice(PROXY_ROLES),
            default="proxy_admin",
            show_default=True,
            help="Role for new users whose CSV row has no role.",
        ),
        click.option("--dry-run", is_flag=True, help="Show the plan; change nothing."),
        click.option("--no-add", is_flag=True, help="Do not create users."),
        click.option("--no-delete", is_flag=True, help="Do not delete users."),
        click.option(
            "--no-update", is_flag=True, help="Do not change roles, teams or managed fields of existing users."
        ),
        click.option(
            "--no-recreate",
            is_flag=True,
            help="Never recreate a user whose team update could not be verified (the seed's fallback).",
        ),
        click.option(
            "--recreate-with-keys",
            is_flag=True,
            help="Let the fallback recreate a user who holds API keys (they are deleted with it); "
            "without it such a row fails with the key count.",
        ),
        click.option(
            "--keep-team-keys",
            is_flag=True,
            help="A team move deletes the user's keys bound to the old team: re-bind them to the new team "
            "instead (a move from one team to one other; other moves of such users are refused).",
        ),
        click.option(
            "--create-teams",
            is_flag=True,
            help="Create the teams the CSV names that do not exist (alias = the name) before the joins; "
            "without it such a row fails 'Team not found'.",
        ),
        click.option(
            "--max-create-teams",
            type=click.IntRange(0),
            default=10,
            show_default=True,
            help="Refuse to run if more teams would be created (--create-teams, --teams-file).",
        ),
        click.option(
            "--teams-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="A teams CSV (team_name,max_budget,budget_duration,models,tpm_limit,rpm_limit): its teams are "
            "created when missing and their settings updated (members come from --csv-file).",
        ),
        click.option(
            "--max-delete",
            type=click.IntRange(0),
            default=None,
            help="Refuse to run if more users would be deleted [default: the larger of 10 and 20% of managed users].",
        ),
        click.option(
            "--protect",
            "protect",
            multiple=True,
            metavar="EMAIL",
            help="Never delete, demote or recreate this user (repeatable).",
        ),
        click.option(
            "--protect-role",
            multiple=True,
            type=click.Choice(PROXY_ROLES),
            help="Never delete users with this role (repeatable).",
        ),
        click.option(
            "--report",
            "report_path",
            default=DEFAULT_REPORT,
            show_default=True,
            type=click.Path(dir_okay=False),
            help="Where to write the report (mode 0600: it holds new users' API keys).",
        ),
        scope_option,
        adopt_option,
        output_option,
        show_all_option,
        click.option(
            "--detailed-exitcode",
            is_flag=True,
            help="With --dry-run, as terraform plan: exit 0 when there is nothing to do, 2 when changes are "
            "pending, 1 on any error (usage errors too).",
        ),
        click.option(
            "--plan-out",
            type=click.Path(dir_okay=False),
            default=None,
            help="Save the plan to this file (JSON, see docs/plans-and-restore.md); works with --dry-run.",
        ),
        click.option(
            "--apply-plan",
            "apply_plan_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Apply exactly this saved plan (no CSV is read); refused if the users it touches changed since.",
        ),
        click.option(
            "--full-read",
            is_flag=True,
            help="Read every user page, as without a cache (the cache of the last run is written anew).",
        ),
        click.option(
            "--full-read-after",
            "full_read_after",
            type=DURATION,
            default="1d",
            show_default=True,
            metavar="DURATION",
            help="Read everything when the last run's cache is older than this (30m, 12h, 1d; 0: always).",
        ),
        safety_options,
        deprovision_options,
    ]
    for d in reversed(opts):
        f = d(f)
    return f


class _DetailedUsageError(click.UsageError):
    exit_code = ExitCode.FAILED


class _SyncCommand(click.Command):
    """``--detailed-exitcode`` promises 1 for any error, as terraform's: usage errors too (click's are 2)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        detailed = "--detailed-exitcode" in args  # read before parsing consumes the list
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if detailed and not isinstance(exc, _DetailedUsageError):
                raise _DetailedUsageError(exc.message, exc.ctx) from exc
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if ctx.params.get("detailed_exitcode") and not isinstance(exc, _DetailedUsageError):
                raise _DetailedUsageError(exc.message, exc.ctx) from exc
            raise


@click.command("sync", cls=_SyncCommand)
@click.version_option(__version__, prog_name="litellm-usersync")
@sync_options
@input_options
@common_options
def sync_command(
    csv_file: str,
    user_role: str,
    dry_run: bool,
    no_add: bool,
    no_delete: bool,
    no_update: bool,
    no_recreate: bool,
    recreate_with_keys: bool,
    keep_team_keys: bool,
    full_read: bool,
    full_read_after: float,
    create_teams: bool,
    max_create_teams: int,
    teams_file: str | None,
    max_delete: int | None,
    protect: tuple[str, ...],
    protect_role: tuple[str, ...],
    scope_values: tuple[str, ...],
    adopt: bool,
    report_path: str,
    output: str,
    show_all: bool,
    detailed_exitcode: bool,
    plan_out: str | None,
    apply_plan_path: str | None,
    backup_dir: str,
    no_backup: bool,
    audit_log: str | None,
    deprovision: str,
    purge_blocked_after: int | None,
    base_url: str,
    master_key: str | None,
    debug: bool,
    concurrency: int,
    timeout_s: float,
    bulk: bool,
) -> None:
    """Synchronise the proxy's users, roles and team memberships with a CSV file.

    Users in the CSV but not in the proxy are added, users in the proxy but not in the CSV are deleted
    (or blocked, with --deprovision block; a blocked user back in the CSV is reactivated), users in both
    whose role or teams differ are updated. Users are matched by email (trimmed,
    case-insensitive). Only users with an email and one of the four proxy roles are ever deleted;
    default_user_id and users without email are never touched.

    \b
    Examples:
      litellm-usersync sync --csv-file user_list.csv --dry-run
      litellm-usersync sync --csv-file user_list.csv --no-delete
      litellm-usersync sync --csv-file sales.csv --scope team:Sales --scope managed
      litellm-usersync sync --csv-file user_list.csv --debug > sync.log 2>&1

    Exit codes: 0 done (or nothing to do), 1 some rows failed, 2 nothing could be done
    (bad CSV, bad credentials, proxy unreachable), 3 refused by a safety brake, 130 interrupted.
    """
    setup_logging(debug)
    if detailed_exitcode and not dry_run:
        raise click.UsageError("--detailed-exitcode needs --dry-run (it reports whether changes are pending).")
    if apply_plan_path:
        _refuse_plan_shaping_options()
    say = out if output == "text" else err

    def applying(plan: Plan, _backup: object) -> None:
        if output == "text":
            if plan.has_changes or plan.has_blocked:  # a row that will fail is shown, as on a dry run
                out_marked(render_plan(plan, dry_run=False, limit=plan_limit(show_all)))
            else:
                out(render_plan_summary(plan))
            out()

    with handle_errors(debug, unusable=ExitCode.FAILED if detailed_exitcode else ExitCode.UNUSABLE):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        options = SyncOptions(
            csv_file=csv_file,
            input_format=input_format(),
            plan=PlanOptions(
                allow_add=not no_add,
                allow_delete=not no_delete,
                allow_update=not no_update,
                allow_recreate=not no_recreate,
                recreate_with_keys=recreate_with_keys,
                keep_team_keys=keep_team_keys,
                create_teams=create_teams,
                max_create_teams=max_create_teams,
                default_role=user_role,
                max_delete=max_delete,
                protected_emails=frozenset(normalize_email(e) for e in protect),
                protected_roles=frozenset(protect_role),
                adopt=adopt,
                **deprovision_plan_options(deprovision, purge_blocked_after),
            ),
            scope=given_scope(scope_values),
            dry_run=dry_run,
            apply_plan=apply_plan_path,
            plan_out=plan_out,
            report_path=report_path,
            safety=SafetyOptions(backup_dir=backup_dir, no_backup=no_backup, audit_log=audit_log),
            full_read=full_read,
            full_read_after_s=full_read_after,
            teams_file=teams_file,
        )
        result = sync(settings, options, make_hooks(debug, say=say, applying=applying))

    plan, report, written = result.plan, result.report, result.report_file
    if report is None or written is None:
        _show_plan_only(
            plan,
            output=output,
            detailed_exitcode=detailed_exitcode,
            dry_run=dry_run,
            show_all=show_all,
            features=result.features,
        )
        return
    if written.kept:
        say(kept_notice(written.kept))
    if output == "json":
        data = report_to_dict(report)
        data["report_file"] = str(written.path)
        data["proxy"] = result.features.to_dict()
        out(json.dumps(data, indent=2))
    elif output == "markdown":
        out(render_summary_markdown(report, limit=None if show_all else MARKDOWN_LISTED))
        out(f"\nReport: `{written.path}` (mode 0600)")
    else:
        if not plan.has_changes and not plan.has_blocked:
            out("Nothing to change.")
        out_marked(render_summary(report, limit=plan_limit(show_all)))
        keys = sum(1 for r in report.results if r.api_key)
        note = f" (mode 0600; holds {keys} new API key(s))" if keys else " (mode 0600)"
        out(f"\nReport written to {written.path}{note}")
        out(render_result_counts(report))
    exit_for_report(report, failed=result.failed)


#: options that shape a plan: a saved plan was shaped when it was made, so they cannot apply to it
_PLAN_SHAPING = (
    "csv_file",
    "user_role",
    "no_add",
    "no_delete",
    "no_update",
    "no_recreate",
    "recreate_with_keys",
    "keep_team_keys",
    "create_teams",
    "max_create_teams",
    "teams_file",
    "max_delete",
    "protect",
    "protect_role",
    "adopt",
    "deprovision",
    "purge_blocked_after",
    *INPUT_PARAMS,
)


def _refuse_plan_shaping_options() -> None:
    """--apply-plan with --no-delete, --protect, ... would silently ignore them: refuse instead."""
    ctx = click.get_current_context()
    given = [
        "--" + name.replace("_", "-")
        for name in _PLAN_SHAPING
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(
            f"--apply-plan applies the saved plan exactly as it was made; {', '.join(given)} cannot change it. "
            "Make a new plan with these options (sync --dry-run --plan-out PLAN ...) and apply that."
        )


def _show_plan_only(
    plan: Plan,
    *,
    output: str,
    detailed_exitcode: bool,
    dry_run: bool = True,
    show_all: bool = False,
    features: ProxyFeatures | None = None,
) -> None:
    """A dry run, or a plan refused by a brake: show it and pick the exit code.

    Refusals go to stderr in every format (a cron job that drops stdout still logs why it exited 3).
    """
    if output == "json":
        data = plan_to_dict(plan)
        if features is not None:  # what was detected on the proxy (docs/output.md)
            data["proxy"] = features.to_dict()
        out(json.dumps(data, indent=2))
    elif output == "markdown":
        out(render_plan_markdown(plan, dry_run=dry_run, limit=None if show_all else MARKDOWN_LISTED))
    else:
        out_marked(render_plan(plan, dry_run=dry_run, limit=plan_limit(show_all), with_refusals=False))
    for r in plan.refusals:
        err(f"Refused: {r}")
    if plan.refusals:
        raise CliExit(ExitCode.REFUSED)
    if detailed_exitcode and (plan.has_changes or plan.has_blocked):
        raise CliExit(2)
    raise CliExit(ExitCode.OK)
