"""Snapshots on disk: the document round-trips, holds no secret, and backup files are private and never replaced."""

from __future__ import annotations

import json
import os
import pathlib
import stat
from datetime import UTC, datetime

import pytest

from litellm_usersync.errors import InputError
from litellm_usersync.files.backups import (
    DEFAULT_BACKUP_DIR,
    SNAPSHOT_SCHEMA,
    SNAPSHOT_VERSION,
    read_snapshot_file,
    snapshot_from_document,
    snapshot_to_document,
    write_backup,
)
from litellm_usersync.files.jsonfiles import read_json_file, read_plan_file, write_json_file, write_plan_file
from litellm_usersync.models import (
    ChangeRole,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    Snapshot,
    Team,
    TeamKey,
    TeamMember,
)

SNAP = Snapshot(
    users=(
        LiveUser(
            user_id="alice@x.com",
            email="Alice@X.com",
            role="proxy_admin",
            team_ids=("t-dev", "t-gone"),
            key_count=3,
            spend=12.5,
            user_alias="Alice",
            max_budget=100.0,
            models=("gpt-4o",),
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-02-01T00:00:00Z",
            managed_marker=True,
            # what a recreation needs to bring the user back whole (issue 9 §1)
            budget_duration="30d",
            tpm_limit=1000,
            rpm_limit=10,
            max_parallel_requests=3,
            sso_user_id="sso-1",
            metadata={"managed_by": "litellm-usersync", "dept": {"name": "R&D"}},
            model_max_budget={"gpt-4o": 5.0},
        ),
        LiveUser(user_id="default_user_id", email=None, role="proxy_admin"),
        LiveUser(user_id="noemail", email=None, role=None),
    ),
    teams=(
        Team(
            "t-dev",
            "development",
            (TeamMember("default_user_id", None, "admin"), TeamMember("alice@x.com", "Alice@X.com", "user")),
        ),
        Team("t-noalias", None),
    ),
    proxy_version="1.74.0",
    caller_user_id="default_user_id",
    # what the run's team moves would delete (issue 9 §2): hashes, never keys
    team_keys=(TeamKey("9f" * 32, "alice@x.com", "t-dev", "ci"),),
)
NOW = datetime(2026, 11, 27, 3, 7, 38, tzinfo=UTC)


def test_round_trip_is_exact_through_json() -> None:
    doc = snapshot_to_document(SNAP, command="sync", created_at="2026-11-27T03:07:38Z")
    assert doc["schema"] == SNAPSHOT_SCHEMA and doc["version"] == SNAPSHOT_VERSION
    assert doc["command"] == "sync" and doc["created_at"] == "2026-11-27T03:07:38Z"
    assert doc["counts"] == {"users": 3, "teams": 2}
    again = snapshot_from_document(json.loads(json.dumps(doc)))
    assert again == SNAP
    assert again.team_ids_of("alice@x.com") == SNAP.team_ids_of("alice@x.com") == frozenset({"t-dev"})
    assert again.fingerprint_of(["alice@x.com", "noemail"]) == SNAP.fingerprint_of(["alice@x.com", "noemail"])


def test_the_document_holds_ids_emails_roles_teams_and_no_key() -> None:
    doc = snapshot_to_document(SNAP, command="snapshot", created_at="t")
    user = doc["users"][0]
    assert (user["user_id"], user["email"], user["role"], user["team_ids"]) == (
        "alice@x.com",
        "Alice@X.com",
        "proxy_admin",
        ["t-dev", "t-gone"],
    )
    assert user["key_count"] == 3
    assert doc["teams"][0]["members"][1] == {"user_id": "alice@x.com", "email": "Alice@X.com", "role": "user"}
    text = json.dumps(doc)
    assert "sk-" not in text and "api_key" not in text and "master" not in text


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param("x", "snapshot file: expected a JSON object", id="not-object"),
        pytest.param(
            {"schema": "litellm-usersync/plan-file", "version": 1}, "not a litellm-usersync/snapshot", id="schema"
        ),
        pytest.param(
            {"schema": SNAPSHOT_SCHEMA, "version": 9}, "unsupported litellm-usersync/snapshot version 9", id="v"
        ),
        pytest.param({"schema": SNAPSHOT_SCHEMA, "version": 1, "teams": []}, "users: expected a list", id="no-users"),
        pytest.param(
            {"schema": SNAPSHOT_SCHEMA, "version": 1, "users": [{"email": "a@x.com"}], "teams": []},
            "users[0].user_id: expected a non-empty string",
            id="no-id",
        ),
        pytest.param(
            {"schema": SNAPSHOT_SCHEMA, "version": 1, "users": [{"user_id": "a", "team_ids": "t"}], "teams": []},
            "users[0].team_ids: expected a list of strings",
            id="teams-string",
        ),
        pytest.param(
            {"schema": SNAPSHOT_SCHEMA, "version": 1, "users": [{"user_id": "a"}, {"user_id": "a"}], "teams": []},
            "user id 'a' appears twice",
            id="duplicate",
        ),
        pytest.param(
            {"schema": SNAPSHOT_SCHEMA, "version": 1, "users": [], "teams": [{"team_id": "t", "members": [3]}]},
            "teams[0].members[0]: expected an object",
            id="member",
        ),
    ],
)
def test_malformed_snapshot_documents_are_input_errors(doc: object, message: str) -> None:
    with pytest.raises(InputError) as exc:
        snapshot_from_document(doc)
    assert message in str(exc.value)


