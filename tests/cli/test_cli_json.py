"""--output json on add and delete (dry runs over a scripted proxy): one document, stable schema, no text."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

from click.testing import Result

from ._scripted import user


def test_add_dry_run_json(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    (tmp_path / "user_addlist.csv").write_text(
        "email,role,team_name\nnew@x.com,internal_user,development\nold@x.com,,\n"
    )
    result, calls = run("add", "--dry-run", "--output", "json", users=[user("old@x.com")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)  # nothing but the document on stdout
    assert doc["schema"] == "litellm-usersync/add-plan" and doc["version"] == 1
    assert [i["email"] for i in doc["plan"]["items"]] == ["new@x.com"]
    assert doc["errors"] == [{"email": "old@x.com", "role": "proxy_admin", "error_reason": "User already exists"}]
    assert all(c.startswith("GET ") for c in calls)


def test_delete_dry_run_json(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    (tmp_path / "user_dellist.csv").write_text("email\nold@x.com\nnobody@x.com\n")
    result, calls = run("delete", "--dry-run", "--output", "json", users=[user("old@x.com")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == "litellm-usersync/delete-plan"
    (item,) = doc["plan"]["items"]
    assert (item["action"], item["email"], item["key_count"]) == ("DELETED", "old@x.com", 2)
    assert doc["errors"][0]["error_reason"] == "User not found in the system"
    assert all(c.startswith("GET ") for c in calls)


def test_delete_refused_json_exits_3(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    users = [user(f"u{i}@x.com") for i in range(30)]
    (tmp_path / "user_dellist.csv").write_text("email\n" + "".join(f"u{i}@x.com\n" for i in range(20)))
    result, calls = run("delete", "--output", "json", users=users)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["plan"]["refusals"]
    assert "Refused: this run would delete 20 users" in result.stderr  # cron drops stdout
    assert all(c.startswith("GET ") for c in calls)


def test_list_output_is_format(run: Callable[..., tuple[Result, list[str]]]) -> None:
    result, _ = run("list", "--output", "json", users=[user("a@x.com")])
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["user_email"] == "a@x.com"
