"""Plans: the actions that change one user, plan items, options and the plan itself."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from litellm_usersync.identity import normalize_email

from .blocking import BlockUser, ReactivateUser
from .fields import FieldChange, FieldValue
from .scope import Scope


class ItemKind(enum.StrEnum):
    """What a plan item does to one user; values are the report's ``action`` column."""

    ADD = "ADDED"
    DELETE = "DELETED"
    UPDATE = "UPDATED"
    UNCHANGED = "UNCHANGED"
    #: ``--deprovision block``: the user's keys blocked, role viewer, budget 0 (models.blocking)
    BLOCK = "BLOCKED"
    #: a user the tool blocked is back in the CSV: exactly what the block changed is undone
    REACTIVATE = "REACTIVATED"


@dataclass(frozen=True, slots=True)
class CreateUser:
    user_id: str
    email: str
    role: str
    team_ids: tuple[str, ...] = ()
    key_alias: str | None = None
    create_key: bool = True
    #: the managed fields the new user gets (:mod:`.fields`; only values set, never a clear)
    fields: tuple[tuple[str, FieldValue], ...] = ()

    @property
    def key(self) -> str:
        return f"create:{self.user_id}"


@dataclass(frozen=True, slots=True)
class DeleteUser:
    user_id: str
    email: str
    #: the user's teams; older proxies leave rosters behind on delete, so the executor leaves them first
    team_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"delete:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ChangeRole:
    user_id: str
    email: str
    old_role: str | None
    new_role: str

    @property
    def key(self) -> str:
        return f"role:{self.user_id}"


@dataclass(frozen=True, slots=True)
class UpdateUser:
    """Several fields of one user in one ``/user/update``: the managed fields that differ (``changes``) and the
    role when it changes too (``new_role``; None keeps it). A change of the role alone stays a
    :class:`ChangeRole` (the seed's "role change")."""

    user_id: str
    email: str
    old_role: str | None
    new_role: str | None
    changes: tuple[FieldChange, ...] = ()

    @property
    def key(self) -> str:
        return f"update:{self.user_id}"


