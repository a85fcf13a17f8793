"""Sync: reconcile the proxy with a user file (or apply a saved plan), behind the whole safety net.

snapshot (through the last run's read cache where it may) → plan (→ after a cached read, the users it
deletes, demotes or moves read again by id, planned again if changed; → the team keys its leaves destroy,
planned again) or the saved plan's freshness check → the plan file → brakes → report path checked → key
journal → backup → audit log → apply → report file (and the read cache told what the run deleted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

from litellm_usersync.apply.cached_read import read_for_run, remember_run
from litellm_usersync.files.backups import utc_timestamp
from litellm_usersync.files.csvfile import InputFormat, read_users_csv
from litellm_usersync.files.journal import KeyJournal
from litellm_usersync.files.jsonfiles import read_plan_file, write_plan_file
from litellm_usersync.files.reportfiles import check_output_path
from litellm_usersync.files.teamsfile import read_teams_csv
from litellm_usersync.models import DesiredState, Plan, PlanOptions, ProxyFeatures, RunReport, Scope
from litellm_usersync.models.readcache import DEFAULT_FULL_READ_AFTER_S
from litellm_usersync.plans.freshness import check_plan_fresh, check_plan_scope
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.incremental import ReadPolicy
from litellm_usersync.proxy.reread import reread_for_plan
from litellm_usersync.proxy.snapshot import with_team_keys
from litellm_usersync.proxy.userkeys import with_user_keys
from litellm_usersync.render.report import SYNC_REPORT_COLUMNS, result_rows
from litellm_usersync.settings import ClientSettings

from ._base import Hooks, SafetyOptions, log_plan, run_lock, run_stoppable, state_dir
from ._safety import (
    WrittenReport,
    apply_safely,
    finish_journal,
    open_journal,
    write_partial_report,
    write_secret_report,
)

DEFAULT_CSV = "user_list.csv"
DEFAULT_REPORT = "user_sync_result.csv"


@dataclass(frozen=True)
class SyncOptions:
    """What to sync and how. ``plan`` shapes the plan (ignored with ``apply_plan``: a saved plan was shaped
    when it was made)."""

    csv_file: str = DEFAULT_CSV
    input_format: InputFormat = field(default_factory=InputFormat)
    plan: PlanOptions = field(default_factory=PlanOptions)
    #: the run's scope (``--scope``, ``USERSYNC_SCOPE``): a new plan is made with it (it replaces
    #: ``plan.scope``), a saved plan made with another one is refused. None: ``plan.scope``, or the saved plan's
    scope: Scope | None = None
    #: show the plan, change nothing (no lock, no backup, no report)
    dry_run: bool = False
    #: apply exactly this saved plan (no user file is read); refused if the users it touches changed since
    apply_plan: str | None = None
    #: save the plan here (dry runs too)
    plan_out: str | None = None
    #: the report (mode 0600: it holds new users' API keys)
    report_path: str = DEFAULT_REPORT
    safety: SafetyOptions = field(default_factory=SafetyOptions)
    #: read every user page even when the last run's cache could be used (``--full-read``)
    full_read: bool = False
    #: the full read when the cache is older than this many seconds (``--full-read-after``)
    full_read_after_s: float = DEFAULT_FULL_READ_AFTER_S
    #: ``--teams-file``: a teams CSV whose teams are created when missing and their settings updated
    teams_file: str | None = None


@dataclass(frozen=True)
class SyncResult:
    plan: Plan
    #: what was detected on the proxy
    features: ProxyFeatures
    #: None when nothing was applied: a dry run, or a plan refused by a brake (``plan.refusals``)
    report: RunReport | None = None
    report_file: WrittenReport | None = None
    backup_file: Path | None = None

    @property
    def refused(self) -> bool:
        return bool(self.plan.refusals)

    @property
    def failed(self) -> bool:
        """Some rows failed, or some new users' API keys are unknown."""
        return self.report is not None and (bool(self.report.failed) or bool(self.report.keys_unknown))


def stamped(options: PlanOptions) -> PlanOptions:
    """``options`` with the run's time where a block needs it (its record, the purge's clock), unless given:
    the planner reads no clock."""
    if options.deprovision != "block" or options.now is not None:
        return options
    return replace(options, now=utc_timestamp())


