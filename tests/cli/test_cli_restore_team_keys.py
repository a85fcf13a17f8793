"""``restore`` and team keys (issue 9 §2, restore side): its moves read, show and count the keys they destroy."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from click.testing import Result

from ._scripted import user

TEAM_KEY = {"token": "0f" * 32, "user_id": "stay@x.com", "team_id": "t-dev", "key_alias": "ci"}


def _snapshot(run: Callable[..., tuple[Result, list[str]]]) -> None:
    """A snapshot with stay@x.com in support; the live proxy of the tests has it in development since."""
    result, _ = run("snapshot", "--file", "before.json", users=[user("stay@x.com", "internal_user", ("t-sup",))])
    assert result.exit_code == 0, result.output


LIVE = [user("stay@x.com", "internal_user", ("t-dev",))]


def test_a_restore_move_reads_and_shows_the_team_key_it_destroys(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    _snapshot(run)
    result, calls = run("restore", "before.json", "--dry-run", users=LIVE, keys=[TEAM_KEY])
    assert result.exit_code == 0, result.output
    assert "    ~ stay@x.com (Teams: development → support) — destroys 1 team key(s)\n" in result.output
    assert calls.count("GET /key/list") == 1, "one read per team left"
    result, _ = run("restore", "before.json", "--max-delete", "0", users=LIVE, keys=[TEAM_KEY])
    assert result.exit_code == 3, result.output
    assert "this restore would delete 0 users and destroy 1 team key(s)" in result.stderr


def test_a_restore_whose_key_read_fails_changes_nothing(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    _snapshot(run)
    result, calls = run("restore", "before.json", users=LIVE, keys=[{"refuse": True}])
    assert result.exit_code == 2, result.output
    assert "key listing refused" in result.stderr
    assert all(c.startswith("GET ") for c in calls), "a move whose key losses are unknown is not made"
    assert not (tmp_path / "usersync-backups").exists()