@dataclass(frozen=True, slots=True)
class CreateTeam:
    """A team the CSV names that does not exist (``--create-teams``), or a row of the teams file: created with
    ``team_id`` (chosen by the planner, so a retried create is detected) and alias ``name``."""

    team_id: str
    name: str
    fields: tuple[tuple[str, FieldValue], ...] = ()
    line: int = 0

    @property
    def key(self) -> str:
        return f"team-create:{self.team_id}"

    @property
    def user_id(self) -> str:
        return ""

    @property
    def email(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class UpdateTeam:
    """A team's settings that differ from the teams file's row (``/team/update``; members are not touched)."""

    team_id: str
    name: str
    changes: tuple[FieldChange, ...] = ()
    line: int = 0

    @property
    def key(self) -> str:
        return f"team-update:{self.team_id}"

    @property
    def user_id(self) -> str:
        return ""

    @property
    def email(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class AddMembership:
    user_id: str
    email: str
    team_id: str

    @property
    def key(self) -> str:
        return f"join:{self.user_id}:{self.team_id}"


@dataclass(frozen=True, slots=True)
class RemoveMembership:
    user_id: str
    email: str
    team_id: str
    #: keys of actions that must have succeeded first (add-before-remove, re-bind-before-remove)
    requires: tuple[str, ...] = ()
    #: the user's keys bound to this team, which the leave deletes (API contract §2.12)
    destroys_keys: int = 0

    @property
    def key(self) -> str:
        return f"leave:{self.user_id}:{self.team_id}"


@dataclass(frozen=True, slots=True)
class RebindKeys:
    """``--keep-team-keys``: before the user leaves ``from_team``, bind its keys there to ``to_team`` (the leave
    would delete them). ``tokens`` are the keys' hashes (never a key)."""

    user_id: str
    email: str
    from_team: str
    to_team: str
    tokens: tuple[str, ...] = ()
    #: keys of actions that must have succeeded first (the join of ``to_team``)
    requires: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"rebind:{self.user_id}:{self.from_team}"


@dataclass(frozen=True, slots=True)
class RecreateUser:
    """Fallback: delete and create again with the same id, email, role and teams. Keys are lost."""

    user_id: str
    email: str
    role: str
    team_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"recreate:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ReissueKey:
    """Repair after an interrupted run: the user's key was never recorded (nobody holds it). Revoke the
    user's keys that no report or journal holds, issue a new one, record it like a new user's key."""

    user_id: str
    email: str
    key_alias: str | None = None

    @property
    def key(self) -> str:
        return f"reissue:{self.user_id}"


@dataclass(frozen=True, slots=True)
class AdoptUser:
    """``--adopt``: write the tool's marker (``metadata.managed_by``) into an existing user the CSV lists, keeping
    the rest of its metadata; from then on the user is in the ``managed`` scope."""

    user_id: str
    email: str

    @property
    def key(self) -> str:
        return f"adopt:{self.user_id}"


Action = (
    CreateUser
    | DeleteUser
    | ChangeRole
    | UpdateUser
    | AddMembership
    | RemoveMembership
    | RecreateUser
    | ReissueKey
    | RebindKeys
    | AdoptUser
    | BlockUser
    | ReactivateUser
    | CreateTeam
    | UpdateTeam
)
#: the actions on teams (a plan's ``teams``), applied before any user action
TeamAction = CreateTeam | UpdateTeam


@dataclass(frozen=True, slots=True)
class PlanItem:
    """Everything the plan does (or refuses to do) to one user: one report row."""

    kind: ItemKind
    email: str
    user_id: str
    role: str | None
    team_names: tuple[str, ...]
    actions: tuple[Action, ...] = ()
    old_role: str | None = None
    old_team_names: tuple[str, ...] = ()
    #: set when the item cannot be applied (team not found, conflict); the row fails, nothing is sent
    blocked: str | None = None
    #: destructive facts shown in the plan (keys and spend lost on deletion)
    key_count: int = 0
    spend: float = 0.0
    #: True when a failed verification would recreate this user (team changes with recreate allowed)
    may_recreate: bool = False
    #: True when the role is the default role (--user-role) because the CSV row gave none
    role_from_default: bool = False
    line: int = 0
    #: team ids the user should end up in, and those it was in (for verification after team moves)
    team_ids: tuple[str, ...] = ()
    old_team_ids: tuple[str, ...] = ()
    #: team names of the CSV row that resolve to no team, each with why (``no such team; did you mean x?``)
    unresolved_teams: tuple[tuple[str, str], ...] = ()
    #: team keys the move destroys (the leave deletes the user's keys bound to that team), and those it re-binds
    #: to the new team instead (--keep-team-keys)
    team_keys_destroyed: int = 0
    team_keys_rebound: int = 0

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)

    @property
    def field_changes(self) -> tuple[FieldChange, ...]:
        """The managed fields this item changes (an update's), in the CSV's column order."""
        return tuple(c for a in self.actions if isinstance(a, UpdateUser) for c in a.changes)

    @property
    def new_fields(self) -> tuple[tuple[str, FieldValue], ...]:
        """The managed fields a new user is created with."""
        return tuple(f for a in self.actions if isinstance(a, CreateUser) for f in a.fields)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A live user the plan deliberately leaves alone, and why (protected, --no-delete, ...)."""

    email: str
    user_id: str
    reason: str


@dataclass(frozen=True)
class PlanOptions:
    allow_add: bool = True
    allow_delete: bool = True
    allow_update: bool = True
    allow_recreate: bool = True
    default_role: str = "proxy_admin"
    create_keys: bool = True
    #: None: the larger of MIN_DELETE_BRAKE and DELETE_BRAKE_RATIO of the managed users
    max_delete: int | None = None
    #: emails never deleted or demoted (``--protect``); keyed (``normalize_email``) on construction
    protected_emails: frozenset[str] = frozenset()
    protected_roles: frozenset[str] = frozenset()
    #: let the fallback recreate a user who holds API keys (they are deleted with it); off: such a row FAILS
    recreate_with_keys: bool = False
    #: re-bind the team keys a move would destroy to the user's new team (one team -> one other), else refuse
    keep_team_keys: bool = False
    #: the users the plan answers for (``--scope``); outside it nobody is deleted, demoted or moved
    scope: Scope = field(default_factory=Scope)
    #: ``--adopt``: mark the existing users the CSV lists as managed (and plan them even outside the scope)
    adopt: bool = False
    #: what happens to a managed user no longer in the source: "delete" (the seed's) or "block" (models.blocking)
    deprovision: str = "delete"
    #: delete users the tool blocked longer ago than this many seconds (``--purge-blocked-after``); None: never
    purge_blocked_after_s: int | None = None
    #: the time of the run (ISO-8601, UTC), given by the caller: a block's record, the purge's clock. The
    #: planner reads no clock; None: no block is stamped with a time, no purge is due
    now: str | None = None
    #: --create-teams: a team the CSV names that does not exist is created (alias = the name) before the joins
    create_teams: bool = False
    #: --max-create-teams: a plan creating more teams than this is refused
    max_create_teams: int = 10

    def __post_init__(self) -> None:
        # the one place --protect emails are keyed: every planner and the executor compare email keys
        keyed = frozenset(normalize_email(e) for e in self.protected_emails)
        if keyed != self.protected_emails:
            object.__setattr__(self, "protected_emails", keyed)


@dataclass(frozen=True)
class Plan:
    items: tuple[PlanItem, ...]
    skipped: tuple[Skipped, ...] = ()
    #: reasons the whole plan must not be applied (safety brakes); empty when it may run
    refusals: tuple[str, ...] = ()
    fingerprint: str = ""
    options: PlanOptions = field(default_factory=PlanOptions)
    #: team id -> display name (alias) of every team the plan refers to, for messages
    team_labels: Mapping[str, str] = field(default_factory=dict)
    #: the --max-delete brake in force (explicit or default) when the plan was made: deletions, destroyed team
    #: keys and the fallback's recreations together stay within it. None: unknown (a plan file from before)
    delete_limit: int | None = None
    #: users the plan would manage without its scope (``options.scope``) and leaves alone because of it
    out_of_scope: int = 0
    #: the teams the plan creates (--create-teams, --teams-file) or whose settings it changes (--teams-file),
    #: applied before any user action
    teams: tuple[TeamAction, ...] = ()

    def team_label(self, team_id: str) -> str:
        return self.team_labels.get(team_id, team_id)

    def of_kind(self, kind: ItemKind) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.kind is kind)

    @property
    def counts(self) -> Mapping[ItemKind, int]:
        return {k: sum(1 for i in self.items if i.kind is k) for k in ItemKind}

    @property
    def actions(self) -> tuple[Action, ...]:
        return (*self.teams, *(a for i in self.items if not i.blocked for a in i.actions))

    def fingerprint_fields(self) -> dict[str, list[str]]:
        """What the fingerprint covers of the managed fields the plan changes (and of the teams it creates or
        updates): ``user_id`` / ``team:<team_id>`` -> field names (see ``Snapshot.fingerprint_of``)."""
        fields: dict[str, list[str]] = {}
        for i in self.items:
            if i.field_changes and not i.blocked:
                fields[i.user_id] = [c.name for c in i.field_changes]
        for t in self.teams:
            fields[f"team:{t.team_id}"] = [c.name for c in t.changes] if isinstance(t, UpdateTeam) else []
        return fields

    @property
    def team_creates(self) -> tuple[CreateTeam, ...]:
        return tuple(t for t in self.teams if isinstance(t, CreateTeam))

    @property
    def team_updates(self) -> tuple[UpdateTeam, ...]:
        return tuple(t for t in self.teams if isinstance(t, UpdateTeam))

    @property
    def team_keys_destroyed(self) -> int:
        """Team keys the plan's moves destroy (counted against the deletion brake)."""
        return sum(i.team_keys_destroyed for i in self.items if not i.blocked)

    @property
    def has_changes(self) -> bool:
        return bool(self.teams) or any(i.actions and not i.blocked for i in self.items)

    @property
    def adoptions(self) -> int:
        """Users the plan marks as managed (``--adopt``)."""
        return sum(1 for i in self.items if not i.blocked and any(isinstance(a, AdoptUser) for a in i.actions))

    @property
    def has_blocked(self) -> bool:
        return any(i.blocked for i in self.items)
