"""Saved plans: a :class:`Plan` as a versioned JSON document, and back (the codec).

Pure: no I/O, no clock. The caller reads and writes the file (``jsonfiles.write_plan_file`` /
``jsonfiles.read_plan_file``) and checks freshness (``plans.freshness.check_plan_fresh``) before applying it.
Each item is the one JSON shape of a plan item (``models.documents.item_to_dict``) plus what rebuilding needs.

The document (``docs/plans-and-restore.md`` has the full schema)::

    {
      "schema": "litellm-usersync/plan-file",
      "version": 2,                         # 1: no scope, no managed fields, no teams (still read)
      "source": "user_list.csv",          # where the plan came from (CSV path, snapshot file, ...)
      "out_of_scope": 1204,               # users left alone because of the scope (options.scope: [] = none)
      "fingerprint": "<sha256 hex>",       # Snapshot.fingerprint_of(<user ids the plan touches>)
      "options": {...},                     # every PlanOptions field
      "refusals": ["..."],
      "items": [{"kind": "ADDED", "action": "ADDED", "email": ..., "actions": [{"type": "create_user", ...}], ...}],
      "skipped": [{"email": ..., "user_id": ..., "reason": ...}],
      "team_labels": {"<team id>": "<alias>"},
      "teams": [{"type": "create_team", "team_id": ..., "name": ..., "fields": {...}}, ...]
    }

``plan_from_document(plan_to_document(plan, source=s)) == plan`` for every plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm_usersync.errors import InputError
from litellm_usersync.models import (
    DEPROVISION_MODES,
    Action,
    AddMembership,
    AdoptUser,
    BlockUser,
    ChangeRole,
    CreateTeam,
    CreateUser,
    DeleteUser,
    ItemKind,
    Plan,
    PlanItem,
    PlanOptions,
    ReactivateUser,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    Scope,
    Skipped,
    TeamAction,
    UpdateTeam,
    UpdateUser,
    parse_scope_term,
)
from litellm_usersync.models.documents import (
    ACTION_TYPES,
    action_to_dict,
    item_to_dict,
    skipped_to_dict,
    team_action_to_dict,
)
from litellm_usersync.models.fields import FieldChange, FieldValue, value_from_json
from litellm_usersync.plans.freshness import touched_user_ids

from .jsonreader import JsonReader as _Reader
from .jsonreader import type_name as _type_name

PLAN_FILE_SCHEMA = "litellm-usersync/plan-file"
#: 2: the plan's scope (``scope``, ``out_of_scope``) and ``--adopt`` (``options.adopt``, ``adopt_user`` actions),
#: the managed user fields (``create_user.fields``, ``update_user``) and the plan's ``teams`` (all optional
#: fields: a version-2 file without them reads as a plan without them). Version 1 files are still read: their
#: scope is the default (every managed user), and they have no field changes and no teams.
PLAN_FILE_VERSION = 2
PLAN_FILE_VERSIONS = (1, 2)


def _item_to_dict(item: PlanItem) -> dict[str, Any]:
    """The item's one JSON shape (``models.documents.item_to_dict``), plus what rebuilding the plan needs: the
    actions in full, and the version-1 names of three of its fields (``kind`` = ``action``, ``team_names`` =
    ``teams``, ``old_team_names`` = ``old_teams``), which plan files have always had."""
    return {
        "kind": item.kind.value,
        **item_to_dict(item),
        "team_names": list(item.team_names),
        "old_team_names": list(item.old_team_names),
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
        "adopt": options.adopt,
        # the users the plan answers for: applying it under another --scope is refused
        "scope": options.scope.values(),
        "deprovision": options.deprovision,
        "purge_blocked_after_s": options.purge_blocked_after_s,
        "now": options.now,
        "create_teams": options.create_teams,
        "max_create_teams": options.max_create_teams,
    }


def plan_to_document(plan: Plan, *, source: str) -> dict[str, Any]:
    """The plan as a versioned, JSON-ready document; ``source`` says where it came from (e.g. the CSV path).

    Holds no secret: plans never carry API keys or the master key.
    """
    return {
        "schema": PLAN_FILE_SCHEMA,
        "version": PLAN_FILE_VERSION,
        "source": source,
        "out_of_scope": plan.out_of_scope,
        "fingerprint": plan.fingerprint,
        "touched_user_ids": touched_user_ids(plan),
        "options": _options_to_dict(plan.options),
        "refusals": list(plan.refusals),
        "items": [_item_to_dict(i) for i in plan.items],
        "skipped": [skipped_to_dict(s) for s in plan.skipped],
        "team_labels": dict(sorted(plan.team_labels.items())),
        "delete_limit": plan.delete_limit,
        "teams": [team_action_to_dict(t) for t in plan.teams],
    }


# --------------------------------------------------------------------------------------------------
# document -> Plan (strict: every field is checked, every problem names its place)


def _fields_from(r: _Reader, name: str) -> tuple[tuple[str, FieldValue], ...]:
    raw = r.get(name, {})
    if not isinstance(raw, Mapping):
        raise InputError(f"plan file: {r.where}.{name}: expected an object of field -> value")
    out = []
    for field_name, value in raw.items():
        try:
            out.append((str(field_name), value_from_json(str(field_name), value)))
        except ValueError as exc:
            raise InputError(f"plan file: {r.where}.{name}.{field_name}: {exc}") from None
    return tuple(out)


def _changes_from(r: _Reader, name: str) -> tuple[FieldChange, ...]:
    out = []
    for n, raw in enumerate(r.get_list(name, [])):
        cr = _Reader(raw, f"{r.where}.{name}[{n}]")
        field_name = cr.get_str("field")
        try:
            out.append(
                FieldChange(
                    field_name,
                    value_from_json(field_name, cr.get("old", None)),
                    value_from_json(field_name, cr.get("new")),
                )
            )
        except ValueError as exc:
            raise InputError(f"plan file: {cr.where}: {exc}") from None
    return tuple(out)


def team_action_from_dict(data: object, where: str) -> TeamAction:
    r = _Reader(data, where)
    kind = r.get_str("type")
    tid, name = r.get_str("team_id"), r.get_str("name")
    if not tid:
        raise InputError(f"plan file: {where}.team_id: must not be empty")
    team: TeamAction
    if kind == "create_team":
        team = CreateTeam(tid, name, _fields_from(r, "fields"), r.opt_int("line") or 0)
    elif kind == "update_team":
        team = UpdateTeam(tid, name, _changes_from(r, "changes"), r.opt_int("line") or 0)
    else:
        raise InputError(f"plan file: {where}.type: unknown team action {kind!r}; expected create_team or update_team")
    return team


def action_from_dict(data: object, where: str = "action") -> Action:
    """Parse one action dict (see :func:`action_to_dict`); raises :class:`InputError` naming ``where``."""
    r = _Reader(data, where)
    kind = r.get_str("type")
    if kind in ("create_team", "update_team"):
        return team_action_from_dict(data, where)
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
            _fields_from(r, "fields"),
        )
    elif kind == "update_user":
        new_role = r.get_role("new_role") if r.get("new_role", None) is not None else None
        action = UpdateUser(uid, email, r.opt_str("old_role"), new_role, _changes_from(r, "changes"))
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
    elif kind == "adopt_user":
        action = AdoptUser(uid, email)
    elif kind == "block_user":
        action = BlockUser(
            uid,
            email,
            r.get_str("blocked_at"),
            r.get_strs("tokens", []),
            r.opt_str("old_role"),
            r.opt_float("old_max_budget"),
            r.get_bool("zero_budget", True),
            r.get_bool("resume", False),
            r.get_bool("keys_read", True),
            r.get_strs("stops", []),
            r.get_int("already_blocked", 0),
        )
    elif kind == "reactivate_user":
        action = ReactivateUser(
            uid,
            email,
            r.opt_str("role"),
            r.get_strs("tokens", []),
            r.opt_float("max_budget"),
            r.get_bool("restore_budget", True),
        )
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
    # the shared shape says the kind again (``action``): a hand edit must change both or neither. Its
    # ``operations``, ``teams`` and ``old_teams`` are informative here; ``actions`` and ``*team_names`` are read
    if "action" in r.data and r.get("action") != kind_text:
        raise InputError(f"plan file: {where}.action: {r.get('action')!r} does not match kind {kind_text!r}")
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
        line=r.opt_int("line") or 0,
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
        deprovision=_deprovision(r),
        purge_blocked_after_s=r.opt_int("purge_blocked_after_s"),
        now=r.opt_str("now"),
        scope=_scope_from(r),
        adopt=r.get_bool("adopt", defaults.adopt),
        create_teams=r.get_bool("create_teams", defaults.create_teams),
        max_create_teams=r.get_int("max_create_teams", defaults.max_create_teams),
    )


def _deprovision(r: _Reader) -> str:
    mode = r.get_str("deprovision", "delete")
    if mode not in DEPROVISION_MODES:
        raise InputError(
            f"plan file: options.deprovision: expected one of {', '.join(DEPROVISION_MODES)}, got {mode!r}"
        )
    return mode


def check_document_header(doc: object, *, schema: str, version: int | tuple[int, ...], what: str) -> Mapping[str, Any]:
    """Check ``schema``/``version`` of a JSON document (``version``: the one, or the ones, this tool reads);
    return it as a mapping or raise :class:`InputError`."""
    if not isinstance(doc, Mapping):
        raise InputError(f"{what}: expected a JSON object, got {_type_name(doc)}")
    got_schema = doc.get("schema")
    if got_schema != schema:
        raise InputError(f"{what}: not a {schema} document (its schema is {got_schema!r})")
    got_version = doc.get("version")
    readable = version if isinstance(version, tuple) else (version,)
    if isinstance(got_version, bool) or got_version not in readable:
        shown = " and ".join(str(v) for v in readable)
        plural = "s" if len(readable) > 1 else ""
        raise InputError(
            f"{what}: unsupported {schema} version {got_version!r}; this litellm-usersync reads version{plural} {shown}"
        )
    return doc


def plan_from_document(doc: object) -> Plan:
    """Rebuild the :class:`Plan` of :func:`plan_to_document`. Raises :class:`InputError` on a wrong schema,
    an unsupported version or a malformed document (the message names the field, e.g. ``items[2].actions[0]``).
    """
    checked = check_document_header(doc, schema=PLAN_FILE_SCHEMA, version=PLAN_FILE_VERSIONS, what="plan file")
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
        out_of_scope=r.get_int("out_of_scope", 0),
        teams=tuple(team_action_from_dict(t, f"teams[{n}]") for n, t in enumerate(r.get_list("teams", []))),
    )
    _check_consistent(plan)
    return plan


def _scope_from(r: _Reader) -> Scope:
    """``options.scope`` (``[]`` or absent, as in version 1: every managed user), each term checked like ``--scope``."""
    values = r.get_strs("scope", [])
    return Scope.of(parse_scope_term(v, where=f"plan file: options.scope[{n}]") for n, v in enumerate(values))


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
