"""Delete: delete the users a user file lists (with their keys and memberships), behind the safety net.

snapshot → delete plan (emails resolved, the deletion brake) → report paths checked → backup → audit log
→ apply → the result list and the error list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from litellm_usersync.files.backups import utc_timestamp
from litellm_usersync.files.csvfile import InputFormat, read_users_csv
from litellm_usersync.files.reportfiles import write_csv_file
from litellm_usersync.models import DesiredState, RunReport
from litellm_usersync.plans.delete import (
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    DeletePlan,
    build_delete_plan,
    error_rows,
    render_delete_plan,
    render_delete_result_counts,
    render_delete_summary,
    result_rows,
)
from litellm_usersync.proxy.userkeys import with_user_keys
from litellm_usersync.settings import ClientSettings

from ._base import Hooks, SafetyOptions, log_plan, run_lock, run_stoppable
from ._safety import apply_safely
from .snapshot import read_state

DEFAULT_CSV = "user_dellist.csv"
DEFAULT_RESULT = "user_del_result.csv"
DEFAULT_ERRORS = "user_del_error.csv"

__all__ = [
    "DEFAULT_CSV",
    "DEFAULT_ERRORS",
    "DEFAULT_RESULT",
    "ERROR_COLUMNS",
    "RESULT_COLUMNS",
    "DeleteOptions",
    "DeletePlan",
    "DeleteResult",
    "delete",
    "error_rows",
    "render_delete_plan",
    "render_delete_result_counts",
    "render_delete_summary",
]


@dataclass(frozen=True)
class DeleteOptions:
    csv_file: str = DEFAULT_CSV
    input_format: InputFormat = field(default_factory=InputFormat)
    #: refuse the run when more users would be deleted [default: the larger of 10 and 20% of managed users]
    max_delete: int | None = None
    #: block the listed users instead (``plans.deprovision``): reversible, sync reactivates them
    block: bool = False
    #: show what would be deleted, change nothing (no lock, no backup, no result files)
    dry_run: bool = False
    #: deleted users: email,user_id,status
    result_file: str = DEFAULT_RESULT
    #: rows not deleted: email,user_id,error_reason
    error_file: str = DEFAULT_ERRORS
    safety: SafetyOptions = field(default_factory=SafetyOptions)


@dataclass(frozen=True)
class DeleteResult:
    delete: DeletePlan
    #: None when nothing was applied: a dry run, or the brake refused (``delete.plan.refusals``)
    report: RunReport | None = None
    result_file: Path | None = None
    error_file: Path | None = None
    #: the result list's rows (email, user_id, status)
    deleted: tuple[tuple[str, str, str], ...] = ()
    #: the error list's rows (email, user_id, reason); on a dry run the rows that would fail
    errors: tuple[tuple[str, str, str], ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.delete.plan.refusals)

    @property
    def failed(self) -> bool:
        """Some rows failed or were not found."""
        return self.report is not None and bool(self.errors)


def delete(settings: ClientSettings, options: DeleteOptions, hooks: Hooks[DeletePlan] | None = None) -> DeleteResult:
    """Delete the users ``options.csv_file`` lists, safely; raises and stops as :func:`~.sync.sync` does."""
    hooks = hooks or Hooks()
    desired = read_users_csv(options.csv_file, fmt=options.input_format)
    with run_lock(settings.base_url, command="delete", safety=options.safety, hooks=hooks, enabled=not options.dry_run):
        return run_stoppable(lambda stop: _delete(settings, options, hooks, desired, stop), hooks)


async def _delete(
    settings: ClientSettings,
    options: DeleteOptions,
    hooks: Hooks[DeletePlan],
    desired: DesiredState,
    stop: asyncio.Event,
) -> DeleteResult:
    async with hooks.client(settings) as client:
        snapshot = await read_state(client, hooks)
        now = utc_timestamp() if options.block else None
        dp = build_delete_plan(desired, snapshot, max_delete=options.max_delete, block=options.block, now=now)
        if options.block:  # what each block stops: the keys of each user
            snapshot = await with_user_keys(client, snapshot, dp.plan)
            dp = build_delete_plan(desired, snapshot, max_delete=options.max_delete, block=True, now=now)
        log_plan(dp.plan)
        hooks.planned(dp)
        if options.dry_run or dp.plan.refusals:
            return DeleteResult(dp, errors=tuple(error_rows(dp, None)))
        hooks.applying(dp, None)
        applied = await apply_safely(
            client,
            dp.plan,
            snapshot,
            command="delete",
            safety=options.safety,
            hooks=hooks,
            stop=stop,
            report_paths=(options.result_file, options.error_file),
        )
    report = applied.report
    done = result_rows(report)
    errors = error_rows(dp, report)
    written = write_csv_file(options.result_file, RESULT_COLUMNS, done)
    err_path = write_csv_file(options.error_file, ERROR_COLUMNS, errors)
    return DeleteResult(dp, report, written, err_path, tuple(done), tuple(errors))
