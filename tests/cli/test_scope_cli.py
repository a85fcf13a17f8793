"""``--scope``/``USERSYNC_SCOPE`` on the command line (issue 17): a bad term is a located error before anything
is sent (exit 2); the setting is read from the environment (and so from .env) when no --scope is given, and
--scope wins over it; list and snapshot never take it from the environment."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

from click.testing import Result

Run = Callable[..., tuple[Result, list[str]]]


def user(email: str, *, marked: bool = False, uid: str | None = None) -> dict[str, Any]:
    return {
        "user_id": uid or email,
        "user_email": email,
        "user_role": "internal_user",
        "teams": [],
        "metadata": {"managed_by": "litellm-usersync"} if marked else {"sso": "okta"},
    }


USERS = [user("ours@corp.example", marked=True), user("gone@corp.example", marked=True), user("sso@corp.example")]


def csv(tmp_path: pathlib.Path) -> None:
    (tmp_path / "user_list.csv").write_text("email,role\nours@corp.example,internal_user\n")


def deletes(result: Result) -> list[str]:
    return sorted(i["email"] for i in json.loads(result.output)["items"] if i["action"] == "DELETED")


def test_a_bad_scope_is_a_located_error_and_nothing_is_sent(run: Run, tmp_path: pathlib.Path) -> None:
    csv(tmp_path)
    result, calls = run("sync", "--dry-run", "--scope", "managed", "--scope", "domian:corp.example")
    assert result.exit_code == 2
    assert "Error: --scope: 'domian:corp.example': unknown scope kind 'domian' (did you mean domain?)" in result.stderr
    assert calls == []
    result, calls = run("sync", "--dry-run", env={"USERSYNC_SCOPE": "managed, role:admin"})
    assert result.exit_code == 2
    assert "Error: USERSYNC_SCOPE, value 2: 'role:admin': unknown role 'admin'" in result.stderr
    assert calls == []


def test_the_setting_applies_when_no_scope_is_given_and_the_option_wins(run: Run, tmp_path: pathlib.Path) -> None:
    csv(tmp_path)
    result, _ = run("sync", "--dry-run", "--output", "json", users=USERS)
    assert deletes(result) == ["gone@corp.example", "sso@corp.example"]  # no scope: the seed's behaviour
    result, _ = run("sync", "--dry-run", "--output", "json", users=USERS, env={"USERSYNC_SCOPE": "managed"})
    doc = json.loads(result.output)
    assert deletes(result) == ["gone@corp.example"] and doc["scope"] == ["managed"]
    assert doc["summary"]["out_of_scope"] == 1
    env = {"USERSYNC_SCOPE": "managed"}
    result, _ = run("sync", "--dry-run", "--output", "json", "--scope", "domain:other.example", users=USERS, env=env)
    assert deletes(result) == [] and json.loads(result.output)["scope"] == ["domain:other.example"]


def test_list_takes_scope_from_the_option_only(run: Run) -> None:
    result, _ = run("list", "--scope", "managed", "--columns", "user_email", users=USERS)
    assert result.output.splitlines() == ["user_email", "gone@corp.example", "ours@corp.example"]
    result, _ = run("list", "--columns", "user_email", users=USERS, env={"USERSYNC_SCOPE": "managed"})
    assert len(result.output.splitlines()) == 4


def test_apply_plan_with_adopt_is_a_usage_error(run: Run, tmp_path: pathlib.Path) -> None:
    result, calls = run("sync", "--apply-plan", "plan.json", "--adopt")
    assert result.exit_code == 2 and "--adopt cannot change it" in result.stderr
    assert calls == []


def test_a_team_scope_naming_no_team_is_an_error_for_list_and_snapshot(run: Run) -> None:
    for args in (
        ("list", "--scope", "team:NoSuchTeam"),
        ("snapshot", "--scope", "team:NoSuchTeam", "--file", "s.json"),
    ):
        result, _ = run(*args, users=USERS)
        assert result.exit_code == 2, result.output
        assert "Error: --scope team:NoSuchTeam: no such team" in result.stderr
