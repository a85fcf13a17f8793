"""Reading and writing the CSV files: desired state in, reports out.

Parsing is pure (text in, models out). Every problem is collected with its file, line and column, and
raised together as one :class:`CsvError`, so an operator can fix the whole file in one go.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from .errors import CsvError, CsvProblem, InputError
from .identity import PROXY_ROLES, normalize_email, split_team_cell
from .models import DesiredState, DesiredUser

#: Header names accepted for each field (compared case-insensitively, trimmed).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "user_email", "e-mail", "mail"),
    "role": ("role", "user_role"),
    "team_name": ("team_name", "team", "teams", "team_names"),
    "key_name": ("key_name", "key_alias"),
}

MAX_PROBLEMS = 200


def read_users_csv(path: str | Path, *, with_key_name: bool = False) -> DesiredState:
    """Read a user CSV file from disk. Raises :class:`CsvError` on any problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"CSV file not found: {p} (see --csv-file)") from None
    except OSError as exc:
        raise CsvError([CsvProblem(str(p), 0, None, f"cannot read file: {exc.strerror}")]) from exc
    return parse_users_csv(decode_csv_bytes(data, str(p)), str(p), with_key_name=with_key_name)


def decode_csv_bytes(data: bytes, path: str) -> str:
    """UTF-8 with or without BOM. Invalid bytes are reported with their line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvError(
            [CsvProblem(path, line, None, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8")]
        ) from None


def _header_map(header: Sequence[str]) -> dict[str, int]:
    cleaned = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
    found: dict[str, int] = {}
    for field_name, aliases in COLUMN_ALIASES.items():
        for i, h in enumerate(cleaned):
            if h in aliases and field_name not in found:
                found[field_name] = i
    return found


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


def _column_typos(header: Sequence[str], *, with_key_name: bool) -> list[tuple[int, str, str]]:
    """Header cells that are not ours but look like one of ours (``rol``, ``roles``, ``emial``): an error,
    since ignoring them would silently give every new user the default role. Other extra columns (an HR
    export's ``name``, ``department``) are fine and ignored."""
    known = [a for f, aliases in COLUMN_ALIASES.items() if with_key_name or f != "key_name" for a in aliases]
    ours = {a for aliases in COLUMN_ALIASES.values() for a in aliases}
    typos = []
    for i, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff").strip().lower()
        if not name or name in ours:
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


def parse_users_csv(text: str, path: str = "<csv>", *, with_key_name: bool = False) -> DesiredState:
    """Parse CSV text into a :class:`DesiredState`.

    Columns: ``email`` (required), ``role`` and ``team_name`` (optional; several teams separated by ``;``),
    and ``key_name`` when ``with_key_name``. Blank lines are skipped. Raises :class:`CsvError` listing every
    problem: a missing email column, an invalid email, an unknown role, the same email twice.
    """
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[CsvProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError(
            [CsvProblem(path, 1, None, "the file is empty: expected a header line with an 'email' column")]
        ) from None
    except csv.Error as exc:
        raise CsvError([CsvProblem(path, 1, None, f"unreadable header: {exc}")]) from None
    cols = _header_map(header)
    typos = _column_typos(header, with_key_name=with_key_name)
    if typos:
        raise CsvError([CsvProblem(path, 1, f"{i + 1} ({name})", msg) for i, name, msg in typos])
    if "email" not in cols:
        got = ", ".join(repr(h) for h in header) or "nothing"
        hint = ""
        if len(header) == 1 and ";" in header[0]:
            hint = "; the file looks separated by ';' (Excel in some locales): save it as comma-separated CSV"
        raise CsvError([CsvProblem(path, 1, None, f"missing the 'email' column in the header (found {got}){hint}")])

    def col(field_name: str) -> str:
        return f"{cols[field_name] + 1} ({field_name})"

    users: list[DesiredUser] = []
    first_line: dict[str, int] = {}
    prev_end = reader.line_num
    while len(problems) < MAX_PROBLEMS:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # e.g. an unterminated quote: name the line where the broken record starts, and stop (everything
            # after it would be swallowed into one cell, and users missing from a CSV get deleted)
            problems.append(
                CsvProblem(path, prev_end + 1, None, f"malformed CSV: {exc}; check the quotes on this line")
            )
            break
        line = prev_end + 1
        prev_end = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) > len(header):
            extra = [c for c in row[len(header) :] if c.strip()]
            if extra:
                problems.append(
                    CsvProblem(
                        path,
                        line,
                        None,
                        f"{len(row)} fields but the header has {len(header)}; quote cells that contain commas",
                    )
                )
                continue

        def cell(field_name: str, row: list[str] = row) -> str:
            i = cols.get(field_name)
            return row[i].strip() if i is not None and i < len(row) else ""

        email = cell("email").lstrip("\ufeff").strip()
        if not email:
            problems.append(
                CsvProblem(path, line, col("email"), "email is empty; expected an address like user@example.com")
            )
            continue
        bad = _check_email(email)
        if bad:
            problems.append(CsvProblem(path, line, col("email"), f"invalid email {email!r}: {bad}"))
            continue
        key = normalize_email(email)
        if key in first_line:
            problems.append(
                CsvProblem(
                    path, line, col("email"), f"duplicate email {email!r} (first seen on line {first_line[key]})"
                )
            )
            continue
        first_line[key] = line

        role: str | None = cell("role") or None
        if role is not None:
            role = role.lower()
            if role not in PROXY_ROLES:
                problems.append(
                    CsvProblem(
                        path,
                        line,
                        col("role"),
                        f"unknown role {cell('role')!r}; expected one of {', '.join(PROXY_ROLES)}",
                    )
                )
                continue
        team_names: tuple[str, ...] | None = None
        if "team_name" in cols:
            teams = split_team_cell(cell("team_name"))
            team_names = teams or None
        key_name = (cell("key_name") or None) if with_key_name else None
        users.append(DesiredUser(email=email.strip(), role=role, team_names=team_names, key_name=key_name, line=line))
    if problems:
        raise CsvError(problems)
    return DesiredState(users=tuple(users), source=path)


# --------------------------------------------------------------------------------------------------
# Writing


def check_output_path(path: str | Path) -> None:
    """Fail early (before any change) when a report cannot be written there: its folder must exist and be
    writable, and the path must not be a folder."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise InputError(f"cannot write the report {target}: it is a folder")
    if not folder.is_dir():
        raise InputError(f"cannot write the report {target}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"cannot write the report {target}: permission denied")


#: text that marks a report holding secrets (API keys, invitation links)
_SECRET_MARKERS = ("sk-", "invitation_id=")


def keep_previous_secrets(path: str | Path) -> Path | None:
    """If ``path`` holds API keys or invitation links from an earlier run, move it aside (mode kept) so the
    new report does not destroy the only copy of those keys. Returns where it went, or None."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    _header, _, body = text.partition("\n")
    if not any(m in body for m in _SECRET_MARKERS):
        return None
    stamp = datetime.fromtimestamp(target.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        kept = target.with_name(f"{target.stem}.{stamp}{'' if n == 1 else f'-{n}'}{target.suffix}")
        if not kept.exists():
            os.rename(target, kept)
            return kept
    return None


def write_csv_file(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]], *, secret: bool = False
) -> Path:
    """Write a CSV file atomically. ``secret`` files (they hold API keys) are created mode 0600.

    The folder must exist (a mistyped path must not silently create folders).
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"cannot write {target}: the folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    try:
        os.fchmod(fd, 0o600 if secret else 0o644)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows:
                w.writerow(["" if v is None else v for v in r])
        os.replace(tmp, target)
        if secret:
            os.chmod(target, 0o600)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
