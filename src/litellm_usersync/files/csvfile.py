"""Reading the user file: a CSV (or an ``.xlsx`` sheet) into a desired state. Writing CSVs: ``files/reportfiles``.

Parsing is pure (text in, models out). Every problem is collected with its file, line and column, and
raised together as one :class:`CsvError`, so an operator can fix the whole file in one go.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from litellm_usersync.errors import CsvError, CsvProblem, InputError
from litellm_usersync.identity import PROXY_ROLES, normalize_email, split_team_cell
from litellm_usersync.models import DesiredState, DesiredUser
from litellm_usersync.models.fields import METADATA_PREFIX, USER_FIELDS, FieldValue

from .cells import field_columns, parse_field_cell
from .workbook import Record, xlsx_records

#: Header names accepted for each field (compared case-insensitively, trimmed).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "user_email", "e-mail", "mail"),
    "role": ("role", "user_role"),
    "team_name": ("team_name", "team", "teams", "team_names"),
    "key_name": ("key_name", "key_alias"),
}

MAX_PROBLEMS = 200


@dataclass(frozen=True)
class InputFormat:
    """How to read an input file: ``--delimiter``, ``--encoding``, ``--sheet``, ``--column``.

    ``None`` means detect: the delimiter among ``,`` ``;`` and tab (from the header), the encoding UTF-8
    (with or without BOM; UTF-16 when it has a UTF-16 BOM), the first sheet of a workbook.
    ``columns`` maps our field names to the file's header names (``(("email", "Email Address"),)``).
    """

    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    columns: tuple[tuple[str, str], ...] = ()


#: the delimiters a CSV is detected with (Excel saves ';' in many locales, "Unicode text" with tabs)
DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls


def read_users_csv(path: str | Path, *, with_key_name: bool = False, fmt: InputFormat | None = None) -> DesiredState:
    """Read a user file from disk: CSV (any of the delimiters, see :class:`InputFormat`) or an ``.xlsx``
    workbook. Raises :class:`CsvError` on any problem, every one located."""
    fmt = fmt or InputFormat()
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"CSV file not found: {p} (see --csv-file)") from None
    except OSError as exc:
        raise CsvError([CsvProblem(str(p), 0, None, f"cannot read file: {exc.strerror}")]) from exc
    if data.startswith(_OLE_MAGIC):
        raise InputError(f"{p} is an old Excel .xls workbook: save it as .xlsx (or as CSV) and use that")
    if p.suffix.lower() in XLSX_SUFFIXES or data.startswith(_ZIP_MAGIC):
        for given, option in ((fmt.delimiter, "--delimiter"), (fmt.encoding, "--encoding")):
            if given is not None:
                raise InputError(f"{option} applies to CSV files; {p} is an Excel workbook")
        header, header_row, records, sheet = xlsx_records(data, str(p), fmt.sheet)
        return _parse_records(
            header,
            records,
            str(p),
            with_key_name=with_key_name,
            columns=fmt.columns,
            sheet=sheet,
            header_line=header_row,
        )
    if fmt.sheet is not None:
        raise InputError(f"--sheet applies to .xlsx workbooks; {p} is a CSV file")
    text = decode_csv_bytes(data, str(p), fmt.encoding)
    return parse_users_csv(text, str(p), with_key_name=with_key_name, delimiter=fmt.delimiter, columns=fmt.columns)


def decode_csv_bytes(data: bytes, path: str, encoding: str | None = None) -> str:
    """UTF-8 with or without BOM (UTF-16 with its BOM), or ``encoding``. Invalid bytes are reported with
    their line and what to do (``--encoding``)."""
    if encoding is None and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # Excel's "Unicode text": UTF-16 with a BOM (and tabs)
    name = encoding or "utf-8-sig"
    try:
        if codecs.lookup(name).name == "utf-8":
            name = "utf-8-sig"  # a BOM is not part of the header
        return data.decode(name)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (--encoding); e.g. utf-8, cp1252, latin-1") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = f"byte 0x{data[exc.start]:02x}"
        if encoding is None:
            msg = (
                f"not valid UTF-8 ({byte}); if the file comes from Excel on Windows, read it with "
                "--encoding cp1252 (or --encoding latin-1), or save it as UTF-8"
            )
        else:
            msg = f"not valid {encoding} ({byte}), as read with --encoding {encoding}; try another --encoding"
        raise CsvError([CsvProblem(path, line, None, msg)]) from None


def detect_delimiter(text: str, columns: Sequence[tuple[str, str]] = ()) -> str:
    """The delimiter of the header line among :data:`DELIMITERS`: the one that splits it into the most
    recognised column names (ours, or those named by ``columns``), then into the most cells; ``,`` on a tie."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    known = {_clean(a) for aliases in COLUMN_ALIASES.values() for a in aliases} | {_clean(h) for _, h in columns}

    def score(delimiter: str) -> tuple[int, int, int]:
        try:
            cells = next(csv.reader([first], delimiter=delimiter), [])
        except csv.Error:
            return (-1, 0, 0)
        return (sum(_clean(c) in known for c in cells), len(cells), delimiter == ",")

    return max(DELIMITERS, key=score)


