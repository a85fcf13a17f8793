"""Deprovisioning by block (issue 13): the record a block leaves on the user, the keys it reads, its actions.

LiteLLM has no user-level block. A block is made of what it has (measured on 1.110.2, docs/safety.md): every
key of the user is blocked (``/key/block``: a blocked key answers 401), the role becomes
``internal_user_viewer`` (it cannot call ``/key/generate`` itself) and ``max_budget`` 0 (a personal key,
even one an admin mints later, is refused with ``ExceededBudget``). Teams and spend stay.

What the tool changed is recorded on the user (metadata :data:`BLOCK_RECORD`), so a reactivation undoes
exactly that: it unblocks only the keys it blocked and restores the role and budget. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: user metadata key holding the :class:`BlockRecord` of a user the tool blocked
BLOCK_RECORD = "usersync_blocked"
#: the role a blocked user gets: it can view, not make keys (``/key/generate`` answers 401 for it)
BLOCKED_ROLE = "internal_user_viewer"
#: the budget a blocked user gets: its personal keys are refused (``ExceededBudget``), new ones too
BLOCKED_BUDGET = 0.0
#: the record's states. ``blocking``: written before the keys are blocked (an interrupted block is resumed);
#: ``blocked``: done; ``unblocking``: a reactivation is under way (resumed, or blocked again if the user left)
STATES = ("blocking", "blocked", "unblocking")
#: the ``--deprovision`` choices
DEPROVISION_MODES = ("delete", "block")
#: from here ``/user/update`` clears ``max_budget`` with an explicit null (1.110.2 measured; API contract §3):
#: a budget of None can be given back. Before, a block leaves the budget alone unless it had a value
BUDGET_NULL_MIN_VERSION = (1, 110)


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """What a block changed, kept in the user's metadata (never a key: ``tokens`` are the keys' hashes)."""

    at: str
    state: str
    #: the keys the tool blocked (their hashes); keys already blocked before are not here and stay blocked
    tokens: tuple[str, ...] = ()
    #: the role and budget before the block, given back on reactivation
    role: str | None = None
    max_budget: float | None = None
    #: False when the budget was left as it was (an older proxy could not give a None budget back)
    budget_zeroed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "state": self.state,
            "tokens": list(self.tokens),
            "role": self.role,
            "max_budget": self.max_budget,
            "budget_zeroed": self.budget_zeroed,
        }

    @classmethod
    def from_json(cls, value: object) -> BlockRecord | None:
        """The record, or None when there is none (or it is not one the tool wrote: then the user is left as is)."""
        if not isinstance(value, Mapping):
            return None
        at, state, tokens = value.get("at"), value.get("state"), value.get("tokens") or []
        if not isinstance(at, str) or state not in STATES or not isinstance(tokens, list):
            return None
        budget = value.get("max_budget")
        role = value.get("role")
        return cls(
            at=at,
            state=str(state),
            tokens=tuple(str(t) for t in tokens if isinstance(t, str) and t),
            role=role if isinstance(role, str) else None,
            max_budget=float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
            budget_zeroed=value.get("budget_zeroed") is not False,
        )

    @property
    def blocked_at(self) -> datetime | None:
        return parse_time(self.at)


def block_record_of(metadata: Mapping[str, Any] | None) -> BlockRecord | None:
    return BlockRecord.from_json((metadata or {}).get(BLOCK_RECORD))


def parse_time(text: str | None) -> datetime | None:
    """An ISO-8601 time (``Z`` accepted), None when unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` (a bare number is days) -> a positive timedelta; ValueError otherwise."""
    t = text.strip().lower()
    units = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
    unit = t[-1:] if t[-1:] in units else "d"
    number = t[:-1] if t[-1:] in units else t
    try:
        n = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; expected e.g. 30d, 12h, 2w") from None
    if not math.isfinite(n) or n <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return timedelta(seconds=n * units[unit])


@dataclass(frozen=True, slots=True)
class UserKey:
    """A virtual key of one user (personal or team-bound), as ``/key/list?user_id=`` shows it: ``token`` is
    the proxy's hash (addresses the key on ``/key/block``; it cannot authenticate)."""

    token: str
    user_id: str
    team_id: str | None = None
    alias: str | None = None
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class BlockUser:
    """Deprovision without destroying: record, demote (viewer, budget 0), block the keys, mark done.

    ``tokens`` are the keys the plan saw unblocked (what the block stops); the applier reads the user's keys
    again and blocks every unblocked one, recording exactly those. ``resume``: an earlier block (or a
    reactivation) was interrupted; the record on the user is kept and completed."""

    user_id: str
    email: str
    blocked_at: str
    tokens: tuple[str, ...] = ()
    old_role: str | None = None
    old_max_budget: float | None = None
    #: False: leave the budget as it is (a None budget cannot be given back on this proxy)
    zero_budget: bool = True
    resume: bool = False
    #: whether the user's keys were read for the plan (else ``tokens``/``stops`` are not known yet)
    keys_read: bool = True
    #: for the plan: the keys it stops, by alias (team-bound ones with their team), and how many were blocked
    #: already (by an admin: they stay blocked after a reactivation)
    stops: tuple[str, ...] = ()
    already_blocked: int = 0

    @property
    def key(self) -> str:
        return f"block:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ReactivateUser:
    """The way back: unblock the keys the record names, give back the role (``role``: the record's, or the
    CSV's where it says otherwise) and the budget, clear the record."""

    user_id: str
    email: str
    role: str | None
    tokens: tuple[str, ...] = ()
    max_budget: float | None = None
    restore_budget: bool = True

    @property
    def key(self) -> str:
        return f"reactivate:{self.user_id}"


def purge_due(record: BlockRecord, now: str | None, grace_s: int | None) -> bool:
    """True when ``record`` says the user was blocked (done) longer than ``grace_s`` seconds before ``now``."""
    if grace_s is None or now is None or record.state != "blocked":
        return False
    at, current = record.blocked_at, parse_time(now)
    if at is None or current is None:
        return False
    return current - at > timedelta(seconds=grace_s)
