"""The jobs of the tool as library functions: one per command, each with the whole safety net.

Each takes :class:`~litellm_usersync.settings.ClientSettings`, a typed options object and (optionally)
:class:`Hooks`, and returns a typed result; the CLI parses options, calls one of these, renders the result
and picks the exit code. See docs/api.md.
"""

from __future__ import annotations

from litellm_usersync.files.backups import DEFAULT_BACKUP_DIR
from litellm_usersync.files.csvfile import COLUMN_ALIASES, InputFormat

from ._base import STATE_DIR_ENV, Hooks, ProgressFn, SafetyOptions, no_progress, state_dir
from ._safety import WrittenReport, kept_notice
from .add import AddOptions, AddResult, add
from .delete import DeleteOptions, DeleteResult, delete
from .listing import list_users
from .restore import (
    DEFAULT_RESTORE_REPORT,
    RestoreOptions,
    RestoreResult,
    RestoreTarget,
    read_restore_target,
    restore,
    scope_notice,
)
from .snapshot import SnapshotOptions, SnapshotResult, read_live, snapshot
from .sync import SyncOptions, SyncResult, sync

__all__ = [
    "COLUMN_ALIASES",
    "DEFAULT_BACKUP_DIR",
    "DEFAULT_RESTORE_REPORT",
    "STATE_DIR_ENV",
    "AddOptions",
    "AddResult",
    "DeleteOptions",
    "DeleteResult",
    "Hooks",
    "InputFormat",
    "ProgressFn",
    "RestoreOptions",
    "RestoreResult",
    "RestoreTarget",
    "SafetyOptions",
    "SnapshotOptions",
    "SnapshotResult",
    "SyncOptions",
    "SyncResult",
    "WrittenReport",
    "add",
    "delete",
    "kept_notice",
    "list_users",
    "no_progress",
    "read_live",
    "read_restore_target",
    "restore",
    "scope_notice",
    "snapshot",
    "state_dir",
    "sync",
]
