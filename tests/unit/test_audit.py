"""The audit log: one JSON line per outcome with before/after, never a secret, a private file."""

from __future__ import annotations

import json
import os
import pathlib
import stat
from datetime import UTC, datetime

import pytest

from litellm_usersync.files.audit import AuditLog, audit_path, new_run_id, read_audit_log, scrub
from litellm_usersync.files.backups import DEFAULT_BACKUP_DIR
from litellm_usersync.models import (
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    ItemKind,
    Outcome,
    OutcomeStatus,
    Plan,
    PlanItem,
    RecreateUser,
    RemoveMembership,
)

NOW = datetime(2026, 11, 27, 3, 7, 38, tzinfo=UTC)
KEY = "sk-Z9y8X7w6V5u4T3s2"
MASTER = "sk-master-0123456789abcdef"

CREATE = CreateUser("new@x.com", "New@x.com", "internal_user", ("t-dev",))
DELETE = DeleteUser("old@x.com", "old@x.com", ("t-sup",))
ROLE = ChangeRole("bob@x.com", "bob@x.com", "internal_user", "proxy_admin")
JOIN = AddMembership("bob@x.com", "bob@x.com", "t-adm")
LEAVE = RemoveMembership("bob@x.com", "bob@x.com", "t-dev", requires=(JOIN.key,))

PLAN = Plan(
    items=(
        PlanItem(ItemKind.ADD, "New@x.com", "new@x.com", "internal_user", ("development",), (CREATE,)),
        PlanItem(ItemKind.DELETE, "old@x.com", "old@x.com", "internal_user", ("support",), (DELETE,), key_count=2),
        PlanItem(
            ItemKind.UPDATE,
            "bob@x.com",
            "bob@x.com",
            "proxy_admin",
            ("admin",),
            (ROLE, JOIN, LEAVE),
            old_role="internal_user",
            old_team_names=("development",),
            team_ids=("t-adm",),
            old_team_ids=("t-dev",),
        ),
    ),
    team_labels={"t-adm": "admin", "t-dev": "development"},
)


def log(path: pathlib.Path) -> AuditLog:
    return AuditLog(path, run_id="run-1", command="sync", secrets=(MASTER,), clock=lambda: NOW)


