"""The live state read from the proxy: users, teams, team keys, the proxy's features, the snapshot."""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES, normalize_email, normalize_team_name

from .blocking import BlockRecord, UserKey, block_record_of
from .fields import live_value

#: user metadata markers: set when the tool creates a user, cleared once the secret is durably recorded
KEY_PENDING = "usersync_key_pending"
INVITE_PENDING = "usersync_invite_pending"
#: the "managed by" marker in the metadata of every user this tool creates (``metadata[KEY] == VALUE``)
MANAGED_MARKER_KEY = "managed_by"
MANAGED_MARKER_VALUE = "litellm-usersync"


def without_marker(metadata: Mapping[str, Any], marker: str) -> dict[str, Any]:
    """``metadata`` with ``marker`` cleared, for ``/user/update`` (which replaces the whole dict, and drops an
    empty one: then the marker is sent as null)."""
    out = {k: v for k, v in metadata.items() if k != marker}
    return out or {marker: None}


#: equal tuples of strings (team ids, models) shared between users: 100,000 users in 50 teams keep 50 tuples
_SHARED_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
_SHARED_TUPLES_MAX = 4096


def shared_strings(values: Iterable[Any]) -> tuple[str, ...]:
    """``values`` as a tuple of interned strings, the same tuple object for equal values (bounded: past
    ``_SHARED_TUPLES_MAX`` distinct ones, each is its own). Nobody mutates a tuple: sharing is safe."""
    t = tuple(sys.intern(str(v)) for v in values)
    if not t:
        return ()
    shared = _SHARED_TUPLES.get(t)
    if shared is None:
        if len(_SHARED_TUPLES) < _SHARED_TUPLES_MAX:
            _SHARED_TUPLES[t] = t
        return t
    return shared


@dataclass(frozen=True, slots=True)
class LiveUser:
    user_id: str
    email: str | None
    role: str | None
    team_ids: tuple[str, ...] = ()
    key_count: int = 0
    spend: float = 0.0
    user_alias: str | None = None
    max_budget: float | None = None
    models: tuple[str, ...] = ()
    created_at: str | None = None
    updated_at: str | None = None
    managed_marker: bool = False
    #: set at creation (metadata ``usersync_key_pending``) and cleared once the new key is on disk: still set
    #: means the run that created the user died before recording its key, so nobody holds that key
    key_pending: bool = False
    #: the same for ``add``'s invitation link (``usersync_invite_pending``)
    invite_pending: bool = False
    #: what else ``/user/new`` can set, kept so that the fallback recreation brings the user back whole
    #: (``RECREATE_FIELDS`` names them); dict values are excluded from hashing
    budget_duration: str | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    max_parallel_requests: int | None = None
    sso_user_id: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    model_max_budget: Mapping[str, Any] | None = field(default=None, hash=False)

    @property
    def email_key(self) -> str:
        return normalize_email(self.email) if self.email else ""

    @property
    def is_manageable(self) -> bool:
        """Users the sync may touch at all: with an email, and never ``default_user_id``."""
        return bool(self.email_key) and self.user_id != DEFAULT_USER_ID

    @property
    def is_managed(self) -> bool:
        """Users the sync may delete: manageable and holding one of the four proxy roles."""
        return self.is_manageable and self.role in PROXY_ROLES

    @property
    def block_record(self) -> BlockRecord | None:
        """What the tool's block changed (metadata ``usersync_blocked``); None: not blocked by the tool."""
        return block_record_of(self.metadata)


#: ``LiveUser`` attributes that are also ``/user/new`` fields of the same name: a recreation sends each one set
RECREATE_FIELDS = (
    "user_alias",
    "max_budget",
    "budget_duration",
    "models",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "sso_user_id",
    "metadata",
    "model_max_budget",
)


@dataclass(frozen=True, slots=True)
class TeamMember:
    user_id: str | None
    email: str | None
    role: str


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    alias: str | None
    members: tuple[TeamMember, ...] = ()
    #: True when ``members`` is the roster as read (``members_with_roles`` from the proxy, or a backup's
    #: ``members``): then the roster alone says who is a member. False: no roster was read for this team,
    #: and the users' own ``teams`` lists stand in for it.
    roster_read: bool = False
    #: the settings a teams file may manage (``fields.TEAM_FIELDS``); ``models`` empty: every model
    max_budget: float | None = None
    budget_duration: str | None = None
    models: tuple[str, ...] = ()
    tpm_limit: int | None = None
    rpm_limit: int | None = None

    @property
    def display_name(self) -> str:
        return self.alias or self.team_id


