"""The audit trail: one JSON line per change the tool makes, appended to a file (mode 0600). Never a secret.

Wire it into a run through the executor's ``on_outcome`` hook::

    audit = AuditLog(audit_path(backup_dir), run_id=new_run_id(), command="sync")
    report = await apply_plan(client, plan, on_outcome=audit.for_plan(plan))

A line (``docs/plans-and-restore.md`` has the schema)::

    {"time": "2026-11-27T03:07:38Z", "run_id": "...", "command": "sync", "action": "role:bob@x.com",
     "kind": "change_role", "user_id": "bob@x.com", "email": "bob@x.com", "team_id": null, "team_name": null,
     "before": {"role": "internal_user"}, "after": {"role": "proxy_admin"}, "status": "done", "error": null,
     "note": null}

``before`` is what the plan saw, ``after`` what the action aims at (it holds when ``status`` is ``done``); ``null``
means "no such user". API keys (``Outcome.api_key``) are never written, and anything looking like a key in an
error or note text is masked.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litellm_usersync.masking import mask_text
from litellm_usersync.models import (
    BLOCKED_BUDGET,
    BLOCKED_ROLE,
    AddMembership,
    AdoptUser,
    BlockUser,
    ChangeRole,
    CreateTeam,
    CreateUser,
    DeleteUser,
    Outcome,
    Plan,
    PlanItem,
    ReactivateUser,
    RebindKeys,
    RecreateUser,
    ReissueKey,
    RemoveMembership,
    UpdateTeam,
    UpdateUser,
)
from litellm_usersync.models.documents import action_type
from litellm_usersync.models.fields import fields_to_dict, value_to_json

from .backups import AUDIT_FILE_NAME, utc_timestamp
from .jsonfiles import ensure_private_dir

AUDIT_SCHEMA = "litellm-usersync/audit"
AUDIT_VERSION = 1


def audit_path(backup_dir: str | Path) -> Path:
    """The audit log that belongs beside the backups in ``backup_dir``: ``<backup_dir>/audit.jsonl``."""
    return Path(backup_dir) / AUDIT_FILE_NAME


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time and is unique: ``20261127T030738Z-1a2b3c4d``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def scrub(text: str | None, secrets: tuple[str, ...] = ()) -> str | None:
    """Mask every ``sk-...`` token and every given secret in ``text`` (``masking.mask_text``)."""
    if not text:
        return text
    return mask_text(text, secrets)


def _before_after(outcome: Outcome, item: PlanItem | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    a = outcome.action
    if isinstance(a, CreateUser):
        after: dict[str, Any] = {"email": a.email, "role": a.role, "team_ids": list(a.team_ids)}
        if a.fields:
            after["fields"] = fields_to_dict(a.fields)
        return None, after
    if isinstance(a, UpdateUser):
        old: dict[str, Any] = {c.name: value_to_json(c.old) for c in a.changes}
        new: dict[str, Any] = {c.name: value_to_json(c.new) for c in a.changes}
        if a.new_role is not None:
            old["role"], new["role"] = a.old_role, a.new_role
        return old, new
    if isinstance(a, CreateTeam):
        return None, {"team_alias": a.name, **fields_to_dict(a.fields)}
    if isinstance(a, UpdateTeam):
        return {c.name: value_to_json(c.old) for c in a.changes}, {c.name: value_to_json(c.new) for c in a.changes}
    if isinstance(a, DeleteUser):
        before: dict[str, Any] = {"email": a.email, "team_ids": list(a.team_ids)}
        if item is not None:
            before["role"] = item.role
            before["key_count"] = item.key_count
        return before, None
    if isinstance(a, ChangeRole):
        return {"role": a.old_role}, {"role": a.new_role}
    if isinstance(a, AddMembership):
        return {"member": False}, {"member": True}
    if isinstance(a, RemoveMembership):
        if a.destroys_keys:  # the leave deletes the user's keys bound to the team
            return {"member": True, "team_keys": a.destroys_keys}, {"member": False, "team_keys": "deleted"}
        return {"member": True}, {"member": False}
    if isinstance(a, RebindKeys):
        return {"team_id": a.from_team, "team_keys": len(a.tokens)}, {"team_id": a.to_team}
    if isinstance(a, RecreateUser):
        was = {"role": item.old_role, "team_ids": list(item.old_team_ids)} if item is not None else None
        return was, {"email": a.email, "role": a.role, "team_ids": list(a.team_ids), "keys": "deleted"}
    if isinstance(a, AdoptUser):  # --adopt: the tool's marker written into the user's metadata
        return {"managed_by": None}, {"managed_by": "litellm-usersync"}
    if isinstance(a, BlockUser):  # the keys by count: their hashes are in the user's record and the backup
        before = {"role": a.old_role, "max_budget": a.old_max_budget, "blocked": False}
        budget = BLOCKED_BUDGET if a.zero_budget else a.old_max_budget
        return before, {"role": BLOCKED_ROLE, "max_budget": budget, "blocked": True, "keys_blocked": len(a.tokens)}
    if isinstance(a, ReactivateUser):
        before = {"role": BLOCKED_ROLE, "blocked": True}
        return before, {"role": a.role, "max_budget": a.max_budget, "blocked": False, "keys_unblocked": len(a.tokens)}
    if isinstance(a, ReissueKey):
        # the key itself is never written here: it is in the report (0600)
        return {"api_key": "unknown (lost in an interrupted run)"}, {"api_key": "new (in the report)"}
    raise TypeError(f"unknown action {a!r}")


class AuditLog:
    """Appends one JSON line per outcome to ``path`` (created mode 0600, its folder 0700 when missing).

    ``secrets`` (e.g. the master key) are masked if they ever show up in an error text; ``clock`` returns the
    line's time (tests pass a fixed one).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        run_id: str,
        command: str,
        secrets: tuple[str, ...] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.command = command
        self._secrets = tuple(s for s in secrets if s)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.lines_written = 0
        #: lines that could not be written (``"<action key>: <OS error>"``)
        self.write_errors: list[str] = []
        #: team id -> name, for the ``team_name`` of membership lines (:meth:`for_plan` fills it from the plan)
        self.team_labels: dict[str, str] = {}
        #: the run's ``--scope`` terms (:meth:`for_plan` takes the plan's; empty: every managed user)
        self.scope: list[str] = []

    def line_for(self, outcome: Outcome, item: PlanItem | None) -> dict[str, Any]:
        """The JSON-ready audit line of one outcome (pure; :meth:`record` writes it)."""
        a = outcome.action
        before, after = _before_after(outcome, item)
        team_id = a.team_id if isinstance(a, (AddMembership, RemoveMembership, CreateTeam, UpdateTeam)) else None
        if isinstance(a, (CreateTeam, UpdateTeam)):
            self.team_labels.setdefault(a.team_id, a.name)
        return {
            "schema": AUDIT_SCHEMA,
            "version": AUDIT_VERSION,
            "time": utc_timestamp(self._clock()),
            "run_id": self.run_id,
            "command": self.command,
            "action": a.key,
            "kind": action_type(a),
            "user_id": a.user_id,
            "email": a.email,
            "team_id": team_id,
            "team_name": self.team_labels.get(team_id, team_id) if team_id else None,
            "before": before,
            "after": after,
            "status": outcome.status.value,
            "error": scrub(outcome.error, self._secrets),
            "note": scrub(outcome.note, self._secrets),
            "scope": self.scope,
        }

    def _append(self, data: bytes) -> None:
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            if data:
                os.write(fd, data)  # one write per line: lines of concurrent runs never interleave
        finally:
            os.close(fd)

    def check_writable(self) -> None:
        """Create the log (and its folder) now, so that an unwritable path stops a run before any change.

        Raises ``OSError``. Call it once before applying a plan with changes.
        """
        self._append(b"")

    def record(self, outcome: Outcome, item: PlanItem | None = None) -> None:
        """Append the line of ``outcome`` (``item``: the plan row it belongs to, for the "before" details).

        Never raises for a file error: a run must not stop half-way because of its log. The error is kept in
        :attr:`write_errors` for the caller to report.
        """
        line = json.dumps(self.line_for(outcome, item), ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._append(line.encode("utf-8"))
        except OSError as exc:
            self.write_errors.append(f"{outcome.action.key}: {exc}")
            return
        self.lines_written += 1

    def for_plan(self, plan: Plan) -> Callable[[Outcome], None]:
        """An ``on_outcome`` callback for :func:`~.executor.apply_plan` that finds each outcome's plan row by
        its action key (the fallback's ``recreate:`` outcomes by user id) and records it.
        """
        by_key = {a.key: i for i in plan.items for a in i.actions}
        self.team_labels.update(plan.team_labels)
        self.scope = plan.options.scope.values()
        by_user = {i.user_id: i for i in plan.items}

        def on_outcome(outcome: Outcome) -> None:
            a = outcome.action
            self.record(outcome, by_key.get(a.key) or by_user.get(a.user_id))

        return on_outcome


def read_audit_log(path: str | Path) -> list[dict[str, Any]]:
    """Every line of an audit log, parsed (for tests and tools)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
