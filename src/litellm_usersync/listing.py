"""Listing users (the ``list`` command, the seed's ``list_user.py``): which users, which columns, how rendered.

Pure: a :class:`Snapshot` in, rows and text out. Only an allowlist of columns is ever rendered, so the
proxy's ``password``, ``hashed_password``, ``salt`` and ``token`` fields can never be printed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .identity import DEFAULT_USER_ID, PROXY_ROLES, join_team_names
from .models import LiveUser, Snapshot

#: every column ``--columns`` accepts, in the order they are documented
LIST_COLUMNS: tuple[str, ...] = (
    "user_id",
    "user_email",
    "user_role",
    "teams",
    "team_names",
    "created_at",
    "updated_at",
    "models",
    "max_budget",
    "spend",
    "user_alias",
    "key_count",
)
#: the seed's default columns, with the team aliases beside the team ids
DEFAULT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "user_email",
    "user_role",
    "teams",
    "team_names",
    "created_at",
    "updated_at",
)
#: the seed's exact default (``--columns user_id,user_email,user_role,teams,created_at,updated_at``)
SEED_COLUMNS: tuple[str, ...] = ("user_id", "user_email", "user_role", "teams", "created_at", "updated_at")
#: ``--format csv`` without ``--columns``: sync's input format, so the output can be fed back to ``sync``
SYNC_INPUT_COLUMNS: tuple[str, ...] = ("email", "role", "team_name")
#: columns whose values are lists (rendered as JSON arrays in TSV/CSV)
LIST_VALUED: frozenset[str] = frozenset({"teams", "team_names", "models"})
#: fields of the proxy's user rows that must never be printed (documentation; the allowlist enforces it)
SENSITIVE_FIELDS: frozenset[str] = frozenset({"password", "hashed_password", "salt", "token"})

FORMATS: tuple[str, ...] = ("tsv", "csv", "json", "table")


def parse_columns(text: str) -> tuple[str, ...]:
    """``"user_email, user_role"`` -> ``("user_email", "user_role")``; unknown or empty -> ``ValueError``."""
    cols = tuple(c.strip().lower() for c in text.split(",") if c.strip())
    if not cols:
        raise ValueError("no column given; choose from " + ", ".join(LIST_COLUMNS))
    unknown = [c for c in cols if c not in LIST_COLUMNS]
    if unknown:
        why = " (never printed)" if any(c in SENSITIVE_FIELDS for c in unknown) else ""
        raise ValueError(f"unknown column(s) {', '.join(unknown)}{why}; choose from {', '.join(LIST_COLUMNS)}")
    return tuple(dict.fromkeys(cols))


@dataclass(frozen=True)
class ListFilter:
    """Which users to list.

    Default: users with an email and one of the four proxy roles (the users ``sync`` manages), never
    ``default_user_id``. ``role`` replaces the role restriction by that exact role. ``show_all`` drops the
    email and role restrictions (``default_user_id`` and users without email are listed too).
    ``email_like`` is a case-insensitive substring of the email.
    """

    role: str | None = None
    email_like: str | None = None
    show_all: bool = False

    def accepts(self, user: LiveUser) -> bool:
        if not self.show_all:
            if not user.email or user.user_id == DEFAULT_USER_ID:
                return False
            if self.role is None and user.role not in PROXY_ROLES:
                return False
        if self.role is not None and (user.role or "").casefold() != self.role.strip().casefold():
            return False
        if self.email_like:
            return bool(user.email) and self.email_like.casefold() in (user.email or "").casefold()
        return True


def select_users(snapshot: Snapshot, flt: ListFilter) -> list[LiveUser]:
    """The users to list, sorted by email (case-insensitive), then user id; users without email last."""
    chosen = [u for u in snapshot.users if flt.accepts(u)]
    return sorted(chosen, key=lambda u: (u.email is None, (u.email or "").casefold(), u.user_id))


def user_values(user: LiveUser, snapshot: Snapshot) -> dict[str, Any]:
    """Every listable column of one user, with its natural type (lists stay lists, numbers numbers).

    ``teams`` are the user's team ids as ``sync`` sees them (the rosters united with the user's own list,
    teams that no longer exist left out), sorted; ``team_names`` are their aliases in the same order (a
    team without alias is named by its id).
    """
    team_ids = sorted(snapshot.team_ids_of(user.user_id))
    teams = snapshot.teams_by_id
    return {
        "user_id": user.user_id,
        "user_email": user.email,
        "user_role": user.role,
        "teams": team_ids,
        "team_names": [teams[t].display_name for t in team_ids],
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "models": list(user.models),
        "max_budget": user.max_budget,
        "spend": user.spend,
        "user_alias": user.user_alias,
        "key_count": user.key_count,
    }


def build_rows(users: Iterable[LiveUser], snapshot: Snapshot, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per user holding exactly ``columns`` (in that order)."""
    rows = []
    for u in users:
        values = user_values(u, snapshot)
        rows.append({c: values[c] for c in columns})
    return rows


def build_sync_rows(users: Iterable[LiveUser], snapshot: Snapshot) -> tuple[list[tuple[str, str, str]], int]:
    """Rows of sync's input format (``email,role,team_name``) and the number of users left out.

    Users without an email cannot be rows of sync's input and are left out (and counted). A role outside
    the four proxy roles is written empty (sync then keeps the user's role). Team aliases are joined with
    ``;`` (sorted, as sync compares them).
    """
    rows: list[tuple[str, str, str]] = []
    left_out = 0
    for u in users:
        if not u.email:
            left_out += 1
            continue
        role = u.role if u.role in PROXY_ROLES else ""
        rows.append((u.email, role or "", join_team_names(snapshot.team_names_of(u.user_id))))
    return rows, left_out


def render_cell(value: Any) -> str:
    """One value as TSV/CSV text: lists as compact JSON arrays, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tsv_safe(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def render_tsv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Tab-separated, header first, one line per row (tabs and newlines inside values become spaces)."""
    lines = ["\t".join(columns)]
    lines.extend("\t".join(_tsv_safe(render_cell(r[c])) for c in columns) for r in rows)
    return "\n".join(lines) + "\n"


def render_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV (``\\n`` line ends), header first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([render_cell(v) for v in r])
    return buf.getvalue()


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON array of objects; list columns are real arrays."""
    return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"
