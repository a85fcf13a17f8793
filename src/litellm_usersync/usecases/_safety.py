"""The safety net every changing use case shares: report paths checked, a snapshot backup and an audit log
set up before the first change, every API key in the key journal as it arrives, reports kept from loss."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.errors import InputError
from litellm_usersync.files.audit import AuditLog, audit_path, new_run_id
from litellm_usersync.files.backups import write_backup
from litellm_usersync.files.journal import KeyJournal, journal_rows
from litellm_usersync.files.reportfiles import check_output_path, keep_previous_secrets, write_csv_file
from litellm_usersync.models import Outcome, Plan, RunReport, Snapshot
from litellm_usersync.proxy.client import ProxyClient

from ._base import Hooks, SafetyOptions


@dataclass(frozen=True)
class WrittenReport:
    """A report file the run wrote; ``kept``: where an earlier report still holding keys was moved."""

    path: Path
    kept: Path | None = None


def make_audit_log(safety: SafetyOptions, *, command: str, master_key: str | None) -> AuditLog:
    """The run's audit log: ``audit_log`` or ``<backup_dir>/audit.jsonl``, a new run id, the master key masked."""
    return AuditLog(
        safety.audit_log or audit_path(safety.backup_dir),
        run_id=new_run_id(),
        command=command,
        secrets=(master_key,) if master_key else (),
    )


@dataclass(frozen=True)
class SafetyNet:
    audit: AuditLog
    #: the snapshot written before the first change (None with ``no_backup``)
    backup_file: Path | None


def prepare_safety_net(
    snapshot: Snapshot,
    *,
    command: str,
    safety: SafetyOptions,
    master_key: str | None,
    report_paths: Sequence[str] = (),
) -> SafetyNet:
    """Before the first change: check the report paths (a report that cannot be written would lose the new
    keys), write the backup and check the audit log is writable, or stop (``InputError``, nothing changed).

    The backup is the snapshot the plan was made from: no extra read of the proxy.
    """
    for path in report_paths:
        check_output_path(path)
    try:
        backup_file = None if safety.no_backup else write_backup(snapshot, safety.backup_dir, command=command)
        audit = make_audit_log(safety, command=command, master_key=master_key)
        audit.check_writable()
    except OSError as exc:
        raise InputError(f"cannot write the backup or the audit log ({exc}); nothing was changed") from None
    return SafetyNet(audit, backup_file)


def audit_hook(audit: AuditLog | None, plan: Plan) -> Callable[[Outcome], None] | None:
    return audit.for_plan(plan) if audit else None


@dataclass(frozen=True)
class Applied:
    report: RunReport
    #: the snapshot written before the first change (None with ``no_backup`` or nothing to change)
    backup_file: Path | None


async def apply_safely(
    client: ProxyClient,
    plan: Plan,
    snapshot: Snapshot,
    *,
    command: str,
    safety: SafetyOptions,
    hooks: Hooks[Any],
    stop: asyncio.Event,
    report_paths: Sequence[str] = (),
    journal: KeyJournal | None = None,
    invite: bool = False,
) -> Applied:
    """Apply ``plan`` the way sync, add and delete do: report paths checked, backup and audit log first (when
    there is something to change), progress through the hooks, one audit line per outcome, every API key in
    ``journal`` (on disk) as it arrives."""
    for path in report_paths:
        check_output_path(path)  # also for a run without changes: its report is written too
    audit = None
    backup_file = None
    if plan.has_changes:
        net = prepare_safety_net(snapshot, command=command, safety=safety, master_key=client.settings.master_key)
        audit, backup_file = net.audit, net.backup_file
        if backup_file:
            hooks.warn(f"Backup of the current state: {backup_file}")
    with hooks.progress(plan.has_changes) as progress:
        report = await apply_plan(
            client,
            plan,
            concurrency=client.settings.concurrency,
            on_progress=progress,
            stop=stop,
            on_outcome=audit_hook(audit, plan),
            on_key=key_hook(journal),
            recorded_keys=journal.recorded if journal else None,
            invite=invite,
            before=snapshot,
            backup_file=str(backup_file) if backup_file else None,
        )
    if audit and audit.write_errors:
        hooks.warn(f"Warning: {len(audit.write_errors)} audit line(s) could not be written to {audit.path}")
    return Applied(report, backup_file)


def open_journal(
    report_path: str, plan: Plan, *, command: str, say: Callable[[str], None], changes: bool | None = None
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


def key_hook(journal: KeyJournal | None) -> Callable[[str, str, str, str | None], None] | None:
    if journal is None:
        return None

    def on_key(user_id: str, email: str, api_key: str, note: str | None) -> None:
        journal.record(user_id, email, api_key=api_key, note=note)

    return on_key


def link_hook(journal: KeyJournal | None) -> Callable[[str, str], None] | None:
    """``on_link`` for :func:`~..apply.invitations.apply_registrations`: each invitation link into the journal."""
    if journal is None:
        return None

    def on_link(user_id: str, url: str) -> None:
        journal.record(user_id, "", invitation_url=url)

    return on_link


def write_partial_report(
    journal: KeyJournal | None, path: str, columns: Sequence[str], say: Callable[[str], None]
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
    written = write_secret_report(path, columns, rows)
    if written.kept:
        say(kept_notice(written.kept))
    say(f"The run ended early: the {len(rows)} API key(s) and invitation link(s) received so far are in {written.path}")
    return written.path


def finish_journal(journal: KeyJournal | None, *, markers_left: bool) -> None:
    """After the final report is on disk: remove the journal, unless some users' markers are still set
    (the next run then finds their keys in it and keeps them)."""
    if journal is None:
        return
    if markers_left:
        journal.close()
    else:
        journal.finish()


def kept_notice(kept: Path) -> str:
    return f"The previous report still held API keys or invitation links: kept as {kept}"


def write_secret_report(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> WrittenReport:
    """Write a report that holds keys (0600); an earlier report still holding keys is kept beside it."""
    kept = keep_previous_secrets(path)
    return WrittenReport(write_csv_file(path, header, rows, secret=True), kept)
