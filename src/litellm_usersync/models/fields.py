"""The user and team fields a CSV may manage beside role and teams: names, budgets, models, limits, metadata.

Pure. A desired value is one of :data:`FieldValue`; ``None`` means "cleared" (the CSV's clear token). Live
values are read into the same canonical form (:func:`live_value`), so "in sync" is plain equality:

* ``models`` is a sorted tuple; ``()`` means *all models* (LiteLLM stores ``[]`` for that, and also honours
  ``["all-proxy-models"]`` and ``["*"]``, which read as ``()`` too);
* an empty ``user_alias`` reads as ``None``;
* ``metadata.<key>`` is the text of that key (other keys are never managed, never removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: the fields of a user the CSV may manage (besides ``metadata.<key>`` columns), in the plan's order
USER_FIELDS: tuple[str, ...] = ("user_alias", "max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit")
#: the settings of a team a teams file may manage
TEAM_FIELDS: tuple[str, ...] = ("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit")
#: a column ``metadata.<key>`` manages that one key of the user's metadata
METADATA_PREFIX = "metadata."
#: the cell that clears a value (an empty cell leaves it alone)
CLEAR_TOKEN = "-"
#: what LiteLLM also reads as "every model" in a ``models`` list; the tool writes it to clear a *user's* models,
#: because ``/user/update`` drops an empty list (a team's ``/team/update`` takes ``[]``)
ALL_MODELS = "all-proxy-models"
_ALL_MODEL_NAMES = frozenset({ALL_MODELS, "*"})

FieldValue = str | float | int | tuple[str, ...] | None

_LABELS = {
    "user_alias": "Alias",
    "max_budget": "Budget",
    "budget_duration": "Budget period",
    "models": "Models",
    "tpm_limit": "TPM",
    "rpm_limit": "RPM",
}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One managed field that differs: ``old`` as the proxy has it, ``new`` as the CSV wants it (None: cleared)."""

    name: str
    old: FieldValue
    new: FieldValue


def is_metadata_field(name: str) -> bool:
    return name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX)


def metadata_key(name: str) -> str:
    return name[len(METADATA_PREFIX) :]


def canonical_models(models: Iterable[str] | None) -> tuple[str, ...]:
    """A models list as the tool compares it: sorted, without duplicates; ``()`` for every model."""
    names = sorted({str(m) for m in (models or ()) if str(m)})
    if not names or _ALL_MODEL_NAMES.intersection(names):
        return ()
    return tuple(names)


def _metadata_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def live_value(obj: Any, name: str) -> FieldValue:
    """The canonical value of field ``name`` on a :class:`LiveUser` or :class:`Team`."""
    if is_metadata_field(name):
        metadata = getattr(obj, "metadata", None) or {}
        return _metadata_text(metadata.get(metadata_key(name))) if isinstance(metadata, Mapping) else None
    value = getattr(obj, name, None)
    if name == "models":
        return canonical_models(value)
    if name == "user_alias":
        return value or None
    if name == "max_budget" and value is not None:
        return float(value)
    return value


def diff_fields(wanted: Sequence[tuple[str, FieldValue]], obj: Any) -> tuple[FieldChange, ...]:
    """The changes that bring ``obj``'s managed fields to ``wanted`` (in ``wanted``'s order)."""
    changes = []
    for name, new in wanted:
        old = live_value(obj, name)
        if name == "models":
            new = canonical_models(new if isinstance(new, tuple) else ())
        if old != new:
            changes.append(FieldChange(name, old, new))
    return tuple(changes)


def field_label(name: str) -> str:
    """``Budget``, ``Models``, ``Metadata cost_center``: the plan's name of a field."""
    if is_metadata_field(name):
        return f"Metadata {metadata_key(name)}"
    return _LABELS.get(name, name)


def format_value(name: str, value: FieldValue) -> str:
    """A value as the plan shows it: ``all`` for every model, ``-`` for nothing, ``5`` for 5.0 dollars."""
    if name == "models":
        return ", ".join(value) if isinstance(value, tuple) and value else "all"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) and abs(value) < 1e15 else repr(value)
    return str(value)


