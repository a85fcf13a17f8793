"""The key journal: every API key and invitation link the tool receives, on disk before the run moves on.

A run that creates users receives secrets nobody else ever sees (the key ``/user/new`` mints, the
invitation id). The final report holds them, but a run killed before it writes the report (SIGKILL, an OOM
kill, a power cut) would lose them. So each secret is appended, as it arrives, to a journal beside the
report (``<report>.journal``, JSON lines, mode 0600, ``fsync``'d after every line) before the executor
clears the user's "key pending" marker on the proxy (see ``executor.KEY_PENDING``).

Lifecycle (driven by the CLI):

* :meth:`KeyJournal.open` — before the first change. A journal left by an interrupted run is moved aside
  (``<report>.journal.<UTC time>``, never overwritten) and its secrets, with those of earlier leftovers, are
  :attr:`KeyJournal.recorded`: the next run keeps a key it finds there instead of revoking it.
* :meth:`KeyJournal.record` — the executor's ``on_key`` hook, one line per secret, synchronous.
* :meth:`KeyJournal.finish` — after the final report is written (and flushed to disk): the journal is
  removed, the report holds everything it held.
* :func:`journal_rows` — when the run ends early (a second Ctrl-C, a second SIGTERM, a run-ending error),
  the CLI writes the report from what the journal holds so far.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litellm_usersync.identity import join_team_names
from litellm_usersync.models import Plan, PlanItem

JOURNAL_SCHEMA = "litellm-usersync/journal"
JOURNAL_VERSION = 1
JOURNAL_SUFFIX = ".journal"


def journal_path(report: str | Path) -> Path:
    """The journal that belongs to a report: ``<report>.journal`` in the report's folder."""
    p = Path(report)
    return p.with_name(p.name + JOURNAL_SUFFIX)


@dataclass(frozen=True)
class Entry:
    """One secret received: an API key or an invitation link, for one user."""

    user_id: str
    email: str
    role: str | None = None
    team_names: tuple[str, ...] = ()
    action: str = "ADDED"
    api_key: str | None = None
    invitation_url: str | None = None
    note: str | None = None


def _entry_from_line(data: Mapping[str, Any]) -> Entry | None:
    if data.get("schema") != JOURNAL_SCHEMA or not data.get("user_id"):
        return None
    return Entry(
        user_id=str(data["user_id"]),
        email=str(data.get("email") or ""),
        role=data.get("role"),
        team_names=tuple(str(t) for t in data.get("teams") or ()),
        action=str(data.get("action") or "ADDED"),
        api_key=data.get("api_key") or None,
        invitation_url=data.get("invitation_url") or None,
        note=data.get("note"),
    )