def _clean(header_cell: str) -> str:
    return header_cell.strip().lstrip("\ufeff").strip().lower()


def _header_map(header: Sequence[str], columns: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    cleaned = [_clean(h) for h in header]
    found: dict[str, int] = {}
    mapped = dict(columns)
    for field_name, name in mapped.items():
        if _clean(name) in cleaned:
            found[field_name] = cleaned.index(_clean(name))
    claimed = set(found.values())
    for field_name, aliases in COLUMN_ALIASES.items():
        if field_name in mapped:
            continue
        for i, h in enumerate(cleaned):
            if h in aliases and field_name not in found and i not in claimed:
                found[field_name] = i
    return found


def _email_lookalikes(header: Sequence[str]) -> list[str]:
    """Header cells that are probably the email column under another name (``Email Address``, ``Mail``)."""
    return [h.strip() for h in header if "mail" in _clean(h) and _clean(h) not in COLUMN_ALIASES["email"]]


#: a plain dot-atom local part (the common case): its validity needs no library call
_SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")


def _full_check(address: str) -> str | None:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        if "special-use or reserved" in str(exc):
            return None  # corp.local, lab.test, ...: internal directories use them, and so may the proxy
        return str(exc)
    return None


@functools.lru_cache(maxsize=4096)
def _domain_problem(domain: str) -> str | None:
    return _full_check(f"x@{domain}")


def _column_typos(
    header: Sequence[str], *, with_key_name: bool, columns: Sequence[tuple[str, str]] = ()
) -> list[tuple[int, str, str]]:
    """Header cells that are not ours but look like one of ours (``rol``, ``roles``, ``emial``): an error,
    since ignoring them would silently give every new user the default role. Other extra columns (an HR
    export's ``name``, ``department``) are fine and ignored."""
    known = [a for f, aliases in COLUMN_ALIASES.items() if with_key_name or f != "key_name" for a in aliases]
    known.extend(USER_FIELDS)
    ours = {a for aliases in COLUMN_ALIASES.values() for a in aliases} | {_clean(h) for _, h in columns}
    ours.update(USER_FIELDS)
    typos = []
    for i, raw in enumerate(header):
        name = _clean(raw)
        if not name or name in ours or name.startswith(METADATA_PREFIX):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            typos.append((i, raw.strip(), f"unknown column {raw.strip()!r}: did you mean {close[0]!r}?"))
    return typos


def _check_email(raw: str) -> str | None:
    """None when the address is acceptable, else what is wrong with it.

    A plain local part is checked here and its domain once per domain (most of the library's time is the
    domain's IDNA check, the same for every row of a domain: 0.58 s for 10,000 rows, bench finding 4).
    """
    address = raw.strip()
    local, at, domain = address.rpartition("@")
    if at and len(local) <= 64 and len(address) <= 254 and _SIMPLE_LOCAL.fullmatch(local):
        return _domain_problem(domain)
    return _full_check(address)


def parse_users_csv(
    text: str,
    path: str = "<csv>",
    *,
    with_key_name: bool = False,
    delimiter: str | None = None,
    columns: Sequence[tuple[str, str]] = (),
) -> DesiredState:
    """Parse CSV text into a :class:`DesiredState`.

    Columns: ``email`` (required), ``role`` and ``team_name`` (optional; several teams separated by ``;``),
    and ``key_name`` when ``with_key_name``; ``columns`` maps them to other header names. The delimiter is
    detected (``,`` ``;`` tab) unless given. Blank lines are skipped. Raises :class:`CsvError` listing every
    problem: a missing email column, an invalid email, an unknown role, the same email twice.
    """
    text = text.lstrip("\ufeff")
    delimiter = delimiter or detect_delimiter(text, columns)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError(
            [CsvProblem(path, 1, None, "the file is empty: expected a header line with an 'email' column")]
        ) from None
    except csv.Error as exc:
        raise CsvError([CsvProblem(path, 1, None, f"unreadable header: {exc}")]) from None

    def records() -> Iterator[Record]:
        prev_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # e.g. an unterminated quote: name the line where the broken record starts, and stop (everything
                # after it would be swallowed into one cell, and users missing from a CSV get deleted)
                yield CsvProblem(path, prev_end + 1, None, f"malformed CSV: {exc}; check the quotes on this line")
                return
            yield prev_end + 1, row
            prev_end = reader.line_num

    return _parse_records(header, records(), path, with_key_name=with_key_name, columns=columns, delimiter=delimiter)


def _parse_records(
    header: list[str],
    records: Iterator[Record],
    path: str,
    *,
    with_key_name: bool,
    columns: Sequence[tuple[str, str]],
    sheet: str | None = None,
    delimiter: str = ",",
    header_line: int = 1,
) -> DesiredState:
    """Validate the records of a CSV file or of a sheet (``sheet``: its name; columns are then letters)."""

    def label(i: int, name: str) -> str:
        return f"{_column_letter(i) if sheet is not None else i + 1} ({name})"

    def problem(line: int, column: str | None, message: str) -> CsvProblem:
        return CsvProblem(path, line, column, message, sheet)

    problems: list[CsvProblem] = []
    cols = _header_map(header, columns)
    unmatched = [(f, name) for f, name in columns if f not in cols]
    if unmatched:
        got = ", ".join(repr(h) for h in header) or "nothing"
        raise CsvError(
            [
                problem(header_line, None, f'--column {f}="{n}": no such column in the header (found {got})')
                for f, n in unmatched
            ]
        )
    typos = _column_typos(header, with_key_name=with_key_name, columns=columns)
    if typos:
        raise CsvError([problem(header_line, label(i, name), msg) for i, name, msg in typos])
    if "email" not in cols:
        got = ", ".join(repr(h) for h in header) or "nothing"
        hint = ""
        lookalikes = _email_lookalikes(header)
        if lookalikes:
            hint = f'; if {lookalikes[0]!r} holds the addresses, map it: --column email="{lookalikes[0]}"'
        raise CsvError([problem(header_line, None, f"missing the 'email' column in the header (found {got}){hint}")])

    def col(field_name: str) -> str:
        return label(cols[field_name], field_name)

    # the managed user fields (absent column: not managed); their names are never our other columns
    managed = {f: i for f, i in field_columns(header).items() if i not in cols.values()}

    users: list[DesiredUser] = []
    first_line: dict[str, int] = {}
    team_cells: dict[str, tuple[str, ...]] = {}
    for record in records:
        if len(problems) >= MAX_PROBLEMS:
            break
        if isinstance(record, CsvProblem):
            problems.append(record)
            break
        line, row = record
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) > len(header):
            extra = [c for c in row[len(header) :] if c.strip()]
            if extra:
                where = "cells" if sheet is not None else "fields"
                fix = (
                    "give every column a header"
                    if sheet is not None
                    else f"quote cells that contain {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}"
                )
                problems.append(problem(line, None, f"{len(row)} {where} but the header has {len(header)}; {fix}"))
                continue

        def cell(field_name: str, row: list[str] = row) -> str:
            i = cols.get(field_name)
            return row[i].strip() if i is not None and i < len(row) else ""

        email = cell("email").lstrip("\ufeff").strip()
        if not email:
            problems.append(problem(line, col("email"), "email is empty; expected an address like user@example.com"))
            continue
        bad = _check_email(email)
        if bad:
            problems.append(problem(line, col("email"), f"invalid email {email!r}: {bad}"))
            continue
        key = normalize_email(email)
        if key in first_line:
            what = "row" if sheet is not None else "line"
            problems.append(
                problem(line, col("email"), f"duplicate email {email!r} (first seen on {what} {first_line[key]})")
            )
            continue
        first_line[key] = line

        role: str | None = cell("role") or None
        if role is not None:
            role = _ROLES.get(role.lower(), role)  # the one string of each role, not one per row
            if role not in PROXY_ROLES:
                problems.append(
                    problem(
                        line, col("role"), f"unknown role {cell('role')!r}; expected one of {', '.join(PROXY_ROLES)}"
                    )
                )
                continue
        team_names: tuple[str, ...] | None = None
        if "team_name" in cols:
            text = cell("team_name")
            # rows of one team share one tuple (100,000 rows in 50 teams: 50 tuples)
            teams = team_cells.get(text)
            if teams is None:
                teams = split_team_cell(text)
                if len(team_cells) < _SHARED_CELLS:
                    team_cells[text] = teams
            team_names = teams or None
        key_name = (cell("key_name") or None) if with_key_name else None
        fields: list[tuple[str, FieldValue]] = []
        bad_cell = False
        for name, i in managed.items():
            text = row[i].strip() if i < len(row) else ""
            if not text:
                continue  # an empty cell leaves the value alone
            try:
                fields.append((name, parse_field_cell(name, text)))
            except ValueError as exc:
                problems.append(problem(line, label(i, name), str(exc)))
                bad_cell = True
        if bad_cell:
            continue
        users.append(
            DesiredUser(
                email=email.strip(),
                role=role,
                team_names=team_names,
                key_name=key_name,
                line=line,
                fields=tuple(fields),
            )
        )
    if problems:
        raise CsvError(problems)
    return DesiredState(users=tuple(users), source=path if sheet is None else f"{path}, sheet {sheet}")


#: each role as the one constant string (``PROXY_ROLES``)
_ROLES = {r: r for r in PROXY_ROLES}
#: how many distinct team cells are shared (beyond it, each row keeps its own: memory stays bounded either way)
_SHARED_CELLS = 10_000


def _column_letter(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (a spreadsheet's column names)."""
    letters = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
