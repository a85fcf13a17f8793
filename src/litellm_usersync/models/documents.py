"""The JSON shape of each plan model, written once: a plan item, an action, a user left alone. Pure.

Every document that holds a plan item uses :func:`item_to_dict`: the JSON output (``render/report``:
``litellm-usersync/plan`` and ``/result``) and the saved plan (``files/planfile``, which adds what it needs to
rebuild the plan: the actions in full and its version-1 field names). ``docs/output.md`` and
``docs/plans-and-restore.md`` document the fields.
"""

from __future__ import annotations

from typing import Any

from .blocking import BlockUser, ReactivateUser
from .fields import changes_to_list, fields_to_dict
from .plan import (
    Action,
    AddMembership,
    AdoptUser,
    ChangeRole,
    CreateTeam,
    CreateUser,
    DeleteUser,
    PlanItem,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    Skipped,
    TeamAction,
    UpdateTeam,
    UpdateUser,
)

#: action class <-> ``"type"`` in a document (the plan file's actions, the audit log's ``kind``)
ACTION_TYPES: dict[type, str] = {
    CreateUser: "create_user",
    DeleteUser: "delete_user",
    ChangeRole: "change_role",
    UpdateUser: "update_user",
    CreateTeam: "create_team",
    UpdateTeam: "update_team",
    AddMembership: "add_membership",
    RemoveMembership: "remove_membership",
    RecreateUser: "recreate_user",
    ReissueKey: "reissue_key",
    RebindKeys: "rebind_keys",
    AdoptUser: "adopt_user",
    BlockUser: "block_user",
    ReactivateUser: "reactivate_user",
}


def action_type(action: Action) -> str:
    """The document's name of an action kind (``"create_user"``, ``"change_role"``, ...)."""
    return ACTION_TYPES[type(action)]


def item_to_dict(item: PlanItem) -> dict[str, Any]:
    """One plan item as a JSON-ready dict: the one shape of a plan item in every document.

    ``operations`` are the keys of its actions (what will be sent); ``line`` is null when the item has no
    CSV line; ``changes`` are the managed fields an update changes (``[{"field", "old", "new"}]``), ``fields``
    those a new user is created with.
    """
    return {
        "action": item.kind.value,
        "email": item.email,
        "user_id": item.user_id,
        "role": item.role,
        "old_role": item.old_role,
        "teams": list(item.team_names),
        "old_teams": list(item.old_team_names),
        "team_ids": list(item.team_ids),
        "old_team_ids": list(item.old_team_ids),
        "unresolved_teams": [list(pair) for pair in item.unresolved_teams],
        "operations": [a.key for a in item.actions],
        "blocked": item.blocked,
        "key_count": item.key_count,
        "spend": item.spend,
        "may_recreate": item.may_recreate,
        "role_from_default": item.role_from_default,
        "team_keys_destroyed": item.team_keys_destroyed,
        "team_keys_rebound": item.team_keys_rebound,
        "line": item.line or None,
        "changes": changes_to_list(item.field_changes),
        "fields": fields_to_dict(item.new_fields),
        **_deprovision_fields(item),
    }


def _deprovision_fields(item: PlanItem) -> dict[str, Any]:
    """What a plan item says of a block (``block``) or a reactivation (``reactivate``); nothing otherwise."""
    for a in item.actions:
        if isinstance(a, BlockUser):
            return {
                "block": {
                    "keys_blocked": len(a.tokens) if a.keys_read else None,
                    "keys": list(a.stops),
                    "keys_already_blocked": a.already_blocked,
                    "budget_zeroed": a.zero_budget,
                    "resumes_interrupted_block": a.resume,
                }
            }
        if isinstance(a, ReactivateUser):
            return {
                "reactivate": {
                    "keys_unblocked": len(a.tokens),
                    "max_budget": a.max_budget,
                    "budget_restored": a.restore_budget,
                }
            }
    return {}


def team_action_to_dict(action: TeamAction) -> dict[str, Any]:
    """A team the plan creates or updates: ``{"type", "key", "team_id", "name", "fields" | "changes", "line"}``."""
    d: dict[str, Any] = {"type": action_type(action), "key": action.key, "team_id": action.team_id}
    d["name"] = action.name
    if isinstance(action, CreateTeam):
        d["fields"] = fields_to_dict(action.fields)
    else:
        d["changes"] = changes_to_list(action.changes)
    d["line"] = action.line or None
    return d


def action_to_dict(action: Action) -> dict[str, Any]:
    """One action as a JSON-ready dict: ``{"type": ..., "key": ..., "user_id": ..., "email": ..., <its fields>}``."""
    if isinstance(action, (CreateTeam, UpdateTeam)):
        return team_action_to_dict(action)
    d: dict[str, Any] = {"type": action_type(action), "key": action.key, "user_id": action.user_id}
    d["email"] = action.email
    if isinstance(action, CreateUser):
        d.update(
            role=action.role,
            team_ids=list(action.team_ids),
            key_alias=action.key_alias,
            create_key=action.create_key,
            fields=fields_to_dict(action.fields),
        )
    elif isinstance(action, UpdateUser):
        d.update(old_role=action.old_role, new_role=action.new_role, changes=changes_to_list(action.changes))
    elif isinstance(action, DeleteUser):
        d.update(team_ids=list(action.team_ids))
    elif isinstance(action, ChangeRole):
        d.update(old_role=action.old_role, new_role=action.new_role)
    elif isinstance(action, AddMembership):
        d.update(team_id=action.team_id)
    elif isinstance(action, RemoveMembership):
        d.update(team_id=action.team_id, requires=list(action.requires), destroys_keys=action.destroys_keys)
    elif isinstance(action, ReissueKey):
        d.update(key_alias=action.key_alias)
    elif isinstance(action, RebindKeys):
        d.update(
            from_team=action.from_team,
            to_team=action.to_team,
            tokens=list(action.tokens),
            requires=list(action.requires),
        )
    elif isinstance(action, AdoptUser):
        pass  # the user id and email say it all
    elif isinstance(action, BlockUser):
        d.update(
            blocked_at=action.blocked_at,
            tokens=list(action.tokens),
            old_role=action.old_role,
            old_max_budget=action.old_max_budget,
            zero_budget=action.zero_budget,
            resume=action.resume,
            keys_read=action.keys_read,
            stops=list(action.stops),
            already_blocked=action.already_blocked,
        )
    elif isinstance(action, ReactivateUser):
        d.update(
            role=action.role,
            tokens=list(action.tokens),
            max_budget=action.max_budget,
            restore_budget=action.restore_budget,
        )
    elif isinstance(action, RecreateUser):
        d.update(role=action.role, team_ids=list(action.team_ids))
    return d


def skipped_to_dict(s: Skipped) -> dict[str, Any]:
    """A user the plan leaves alone: ``{"email", "user_id", "reason"}``."""
    return {"email": s.email, "user_id": s.user_id, "reason": s.reason}
