"""Add: register the users of a user file (each with an API key and an invitation link), behind the safety net.

snapshot → add plan → report paths checked → key journal → backup → audit log → apply → invitations →
the success list (0600, keys and links), the error list, and (``update_existing``) the rows that exist.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from litellm_usersync.apply.invitations import apply_registrations
from litellm_usersync.files.csvfile import InputFormat, read_users_csv
from litellm_usersync.files.journal import KeyJournal
from litellm_usersync.files.reportfiles import check_output_path, write_csv_file
from litellm_usersync.models import DesiredState, ItemKind
from litellm_usersync.plans.add import (
    ERROR_COLUMNS,
    EXISTING_COLUMNS,
    RESULT_COLUMNS,
    AddOutcome,
    AddPlan,
    build_add_plan,
    error_rows,
    existing_rows,
    render_add_plan,
    render_add_result_counts,
    render_add_summary,
    result_rows,
)
from litellm_usersync.settings import ClientSettings

from ._base import Hooks, SafetyOptions, log_plan, run_lock, run_stoppable
from ._safety import WrittenReport, apply_safely, finish_journal, link_hook, open_journal, write_partial_report
from ._safety import write_secret_report as _write_secret_report
from .snapshot import read_state

DEFAULT_CSV = "user_addlist.csv"
DEFAULT_RESULT = "user_reg_result.csv"
DEFAULT_ERRORS = "user_reg_error.csv"
DEFAULT_UPDATE_LIST = "user_update_list.csv"

__all__ = [
    "DEFAULT_CSV",
    "DEFAULT_ERRORS",
    "DEFAULT_RESULT",
    "DEFAULT_UPDATE_LIST",
    "ERROR_COLUMNS",
    "RESULT_COLUMNS",
    "AddOptions",
    "AddOutcome",
    "AddPlan",
    "AddResult",
    "add",
    "error_rows",
    "render_add_plan",
    "render_add_result_counts",
    "render_add_summary",
    "result_rows",
]


@dataclass(frozen=True)
class AddOptions:
    csv_file: str = DEFAULT_CSV
    input_format: InputFormat = field(default_factory=InputFormat)
    #: the role of users whose row has none
    default_role: str = "proxy_admin"
    #: create invitation links (users set a password through them)
    invite: bool = True
    #: show who would be created, change nothing (no lock, no backup, no result files)
    dry_run: bool = False
    #: also write the rows whose users already exist (current role and teams) here, in sync's input format
    update_existing: str | None = None
    #: created users with their API keys and invitation links (mode 0600)
    result_file: str = DEFAULT_RESULT
    #: rows not created (or without an invitation link), with the reason
    error_file: str = DEFAULT_ERRORS
    safety: SafetyOptions = field(default_factory=SafetyOptions)


@dataclass(frozen=True)
class AddResult:
    add: AddPlan
    #: None on a dry run
    outcome: AddOutcome | None = None
    result_file: WrittenReport | None = None
    error_file: Path | None = None
    #: the error list's rows (email, role, reason); on a dry run the rows that would fail
    errors: tuple[tuple[str, str, str], ...] = ()
    #: ``update_existing``: the file written and its row count
    existing_file: Path | None = None
    existing_count: int = 0

    @property
    def failed(self) -> bool:
        """Some rows failed or already existed, or some new users' API keys are unknown."""
        return self.outcome is not None and (bool(self.errors) or bool(self.outcome.report.keys_unknown))


def add(settings: ClientSettings, options: AddOptions, hooks: Hooks[AddPlan] | None = None) -> AddResult:
    """Register the users of ``options.csv_file`` safely; raises and stops as :func:`~.sync.sync` does."""
    hooks = hooks or Hooks()
    desired = read_users_csv(options.csv_file, with_key_name=True, fmt=options.input_format)
    with run_lock(settings.base_url, command="add", safety=options.safety, hooks=hooks, enabled=not options.dry_run):
        return run_stoppable(lambda stop: _add(settings, options, hooks, desired, stop), hooks)


async def _add(
    settings: ClientSettings, options: AddOptions, hooks: Hooks[AddPlan], desired: DesiredState, stop: asyncio.Event
) -> AddResult:
    result_file = options.result_file
    async with hooks.client(settings) as client:
        snapshot = await read_state(client, hooks)
        plan = build_add_plan(desired, snapshot, default_role=options.default_role, invite=options.invite)
        log_plan(plan.plan)
        hooks.planned(plan)
        if options.dry_run:
            existing = _write_existing(plan, options)
            return AddResult(
                plan, errors=tuple(error_rows(plan, None)), existing_file=existing[0], existing_count=existing[1]
            )
        hooks.applying(plan, None)
        check_output_path(result_file)
        journal: KeyJournal | None = open_journal(
            result_file, plan.plan, command="add", say=hooks.say, changes=plan.has_changes
        )
        try:
            applied = await apply_safely(
                client,
                plan.plan,
                snapshot,
                command="add",
                safety=options.safety,
                hooks=hooks,
                stop=stop,
                report_paths=(result_file, options.error_file),
                journal=journal,
                invite=options.invite,
            )
            report = applied.report
            with hooks.progress(True) as progress:
                created = [r.item.user_id for r in AddOutcome(report).created if r.item.kind is ItemKind.ADD]
                registrations = await apply_registrations(
                    client,
                    created + [u for u in plan.invite_repairs if u not in created],
                    invite=options.invite,
                    concurrency=settings.concurrency,
                    on_progress=progress,
                    stop=stop,
                    on_link=link_hook(journal),
                )
        except BaseException:  # a second signal, a run-ending error: the keys and links received so far
            write_partial_report(journal, result_file, RESULT_COLUMNS, hooks.say)
            raise
    outcome = AddOutcome(report, registrations)
    written = _write_secret_report(result_file, RESULT_COLUMNS, result_rows(plan, outcome, show_keys=True))
    # a user whose marker is still set: the next run finds its key or link in the journal
    markers_left = bool(report.markers_left) or any(r.marker_left for r in registrations.values())
    finish_journal(journal, markers_left=markers_left)
    errors = error_rows(plan, outcome)
    err_path = write_csv_file(options.error_file, ERROR_COLUMNS, errors)
    existing = _write_existing(plan, options)
    return AddResult(plan, outcome, written, err_path, tuple(errors), *existing)


def _write_existing(plan: AddPlan, options: AddOptions) -> tuple[Path | None, int]:
    """``update_existing``: the rows whose users exist, with their current role and teams, in sync's format."""
    if not options.update_existing:
        return None, 0
    rows = existing_rows(plan)
    return write_csv_file(options.update_existing, EXISTING_COLUMNS, rows), len(rows)
