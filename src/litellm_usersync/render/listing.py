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

from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES, join_team_names
from litellm_usersync.models import LiveUser, Scope, Snapshot
from litellm_usersync.models.fields import (
    METADATA_PREFIX,
    USER_FIELDS,
    canonical_models,
    cell_text,
    is_metadata_field,
    live_value,
)

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
    "status",
    # the names the user file uses (sync's input): ``list --format csv --columns email,role,...`` round-trips
    "email",
    "role",
    "team_name",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
)
#: ``metadata.<key>`` (any key) is a column too: that key of the user's metadata
METADATA_COLUMN_PREFIX = METADATA_PREFIX
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
#: ``--format csv`` without ``--columns``: sync's input format, so the output can be fed back to ``sync``
SYNC_INPUT_COLUMNS: tuple[str, ...] = ("email", "role", "team_name")
#: fields of the proxy's user rows that must never be printed (documentation; the allowlist enforces it)
SENSITIVE_FIELDS: frozenset[str] = frozenset({"password", "hashed_password", "salt", "token"})

FORMATS: tuple[str, ...] = ("tsv", "csv", "json", "table", "markdown")
#: ``--format table`` without ``--columns``: by priority; on a narrow terminal the last ones are left out first
TABLE_COLUMNS: tuple[str, ...] = (
    "user_email",
    "user_role",
    "team_names",
    "key_count",
    "spend",
    "status",
    "created_at",
    "updated_at",
    "user_id",
)
#: table columns that wrap onto several lines instead of pushing other columns out
TABLE_FOLDABLE: frozenset[str] = frozenset({"team_names", "teams", "models", "user_alias"})
#: a folding column is given at least this many characters before a column is left out for it
TABLE_MIN_FOLD = 16
#: what a table column costs beside its text (rich's box: a space either side and a bar)
TABLE_COLUMN_OVERHEAD = 3
_TIMESTAMPS = frozenset({"created_at", "updated_at"})


def _column_name(text: str) -> str:
    """A ``--columns`` entry: lower-cased, except the key of ``metadata.<key>`` (keys are case-sensitive)."""
    name = text.strip()
    if name.lower().startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
        return METADATA_PREFIX + name[len(METADATA_PREFIX) :].strip()
    return name.lower()


def parse_columns(text: str) -> tuple[str, ...]:
    """``"user_email, user_role"`` -> ``("user_email", "user_role")``; unknown or empty -> ``ValueError``."""
    cols = tuple(_column_name(c) for c in text.split(",") if c.strip())
    if not cols:
        raise ValueError("no column given; choose from " + ", ".join(LIST_COLUMNS))
    unknown = [c for c in cols if c not in LIST_COLUMNS and not is_metadata_field(c)]
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
    ``email_like`` is a case-insensitive substring of the email. ``scope``: only the users in it (``--scope``,
    as ``sync`` sees them; its team terms read the snapshot's memberships).
    """

    role: str | None = None
    email_like: str | None = None
    show_all: bool = False
    scope: Scope | None = None

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
    scope = flt.scope
    chosen = [u for u in snapshot.users if flt.accepts(u) and (scope is None or scope.contains(u, snapshot))]
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
        # "blocked": blocked by the tool (``--deprovision block``, ``delete --block``), until a sync reactivates it
        "status": "blocked" if user.block_record is not None else "active",
        "email": user.email,
        "role": user.role if user.role in PROXY_ROLES else None,
        "team_name": join_team_names(t for t in sorted(teams[t].display_name for t in team_ids)),
        "budget_duration": user.budget_duration,
        "tpm_limit": user.tpm_limit,
        "rpm_limit": user.rpm_limit,
    }


def build_rows(users: Iterable[LiveUser], snapshot: Snapshot, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per user holding exactly ``columns`` (in that order)."""
    rows = []
    for u in users:
        values = user_values(u, snapshot)
        rows.append({c: live_value(u, c) if is_metadata_field(c) else values[c] for c in columns})
    return rows


def csv_value(column: str, value: Any) -> Any:
    """A value for ``--format csv``: the user file's cell form for the columns sync reads (``models`` as
    ``a;b``, budgets without a trailing ``.0``), so the output is a user file; other columns as :func:`render_cell`."""
    if column in MANAGED_COLUMNS or is_metadata_field(column):
        if column == "models":
            return cell_text("models", canonical_models(value))
        return cell_text(column, value) if not isinstance(value, list) else render_cell(value)
    return value


#: the columns of the user file among the listable ones
MANAGED_COLUMNS: frozenset[str] = frozenset(USER_FIELDS)


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


def short_timestamp(value: Any) -> str:
    """``2026-11-27T03:07:38.123456+00:00`` -> ``2026-11-27 03:07`` (a table has no room for microseconds)."""
    text = render_cell(value)
    if len(text) >= 16 and text[4] == "-" and text[10] in "T ":
        return text[:10] + " " + text[11:16]
    return text


def table_cell(column: str, value: Any) -> str:
    """One value as a table cell: lists joined with ``, `` (one line, wrapped only if need be), short times."""
    if column in _TIMESTAMPS:
        return short_timestamp(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if column == "spend" and isinstance(value, (int, float)):
        return f"{value:,.2f}"
    return render_cell(value)


def fit_columns(rows: Sequence[Mapping[str, str]], columns: Sequence[str], width: int) -> tuple[str, ...]:
    """The columns (in priority order) that fit ``width`` characters; a foldable column counts its minimum.

    The first column is always kept. Columns that do not fit are left out from the end of ``columns``.
    """
    chosen: list[str] = []
    used = 1  # the table's left edge
    for c in columns:
        natural = max([len(c), *(len(line) for r in rows for line in r[c].split("\n"))])
        need = min(natural, max(TABLE_MIN_FOLD, len(c))) if c in TABLE_FOLDABLE else natural
        if not chosen or used + need + TABLE_COLUMN_OVERHEAD <= width:
            chosen.append(c)
            used += need + TABLE_COLUMN_OVERHEAD
    return tuple(chosen)


def render_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table (lists joined with ``, ``, pipes escaped)."""

    def cell(c: str, v: Any) -> str:
        return table_cell(c, v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines.extend("| " + " | ".join(cell(c, r[c]) for c in columns) + " |" for r in rows)
    return "\n".join(lines) + "\n"
