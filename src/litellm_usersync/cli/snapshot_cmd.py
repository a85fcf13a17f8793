"""``litellm-usersync snapshot``: write a snapshot of the live users, roles and teams on demand."""

from __future__ import annotations

import asyncio
import sys

import click

from litellm_usersync.errors import InputError
from litellm_usersync.files.backups import (
    render_json,
    snapshot_to_document,
    utc_timestamp,
    write_backup,
    write_json_file,
)
from litellm_usersync.models import Snapshot
from litellm_usersync.proxy.snapshot import read_snapshot

from ._common import (
    OUTPUT_FORMATS,
    build_settings,
    common_options,
    handle_errors,
    make_client,
    out,
    print_json,
    run_async,
    setup_logging,
)
from ._progress import progress_bar
from ._safety import backup_dir_option


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
@common_options
@click.pass_context
def snapshot_command(
    ctx: click.Context,
    backup_dir: str,
    file_path: str | None,
    output: str,
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

    Exit codes: 0 written, 2 nothing could be done (bad credentials, proxy unreachable, file not writable).
    """
    setup_logging(debug)
    file_path = file_path or ctx.meta.get("file_path")
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)

        async def run(stop: asyncio.Event) -> Snapshot:
            async with make_client(settings) as client:
                with progress_bar(not debug) as progress:
                    return await read_snapshot(client, on_progress=progress)

        snapshot = run_async(run)
        manageable = sum(1 for u in snapshot.users if u.is_manageable)
        summary = f"{len(snapshot.users)} users ({manageable} with an email), {len(snapshot.teams)} teams"
        if file_path == "-":
            doc = snapshot_to_document(snapshot, command="snapshot", created_at=utc_timestamp())
            sys.stdout.write(render_json(doc))
            return
        try:
            if file_path:
                doc = snapshot_to_document(snapshot, command="snapshot", created_at=utc_timestamp())
                written = write_json_file(file_path, doc)
            else:
                written = write_backup(snapshot, backup_dir, command="snapshot")
        except OSError as exc:
            raise InputError(f"cannot write the snapshot: {exc}") from None
    if output == "json":
        print_json(
            {
                "schema": "litellm-usersync/snapshot-written",
                "version": 1,
                "file": str(written),
                "users": len(snapshot.users),
                "users_with_email": manageable,
                "teams": len(snapshot.teams),
            }
        )
    elif output == "markdown":
        out(f"Snapshot written to `{written}` ({summary}; mode 0600, no API keys).")
    else:
        out(f"Snapshot written to {written} ({summary}; mode 0600, no API keys).")
