"""JSON files on disk: written atomically (a temporary file renamed over the target), mode 0600 in private
folders (they hold emails), read back with a located error; saved plans as such files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from litellm_usersync.errors import InputError
from litellm_usersync.models import Plan

from .planfile import plan_from_document, plan_to_document


def ensure_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if missing; a folder this creates gets mode 0700. Existing ones are kept."""
    target = Path(path)
    if not target.is_dir():
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(target, 0o700)  # mkdir's mode is filtered by the umask
    return target


def _write_tmp(directory: Path, name: str, text: str | Iterable[str]) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=str(directory))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if isinstance(text, str):
                fh.write(text)
            else:
                fh.writelines(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def render_json(doc: Mapping[str, Any]) -> str:
    """The text we write for a document: indented, UTF-8, a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_json_file(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` to ``path`` atomically (temp file + rename), mode 0600; replaces an existing file.

    Use it for plan files too: ``write_json_file(path, plan_to_document(plan, source=...))``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return replace_file(target, render_json(doc))


def replace_file(target: Path, text: str | Iterable[str]) -> Path:
    """Write ``text`` (a string or its pieces) beside ``target`` (0600), then rename it over ``target``: readers
    see the old file or the new one, never half of it; the temporary file is removed when anything fails."""
    tmp = _write_tmp(target.parent, target.name, text)
    try:
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_json_file(path: str | Path, *, what: str = "file") -> Any:
    """Read a JSON file; a missing, unreadable or invalid file is an :class:`InputError` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {p}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {p} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def write_plan_file(path: str | Path, plan: Plan, *, source: str) -> Path:
    """Save ``plan`` as a plan file (``planfile`` schema), atomically, mode 0600 (``sync --plan-out``)."""
    return write_json_file(path, plan_to_document(plan, source=source))


def read_plan_file(path: str | Path) -> Plan:
    """Load a plan file (``sync --apply-plan``); a missing, invalid or malformed file is an :class:`InputError`.

    Check it with ``planfile.check_plan_fresh(plan, current)`` against a fresh read before applying it.
    """
    return plan_from_document(read_json_file(path, what="plan file"))