def test_one_line_per_outcome_through_the_plan_callback(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    audit = log(path)
    on_outcome = audit.for_plan(PLAN)
    on_outcome(Outcome(CREATE, OutcomeStatus.DONE, api_key=KEY))
    on_outcome(Outcome(DELETE, OutcomeStatus.DONE))
    on_outcome(Outcome(ROLE, OutcomeStatus.DONE))
    on_outcome(Outcome(JOIN, OutcomeStatus.FAILED, error="POST /team/member_add -> 500: boom"))
    on_outcome(Outcome(LEAVE, OutcomeStatus.SKIPPED, error="not removed from the old team because joining failed"))
    lines = read_audit_log(path)
    assert audit.lines_written == 5
    common = {"schema": "litellm-usersync/audit", "version": 1, "time": "2026-11-27T03:07:38Z"}
    common |= {"run_id": "run-1", "command": "sync"}
    assert lines[0] == {
        **common,
        "action": "create:new@x.com",
        "kind": "create_user",
        "user_id": "new@x.com",
        "email": "New@x.com",
        "team_id": None,
        "team_name": None,
        "before": None,
        "after": {"email": "New@x.com", "role": "internal_user", "team_ids": ["t-dev"]},
        "status": "done",
        "error": None,
        "note": None,
        "scope": [],
    }
    assert lines[1]["before"] == {"email": "old@x.com", "team_ids": ["t-sup"], "role": "internal_user", "key_count": 2}
    assert lines[1]["after"] is None
    assert (lines[2]["before"], lines[2]["after"]) == ({"role": "internal_user"}, {"role": "proxy_admin"})
    assert (lines[3]["kind"], lines[3]["team_id"], lines[3]["status"]) == ("add_membership", "t-adm", "failed")
    assert lines[3]["error"] == "POST /team/member_add -> 500: boom"
    assert (lines[3]["team_name"], lines[4]["team_name"]) == ("admin", "development")
    assert (lines[4]["before"], lines[4]["after"], lines[4]["status"]) == (
        {"member": True},
        {"member": False},
        "skipped",
    )


def test_the_fallback_recreation_is_found_by_user_id(tmp_path: pathlib.Path) -> None:
    audit = log(tmp_path / "a.jsonl")
    recreate = RecreateUser("bob@x.com", "bob@x.com", "proxy_admin", ("t-adm",))
    audit.for_plan(PLAN)(Outcome(recreate, OutcomeStatus.DONE, api_key=KEY, note="recreated by the fallback"))
    (line,) = read_audit_log(tmp_path / "a.jsonl")
    assert line["kind"] == "recreate_user"
    assert line["before"] == {"role": "internal_user", "team_ids": ["t-dev"]}
    assert line["after"]["keys"] == "deleted"


def test_no_secret_is_ever_written(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = log(path)
    audit.record(Outcome(CREATE, OutcomeStatus.DONE, api_key=KEY, note=f"created with key {KEY}"))
    audit.record(Outcome(ROLE, OutcomeStatus.FAILED, error=f"401: bad key {MASTER} / Bearer {MASTER[:-2]}"))
    text = path.read_text()
    assert KEY not in text and MASTER not in text and MASTER[:-2] not in text
    assert "sk-Z9…" in text and "sk-ma…" in text
    assert "api_key" not in text


def test_the_file_is_private_and_appended_to(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new-folder" / "audit.jsonl"
    old = os.umask(0o022)
    try:
        log(path).record(Outcome(ROLE, OutcomeStatus.DONE))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    AuditLog(path, run_id="run-2", command="restore").record(Outcome(JOIN, OutcomeStatus.DONE))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "an existing log is made private again"
    assert [line["run_id"] for line in read_audit_log(path)] == ["run-1", "run-2"]
    assert all(line.endswith("}") for line in path.read_text().splitlines())
    for line in path.read_text().splitlines():
        json.loads(line)


def test_defaults_and_helpers() -> None:
    assert audit_path("backups") == pathlib.Path("backups/audit.jsonl")
    # the default audit log: beside the default backups (the CLI joins them with audit_path)
    assert audit_path(DEFAULT_BACKUP_DIR) == pathlib.Path("usersync-backups/audit.jsonl")
    a, b = new_run_id(NOW), new_run_id(NOW)
    assert a.startswith("20261127T030738Z-") and a != b
    assert scrub(None) is None
    assert scrub("no secret here") == "no secret here"


@pytest.mark.parametrize("status", list(OutcomeStatus))
def test_every_status_is_written_as_its_value(tmp_path: pathlib.Path, status: OutcomeStatus) -> None:
    audit = log(tmp_path / "a.jsonl")
    audit.record(Outcome(DELETE, status), None)
    (line,) = read_audit_log(tmp_path / "a.jsonl")
    assert line["status"] == status.value
    assert line["before"] == {"email": "old@x.com", "team_ids": ["t-sup"]}, (
        "without its plan row: what the action knows"
    )


def test_an_unwritable_log_is_found_before_the_run_and_never_stops_it(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    audit = log(blocker / "audit.jsonl")
    with pytest.raises(OSError):
        audit.check_writable()
    audit.record(Outcome(ROLE, OutcomeStatus.DONE))  # does not raise: a run must not stop half-way
    assert audit.lines_written == 0
    assert len(audit.write_errors) == 1 and audit.write_errors[0].startswith("role:bob@x.com: ")


def test_check_writable_creates_an_empty_private_log(tmp_path: pathlib.Path) -> None:
    audit = log(tmp_path / "logs" / "audit.jsonl")
    audit.check_writable()
    assert audit.path.read_text() == ""
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
