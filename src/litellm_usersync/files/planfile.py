"""Saved plans: a :class:`Plan` as a versioned JSON document, and back; the stale-plan check.

Pure: no I/O, no clock. The caller reads and writes the file (``backup.write_json_file`` /
``backup.read_json_file``) and decides when to check freshness.

The document (``docs/plans-and-restore.md`` has the full schema)::

    {
      "schema": "litellm-usersync/plan-file",
      "version": 1,
      "source": "user_list.csv",          # where the plan came from (CSV path, snapshot file, ...)
      "fingerprint": "<sha256 hex>",       # Snapshot.fingerprint_of(<user ids the plan touches>)
      "options": {...},                     # every PlanOptions field
      "refusals": ["..."],
      "items": [{"kind": "ADDED", "email": ..., "actions": [{"type": "create_user", ...}], ...}],
      "skipped": [{"email": ..., "user_id": ..., "reason": ...}],
      "team_labels": {"<team id>": "<alias>"}
    }

``plan_from_document(plan_to_document(plan, source=s)) == plan`` for every plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm_usersync.errors import InputError, RefusedError
from litellm_usersync.identity import PROXY_ROLES, normalize_email
from litellm_usersync.models import (
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
    Snapshot,
)

PLAN_FILE_SCHEMA = "litellm-usersync/plan-file"
PLAN_FILE_VERSION = 1

#: action class <-> ``"type"`` in the document
ACTION_TYPES: dict[type, str] = {
    CreateUser: "create_user",
    DeleteUser: "delete_user",
    ChangeRole: "change_role",
    AddMembership: "add_membership",
    RemoveMembership: "remove_membership",
    RecreateUser: "recreate_user",
    ReissueKey: "reissue_key",
    RebindKeys: "rebind_keys",
}


def action_type(action: Action) -> str:
    """The document's name of an action kind (``"create_user"``, ``"change_role"``, ...)."""
    return ACTION_TYPES[type(action)]


# --------------------------------------------------------------------------------------------------
# Plan -> document


def action_to_dict(action: Action) -> dict[str, Any]:
    """One action as a JSON-ready dict: ``{"type": ..., "key": ..., <every field>}``."""
    d: dict[str, Any] = {"type": action_type(action), "key": action.key, "user_id": action.user_id}
    d["email"] = action.email
    if isinstance(action, CreateUser):
        d.update(
            role=action.role,
            team_ids=list(action.team_ids),
            key_alias=action.key_alias,
            create_key=action.create_key,
        )
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
    else:
        d.update(role=action.role, team_ids=list(action.team_ids))
    return d


def _item_to_dict(item: PlanItem) -> dict[str, Any]:
    return {
        "kind": item.kind.value,
        "email": item.email,
        "user_id": item.user_id,
        "role": item.role,
        "team_names": list(item.team_names),
        "team_ids": list(item.team_ids),
        "old_role": item.old_role,
        "old_team_names": list(item.old_team_names),
        "old_team_ids": list(item.old_team_ids),
        "blocked": item.blocked,
        "key_count": item.key_count,
        "spend": item.spend,
        "may_recreate": item.may_recreate,
        "role_from_default": item.role_from_default,
        "unresolved_teams": [list(pair) for pair in item.unresolved_teams],
        "team_keys_destroyed": item.team_keys_destroyed,
        "team_keys_rebound": item.team_keys_rebound,
        "line": item.line,
        "actions": [action_to_dict(a) for a in item.actions],
    }


def _options_to_dict(options: PlanOptions) -> dict[str, Any]:
    return {
        "allow_add": options.allow_add,
        "allow_delete": options.allow_delete,
        "allow_update": options.allow_update,
        "allow_recreate": options.allow_recreate,
        "default_role": options.default_role,
        "create_keys": options.create_keys,
        "max_delete": options.max_delete,
        "protected_emails": sorted(options.protected_emails),
        "protected_roles": sorted(options.protected_roles),
        "recreate_with_keys": options.recreate_with_keys,
        "keep_team_keys": options.keep_team_keys,
    }


