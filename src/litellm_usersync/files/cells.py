"""The cell rules of the managed columns (user fields in the user file, team settings in the teams file).

Pure. :func:`parse_field_cell` turns one cell into a :data:`~litellm_usersync.models.fields.FieldValue`, or raises
``ValueError`` saying what was expected (the CSV reader adds the file, line and column). An empty cell is never
parsed: it leaves the value alone. :data:`~litellm_usersync.models.fields.CLEAR_TOKEN` (``-``) clears it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from litellm_usersync.identity import TEAM_SEPARATOR
from litellm_usersync.models.fields import (
    CLEAR_TOKEN,
    METADATA_PREFIX,
    TEAM_FIELDS,
    USER_FIELDS,
    FieldValue,
    canonical_models,
    is_metadata_field,
)

#: ``30s``, ``30m``, ``30h``, ``30d``, ``2w``: a positive whole number and a unit (LiteLLM's ``budget_duration``)
_DURATION = re.compile(r"[1-9][0-9]{0,5}(s|m|h|d|w)")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
_INTEGER = re.compile(r"[0-9]+")
#: the largest limit the proxy's columns hold (Postgres integer)
MAX_LIMIT = 2**31 - 1
_CLEAR_HINT = f", or {CLEAR_TOKEN} to clear it"


def _duration(text: str) -> str:
    value = text.lower()
    if value == "1mo" or _DURATION.fullmatch(value):
        return value
    if re.fullmatch(r"[0-9]+mo", value):
        raise ValueError(
            f"invalid budget_duration {text!r}: LiteLLM resets a monthly budget every 1mo only{_CLEAR_HINT}"
        )
    raise ValueError(
        f"invalid budget_duration {text!r}; expected a LiteLLM duration: a whole number and s, m, h, d or w "
        f"(30s, 30m, 30h, 30d, 2w), or 1mo{_CLEAR_HINT}"
    )


def _budget(text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"invalid max_budget {text!r}; expected a number >= 0 in USD (10, 2.50){_CLEAR_HINT}")
    value = float(text)
    if not math.isfinite(value) or value > 1e12:
        raise ValueError(f"invalid max_budget {text!r}; expected a number >= 0 in USD, at most 1e12{_CLEAR_HINT}")
    return value


def _limit(name: str, text: str) -> int:
    if not _INTEGER.fullmatch(text) or int(text) > MAX_LIMIT:
        raise ValueError(f"invalid {name} {text!r}; expected a whole number >= 0 (at most {MAX_LIMIT}){_CLEAR_HINT}")
    return int(text)


def _models(text: str) -> tuple[str, ...]:
    names = [" ".join(part.split()) for part in text.split(TEAM_SEPARATOR)]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"invalid models {text!r}; expected model names separated by ';'{_CLEAR_HINT} (every model)")
    if CLEAR_TOKEN in names:
        raise ValueError(f"invalid models {text!r}: {CLEAR_TOKEN} clears the whole cell; write it alone")
    return canonical_models(names)


def parse_field_cell(name: str, cell: str) -> FieldValue:
    """One non-empty cell of managed column ``name`` (trimmed by the caller): the value, None for the clear token.

    Raises ``ValueError`` with what was expected."""
    if cell == CLEAR_TOKEN:
        return None
    if name == "max_budget":
        return _budget(cell)
    if name == "budget_duration":
        return _duration(cell)
    if name == "models":
        return _models(cell)
    if name in ("tpm_limit", "rpm_limit"):
        return _limit(name, cell)
    if name == "user_alias" or is_metadata_field(name):
        return cell
    raise ValueError(f"unknown field {name!r}")  # pragma: no cover - the header map only passes ours


def field_columns(header: Sequence[str], *, team: bool = False) -> dict[str, int]:
    """The managed columns of a header: field name -> index. ``metadata.<key>`` columns (user files only) keep
    the key as written; the other names are compared trimmed and case-insensitively."""
    names = TEAM_FIELDS if team else USER_FIELDS
    found: dict[str, int] = {}
    for i, raw in enumerate(header):
        cell = raw.strip().lstrip("\ufeff").strip()
        low = cell.lower()
        if low in names and low not in found:
            found[low] = i
        elif not team and low.startswith(METADATA_PREFIX) and len(cell) > len(METADATA_PREFIX):
            key = cell[len(METADATA_PREFIX) :].strip()
            if key and f"{METADATA_PREFIX}{key}" not in found:
                found[f"{METADATA_PREFIX}{key}"] = i
    return found