def test_write_backup_makes_a_private_folder_and_file(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "deep" / "backups"
    old = os.umask(0o022)
    try:
        path = write_backup(SNAP, folder, command="sync", now=NOW)
    finally:
        os.umask(old)
    assert path == folder / "snapshot-20261127T030738Z-sync.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    snapshot, doc = read_snapshot_file(path)
    assert snapshot == SNAP
    assert doc["created_at"] == "2026-11-27T03:07:38Z" and doc["command"] == "sync"
    assert [p.name for p in folder.iterdir()] == [path.name], "no temporary file is left behind"


def test_a_second_backup_in_the_same_second_gets_its_own_file(tmp_path: pathlib.Path) -> None:
    first = write_backup(SNAP, tmp_path, command="restore", now=NOW)
    second = write_backup(Snapshot(users=(), teams=()), tmp_path, command="restore", now=NOW)
    assert first.name == "snapshot-20261127T030738Z-restore.json"
    assert second.name == "snapshot-20261127T030738Z-restore-2.json"
    assert read_snapshot_file(first)[0] == SNAP, "the first one was not replaced"
    assert read_snapshot_file(second)[0].users == ()


def test_an_existing_folder_keeps_its_mode(tmp_path: pathlib.Path) -> None:
    tmp_path.chmod(0o750)
    write_backup(SNAP, tmp_path, command="x", now=NOW)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o750


def test_the_command_name_cannot_escape_the_folder(tmp_path: pathlib.Path) -> None:
    path = write_backup(SNAP, tmp_path, command="../../etc/passwd", now=NOW)
    assert path.parent == tmp_path
    assert path.name == "snapshot-20261127T030738Z-______etc_passwd.json"


def test_write_json_file_is_private_and_replaces(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old")
    target.chmod(0o644)
    write_json_file(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_read_json_file_errors_name_the_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match=r"snapshot file not found: .*missing\.json"):
        read_json_file(tmp_path / "missing.json", what="snapshot file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": ')
    with pytest.raises(InputError, match=r"plan file .*bad\.json is not valid JSON: line 1"):
        read_json_file(bad, what="plan file")


def test_default_backup_dir_is_relative() -> None:
    assert not DEFAULT_BACKUP_DIR.is_absolute()
    assert DEFAULT_BACKUP_DIR.name == "usersync-backups"


def test_plan_files_on_disk(tmp_path: pathlib.Path) -> None:
    plan = Plan(
        items=(
            PlanItem(
                ItemKind.UPDATE, "a@x.com", "a", "proxy_admin", (), (ChangeRole("a", "a@x.com", None, "proxy_admin"),)
            ),
        ),
        fingerprint="f",
    )
    path = write_plan_file(tmp_path / "out" / "plan.json", plan, source="u.csv")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["source"] == "u.csv"
    assert read_plan_file(path) == plan
    path.write_text(json.dumps({"schema": SNAPSHOT_SCHEMA, "version": 1}))
    with pytest.raises(InputError, match="plan file: not a litellm-usersync/plan-file document"):
        read_plan_file(path)
    with pytest.raises(InputError, match="plan file not found"):
        read_plan_file(tmp_path / "nope.json")


def test_teams_keep_their_settings_and_a_version_1_backup_still_restores() -> None:
    """Snapshot version 2 carries the team settings a teams file manages; version-1 files read as before."""
    team = Team("t-x", "X", roster_read=True, max_budget=10.0, budget_duration="1mo", models=("a",), tpm_limit=5)
    snap = Snapshot(users=SNAP.users, teams=(team,))
    doc = snapshot_to_document(snap, command="sync", created_at="2026-11-27T03:07:38Z")
    assert doc["teams"][0]["max_budget"] == 10.0 and doc["teams"][0]["models"] == ["a"]
    assert snapshot_from_document(json.loads(json.dumps(doc))).teams == (team,)
    old = snapshot_to_document(SNAP, command="sync", created_at="2026-11-27T03:07:38Z")
    old["version"] = 1
    for t in old["teams"]:
        for name in ("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit"):
            del t[name]
    assert snapshot_from_document(json.loads(json.dumps(old))) == SNAP
