"""Restore: plan and apply the way back to a snapshot file, behind the whole safety net.

current snapshot → restore plan (→ the team keys its leaves destroy, planned again) → brakes → report path
checked → backup → audit log → key journal → apply → report file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.errors import RefusedError
from litellm_usersync.files.backups import read_snapshot_file, snapshot_created_at, snapshot_scope
from litellm_usersync.files.journal import KeyJournal
from litellm_usersync.models import SCOPE_ENV, Plan, PlanOptions, RunReport, Scope, Snapshot
from litellm_usersync.plans.restore import build_restore_plan, scope_notice
from litellm_usersync.proxy.snapshot import with_team_keys
from litellm_usersync.render.report import SYNC_REPORT_COLUMNS, result_rows
from litellm_usersync.settings import ClientSettings

from ._base import Hooks, SafetyOptions, log_plan, run_lock, run_stoppable
from ._safety import (
    WrittenReport,
    audit_hook,
    finish_journal,
    key_hook,
    open_journal,
    prepare_safety_net,
    write_partial_report,
    write_secret_report,
)
from .snapshot import read_state

DEFAULT_RESTORE_REPORT = "user_restore_result.csv"

__all__ = [
    "DEFAULT_RESTORE_REPORT",
    "RestoreOptions",
    "RestoreResult",
    "RestoreTarget",
    "read_restore_target",
    "restore",
    "restore_scope",
    "scope_notice",
]


@dataclass(frozen=True)
class RestoreTarget:
    """A snapshot file read back: the state to restore, when it was taken and by which command."""

    path: str
    snapshot: Snapshot
    taken_at: str
    command: str
    #: the users it holds: a scoped snapshot's (``snapshot --scope``), else the default (the whole proxy)
    scope: Scope = field(default_factory=Scope)


def read_restore_target(path: str) -> RestoreTarget:
    """Read a snapshot file (``InputError`` with where it is wrong when it is not one)."""
    snapshot, doc = read_snapshot_file(path)
    return RestoreTarget(path, snapshot, snapshot_created_at(doc), str(doc.get("command", "?")), snapshot_scope(doc))


def restore_scope(taken: Scope, given: Scope | None) -> Scope:
    """A restore's scope: the snapshot's own (``snapshot --scope``), or the one given for a whole-proxy snapshot.

    A snapshot of some users cannot answer for others: restoring it under another scope is refused (else the
    users it does not hold would look "added since" and be deleted)."""
    if given is None:
        return taken
    if taken.is_default or given == taken:
        return given
    raise RefusedError(
        f"the snapshot holds only the users of the scope {taken.describe()}; this run's scope is "
        f"{given.describe()} (--scope or {SCOPE_ENV}); nothing was changed. Restore it with its own scope"
    )


@dataclass(frozen=True)
class RestoreOptions:
    target: RestoreTarget
    #: brakes and scope: ``allow_delete``, ``max_delete``, ``keep_team_keys``, the protected users (a restore
    #: never recreates a user it means to keep: ``allow_recreate`` is forced off)
    plan: PlanOptions = field(default_factory=PlanOptions)
    #: the scope given (``--scope``, ``USERSYNC_SCOPE``): None: the snapshot's own (``restore_scope``)
    scope: Scope | None = None
    #: also delete users added since that sync never deletes (no proxy role, org_admin, ...)
    all_users: bool = False
    dry_run: bool = False
    #: the report (mode 0600: it holds recreated users' new API keys)
    report_path: str = DEFAULT_RESTORE_REPORT
    safety: SafetyOptions = field(default_factory=SafetyOptions)


@dataclass(frozen=True)
class RestoreResult:
    plan: Plan
    #: None when nothing was applied: a dry run, or a plan refused by a brake (``plan.refusals``)
    report: RunReport | None = None
    report_file: WrittenReport | None = None
    backup_file: Path | None = None
    #: the run's audit log (None when the plan changed nothing) and the lines it appended
    audit_log: Path | None = None
    audit_lines: int = 0
    #: audit lines that could not be written (the run went on)
    audit_errors: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.plan.refusals)

    @property
    def failed(self) -> bool:
        return self.report is not None and bool(self.report.failed)

    @property
    def audit_file(self) -> Path | None:
        """The audit log, when this run wrote lines to it."""
        return self.audit_log if self.audit_lines else None


def restore(settings: ClientSettings, options: RestoreOptions, hooks: Hooks[Plan] | None = None) -> RestoreResult:
    """Bring the proxy back to ``options.target`` safely; raises and stops as :func:`~.sync.sync` does."""
    hooks = hooks or Hooks()
    # only the users of the scope are recreated, reverted or deleted (a scoped snapshot answers for its own)
    scope = restore_scope(options.target.scope, options.scope)
    options = replace(options, plan=replace(options.plan, scope=scope))
    with run_lock(
        settings.base_url, command="restore", safety=options.safety, hooks=hooks, enabled=not options.dry_run
    ):
        return run_stoppable(lambda stop: _restore(settings, options, hooks, stop), hooks)


async def _restore(
    settings: ClientSettings, options: RestoreOptions, hooks: Hooks[Plan], stop: asyncio.Event
) -> RestoreResult:
    plan_options = _restore_options(options.plan)
    target, report_path = options.target.snapshot, options.report_path
    async with hooks.client(settings) as client:
        current = await read_state(client, hooks)
        plan = build_restore_plan(target, current, plan_options, all_users=options.all_users)
        # a team leave deletes the user's keys bound to that team: read them (one read per team left) and plan
        # again, so the plan shows, counts and (keep_team_keys) keeps them, and the backup names them
        keyed = await with_team_keys(client, current, plan)
        if keyed is not current:
            current = keyed
            plan = build_restore_plan(target, current, plan_options, all_users=options.all_users)
        log_plan(plan)
        hooks.planned(plan)
        if options.dry_run or plan.refusals:
            return RestoreResult(plan)
        audit = backup_file = None
        if plan.has_changes:
            net = prepare_safety_net(
                current,
                command="restore",
                safety=SafetyOptions(
                    backup_dir=options.safety.backup_dir, no_backup=False, audit_log=options.safety.audit_log
                ),
                master_key=settings.master_key,
                report_paths=(report_path,),
            )
            audit, backup_file = net.audit, net.backup_file
        hooks.applying(plan, backup_file)
        journal: KeyJournal | None = open_journal(report_path, plan, command="restore", say=hooks.say)
        try:
            with hooks.progress(plan.has_changes) as progress:
                report = await apply_plan(
                    client,
                    plan,
                    concurrency=settings.concurrency,
                    on_progress=progress,
                    stop=stop,
                    on_outcome=audit_hook(audit, plan),
                    on_key=key_hook(journal),
                    recorded_keys=journal.recorded if journal else None,
                )
        except BaseException:  # a second signal, a run-ending error: the keys received so far
            write_partial_report(journal, report_path, SYNC_REPORT_COLUMNS, hooks.say)
            raise
    written = write_secret_report(report_path, SYNC_REPORT_COLUMNS, result_rows(report, show_keys=True))
    finish_journal(journal, markers_left=bool(report.markers_left))
    return RestoreResult(
        plan,
        report,
        written,
        backup_file,
        audit_log=audit.path if audit else None,
        audit_lines=audit.lines_written if audit else 0,
        audit_errors=tuple(str(e) for e in audit.write_errors) if audit else (),
    )


def _restore_options(given: PlanOptions) -> PlanOptions:
    """A restore never deletes a user it means to keep (no recreation), whatever the caller passed."""
    return replace(given, allow_recreate=False)
