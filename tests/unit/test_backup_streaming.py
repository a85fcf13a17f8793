"""The backup file is written piece by piece, and is the same document as snapshot_to_document."""

from __future__ import annotations

import json
import pathlib

import pytest

from litellm_usersync.files.backups import iter_snapshot_json, read_snapshot_file, snapshot_to_document, write_backup
from litellm_usersync.models import LiveUser, Snapshot, Team, TeamKey, TeamMember

USERS = tuple(
    LiveUser(f"u{i}", f"U{i}@x.com" if i % 3 else None, "internal_user", ("t1",) if i % 2 else (), i, i * 0.5)
    for i in range(7)
)
TEAMS = (Team("t1", "Ünïcode team", (TeamMember("u1", "U1@x.com", "user"),)), Team("t2", None))


@pytest.mark.parametrize(
    "snapshot",
    [
        Snapshot((), ()),
        Snapshot(USERS, ()),
        Snapshot((), TEAMS),
        Snapshot(USERS, TEAMS, "1.110.2", "admin-id"),
        Snapshot(USERS, TEAMS, team_keys=(TeamKey("ab" * 32, "u1", "t1", None),)),
    ],
    ids=["empty", "users-only", "teams-only", "full", "team-keys"],
)
def test_streamed_json_is_the_document(snapshot: Snapshot) -> None:
    text = "".join(iter_snapshot_json(snapshot, command="sync", created_at="2026-11-27T00:00:00Z"))
    assert json.loads(text) == snapshot_to_document(snapshot, command="sync", created_at="2026-11-27T00:00:00Z")
    assert text.endswith("}\n")


def test_streamed_backup_reads_back(tmp_path: pathlib.Path) -> None:
    snapshot = Snapshot(USERS, TEAMS, "1.110.2", "default_user_id")
    path = write_backup(snapshot, tmp_path / "bk", command="sync")
    back, doc = read_snapshot_file(path)
    assert back.users == snapshot.users and back.teams == snapshot.teams
    assert doc["counts"] == {"users": 7, "teams": 2}
    # one user per line: diffable backups
    assert sum(1 for line in path.read_text().splitlines() if line.lstrip().startswith('{"user_id"')) == 7
