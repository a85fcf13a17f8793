"""The CSV files the tool writes: result and error reports, ``--update-existing``'s rows.

Each holds emails (personal data), some hold API keys or invitation links: every one is written atomically
with mode 0600, its folder checked before the first change, and a report holding an earlier run's secrets
moved aside rather than overwritten. Reading the user file is ``files/csvfile``.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from litellm_usersync.errors import InputError


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
    """Write a CSV file atomically, mode 0600: the one helper for every file the tool writes that holds emails.

    Every such file (reports, delete's result and error files, add's error file, ``--update-existing``
    output) holds emails, which are personal data, so each is 0600 like the backups; ``secret`` (the file also
    holds API keys or invitation links) changes nothing about the mode and is kept for the callers that say so.
    An existing file is replaced, never rewritten in place, so its old mode does not survive either.
    The folder must exist (a mistyped path must not silently create folders).
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"cannot write {target}: the folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows:
                w.writerow(["" if v is None else v for v in r])
            if secret:  # it may be the only copy of new API keys: on disk before the journal goes
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