def sync(settings: ClientSettings, options: SyncOptions, hooks: Hooks[Plan] | None = None) -> SyncResult:
    """Sync the proxy with ``options.csv_file`` (or apply ``options.apply_plan``) safely; see the module.

    Raises ``UsersyncError`` subclasses when nothing could be done (bad input, bad credentials, proxy
    unreachable, run lock held; nothing changed) and ``KeyboardInterrupt`` on a second signal (the report
    with the keys received so far is written first). A first signal stops after the requests in flight:
    the result's ``report.interrupted`` is then set.
    """
    hooks = hooks or Hooks()
    saved = read_plan_file(options.apply_plan) if options.apply_plan else None
    if saved is not None:
        check_plan_scope(saved, options.scope)  # a saved plan is applied only under its own scope
    elif options.scope is not None:
        options = replace(options, plan=replace(options.plan, scope=options.scope))
    desired = None if saved else read_users_csv(options.csv_file, fmt=options.input_format)
    if desired is not None and options.teams_file:
        teams = read_teams_csv(options.teams_file)
        desired = replace(desired, teams=teams, teams_source=options.teams_file)
    # handed over in a box the run empties: once the plan is final the CSV's rows are let go (100,000 rows
    # are ~20 MB the writes and the report do not need)
    source = [desired]
    del desired
    with run_lock(settings.base_url, command="sync", safety=options.safety, hooks=hooks, enabled=not options.dry_run):
        return run_stoppable(lambda stop: _sync(settings, options, hooks, saved, source, stop), hooks)


async def _sync(
    settings: ClientSettings,
    options: SyncOptions,
    hooks: Hooks[Plan],
    saved: Plan | None,
    source: list[DesiredState | None],
    stop: asyncio.Event,
) -> SyncResult:
    desired = source.pop()
    async with hooks.client(settings) as client:
        # through the cache of the last run where it may (issue 14): only what changed since is read
        policy = ReadPolicy(full_read=options.full_read, full_read_after_s=options.full_read_after_s)
        folder = options.safety.state_dir if options.safety.state_dir is not None else state_dir()
        with hooks.progress(True) as progress:
            read = await read_for_run(client, folder, policy, on_progress=progress)
        snapshot = read.snapshot
        incremental = read.outcome.mode == "incremental"
        if saved is not None:
            if incremental:  # nothing destructive rests on the cache alone
                snapshot = (await reread_for_plan(client, snapshot, saved))[0]
            # the team keys its moves would destroy are part of what must not have changed
            snapshot = await with_team_keys(client, snapshot, saved)
            check_plan_fresh(saved, snapshot)
            plan = saved
        else:
            assert desired is not None
            plan_options = stamped(options.plan)
            plan = build_plan(desired, snapshot, plan_options)
            if incremental:
                # the users it deletes, demotes or moves, read again by id: planned again if they changed
                snapshot, changed = await reread_for_plan(client, snapshot, plan)
                read.snapshot = snapshot  # (the first snapshot's indexes go: 100,000 users hold ~15 MB of them)
                if changed:
                    del plan  # not two plans of 100,000 rows at once
                    plan = build_plan(desired, snapshot, plan_options)
            # a team leave deletes the user's keys bound to that team: read them (one read per team left) and
            # plan again, so the plan shows, counts and (keep_team_keys) keeps them
            keyed = await with_team_keys(client, snapshot, plan)
            # a block stops every key of the user: read them, so the plan names what each block stops
            keyed = await with_user_keys(client, keyed, plan)
            if keyed is not snapshot:
                snapshot = read.snapshot = keyed
                del plan
                plan = build_plan(desired, snapshot, plan_options)
        read.snapshot = snapshot
        desired = None  # the plan is final: the rows are not needed again (see sync)
        snapshot.forget_planning_indexes()
        log_plan(plan)
        hooks.planned(plan)
        if options.plan_out:
            write_plan_file(options.plan_out, plan, source=options.apply_plan or options.csv_file)
        if options.dry_run or plan.refusals:
            return SyncResult(plan, snapshot.features)
        hooks.applying(plan, None)
        check_output_path(options.report_path)
        journal: KeyJournal | None = open_journal(options.report_path, plan, command="sync", say=hooks.say)
        try:
            applied = await apply_safely(
                client,
                plan,
                snapshot,
                command="sync",
                safety=options.safety,
                hooks=hooks,
                stop=stop,
                report_paths=(options.report_path,),
                journal=journal,
            )
        except BaseException:  # a second signal, a run-ending error: the keys received so far
            write_partial_report(journal, options.report_path, SYNC_REPORT_COLUMNS, hooks.say)
            raise
        remember_run(read, applied.report)
    report = applied.report
    written = write_secret_report(options.report_path, SYNC_REPORT_COLUMNS, result_rows(report, show_keys=True))
    finish_journal(journal, markers_left=bool(report.markers_left))
    return SyncResult(plan, snapshot.features, report, written, applied.backup_file)
