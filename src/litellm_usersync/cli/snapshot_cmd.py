"""``litellm-usersync snapshot``: write a snapshot of the live users, roles and teams on demand."""

from __future__ import annotations

import sys

import click

from litellm_usersync.usecases import SnapshotOptions, snapshot

from ._common import (
    OUTPUT_FORMATS,
    build_settings,
    common_options,
    handle_errors,
    make_hooks,
    out,
    print_json,
    setup_logging,
)
from ._safety import backup_dir_option
from ._scope import given_scope, read_scope_option


def _output(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``--output`` is a format on every command; a file path here is the old spelling of ``--file``."""
    if value in OUTPUT_FORMATS:
        return value
    click.echo(
        f"Warning: 'snapshot --output {value}' is deprecated: --output is the format ({'|'.join(OUTPUT_FORMATS)}) "
        f"as on every command; use --file {value}.",
        err=True,
    )
    ctx.meta["file_path"] = value
    return "text"


@click.command("snapshot")
@backup_dir_option
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write the snapshot to this file instead of a timestamped file in --backup-dir ('-': stdout).",
)
@click.option(
    "--output",
    default="text",
    show_default=True,
    callback=_output,
    metavar="[text|json|markdown]",
    help="Format of the message saying where the snapshot went (json: one document with the file and the "
    "counts). A file path here is the deprecated spelling of --file.",
)
@read_scope_option
@common_options
@click.pass_context
def snapshot_command(
    ctx: click.Context,
    backup_dir: str,
    file_path: str | None,
    output: str,
    scope_values: tuple[str, ...],
    base_url: str,
    master_key: str | None,
    debug: bool,
    concurrency: int,
    timeout_s: float,
    bulk: bool,
) -> None:
    """Write a JSON snapshot of the proxy's users, roles and team memberships.

    The snapshot holds user ids, emails, roles, team ids, key counts and the teams with their rosters;
    never an API key or the master key. `litellm-usersync restore SNAPSHOT` plans and applies the way
    back to it. sync, add, delete and restore write one into --backup-dir before changing anything.

    \b
    Examples:
      litellm-usersync snapshot
      litellm-usersync snapshot --backup-dir /srv/backups/litellm
      litellm-usersync snapshot --file before-migration.json
      litellm-usersync snapshot --file - | jq .counts
      litellm-usersync snapshot --scope managed --file managed-users.json

    Exit codes: 0 written, 2 nothing could be done (bad credentials, proxy unreachable, file not writable).
    """
    setup_logging(debug)
    file_path = file_path or ctx.meta.get("file_path")
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        scope = given_scope(scope_values, from_env=False)
        options = SnapshotOptions(backup_dir=backup_dir, file=file_path, scope=scope)
        result = snapshot(settings, options, make_hooks(debug))
    if result.text is not None:
        sys.stdout.write(result.text)
        return
    live, written = result.snapshot, result.path
    summary = f"{len(live.users)} users ({result.users_with_email} with an email), {len(live.teams)} teams"
    if scope is not None and not scope.is_default:
        summary += f", scope {scope.describe()}"
    if output == "json":
        print_json(
            {
                "schema": "litellm-usersync/snapshot-written",
                "version": 1,
                "file": str(written),
                "users": len(live.users),
                "users_with_email": result.users_with_email,
                "teams": len(live.teams),
                "scope": scope.values() if scope is not None else [],
            }
        )
    elif output == "markdown":
        out(f"Snapshot written to `{written}` ({summary}; mode 0600, no API keys).")
    else:
        out(f"Snapshot written to {written} ({summary}; mode 0600, no API keys).")
