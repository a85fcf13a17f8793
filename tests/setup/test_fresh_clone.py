"""The manual's first command on a fresh clone, with a Python that has none of the dependencies: the seed
script sets up .venv (pip install from the package index: ~30 s), says so on stderr, and runs the command.

Slow (a real venv and pip install), so it is not in the fast suite (tests/unit tests/client tests/executor
tests/cli); scripts/test and CI run it. With LITELLM_BASE_URL/LITELLM_MASTER_KEY it also runs the dry run
against that proxy (a dry run only reads).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def bare_python() -> str:
    for candidate in (getattr(sys, "_base_executable", ""), "/usr/bin/python3", shutil.which("python3") or ""):
        if candidate and subprocess.run([candidate, "-c", "import httpx"], capture_output=True).returncode != 0:
            return candidate
    pytest.skip("no Python without httpx on this machine to play a fresh one")


def fresh_clone(target: pathlib.Path) -> pathlib.Path:
    """The files a clone of this tree would have (tracked and new, not ignored): uncommitted work included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)
    return target


def test_manual_first_command_on_a_fresh_clone(tmp_path: pathlib.Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    python = bare_python()
    clone = fresh_clone(tmp_path / "clone")
    assert not (clone / ".venv").exists()
    shutil.copy(clone / "examples" / "user_list.csv", clone / "user_list.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USERSYNC_", "VIRTUAL_ENV", "PYTHON"))}
    proxy = bool(env.get("LITELLM_BASE_URL") and env.get("LITELLM_MASTER_KEY"))
    if not proxy:
        env["LITELLM_MASTER_KEY"] = "sk-not-used"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=600)

    first = run("sync_user.py", "-h")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Usage: sync_user.py [OPTIONS]"), "pip's output must not reach stdout"
    assert "first run: creating the project's environment" in first.stderr
    assert (clone / ".venv" / ".installed").is_file()

    again = run("add_user.py", "--version")
    assert (again.returncode, again.stdout.strip(), again.stderr) == (0, "litellm-usersync, version 0.1.0", "")

    (clone / "bad.csv").write_text("email\nnot-an-email\n")
    bad = run("del_user.py", "--csv-file", "bad.csv", "--dry-run")
    assert bad.returncode == 2 and "bad.csv:2 (column 1 (email)): invalid email" in bad.stderr

    if proxy:
        dry = run("sync_user.py", "--csv-file", "user_list.csv", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("Synchronization Plan:")
    # what the first run left (.venv, its lock, its stamps) is git-ignored in the clone
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "?? sync_user.py" in status
    assert [s for s in status if ".venv" in s or "egg-info" in s] == []
