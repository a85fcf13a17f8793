"""Reading the teams file (``--teams-file teams.csv``): team names and the settings each team should have.

Columns: ``team_name`` (required) and any of ``max_budget``, ``budget_duration``, ``models``, ``tpm_limit``,
``rpm_limit`` with the user file's cell rules (:mod:`.cells`: an empty cell leaves the setting alone, ``-``
clears it). Every problem is located (file, line, column) and raised together as one :class:`CsvError`.
"""

from __future__ import annotations

import csv
import difflib
import io
from pathlib import Path

from litellm_usersync.errors import CsvError, CsvProblem, InputError
from litellm_usersync.identity import normalize_team_name
from litellm_usersync.models import DesiredTeam
from litellm_usersync.models.fields import TEAM_FIELDS, FieldValue

from .cells import field_columns, parse_field_cell
from .csvfile import DELIMITERS, decode_csv_bytes

TEAM_NAME_COLUMNS = ("team_name", "team", "team_alias")


def read_teams_csv(path: str | Path) -> tuple[DesiredTeam, ...]:
    """Read a teams file from disk; raises :class:`CsvError` (every problem located) or :class:`InputError`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"teams file not found: {p} (see --teams-file)") from None
    except OSError as exc:
        raise CsvError([CsvProblem(str(p), 0, None, f"cannot read file: {exc.strerror}")]) from exc
    return parse_teams_csv(decode_csv_bytes(data, str(p)), str(p))


def _delimiter(first_line: str) -> str:
    known = {*TEAM_NAME_COLUMNS, *TEAM_FIELDS}

    def score(d: str) -> tuple[int, int]:
        cells = next(csv.reader([first_line], delimiter=d), [])
        return (sum(c.strip().lower() in known for c in cells), d == ",")

    return max(DELIMITERS, key=score)


def parse_teams_csv(text: str, path: str = "<teams>") -> tuple[DesiredTeam, ...]:
    """Parse a teams file's text. Raises :class:`CsvError` listing every problem."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text.split("\n", 1)[0]), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError([CsvProblem(path, 1, None, "the file is empty: expected a header with 'team_name'")]) from None
    except csv.Error as exc:
        raise CsvError([CsvProblem(path, 1, None, f"unreadable header: {exc}")]) from None
    cleaned = [h.strip().lower() for h in header]
    name_col = next((i for i, h in enumerate(cleaned) if h in TEAM_NAME_COLUMNS), None)
    problems: list[CsvProblem] = []
    for i, h in enumerate(cleaned):
        if not h or h in TEAM_NAME_COLUMNS or h in TEAM_FIELDS:
            continue
        close = difflib.get_close_matches(h, [*TEAM_FIELDS, "team_name"], n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}?" if close else f"expected team_name or {', '.join(TEAM_FIELDS)}"
        problems.append(CsvProblem(path, 1, f"{i + 1} ({header[i].strip()})", f"unknown column: {hint}"))
    if name_col is None:
        got = ", ".join(repr(h) for h in header) or "nothing"
        problems.append(CsvProblem(path, 1, None, f"missing the 'team_name' column in the header (found {got})"))
    if problems:
        raise CsvError(problems)
    assert name_col is not None
    managed = field_columns(header, team=True)
    teams: list[DesiredTeam] = []
    first: dict[str, int] = {}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(CsvProblem(path, start, None, f"malformed CSV: {exc}; check the quotes on this line"))
            break
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        name = " ".join(row[name_col].split()) if name_col < len(row) else ""
        where = f"{name_col + 1} (team_name)"
        if not name:
            problems.append(CsvProblem(path, start, where, "team_name is empty; expected the team's name (its alias)"))
            continue
        key = normalize_team_name(name)
        if key in first:
            problems.append(
                CsvProblem(path, start, where, f"duplicate team {name!r} (first seen on line {first[key]})")
            )
            continue
        first[key] = start
        fields: list[tuple[str, FieldValue]] = []
        for field_name, i in managed.items():
            cell = row[i].strip() if i < len(row) else ""
            if not cell:
                continue
            try:
                fields.append((field_name, parse_field_cell(field_name, cell)))
            except ValueError as exc:
                problems.append(CsvProblem(path, start, f"{i + 1} ({field_name})", str(exc)))
        teams.append(DesiredTeam(name=name, fields=tuple(fields), line=start))
    if problems:
        raise CsvError(problems)
    return tuple(teams)
