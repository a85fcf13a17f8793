"""Snapshot: read the live users, roles and teams and write them as a snapshot file (no API key in it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litellm_usersync.errors import InputError
from litellm_usersync.files.backups import DEFAULT_BACKUP_DIR, snapshot_to_document, utc_timestamp, write_backup
from litellm_usersync.files.jsonfiles import render_json, write_json_file
from litellm_usersync.models import Scope, Snapshot
from litellm_usersync.proxy import snapshot as _live
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings

from ._base import Hooks, run_stoppable

__all__ = ["SnapshotOptions", "SnapshotResult", "read_live", "read_state", "snapshot"]


async def read_state(client: ProxyClient, hooks: Hooks[Any]) -> Snapshot:
    """One full read of the proxy (every user and team page once), progress through the hooks."""
    with hooks.progress(True) as progress:
        return await _live.read_snapshot(client, on_progress=progress)


def read_live(settings: ClientSettings, hooks: Hooks[Any] | None = None) -> Snapshot:
    """Read the proxy's users, roles and teams into a :class:`Snapshot` (no lock: nothing changes)."""
    hooks = hooks or Hooks()

    async def run(_stop: asyncio.Event) -> Snapshot:
        async with hooks.client(settings) as client:
            return await read_state(client, hooks)

    return run_stoppable(run, hooks)


@dataclass(frozen=True)
class SnapshotOptions:
    #: a timestamped file in here (mode 0700 folder, 0600 file) unless ``file`` is given
    backup_dir: str | Path = DEFAULT_BACKUP_DIR
    #: write to this file instead; ``"-"``: return the document as text (``SnapshotResult.text``), write none
    file: str | None = None
    #: only the users of this scope (``snapshot --scope``): the document records it (version 2)
    scope: Scope | None = None


@dataclass(frozen=True)
class SnapshotResult:
    snapshot: Snapshot
    #: the file written (None with ``file="-"``)
    path: Path | None = None
    #: the JSON document, with ``file="-"``
    text: str | None = None

    @property
    def users_with_email(self) -> int:
        return sum(1 for u in self.snapshot.users if u.is_manageable)


def snapshot(settings: ClientSettings, options: SnapshotOptions, hooks: Hooks[Any] | None = None) -> SnapshotResult:
    """Write a snapshot of the live state (``InputError`` when the file cannot be written, or when a ``team:``
    term of ``options.scope`` names no single team). With a scope, only its users (``Scope.restrict``)."""
    live = read_live(settings, hooks)
    scope = options.scope
    if scope is not None:  # only the scope's users (and only them on the rosters); the file records it
        if problems := scope.team_problems(live):
            raise InputError("; ".join(problems))
        live = scope.restrict(live)
    if options.file == "-":
        doc = snapshot_to_document(live, command="snapshot", created_at=utc_timestamp(), scope=scope)
        return SnapshotResult(live, text=render_json(doc))
    try:
        if options.file:
            doc = snapshot_to_document(live, command="snapshot", created_at=utc_timestamp(), scope=scope)
            written = write_json_file(options.file, doc)
        else:
            written = write_backup(live, options.backup_dir, command="snapshot", scope=scope)
    except OSError as exc:
        raise InputError(f"cannot write the snapshot: {exc}") from None
    return SnapshotResult(live, written)