def read_journal(path: str | Path) -> list[Entry]:
    """Every entry of a journal; a torn last line (the run was killed while writing it) is ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[Entry] = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and (e := _entry_from_line(data)) is not None:
            out.append(e)
    return out


def leftover_journals(report: str | Path) -> list[Path]:
    """Journals that interrupted runs left in the report's folder, newest last: this report's, those moved
    aside, and those of other report names (a rerun often names its report differently)."""
    folder = journal_path(report).parent
    found = {p for pattern in (f"*{JOURNAL_SUFFIX}", f"*{JOURNAL_SUFFIX}.*") for p in folder.glob(pattern)}
    files = [p for p in found if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def merged(entries: Iterable[Entry]) -> dict[str, Entry]:
    """``user_id -> entry`` with the latest key and the latest invitation link of each user."""
    out: dict[str, Entry] = {}
    for e in entries:
        prev = out.get(e.user_id)
        if prev is None:
            out[e.user_id] = e
            continue
        out[e.user_id] = Entry(
            user_id=e.user_id,
            email=e.email or prev.email,
            role=e.role or prev.role,
            team_names=e.team_names or prev.team_names,
            action=prev.action,
            api_key=e.api_key or prev.api_key,
            invitation_url=e.invitation_url or prev.invitation_url,
            note=e.note or prev.note,
        )
    return out


@dataclass
class KeyJournal:
    """The journal of one run (see the module docstring). ``path`` None: a run that writes no journal."""

    path: Path
    run_id: str = ""
    command: str = ""
    #: ``user_id -> API key`` recorded by earlier, interrupted runs of this report (never revoked)
    recorded: dict[str, str] = field(default_factory=dict)
    #: where the interrupted run's journal was moved (None when there was none)
    kept: Path | None = None
    entries: list[Entry] = field(default_factory=list)
    _items: dict[str, PlanItem] = field(default_factory=dict)
    _fd: int | None = None

    @classmethod
    def open(cls, report: str | Path, *, run_id: str = "", command: str = "") -> KeyJournal:
        """Before the first change: move an interrupted run's journal aside, read every leftover's keys, and
        create this run's journal (0600). Raises ``OSError`` when it cannot (the run must not start then)."""
        live = journal_path(report)
        recorded: dict[str, str] = {}
        for p in leftover_journals(report):  # oldest first: the newest key of a user wins
            for e in read_journal(p):
                if e.api_key:
                    recorded[e.user_id] = e.api_key
        kept = None
        if live.exists():
            stamp = datetime.fromtimestamp(live.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
            for n in range(1, 1000):
                candidate = live.with_name(f"{live.name}.{stamp}{'' if n == 1 else f'-{n}'}")
                if not candidate.exists():
                    os.rename(live, candidate)
                    kept = candidate
                    break
        journal = cls(path=live, run_id=run_id, command=command, recorded=recorded, kept=kept)
        journal._fd = os.open(live, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(journal._fd, 0o600)
        return journal

    def for_plan(self, plan: Plan) -> KeyJournal:
        """Know the plan's rows, so that each entry carries the user's role and teams (for the report)."""
        self._items.update({i.user_id: i for i in plan.items})
        return self

    def record(
        self,
        user_id: str,
        email: str,
        *,
        api_key: str | None = None,
        invitation_url: str | None = None,
        note: str | None = None,
    ) -> None:
        """Append one secret and ``fsync``. Raises ``OSError``: a key that cannot be made durable must not be
        treated as recorded (the executor then keeps the user's marker, and the next run repairs it)."""
        item = self._items.get(user_id)
        entry = Entry(
            user_id=user_id,
            email=email or (item.email if item else ""),
            role=item.role if item else None,
            team_names=tuple(item.team_names) if item else (),
            action=item.kind.value if item else "ADDED",
            api_key=api_key,
            invitation_url=invitation_url,
            note=note,
        )
        line = {
            "schema": JOURNAL_SCHEMA,
            "version": JOURNAL_VERSION,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_id": self.run_id,
            "command": self.command,
            "user_id": entry.user_id,
            "email": entry.email,
            "role": entry.role,
            "teams": list(entry.team_names),
            "action": entry.action,
            "api_key": api_key,
            "invitation_url": invitation_url,
            "note": note,
        }
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        if self._fd is None:
            raise OSError(f"the journal {self.path} is closed")
        os.write(self._fd, data)  # O_APPEND: one write per line
        os.fsync(self._fd)
        self.entries.append(entry)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self) -> None:
        """The final report is written and on disk: the journal is no longer needed."""
        self.close()
        self.path.unlink(missing_ok=True)


def journal_rows(
    entries: Iterable[Entry], columns: tuple[str, ...], *, status: str, reason: str
) -> list[tuple[str, ...]]:
    """Report rows (in the given report's columns) for the secrets a journal holds: one row per user."""
    rows: list[tuple[str, ...]] = []
    for e in merged(entries).values():
        values = {
            "action": e.action,
            "email": e.email,
            "user_id": e.user_id,
            "role": e.role or "",
            "team_name": join_team_names(e.team_names),
            "api_keys": e.api_key or "",
            "invitation_url": e.invitation_url or "",
            "models": "",
            "status": status,
            "error_reason": "; ".join(x for x in (e.note, reason) if x),
        }
        rows.append(tuple(values.get(c, "") for c in columns))
    return rows
