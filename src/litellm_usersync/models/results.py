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

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.DONE


@dataclass(frozen=True)
class ItemResult:
    item: PlanItem
    success: bool
    error: str | None = None
    api_key: str | None = None
    note: str | None = None
    recreated: bool = False


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

    @property
    def applied_any(self) -> bool:
        return any(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[ItemResult, ...]:
        return tuple(r for r in self.results if not r.success)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted
