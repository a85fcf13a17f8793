"""Files the tool writes by default hold API keys or every user's email: git must not pick them up."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "user_sync_result.csv",
        "user_sync_result.20261201T213000Z.csv",  # the earlier report kept aside (it still holds keys)
        "user_sync_result.20261201T213000Z-2.csv",
        "user_reg_result.csv",
        "user_reg_result.20261201T213000Z.csv",
        "user_reg_error.csv",
        "user_del_result.csv",
        "user_del_error.csv",
        "user_update_list.csv",
        "usersync-backups/audit.jsonl",
        "usersync-backups/snapshot-20261201T213000Z.json",
        ".user_sync_result.csv.k3j2h1",  # a temporary report left by a crash mid-write
        ".env",
        ".venv/bin/python",
    ],
)
def test_written_files_are_ignored(path: str) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert done.returncode == 0, f"{path} is not git-ignored"


@pytest.mark.parametrize("path", ["examples/user_list.csv", "examples/user_addlist.csv", "user_list.csv"])
def test_inputs_are_not_ignored(path: str) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert done.returncode == 1, f"{path} is git-ignored"