@dataclass(frozen=True, slots=True)
class TeamKey:
    """A virtual key bound to a team. ``token`` is the proxy's hash of the key (never the key itself): with the
    master key it addresses the key on ``/key/update``, it cannot authenticate."""

    token: str
    user_id: str
    team_id: str
    alias: str | None = None


#: the batch endpoints, by the kind of action they serve (the client knows their routes)
BATCH_KINDS = ("create", "delete", "leave", "update", "join")
#: the first LiteLLM version whose ``/user/delete`` was measured to clean the rosters of the teams in
#: ``user.teams`` (1.74.15.post2; 1.74.0 leaves them, see docs/safety.md)
DELETE_CASCADE_MIN_VERSION = (1, 74, 15)
#: from here ``/user/new`` answers a duplicate email with 409 (1.110.2 measured), before with 400
DUPLICATE_409_MIN_VERSION = (1, 100)


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``"1.74.15.post2"`` -> ``(1, 74, 15)``; None when it does not start with ``MAJOR.MINOR``."""
    if not text:
        return None
    head = text.strip().lstrip("vV").split(".")
    nums: list[int] = []
    for part in head[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        nums.append(int(digits))
        if digits != part:
            break
    return tuple(nums) if len(nums) >= 2 else None


@dataclass(frozen=True)
class ProxyFeatures:
    """What the proxy can do, detected once per run with the snapshot's read (``ProxyClient.detect_features``).

    The defaults are the safest path, taken for an unknown or unparsable version: no batch route, a
    ``/user/delete`` that leaves rosters behind (so users leave their teams first), a duplicate-email check
    that may let a different-case duplicate through (only the tool's own case-insensitive match guards).
    """

    version: str | None = None
    #: batch kind (:data:`BATCH_KINDS`) -> whether its route exists, found by asking the route itself
    #: (a 404 means absent), not by the version number
    batch_routes: Mapping[str, bool] = field(default_factory=dict)
    #: False with ``--no-bulk``: the batch routes are detected and reported but not used
    bulk_allowed: bool = True
    #: True when ``/user/delete`` also removes the users from the rosters of the teams in ``user.teams``
    delete_cascades: bool = False
    delete_cascade_basis: str = "unknown version: assumed not to cascade (users leave their teams first)"
    #: how ``/user/new`` refuses a duplicate email: "case-insensitive" or "case-sensitive"
    duplicate_email_check: str = "case-sensitive"
    #: the status of that refusal (409 or 400); None when unknown
    duplicate_email_status: int | None = None

    @classmethod
    def from_version(
        cls, version: str | None, batch_routes: Mapping[str, bool], *, bulk_allowed: bool = True
    ) -> ProxyFeatures:
        """The rules that need the version (documented in docs/safety.md); unknown versions keep the defaults."""
        v = version_tuple(version)
        if v is None:
            shown = f"unparsable version {version!r}" if version else "unknown version"
            return cls(
                version=version,
                batch_routes=dict(batch_routes),
                bulk_allowed=bulk_allowed,
                delete_cascade_basis=f"{shown}: assumed not to cascade (users leave their teams first)",
            )
        shown_v = ".".join(map(str, v))
        min_v = ".".join(map(str, DELETE_CASCADE_MIN_VERSION))
        cascades = v >= DELETE_CASCADE_MIN_VERSION
        basis = (
            f"version {shown_v} >= {min_v}: /user/delete cleans the rosters of the teams in user.teams"
            if cascades
            else f"version {shown_v} < {min_v}: /user/delete leaves rosters behind (users leave their teams first)"
        )
        return cls(
            version=version,
            batch_routes=dict(batch_routes),
            bulk_allowed=bulk_allowed,
            delete_cascades=cascades,
            delete_cascade_basis=basis,
            duplicate_email_check="case-insensitive" if cascades else "case-sensitive",
            duplicate_email_status=409 if v >= DUPLICATE_409_MIN_VERSION else 400,
        )

    def uses_batch(self, kind: str) -> bool:
        return self.bulk_allowed and bool(self.batch_routes.get(kind))

    def describe(self) -> str:
        """One line for ``--debug``."""
        routes = ", ".join(f"{k} {'yes' if self.batch_routes.get(k) else 'no'}" for k in BATCH_KINDS)
        used = "" if self.bulk_allowed else " (not used: --no-bulk)"
        status = f" ({self.duplicate_email_status})" if self.duplicate_email_status else ""
        return (
            f"LiteLLM {self.version or 'version unknown'}; batch routes: {routes}{used}; "
            f"/user/delete cascades: {'yes' if self.delete_cascades else 'no'} ({self.delete_cascade_basis}); "
            f"duplicate-email check: {self.duplicate_email_check}{status}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "litellm_version": self.version,
            "batch_routes": {k: bool(self.batch_routes.get(k)) for k in BATCH_KINDS},
            "bulk_allowed": self.bulk_allowed,
            "delete_cascades": self.delete_cascades,
            "delete_cascade_basis": self.delete_cascade_basis,
            "duplicate_email_check": self.duplicate_email_check,
            "duplicate_email_status": self.duplicate_email_status,
        }


@dataclass(frozen=True)
class Snapshot:
    """The whole live state, read once, with the indexes the planner needs."""

    users: tuple[LiveUser, ...]
    teams: tuple[Team, ...]
    proxy_version: str | None = None
    caller_user_id: str = DEFAULT_USER_ID
    #: what the proxy can do, detected with this read (the safest assumptions when not detected)
    features: ProxyFeatures = field(default_factory=ProxyFeatures)
    #: keys bound to the teams a plan removes users from (read only for those teams, only on proxies whose
    #: team leave deletes them, API contract §2.12): what a move would destroy
    team_keys: tuple[TeamKey, ...] = ()
    #: every key of the users a plan blocks (``/key/list?user_id=``), and whose keys were read (a block of a
    #: user not in ``user_keys_read`` does not know what it stops yet)
    user_keys: tuple[UserKey, ...] = ()
    user_keys_read: frozenset[str] = frozenset()

    def keys_of(self, user_id: str) -> tuple[UserKey, ...]:
        return tuple(sorted((k for k in self.user_keys if k.user_id == user_id), key=lambda k: k.token))

    def team_keys_of(self, user_id: str, team_id: str) -> tuple[TeamKey, ...]:
        return self._team_keys_index.get((user_id, team_id), ())

    @cached_property
    def _team_keys_index(self) -> dict[tuple[str, str], tuple[TeamKey, ...]]:
        index: dict[tuple[str, str], list[TeamKey]] = {}
        for k in self.team_keys:
            index.setdefault((k.user_id, k.team_id), []).append(k)
        return {pair: tuple(sorted(keys, key=lambda k: k.token)) for pair, keys in index.items()}

    @cached_property
    def users_by_id(self) -> dict[str, LiveUser]:
        return {u.user_id: u for u in self.users}

    @cached_property
    def users_by_email_key(self) -> dict[str, tuple[LiveUser, ...]]:
        """``email key -> the manageable users with it`` (more than one: a conflict). Tuples: 48 bytes a user,
        where a list was 88."""
        index: dict[str, tuple[LiveUser, ...]] = {}
        for u in self.users:
            if u.is_manageable:
                key = u.email_key
                index[key] = (*index[key], u) if key in index else (u,)
        return index

    def forget_planning_indexes(self) -> None:
        """Let go of the indexes only planning reads (by email key, the name memos); they are built again if
        asked for. A run calls it once its plan is final: at 100,000 users they are ~10 MB the writes do not
        need."""
        for name in ("users_by_email_key", "_team_names_memo", "_sorted_ids_memo"):
            self.__dict__.pop(name, None)

    @cached_property
    def teams_by_id(self) -> dict[str, Team]:
        return {t.team_id: t for t in self.teams}

    @cached_property
    def team_ids_by_name(self) -> dict[str, list[str]]:
        """``normalize_team_name(alias) -> [team_id, ...]``. Teams without an alias are named by their id."""
        index: dict[str, list[str]] = {}
        for t in self.teams:
            index.setdefault(normalize_team_name(t.display_name), []).append(t.team_id)
        return index

    @cached_property
    def memberships(self) -> dict[str, frozenset[str]]:
        """``user_id -> team ids`` (a set): the roster is the truth.

        A team whose roster was read (:attr:`Team.roster_read`) counts exactly the users its roster lists.
        A user's own ``teams`` list counts only for a team without a read roster: LiteLLM 1.74 appends a team
        id to ``user.teams`` again for a user already on the roster and removes one copy per leave, so that
        list can name a team the user has left (and repeat it). Only teams that exist are counted: a stale
        id in ``user.teams`` of a deleted team is ignored.
        """
        result: dict[str, set[str]] = {}
        for t in self.teams:
            for m in t.members:
                if m.user_id:
                    result.setdefault(m.user_id, set()).add(t.team_id)
        known = self.teams_by_id
        for u in self.users:
            for tid in set(u.team_ids):
                if tid in known and not known[tid].roster_read:
                    result.setdefault(u.user_id, set()).add(tid)
        # one frozenset per distinct set of teams, shared by every user in it (100,000 users in 50 teams: 50
        # sets, not 100,000 of ~200 bytes each)
        shared: dict[frozenset[str], frozenset[str]] = {}
        return {uid: shared.setdefault(frozenset(tids), frozenset(tids)) for uid, tids in result.items()}

    def team_ids_of(self, user_id: str) -> frozenset[str]:
        return self.memberships.get(user_id, frozenset())

    def team_names_of(self, user_id: str) -> tuple[str, ...]:
        return self.team_names(self.team_ids_of(user_id))

    def team_names(self, team_ids: Iterable[str]) -> tuple[str, ...]:
        """The names of these teams, sorted; for a set of ids, one shared tuple per distinct set (a plan of
        100,000 users keeps a few dozen, not two per user)."""
        if isinstance(team_ids, frozenset):
            names = self._team_names_memo.get(team_ids)
            if names is None:
                names = self._team_names_memo[team_ids] = self._team_names(team_ids)
            return names
        return self._team_names(team_ids)

    def sorted_team_ids(self, team_ids: frozenset[str]) -> tuple[str, ...]:
        """``tuple(sorted(team_ids))``, one shared tuple per distinct set (as :meth:`team_names`)."""
        ids = self._sorted_ids_memo.get(team_ids)
        if ids is None:
            ids = self._sorted_ids_memo[team_ids] = tuple(sorted(team_ids))
        return ids

    def _team_names(self, team_ids: Iterable[str]) -> tuple[str, ...]:
        teams = self.teams_by_id
        return tuple(sorted((teams[t].display_name if t in teams else t) for t in team_ids))

    @cached_property
    def _team_names_memo(self) -> dict[frozenset[str], tuple[str, ...]]:
        return {}

    @cached_property
    def _sorted_ids_memo(self) -> dict[frozenset[str], tuple[str, ...]]:
        return {}

    def fingerprint_of(self, user_ids: Iterable[str], fields: Mapping[str, Iterable[str]] | None = None) -> str:
        """A digest of what the planner saw of these users (role, email, teams): detects stale plans.

        ``fields`` (``user_id`` or ``team:<team_id>`` -> field names) adds the managed fields a plan changes, as
        it saw them; plans that change none hash as before."""
        h = hashlib.sha256()
        for owner in sorted(fields or {}):
            names = sorted(set((fields or {})[owner]))
            team = owner.startswith("team:")
            obj = self.teams_by_id.get(owner[len("team:") :]) if team else self.users_by_id.get(owner)
            shown = "<absent>" if obj is None else "|".join(f"{n}={live_value(obj, n)!r}" for n in names)
            h.update(f"fields|{owner}|{shown}\n".encode())
        for uid in sorted(set(user_ids)):
            u = self.users_by_id.get(uid)
            if u is None:
                h.update(f"{uid}|<absent>\n".encode())
            else:
                teams = ",".join(sorted(self.team_ids_of(uid)))
                h.update(f"{uid}|{u.email_key}|{u.role}|{teams}\n".encode())
                # the team keys a move of this user would destroy (only when they were read: old hashes hold)
                keys = ",".join(sorted(f"{k.team_id}/{k.token}" for k in self.team_keys if k.user_id == uid))
                if keys:
                    h.update(f"{uid}|keys|{keys}\n".encode())
        return h.hexdigest()
