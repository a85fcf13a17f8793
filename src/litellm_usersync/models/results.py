"""Outcomes: what applying each action did, per item and per run."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .plan import Action, PlanItem


class OutcomeStatus(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    status: OutcomeStatus
    error: str | None = None
    #: the plaintext key of a created user (never logged; written to the 0600 report only)
    api_key: str | None = None
    #: free-text note (e.g. "already in team", "created, key unknown after a lost response")
    note: str | None = None
    #: FAILED, yet the user exists: the create landed and a later step of the same row did not (joining a
    #: team, recording or reissuing its API key). ``add`` lists such a user as created *and* as an error.
    partial: bool = False

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.DONE


class RowStatus(enum.StrEnum):
    """What became of one plan row, decided from the outcomes' typed fields (never from their texts)."""

    SUCCESS = "success"
    FAILED = "failed"
    #: failed, but its user was created (see :attr:`Outcome.partial`)
    PARTIAL = "partial"
    #: (some of) its actions never started: the run was interrupted or aborted first; a rerun finishes it
    NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True, slots=True)  # one per row: 100,000 of them at the end of a run
class ItemResult:
    item: PlanItem
    success: bool
    error: str | None = None
    api_key: str | None = None
    note: str | None = None
    recreated: bool = False
    #: failed, but its user was created: an outcome of the row is :attr:`Outcome.partial`
    partial: bool = False
    #: failed because some of its actions were not attempted (the run stopped before them)
    not_attempted: bool = False

    @property
    def status(self) -> RowStatus:
        if self.success:
            return RowStatus.SUCCESS
        if self.not_attempted:
            return RowStatus.NOT_ATTEMPTED
        return RowStatus.PARTIAL if self.partial else RowStatus.FAILED


@dataclass(frozen=True)
class RunReport:
    results: tuple[ItemResult, ...]
    outcomes: tuple[Outcome, ...] = ()
    interrupted: bool = False
    #: why the run stopped early on its own (credentials refused mid-run); None otherwise
    aborted: str | None = None
    #: users created (or repaired) whose API key is known to no report: the next run reissues their keys
    keys_unknown: tuple[str, ...] = ()
    #: users whose "key pending" marker could not be cleared (their key is recorded; keep the journal)
    markers_left: tuple[str, ...] = ()
    #: the ``--scope`` of the run (its plan's; empty: every managed user), recorded in the report
    scope: tuple[str, ...] = ()

    @property
    def applied_any(self) -> bool:
        return any(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[ItemResult, ...]:
        return tuple(r for r in self.results if not r.success)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted
