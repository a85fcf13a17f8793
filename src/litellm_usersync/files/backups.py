"""Snapshots on disk: the live users, roles and team memberships as a versioned JSON document (no secrets).

``snapshot_to_document`` / ``snapshot_from_document`` are pure. ``write_backup`` and ``read_snapshot_file`` do
the file I/O (through ``files/jsonfiles``): backup folders are created mode 0700, files are written atomically with
mode 0600 (they hold emails: personal data, though never a key).

The document (``docs/plans-and-restore.md`` has the full schema)::

    {
      "schema": "litellm-usersync/snapshot",
      "version": 1,                    # 2: a scoped snapshot (snapshot --scope)
      "created_at": "2026-11-27T03:07:38Z",
      "command": "sync",
      "proxy_version": "1.74.0",
      "caller_user_id": "default_user_id",
      "users": [{"user_id": ..., "email": ..., "role": ..., "team_ids": [...], "key_count": 2, ...}],
      "teams": [{"team_id": ..., "alias": ..., "members": [{"user_id": ..., "email": ..., "role": "user"}]}]
    }

No API key value and no master key is ever part of a snapshot: :class:`~.models.LiveUser` has none.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litellm_usersync.errors import InputError
from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import (
    LiveUser,
    Scope,
    Snapshot,
    Team,
    TeamKey,
    TeamMember,
    UserKey,
    parse_scope_term,
)

from .jsonfiles import _write_tmp, ensure_private_dir, read_json_file
from .planfile import check_document_header

SNAPSHOT_SCHEMA = "litellm-usersync/snapshot"
#: version 1 (a whole-proxy snapshot) gained the teams' settings as optional fields (max_budget, budget_duration,
#: models, tpm_limit, rpm_limit: what a teams file manages); a file without them reads as teams without settings
SNAPSHOT_VERSION = 1
#: a snapshot of some users only (``snapshot --scope``) is version 2, with its ``scope``: a tool from before
#: scopes refuses it rather than restoring it as the whole proxy (which would delete everyone else)
SCOPED_SNAPSHOT_VERSION = 2
SNAPSHOT_VERSIONS = (SNAPSHOT_VERSION, SCOPED_SNAPSHOT_VERSION)

#: where ``sync``/``add``/``delete``/``restore`` put a snapshot before changing anything, and ``snapshot`` by default
DEFAULT_BACKUP_DIR = Path("usersync-backups")
#: the audit log's file name inside the backup folder (``audit.audit_path`` joins it)
AUDIT_FILE_NAME = "audit.jsonl"


# --------------------------------------------------------------------------------------------------
# pure


def utc_timestamp(now: datetime | None = None) -> str:
    """``2026-11-27T03:07:38Z`` (UTC, whole seconds)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_to_dict(u: LiveUser) -> dict[str, Any]:
    return {
        "user_id": u.user_id,
        "email": u.email,
        "role": u.role,
        "team_ids": list(u.team_ids),
        "key_count": u.key_count,
        "spend": u.spend,
        "user_alias": u.user_alias,
        "max_budget": u.max_budget,
        "models": list(u.models),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "managed_marker": u.managed_marker,
        # what a recreation (the sync fallback, or a restore) needs to bring the user back whole
        "budget_duration": u.budget_duration,
        "tpm_limit": u.tpm_limit,
        "rpm_limit": u.rpm_limit,
        "max_parallel_requests": u.max_parallel_requests,
        "sso_user_id": u.sso_user_id,
        "metadata": dict(u.metadata) if u.metadata else None,
        "model_max_budget": dict(u.model_max_budget) if u.model_max_budget else None,
    }


def _team_to_dict(t: Team) -> dict[str, Any]:
    d: dict[str, Any] = {
        "team_id": t.team_id,
        "alias": t.alias,
        "members": [{"user_id": m.user_id, "email": m.email, "role": m.role} for m in t.members],
        "max_budget": t.max_budget,
        "budget_duration": t.budget_duration,
        "models": list(t.models),
        "tpm_limit": t.tpm_limit,
        "rpm_limit": t.rpm_limit,
    }
    if not t.roster_read:  # only a snapshot built by hand lacks a roster; one read from the proxy has it
        d["roster_read"] = False
    return d


def _team_key_to_dict(k: TeamKey) -> dict[str, Any]:
    """A key the run's team moves would delete: its hash (never the key), owner, team and alias."""
    return {"token": k.token, "user_id": k.user_id, "team_id": k.team_id, "alias": k.alias}


def _user_key_to_dict(k: UserKey) -> dict[str, Any]:
    """A key of a user the run blocks: its hash (never the key), owner, team, alias, and whether it was
    blocked before the run (a reactivation leaves those blocked)."""
    return {"token": k.token, "user_id": k.user_id, "team_id": k.team_id, "alias": k.alias, "blocked": k.blocked}


def snapshot_to_document(
    snapshot: Snapshot, *, command: str, created_at: str, scope: Scope | None = None
) -> dict[str, Any]:
    """The snapshot as a versioned, JSON-ready document. ``command`` names what took it (``sync``,
    ``snapshot``, ...), ``created_at`` when (``utc_timestamp()``). Users and teams keep the snapshot's order.
    ``scope``: the snapshot holds only these users (``Scope.restrict``); recorded, and the document is version 2.
    """
    scoped = scope.values() if scope is not None else []
    head: dict[str, Any] = {
        "schema": SNAPSHOT_SCHEMA,
        "version": SCOPED_SNAPSHOT_VERSION if scoped else SNAPSHOT_VERSION,
    }
    if scoped:
        head["scope"] = scoped
    return {
        **head,
        "created_at": created_at,
        "command": command,
        "proxy_version": snapshot.proxy_version,
        "caller_user_id": snapshot.caller_user_id,
        "counts": {"users": len(snapshot.users), "teams": len(snapshot.teams)},
        "users": [_user_to_dict(u) for u in snapshot.users],
        "teams": [_team_to_dict(t) for t in snapshot.teams],
        "team_keys": [_team_key_to_dict(k) for k in snapshot.team_keys],
        "user_keys": [_user_key_to_dict(k) for k in snapshot.user_keys],
    }


def iter_snapshot_json(
    snapshot: Snapshot, *, command: str, created_at: str, scope: Scope | None = None
) -> Iterator[str]:
    """The JSON text of :func:`snapshot_to_document`, produced piece by piece (one user or team a line).

    Writing a backup this way never holds the whole document or its text in memory: at 10,000 users that
    is about 40 MB less at the peak of a run (bench/RESULTS.md, finding 1).
    """
    head = snapshot_to_document(Snapshot(users=(), teams=()), command=command, created_at=created_at, scope=scope)
    head.update(
        proxy_version=snapshot.proxy_version,
        caller_user_id=snapshot.caller_user_id,
        counts={"users": len(snapshot.users), "teams": len(snapshot.teams)},
    )
    del head["users"], head["teams"], head["team_keys"], head["user_keys"]
    yield "{\n"
    for key, value in head.items():
        yield f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n"
    sections: tuple[tuple[str, Iterable[dict[str, Any]]], ...] = (
        ("users", (_user_to_dict(u) for u in snapshot.users)),
        ("teams", (_team_to_dict(t) for t in snapshot.teams)),
        ("team_keys", (_team_key_to_dict(k) for k in snapshot.team_keys)),
        ("user_keys", (_user_key_to_dict(k) for k in snapshot.user_keys)),
    )
    for n, (name, rows) in enumerate(sections):
        yield f"  {json.dumps(name)}: ["
        sep = "\n    "
        for row in rows:
            yield sep + json.dumps(row, ensure_ascii=False)
            sep = ",\n    "
        yield "\n  ]" + (",\n" if n < len(sections) - 1 else "\n")
    yield "}\n"


def _fail(where: str, message: str) -> InputError:
    return InputError(f"snapshot file: {where}: {message}")


def _opt_str(row: Mapping[str, Any], name: str, where: str) -> str | None:
    v = row.get(name)
    if v is not None and not isinstance(v, str):
        raise _fail(f"{where}.{name}", "expected a string or null")
    return v


def _req_str(row: Mapping[str, Any], name: str, where: str) -> str:
    v = row.get(name)
    if not isinstance(v, str) or not v:
        raise _fail(f"{where}.{name}", "expected a non-empty string")
    return v


def _strs(row: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    v = row.get(name) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _fail(f"{where}.{name}", "expected a list of strings")
    return tuple(v)


def _number(row: Mapping[str, Any], name: str, where: str, default: float | None) -> float | None:
    v = row.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(f"{where}.{name}", "expected a number")
    return float(v)


def _opt_int(row: Mapping[str, Any], name: str, where: str) -> int | None:
    v = row.get(name)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise _fail(f"{where}.{name}", "expected an integer or null")
    return v


def _opt_obj(row: Mapping[str, Any], name: str, where: str) -> dict[str, Any] | None:
    v = row.get(name)
    if v is not None and not isinstance(v, Mapping):
        raise _fail(f"{where}.{name}", "expected an object or null")
    return dict(v) if v else None


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "expected an object")
    return value


def _user_from_dict(data: object, where: str) -> LiveUser:
    row = _obj(data, where)
    key_count = row.get("key_count", 0)
    if isinstance(key_count, bool) or not isinstance(key_count, int):
        raise _fail(f"{where}.key_count", "expected an integer")
    managed = row.get("managed_marker", False)
    if not isinstance(managed, bool):
        raise _fail(f"{where}.managed_marker", "expected true or false")
    return LiveUser(
        user_id=_req_str(row, "user_id", where),
        email=_opt_str(row, "email", where),
        role=_opt_str(row, "role", where),
        team_ids=_strs(row, "team_ids", where),
        key_count=key_count,
        spend=_number(row, "spend", where, 0.0) or 0.0,
        user_alias=_opt_str(row, "user_alias", where),
        max_budget=_number(row, "max_budget", where, None),
        models=_strs(row, "models", where),
        created_at=_opt_str(row, "created_at", where),
        updated_at=_opt_str(row, "updated_at", where),
        managed_marker=managed,
        budget_duration=_opt_str(row, "budget_duration", where),
        tpm_limit=_opt_int(row, "tpm_limit", where),
        rpm_limit=_opt_int(row, "rpm_limit", where),
        max_parallel_requests=_opt_int(row, "max_parallel_requests", where),
        sso_user_id=_opt_str(row, "sso_user_id", where),
        metadata=_opt_obj(row, "metadata", where),
        model_max_budget=_opt_obj(row, "model_max_budget", where),
    )


def _team_from_dict(data: object, where: str) -> Team:
    row = _obj(data, where)
    members_raw = row.get("members") or []
    if not isinstance(members_raw, list):
        raise _fail(f"{where}.members", "expected a list")
    members = []
    for n, m in enumerate(members_raw):
        mw = f"{where}.members[{n}]"
        mrow = _obj(m, mw)
        role = mrow.get("role") or "user"
        if not isinstance(role, str):
            raise _fail(f"{mw}.role", "expected a string")
        members.append(TeamMember(_opt_str(mrow, "user_id", mw), _opt_str(mrow, "email", mw), role))
    return Team(
        team_id=_req_str(row, "team_id", where),
        alias=_opt_str(row, "alias", where),
        members=tuple(members),
        roster_read=row.get("roster_read", True) is not False,
        max_budget=_number(row, "max_budget", where, None),
        budget_duration=_opt_str(row, "budget_duration", where),
        models=_strs(row, "models", where),
        tpm_limit=_opt_int(row, "tpm_limit", where),
        rpm_limit=_opt_int(row, "rpm_limit", where),
    )


def snapshot_from_document(doc: object) -> Snapshot:
    """Rebuild the :class:`Snapshot` of :func:`snapshot_to_document`; raises :class:`InputError` on a wrong
    schema, an unsupported version or a malformed document (the message names the field).
    """
    checked = check_document_header(doc, schema=SNAPSHOT_SCHEMA, version=SNAPSHOT_VERSIONS, what="snapshot file")
    users_raw, teams_raw = checked.get("users"), checked.get("teams")
    if not isinstance(users_raw, list):
        raise _fail("users", "expected a list")
    if not isinstance(teams_raw, list):
        raise _fail("teams", "expected a list")
    users = tuple(_user_from_dict(u, f"users[{n}]") for n, u in enumerate(users_raw))
    teams = tuple(_team_from_dict(t, f"teams[{n}]") for n, t in enumerate(teams_raw))
    seen: set[str] = set()
    for u in users:
        if u.user_id in seen:
            raise _fail("users", f"user id {u.user_id!r} appears twice")
        seen.add(u.user_id)
    caller = checked.get("caller_user_id") or DEFAULT_USER_ID
    version = checked.get("proxy_version")
    if not isinstance(caller, str) or (version is not None and not isinstance(version, str)):
        raise _fail("caller_user_id/proxy_version", "expected strings")
    keys_raw = checked.get("team_keys") or []
    if not isinstance(keys_raw, list):
        raise _fail("team_keys", "expected a list")
    team_keys = []
    for n, k in enumerate(keys_raw):
        kw = f"team_keys[{n}]"
        krow = _obj(k, kw)
        team_keys.append(
            TeamKey(
                _req_str(krow, "token", kw),
                _req_str(krow, "user_id", kw),
                _req_str(krow, "team_id", kw),
                _opt_str(krow, "alias", kw),
            )
        )
    return Snapshot(users=users, teams=teams, proxy_version=version, caller_user_id=caller, team_keys=tuple(team_keys))


def snapshot_scope(doc: Mapping[str, Any]) -> Scope:
    """The scope a snapshot document was taken with (``snapshot --scope``); the default for a whole-proxy one."""
    if doc.get("version") == SNAPSHOT_VERSION:
        return Scope()
    values = doc.get("scope")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _fail("scope", "expected a non-empty list of --scope terms (a version 2 snapshot holds some users only)")
    return Scope.of(parse_scope_term(v, where=f"snapshot file: scope[{n}]") for n, v in enumerate(values))


def snapshot_created_at(doc: Mapping[str, Any]) -> str:
    """The ``created_at`` of a snapshot document, or ``"an unknown time"``."""
    v = doc.get("created_at")
    return v if isinstance(v, str) and v else "an unknown time"


# --------------------------------------------------------------------------------------------------
# I/O


def read_snapshot_file(path: str | Path) -> tuple[Snapshot, dict[str, Any]]:
    """Read a snapshot file: the :class:`Snapshot` and the raw document (for ``created_at``/``command``)."""
    doc = read_json_file(path, what="snapshot file")
    snapshot = snapshot_from_document(doc)
    return snapshot, dict(doc)


def backup_file_name(created: datetime, command: str, attempt: int = 0) -> str:
    """``snapshot-20261127T030738Z-sync.json`` (``-2``, ``-3``... when that second already has one)."""
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in command) or "run"
    suffix = f"-{attempt + 1}" if attempt else ""
    return f"snapshot-{stamp}-{safe}{suffix}.json"


def write_backup(
    snapshot: Snapshot,
    backup_dir: str | Path,
    *,
    command: str,
    now: datetime | None = None,
    scope: Scope | None = None,
) -> Path:
    """Write ``snapshot`` into ``backup_dir`` as ``snapshot-<UTC time>-<command>.json``; returns the path.

    The folder is created mode 0700 when missing; the file is written atomically, mode 0600, and never
    replaces an existing snapshot (a second one in the same second gets ``-2``).
    """
    created = now or datetime.now(UTC)
    directory = ensure_private_dir(backup_dir)
    chunks = iter_snapshot_json(snapshot, command=command, created_at=utc_timestamp(created), scope=scope)
    tmp = _write_tmp(directory, "snapshot", chunks)
    try:
        for attempt in range(1000):
            target = directory / backup_file_name(created, command, attempt)
            try:
                os.link(tmp, target)  # atomic, and fails rather than replacing an existing file
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: check, then rename
                if target.exists():
                    continue
                os.replace(tmp, target)
            return target
        raise InputError(f"cannot find a free snapshot file name in {directory}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
