"""Value objects: desired state, live state, plans, outcomes. No I/O here.

One module per concept; this package re-exports them all, so ``from litellm_usersync.models import Plan`` works.
"""

from __future__ import annotations

from .desired import (
    DesiredState,
    DesiredUser,
)
from .live import (
    BATCH_KINDS,
    DELETE_CASCADE_MIN_VERSION,
    DUPLICATE_409_MIN_VERSION,
    INVITE_PENDING,
    KEY_PENDING,
    MANAGED_MARKER_KEY,
    MANAGED_MARKER_VALUE,
    RECREATE_FIELDS,
    LiveUser,
    ProxyFeatures,
    Snapshot,
    Team,
    TeamKey,
    TeamMember,
    version_tuple,
    without_marker,
)
from .plan import (
    Action,
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    ItemKind,
    Plan,
    PlanItem,
    PlanOptions,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    Skipped,
)
from .readcache import (
    DEFAULT_FULL_READ_AFTER_S,
    READ_CACHE_VERSION,
    KeyMark,
    ReadCache,
    ReadOutcome,
)
from .results import (
    ItemResult,
    Outcome,
    OutcomeStatus,
    RowStatus,
    RunReport,
)

__all__ = [
    "BATCH_KINDS",
    "DEFAULT_FULL_READ_AFTER_S",
    "DELETE_CASCADE_MIN_VERSION",
    "DUPLICATE_409_MIN_VERSION",
    "INVITE_PENDING",
    "KEY_PENDING",
    "MANAGED_MARKER_KEY",
    "MANAGED_MARKER_VALUE",
    "READ_CACHE_VERSION",
    "RECREATE_FIELDS",
    "Action",
    "AddMembership",
    "ChangeRole",
    "CreateUser",
    "DeleteUser",
    "DesiredState",
    "DesiredUser",
    "ItemKind",
    "ItemResult",
    "KeyMark",
    "LiveUser",
    "Outcome",
    "OutcomeStatus",
    "Plan",
    "PlanItem",
    "PlanOptions",
    "ProxyFeatures",
    "ReadCache",
    "ReadOutcome",
    "RebindKeys",
    "RecreateUser",
    "ReissueKey",
    "RemoveMembership",
    "RowStatus",
    "RunReport",
    "Skipped",
    "Snapshot",
    "Team",
    "TeamKey",
    "TeamMember",
    "version_tuple",
    "without_marker",
]
