"""``litellm-usersync snapshot``: write a snapshot of the live users, roles and teams on demand."""

from __future__ import annotations

import asyncio
import sys

import click

from ..backup import render_json, snapshot_to_document, utc_timestamp, write_backup, write_json_file
from ..errors import InputError
from ..models import Snapshot
from ..snapshot import read_snapshot
from ._common import build_settings, common_options, handle_errors, make_client, out, run_async, setup_logging
from ._progress import progress_bar
from ._safety import backup_dir_option


@click.command("snapshot")
@backup_dir_option
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write the snapshot to this file instead of a timestamped file in --backup-dir ('-': stdout).",
)
@common_options
def snapshot_command(
    backup_dir: str,
    output_path: str | None,
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
      litellm-usersync snapshot --output before-migration.json

    Exit codes: 0 written, 2 nothing could be done (bad credentials, proxy unreachable, file not writable).
    """
    setup_logging(debug)
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)

        async def run(stop: asyncio.Event) -> Snapshot:
            async with make_client(settings) as client:
                with progress_bar(not debug) as progress:
                    return await read_snapshot(client, on_progress=progress)

        snapshot = run_async(run)
        manageable = sum(1 for u in snapshot.users if u.is_manageable)
        summary = f"{len(snapshot.users)} users ({manageable} with an email), {len(snapshot.teams)} teams"
        if output_path == "-":
            doc = snapshot_to_document(snapshot, command="snapshot", created_at=utc_timestamp())
            sys.stdout.write(render_json(doc))
            return
        try:
            if output_path:
                doc = snapshot_to_document(snapshot, command="snapshot", created_at=utc_timestamp())
                written = write_json_file(output_path, doc)
            else:
                written = write_backup(snapshot, backup_dir, command="snapshot")
        except OSError as exc:
            raise InputError(f"cannot write the snapshot: {exc}") from None
    out(f"Snapshot written to {written} ({summary}; mode 0600, no API keys).")