def plan_to_document(plan: Plan, *, source: str) -> dict[str, Any]:
    """The plan as a versioned, JSON-ready document; ``source`` says where it came from (e.g. the CSV path).

    Holds no secret: plans never carry API keys or the master key.
    """
    return {
        "schema": PLAN_FILE_SCHEMA,
        "version": PLAN_FILE_VERSION,
        "source": source,
        "fingerprint": plan.fingerprint,
        "touched_user_ids": touched_user_ids(plan),
        "options": _options_to_dict(plan.options),
        "refusals": list(plan.refusals),
        "items": [_item_to_dict(i) for i in plan.items],
        "skipped": [{"email": s.email, "user_id": s.user_id, "reason": s.reason} for s in plan.skipped],
        "team_labels": dict(sorted(plan.team_labels.items())),
        "delete_limit": plan.delete_limit,
    }


# --------------------------------------------------------------------------------------------------
# document -> Plan (strict: every field is checked, every problem names its place)

_MISSING = object()


class _Reader:
    """Typed access to one JSON object, with ``where`` naming it in error messages."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(f"plan file: {where}: expected an object, got {_type_name(data)}")
        self.data = data
        self.where = where

    def get(self, name: str, default: object = _MISSING) -> object:
        if name not in self.data:
            if default is _MISSING:
                raise InputError(f"plan file: {self.where}: missing field {name!r}")
            return default
        return self.data[name]

    def _bad(self, name: str, expected: str, value: object) -> InputError:
        return InputError(f"plan file: {self.where}.{name}: expected {expected}, got {_type_name(value)}")

    def get_str(self, name: str, default: object = _MISSING) -> str:
        v = self.get(name, default)
        if not isinstance(v, str):
            raise self._bad(name, "a string", v)
        return v

    def opt_str(self, name: str) -> str | None:
        v = self.get(name, None)
        if v is not None and not isinstance(v, str):
            raise self._bad(name, "a string or null", v)
        return v

    def get_bool(self, name: str, default: object = _MISSING) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self._bad(name, "true or false", v)
        return v

    def get_int(self, name: str, default: object = _MISSING) -> int:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(name, "an integer", v)
        return v

    def opt_int(self, name: str) -> int | None:
        v = self.get(name, None)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise self._bad(name, "an integer or null", v)
        return v

    def get_float(self, name: str, default: object = _MISSING) -> float:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(name, "a number", v)
        return float(v)

    def get_strs(self, name: str, default: object = _MISSING) -> tuple[str, ...]:
        v = self.get(name, default)
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise self._bad(name, "a list of strings", v)
        return tuple(v)

    def get_pairs(self, name: str, default: object = _MISSING) -> tuple[tuple[str, str], ...]:
        v = self.get(name, default)
        if not isinstance(v, list) or not all(
            isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in v
        ):
            raise self._bad(name, "a list of [string, string] pairs", v)
        return tuple((x[0], x[1]) for x in v)

    def get_list(self, name: str, default: object = _MISSING) -> list[object]:
        v = self.get(name, default)
        if not isinstance(v, list):
            raise self._bad(name, "a list", v)
        return v

    def get_role(self, name: str) -> str:
        v = self.get_str(name)
        if v not in PROXY_ROLES:
            raise InputError(
                f"plan file: {self.where}.{name}: unknown role {v!r}; expected one of {', '.join(PROXY_ROLES)}"
            )
        return v


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def action_from_dict(data: object, where: str = "action") -> Action:
    """Parse one action dict (see :func:`action_to_dict`); raises :class:`InputError` naming ``where``."""
    r = _Reader(data, where)
    kind = r.get_str("type")
    uid, email = r.get_str("user_id"), r.get_str("email")
    action: Action
    if kind == "create_user":
        action = CreateUser(
            uid,
            email,
            r.get_role("role"),
            r.get_strs("team_ids", []),
            r.opt_str("key_alias"),
            r.get_bool("create_key", True),
        )
    elif kind == "delete_user":
        action = DeleteUser(uid, email, r.get_strs("team_ids", []))
    elif kind == "change_role":
        action = ChangeRole(uid, email, r.opt_str("old_role"), r.get_role("new_role"))
    elif kind == "add_membership":
        action = AddMembership(uid, email, r.get_str("team_id"))
    elif kind == "remove_membership":
        action = RemoveMembership(
            uid, email, r.get_str("team_id"), r.get_strs("requires", []), r.get_int("destroys_keys", 0)
        )
    elif kind == "rebind_keys":
        action = RebindKeys(
            uid,
            email,
            r.get_str("from_team"),
            r.get_str("to_team"),
            r.get_strs("tokens", []),
            r.get_strs("requires", []),
        )
    elif kind == "recreate_user":
        action = RecreateUser(uid, email, r.get_role("role"), r.get_strs("team_ids", []))
    elif kind == "reissue_key":
        action = ReissueKey(uid, email, r.opt_str("key_alias"))
    else:
        raise InputError(
            f"plan file: {where}.type: unknown action type {kind!r}; expected one of {', '.join(ACTION_TYPES.values())}"
        )
    if not uid:
        raise InputError(f"plan file: {where}.user_id: must not be empty")
    key = r.get("key", None)
    if key is not None and key != action.key:
        raise InputError(f"plan file: {where}.key: {key!r} does not match the action (expected {action.key!r})")
    return action


def _item_from_dict(data: object, where: str) -> PlanItem:
    r = _Reader(data, where)
    kind_text = r.get_str("kind")
    try:
        kind = ItemKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in ItemKind)
        raise InputError(f"plan file: {where}.kind: unknown kind {kind_text!r}; expected one of {kinds}") from None
    actions = tuple(action_from_dict(a, f"{where}.actions[{n}]") for n, a in enumerate(r.get_list("actions", [])))
    return PlanItem(
        kind=kind,
        email=r.get_str("email"),
        user_id=r.get_str("user_id"),
        role=r.opt_str("role"),
        team_names=r.get_strs("team_names", []),
        actions=actions,
        old_role=r.opt_str("old_role"),
        old_team_names=r.get_strs("old_team_names", []),
        blocked=r.opt_str("blocked"),
        key_count=r.get_int("key_count", 0),
        spend=r.get_float("spend", 0.0),
        may_recreate=r.get_bool("may_recreate", False),
        role_from_default=r.get_bool("role_from_default", False),
        team_keys_destroyed=r.get_int("team_keys_destroyed", 0),
        team_keys_rebound=r.get_int("team_keys_rebound", 0),
        line=r.get_int("line", 0),
        team_ids=r.get_strs("team_ids", []),
        old_team_ids=r.get_strs("old_team_ids", []),
        unresolved_teams=r.get_pairs("unresolved_teams", []),
    )


def _options_from_dict(data: object) -> PlanOptions:
    r = _Reader(data, "options")
    max_delete = r.opt_int("max_delete")
    if max_delete is not None and max_delete < 0:
        raise InputError("plan file: options.max_delete: must not be negative")
    defaults = PlanOptions()
    return PlanOptions(
        allow_add=r.get_bool("allow_add", defaults.allow_add),
        allow_delete=r.get_bool("allow_delete", defaults.allow_delete),
        allow_update=r.get_bool("allow_update", defaults.allow_update),
        allow_recreate=r.get_bool("allow_recreate", defaults.allow_recreate),
        default_role=r.get_role("default_role") if "default_role" in r.data else defaults.default_role,
        create_keys=r.get_bool("create_keys", defaults.create_keys),
        max_delete=max_delete,
        protected_emails=frozenset(r.get_strs("protected_emails", [])),
        protected_roles=frozenset(r.get_strs("protected_roles", [])),
        recreate_with_keys=r.get_bool("recreate_with_keys", defaults.recreate_with_keys),
        keep_team_keys=r.get_bool("keep_team_keys", defaults.keep_team_keys),
    )


def check_document_header(doc: object, *, schema: str, version: int, what: str) -> Mapping[str, Any]:
    """Check ``schema``/``version`` of a JSON document; return it as a mapping or raise :class:`InputError`."""
    if not isinstance(doc, Mapping):
        raise InputError(f"{what}: expected a JSON object, got {_type_name(doc)}")
    got_schema = doc.get("schema")
    if got_schema != schema:
        raise InputError(f"{what}: not a {schema} document (its schema is {got_schema!r})")
    got_version = doc.get("version")
    if got_version != version:
        raise InputError(
            f"{what}: unsupported {schema} version {got_version!r}; this litellm-usersync reads version {version}"
        )
    return doc


def plan_from_document(doc: object) -> Plan:
    """Rebuild the :class:`Plan` of :func:`plan_to_document`. Raises :class:`InputError` on a wrong schema,
    an unsupported version or a malformed document (the message names the field, e.g. ``items[2].actions[0]``).
    """
    checked = check_document_header(doc, schema=PLAN_FILE_SCHEMA, version=PLAN_FILE_VERSION, what="plan file")
    r = _Reader(checked, "plan")
    fingerprint = r.get_str("fingerprint")
    items = tuple(_item_from_dict(i, f"items[{n}]") for n, i in enumerate(r.get_list("items")))
    skipped = []
    for n, s in enumerate(r.get_list("skipped", [])):
        sr = _Reader(s, f"skipped[{n}]")
        skipped.append(Skipped(sr.get_str("email"), sr.get_str("user_id"), sr.get_str("reason")))
    refusals = r.get_list("refusals", [])
    if not all(isinstance(x, str) for x in refusals):
        raise InputError("plan file: refusals: expected a list of strings")
    options = _options_from_dict(r.get("options", {}))
    labels = r.get("team_labels", {})
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InputError("plan file: team_labels: expected an object of team id -> name")
    plan = Plan(
        items=items,
        skipped=tuple(skipped),
        refusals=tuple(str(x) for x in refusals),
        fingerprint=fingerprint,
        options=options,
        team_labels=dict(labels),
        delete_limit=r.opt_int("delete_limit") if "delete_limit" in r.data else None,
    )
    _check_consistent(plan)
    return plan


def _check_consistent(plan: Plan) -> None:
    keys: set[str] = set()
    for n, item in enumerate(plan.items):
        for a in item.actions:
            if a.key in keys:
                raise InputError(f"plan file: items[{n}]: action {a.key!r} appears twice in the plan")
            keys.add(a.key)
    for n, item in enumerate(plan.items):
        for a in item.actions:
            if isinstance(a, (RemoveMembership, RebindKeys)):
                unknown = [k for k in a.requires if k not in keys]
                if unknown:
                    raise InputError(
                        f"plan file: items[{n}]: {a.key} requires {', '.join(unknown)}, which is not in the plan"
                    )


# --------------------------------------------------------------------------------------------------
# freshness


def touched_user_ids(plan: Plan) -> list[str]:
    """The users the plan would change (items with actions, not blocked): what ``Plan.fingerprint`` covers."""
    return [i.user_id for i in plan.items if i.actions and not i.blocked]


def _describe_change(item: PlanItem, current: Snapshot) -> str | None:
    """What changed about one touched user since the plan was made, as far as the item's "before" view tells."""
    live = current.users_by_id.get(item.user_id)
    who = item.email or item.user_id
    if item.kind is ItemKind.ADD:
        if live is not None:
            return f"{who} (user id {item.user_id}) now exists"
        others = [u.user_id for u in current.users_by_email_key.get(normalize_email(item.email), [])]
        if others:
            return f"{who} now exists as user id {', '.join(sorted(others))}"
        return None
    if live is None:
        return f"{who} (user id {item.user_id}) no longer exists"
    parts: list[str] = []
    if normalize_email(item.email) != live.email_key:
        parts.append(f"email is now {live.email or '(none)'}")
    if item.old_role != live.role and item.kind is not ItemKind.DELETE:
        parts.append(f"role {item.old_role} -> {live.role}")
    elif item.kind is ItemKind.DELETE and item.role != live.role:
        parts.append(f"role {item.role} -> {live.role}")
    teams_now = current.team_ids_of(item.user_id)
    if frozenset(item.old_team_ids) != teams_now:
        before = ", ".join(sorted(item.old_team_ids)) or "-"
        after = ", ".join(sorted(teams_now)) or "-"
        parts.append(f"teams {before} -> {after}")
    if parts:
        return f"{who}: {'; '.join(parts)}"
    return None


def changed_users(plan: Plan, current: Snapshot) -> list[str]:
    """One line per touched user whose live state differs from what the plan saw (may be empty)."""
    out = []
    for item in plan.items:
        if item.actions and not item.blocked:
            change = _describe_change(item, current)
            if change:
                out.append(change)
    return out


def check_plan_fresh(plan: Plan, current: Snapshot) -> None:
    """Refuse a saved plan whose users changed since it was made (like ``terraform apply PLANFILE``).

    Compares ``current.fingerprint_of(touched_user_ids(plan))`` with ``plan.fingerprint`` and, for the message,
    each touched user's state with the item's "before" view. A new user that now exists under another id with
    the plan's email also makes the plan stale. Raises :class:`RefusedError` ``"stale plan: ..."``.
    """
    changes = changed_users(plan, current)
    if current.fingerprint_of(touched_user_ids(plan)) == plan.fingerprint and not changes:
        return
    shown = changes[:10]
    more = f" (and {len(changes) - 10} more)" if len(changes) > 10 else ""
    detail = "; ".join(shown) + more if shown else "the users it touches changed (their fingerprint differs)"
    raise RefusedError(
        f"stale plan: the proxy changed since the plan was made: {detail}. Nothing was changed; make a new plan."
    )
