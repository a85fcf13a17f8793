"""Every real run (sync, add, delete, restore) takes the run lock before it reads the proxy; dry runs do not."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable

import pytest
from click.testing import Result

from litellm_usersync.files.runlock import acquire_run_lock
from litellm_usersync.usecases import STATE_DIR_ENV, state_dir

URL = "http://proxy.test"
SNAPSHOT = {
    "schema": "litellm-usersync/snapshot",
    "version": 1,
    "created_at": "2026-11-27T03:07:38Z",
    "command": "snapshot",
    "proxy_version": "1.110.2",
    "caller_user_id": "default_user_id",
    "users": [],
    "teams": [],
}


@pytest.fixture
def inputs(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "users.csv").write_text("email,role,team_name\nnew@x.com,internal_user,\n", encoding="utf-8")
    (tmp_path / "snap.json").write_text(json.dumps(SNAPSHOT), encoding="utf-8")
    return tmp_path


COMMANDS = {
    "sync": ["sync", "--csv-file", "users.csv"],
    "add": ["add", "--csv-file", "users.csv"],
    "delete": ["delete", "--csv-file", "users.csv"],
    "restore": ["restore", "snap.json"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_real_run_is_refused_while_another_holds_the_lock_and_reads_nothing(
    run: Callable[..., tuple[Result, list[str]]], inputs: pathlib.Path, command: str
) -> None:
    with acquire_run_lock(state_dir(), URL + "/", command="sync") as lock:
        result, calls = run(*COMMANDS[command])
        assert result.exit_code == 2, result.output
        assert calls == [], "refused before reading the proxy"
        assert f"pid {os.getpid()} on host" in result.output and str(lock.path) in result.output
        dry, calls = run(*COMMANDS[command], "--dry-run")
        assert dry.exit_code in (0, 1), dry.output  # a dry run needs no lock (delete: 1 row not found)
        assert calls, "the dry run read the proxy"


def test_the_lock_is_released_when_the_command_ends(
    run: Callable[..., tuple[Result, list[str]]], inputs: pathlib.Path
) -> None:
    first, _ = run("delete", "--csv-file", "users.csv")  # nothing to delete: the run still takes the lock
    assert first.exit_code == 1, first.output
    acquire_run_lock(state_dir(), URL, command="sync").release()  # free again


def test_the_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "mine"))
    assert state_dir() == tmp_path / "mine"
    monkeypatch.delenv(STATE_DIR_ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "litellm-usersync"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # invalid by the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "litellm-usersync"


def test_an_unusable_state_directory_is_a_clear_error_before_any_request(
    run: Callable[..., tuple[Result, list[str]]], inputs: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inputs / "not-a-folder").write_text("x")
    monkeypatch.setenv(STATE_DIR_ENV, str(inputs / "not-a-folder"))
    result, calls = run("sync", "--csv-file", "users.csv")
    assert result.exit_code == 2, result.output
    assert calls == []
    assert f"cannot take the run lock in {inputs / 'not-a-folder'}" in result.output
    assert f"Set {STATE_DIR_ENV} to a writable local folder" in result.output
