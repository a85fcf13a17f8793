"""The safety net every changing command shares: a snapshot backup and an audit log, set up before the first change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.errors import InputError
from litellm_usersync.files.audit import AuditLog, audit_path, new_run_id
from litellm_usersync.files.backups import DEFAULT_BACKUP_DIR, write_backup
from litellm_usersync.files.csvfile import check_output_path, keep_previous_secrets, write_csv_file
from litellm_usersync.files.journal import KeyJournal, journal_rows
from litellm_usersync.models import Outcome, Plan, RunReport, Snapshot
from litellm_usersync.proxy.client import ProxyClient

from ._common import F, err
from ._progress import progress_bar


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
    """``--audit-log PATH`` (default: ``audit.jsonl`` in ``--backup-dir``); pair with :func:`make_audit_log`."""
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


def make_audit_log(backup_dir: str, audit_log: str | None, *, command: str, master_key: str | None) -> AuditLog:
    """The run's audit log: ``--audit-log`` or ``<backup-dir>/audit.jsonl``, a new run id, the master key masked."""
    return AuditLog(
        audit_log or audit_path(backup_dir),
        run_id=new_run_id(),
        command=command,
        secrets=(master_key,) if master_key else (),
    )


@dataclass(frozen=True)
class SafetyNet:
    audit: AuditLog
    #: the snapshot written before the first change (None with --no-backup)
    backup_file: Path | None


def prepare_safety_net(
    snapshot: Snapshot,
    *,
    command: str,
    backup_dir: str,
    no_backup: bool,
    audit_log: str | None,
    master_key: str | None,
    report_paths: Sequence[str] = (),
) -> SafetyNet:
    """Before the first change: check the report paths (a report that cannot be written would lose the new
    keys), write the backup and check the audit log is writable, or stop (exit 2, nothing changed).

    The backup is the snapshot the plan was made from: no extra read of the proxy.
    """
    for path in report_paths:
        check_output_path(path)
    try:
        backup_file = None if no_backup else write_backup(snapshot, backup_dir, command=command)
        audit = make_audit_log(backup_dir, audit_log, command=command, master_key=master_key)
        audit.check_writable()
    except OSError as exc:
        raise InputError(f"cannot write the backup or the audit log ({exc}); nothing was changed") from None
    return SafetyNet(audit, backup_file)


def audit_hook(audit: AuditLog | None, plan: Plan) -> Callable[[Outcome], None] | None:
    return audit.for_plan(plan) if audit else None


def warn_audit_errors(audit: AuditLog | None) -> None:
    if audit and audit.write_errors:
        err(f"Warning: {len(audit.write_errors)} audit line(s) could not be written to {audit.path}")


async def apply_safely(
    client: ProxyClient,
    plan: Plan,
    snapshot: Snapshot,
    *,
    command: str,
    backup_dir: str,
    no_backup: bool,
    audit_log: str | None,
    concurrency: int,
    show_progress: bool,
    stop: asyncio.Event,
    report_paths: Sequence[str] = (),
    journal: KeyJournal | None = None,
    invite: bool = False,
) -> RunReport:
    """Apply ``plan`` the way every changing command does: report paths checked, backup and audit log
    first (when there is something to change), a progress bar on a terminal, one audit line per outcome,
    every API key in ``journal`` (on disk) as it arrives."""
    for path in report_paths:
        check_output_path(path)  # also for a run without changes: its report is written too
    audit = None
    backup_file = None
    if plan.has_changes:
        net = prepare_safety_net(
            snapshot,
            command=command,
            backup_dir=backup_dir,
            no_backup=no_backup,
            audit_log=audit_log,
            master_key=client.settings.master_key,
        )
        audit = net.audit
        backup_file = str(net.backup_file) if net.backup_file else None
        if net.backup_file:
            err(f"Backup of the current state: {net.backup_file}")
    with progress_bar(show_progress and plan.has_changes) as progress:
        report = await apply_plan(
            client,
            plan,
            concurrency=concurrency,
            on_progress=progress,
            stop=stop,
            on_outcome=audit_hook(audit, plan),
            on_key=key_hook(journal, plan),
            recorded_keys=journal.recorded if journal else None,
            invite=invite,
            before=snapshot,
            backup_file=backup_file,
        )
    warn_audit_errors(audit)
    return report


def open_journal(
    report_path: str, plan: Plan, *, command: str, say: Callable[..., None], changes: bool | None = None
) -> KeyJournal | None:
    """Before the first change: the journal every received API key (and invitation link) goes to at once.

    None when the plan changes nothing (``changes`` overrides ``plan.has_changes``). A journal an interrupted
    run left is moved aside (and said so); its keys are kept by this run rather than revoked."""
    if not (plan.has_changes if changes is None else changes):
        return None
    try:
        journal = KeyJournal.open(report_path, run_id=new_run_id(), command=command).for_plan(plan)
    except OSError as exc:
        raise InputError(f"cannot write the key journal beside {report_path} ({exc}); nothing was changed") from None
    if journal.kept:
        say(f"An earlier run was interrupted: the API keys it received are kept in {journal.kept} (mode 0600)")
    return journal


def key_hook(journal: KeyJournal | None, plan: Plan) -> Callable[[str, str, str, str | None], None] | None:
    if journal is None:
        return None

    def on_key(user_id: str, email: str, api_key: str, note: str | None) -> None:
        journal.record(user_id, email, api_key=api_key, note=note)

    return on_key


def link_hook(journal: KeyJournal | None) -> Callable[[str, str], None] | None:
    """``on_link`` for :func:`~..invitations.apply_registrations`: each invitation link into the journal."""
    if journal is None:
        return None

    def on_link(user_id: str, url: str) -> None:
        journal.record(user_id, "", invitation_url=url)

    return on_link


def write_partial_report(
    journal: KeyJournal | None, path: str, columns: Sequence[str], say: Callable[..., None]
) -> Path | None:
    """The run ends early (a second signal, a run-ending error): write the report with every API key and
    invitation link received so far (the journal stays, for the next run)."""
    if journal is None or not journal.entries:
        return None
    journal.close()
    rows = journal_rows(
        journal.entries,
        tuple(columns),
        status="SUCCESS",
        reason="the run ended early: only the users whose API key or invitation link had arrived are listed",
    )
    written = write_secret_report(path, columns, rows, say)
    say(f"The run ended early: the {len(rows)} API key(s) and invitation link(s) received so far are in {written}")
    return written


def finish_journal(journal: KeyJournal | None, report: RunReport) -> None:
    """After the final report is on disk: remove the journal, unless some users' markers are still set
    (the next run then finds their keys in it and keeps them)."""
    if journal is None:
        return
    if report.markers_left:
        journal.close()
    else:
        journal.finish()


def write_secret_report(
    path: str, header: Sequence[str], rows: Iterable[Sequence[object]], say: Callable[..., None]
) -> Path:
    """Write a report that holds keys (0600); an earlier report still holding keys is kept beside it."""
    kept = keep_previous_secrets(path)
    if kept:
        say(f"The previous report still held API keys or invitation links: kept as {kept}")
    return write_csv_file(path, header, rows, secret=True)
