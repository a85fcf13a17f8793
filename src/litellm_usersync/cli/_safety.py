"""The options of the safety net every changing command shares (the net itself is ``usecases``'s)."""

from __future__ import annotations

import click

from litellm_usersync.usecases import DEFAULT_BACKUP_DIR

from ._common import F


def backup_dir_option(f: F) -> F:
    """``--backup-dir DIR`` (shared by the commands that take a snapshot before changing anything)."""
    return click.option(
        "--backup-dir",
        type=click.Path(file_okay=False),
        default=str(DEFAULT_BACKUP_DIR),
        show_default=True,
        help="Folder for snapshots (created mode 0700; files mode 0600).",
    )(f)


def audit_log_option(f: F) -> F:
    """``--audit-log PATH`` (default: ``audit.jsonl`` in ``--backup-dir``); ``SafetyOptions.audit_log``."""
    return click.option(
        "--audit-log",
        type=click.Path(dir_okay=False),
        default=None,
        help="Append one JSON line per change here [default: audit.jsonl in --backup-dir].",
    )(f)


def no_backup_option(f: F) -> F:
    return click.option("--no-backup", is_flag=True, help="Do not write a snapshot before changing anything.")(f)


def safety_options(f: F) -> F:
    """``--backup-dir``, ``--no-backup``, ``--audit-log``."""
    return backup_dir_option(no_backup_option(audit_log_option(f)))