def cell_text(name: str, value: FieldValue) -> str:
    """A value as a CSV cell (what ``list --format csv`` writes and the CSV reader reads back)."""
    if name == "models":
        return ";".join(value) if isinstance(value, tuple) else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) and abs(value) < 1e15 else repr(value)
    return str(value)


def describe_changes(changes: Iterable[FieldChange]) -> list[str]:
    """``["Budget: 5 → 10", "Models: all → gpt-4o"]``."""
    return [f"{field_label(c.name)}: {format_value(c.name, c.old)} → {format_value(c.name, c.new)}" for c in changes]


def value_to_json(value: FieldValue) -> Any:
    """A value for a JSON document (plans, plan files, the audit log): models as a list."""
    return list(value) if isinstance(value, tuple) else value


def fields_to_dict(fields: Iterable[tuple[str, FieldValue]]) -> dict[str, Any]:
    """``{"max_budget": 10.0, "models": ["gpt-4o"]}``: managed values for a JSON document."""
    return {name: value_to_json(value) for name, value in fields}


def changes_to_list(changes: Iterable[FieldChange]) -> list[dict[str, Any]]:
    """``[{"field": "max_budget", "old": 5.0, "new": 10.0}]``: changes for a JSON document."""
    return [{"field": c.name, "old": value_to_json(c.old), "new": value_to_json(c.new)} for c in changes]


def value_from_json(name: str, value: Any) -> FieldValue:
    """The inverse of :func:`value_to_json`; raises ``ValueError`` naming what was expected."""
    if value is None:
        return None
    if name == "models":
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise ValueError("expected a list of model names")
        return canonical_models(value)
    if name == "max_budget":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        return float(value)
    if name in ("tpm_limit", "rpm_limit"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        return value
    if name in ("user_alias", "budget_duration") or is_metadata_field(name):
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    raise ValueError(f"unknown field {name!r}")


def user_update_fields(changes: Iterable[FieldChange], metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``/user/update`` fields that apply ``changes``; ``metadata`` is the user's current metadata, into which
    the managed keys are merged (``/user/update`` replaces the whole dict; every other key is kept).

    A cleared value is sent so that the proxy clears it: ``null`` for budgets and limits (LiteLLM 1.110 applies an
    explicit null to those), ``""`` for the alias (a null is dropped), ``["all-proxy-models"]`` for the models (an
    empty list is dropped); a cleared metadata key is removed (sent as null if it was the only one: an empty
    dict is dropped too).
    """
    body: dict[str, Any] = {}
    merged: dict[str, Any] | None = None
    for c in changes:
        if is_metadata_field(c.name):
            if merged is None:
                merged = dict(metadata or {})
            key = metadata_key(c.name)
            if c.new is None:
                merged.pop(key, None)
            else:
                merged[key] = c.new
            continue
        if c.name == "models":
            body["models"] = list(c.new) if isinstance(c.new, tuple) and c.new else [ALL_MODELS]
        elif c.name == "user_alias":
            body["user_alias"] = c.new if c.new is not None else ""
        else:
            body[c.name] = c.new
    if merged is not None:
        cleared = [metadata_key(c.name) for c in changes if is_metadata_field(c.name) and c.new is None]
        body["metadata"] = merged or dict.fromkeys(cleared[:1])
    return body


def create_fields(values: Iterable[tuple[str, FieldValue]]) -> dict[str, Any]:
    """The ``/user/new`` (or ``/team/new``) fields of the values set (a cleared value is simply not sent);
    ``metadata.<key>`` values come back under ``"metadata"`` for the caller to merge with its own."""
    body: dict[str, Any] = {}
    for name, value in values:
        if value is None or (name == "models" and not value):
            continue
        if is_metadata_field(name):
            body.setdefault("metadata", {})[metadata_key(name)] = value
        elif name == "models":
            body["models"] = list(value) if isinstance(value, tuple) else value
        else:
            body[name] = value
    return body


def team_update_fields(changes: Iterable[FieldChange]) -> dict[str, Any]:
    """The ``/team/update`` fields that apply ``changes`` (a team takes ``[]`` for every model, null to clear)."""
    body: dict[str, Any] = {}
    for c in changes:
        body[c.name] = list(c.new) if c.name == "models" and isinstance(c.new, tuple) else c.new
    return body
