"""The CLI over a scripted proxy (httpx.MockTransport injected through the click context): no network."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from ._scripted import user


def csv(tmp: pathlib.Path, text: str) -> str:
    (tmp / "user_list.csv").write_text(text, encoding="utf-8")
    return "user_list.csv"


def test_dry_run_prints_the_seed_format(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    csv(tmp_path, "email,role,team_name\nnew@x.com,internal_user,development\nstay@x.com,proxy_admin,support\n")
    users = [user("stay@x.com", "internal_user", ("t-dev",)), user("old@x.com", "internal_user", ("t-sup",))]
    result, calls = run("sync", "--csv-file", "user_list.csv", "--dry-run", users=users)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Synchronization Plan:\n"
        "  Users to add: 1\n"
        "  Users to delete: 1\n"
        "  Users to update: 1\n"
        "  Users unchanged: 0\n"
        "\n"
        "DRY RUN - Changes that would be made:\n"
        "\n"
        "  Users to ADD:\n"
        "    + new@x.com (Role: internal_user, Team: development)\n"
        "\n"
        "  Users to DELETE:\n"
        "    - old@x.com (Role: internal_user, Team: support) — destroys 2 API key(s), spend $1.50\n"
        "\n"
        "  Users to UPDATE:\n"
        # stay@x.com holds 2 API keys: never recreated without --recreate-with-keys, so no recreation is announced
        "    ~ stay@x.com (Role: internal_user → proxy_admin, Teams: development → support)\n"
        "\n"
        "Synchronization plan: 1 to add, 1 to delete, 1 to update, 0 unchanged.\n"
    )
    assert all(c.startswith("GET ") for c in calls), "a dry run only reads"
    assert not (tmp_path / "user_sync_result.csv").exists()


def test_dry_run_json_output(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    csv(tmp_path, "email,role,team_name\nnew@x.com,internal_user,development\n")
    result, _ = run("sync", "--csv-file", "user_list.csv", "--dry-run", "--output", "json")
    doc = json.loads(result.output)
    assert doc["schema"] == "litellm-usersync/plan" and doc["summary"]["add"] == 1
    assert doc["items"][0]["operations"] == ["create:new@x.com"]


def test_missing_master_key_exits_2(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    csv(tmp_path, "email\na@x.com\n")
    result, calls = run("sync", "--csv-file", "user_list.csv", env={"LITELLM_MASTER_KEY": ""})
    assert result.exit_code == 2
    assert "no master key" in result.stderr
    assert calls == []


def test_bad_csv_sends_nothing(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    csv(tmp_path, "mail_address,role\na@x.com,internal_user\n")
    result, calls = run("sync", "--csv-file", "user_list.csv")
    assert result.exit_code == 2
    assert "user_list.csv:1: missing the 'email' column" in result.stderr
    assert calls == []


def test_missing_csv_file(run: Callable[..., tuple[Result, list[str]]]) -> None:
    result, calls = run("sync", "--csv-file", "nope.csv")
    assert result.exit_code == 2 and "Error: CSV file not found: nope.csv (see --csv-file)" in result.stderr
    assert calls == []


def test_bad_key_is_unauthorized_and_masked(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email\na@x.com\n")
    result, _ = run("sync", "--csv-file", "user_list.csv", env={"LITELLM_MASTER_KEY": "sk-wrong-0123456789"})
    assert result.exit_code == 2
    assert "Unauthorized" in result.stderr
    assert "sk-wrong-0123456789" not in result.output + result.stderr


def test_mass_deletion_brake_exits_3(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    users = [user(f"u{i}@x.com") for i in range(30)]
    csv(tmp_path, "email,role\nu0@x.com,internal_user\n")
    result, calls = run("sync", "--csv-file", "user_list.csv", users=users)
    assert result.exit_code == 3, result.output
    assert "Refused: this run would delete 29 users, more than the limit of 10" in result.output
    assert all(c.startswith("GET ") for c in calls)


def test_empty_csv_never_means_delete_everyone(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\n")
    result, calls = run("sync", "--csv-file", "user_list.csv", "--max-delete", "100", users=[user("a@x.com")])
    assert result.exit_code == 3
    assert "the CSV has no users" in result.output
    assert all(c.startswith("GET ") for c in calls)


@pytest.mark.parametrize(
    ("users", "expected"),
    [([user("a@x.com", "internal_user")], 0), ([], 2)],
    ids=["nothing-to-do", "changes-pending"],
)
def test_detailed_exitcode(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path, users: list[dict[str, Any]], expected: int
) -> None:
    csv(tmp_path, "email,role\na@x.com,internal_user\n")
    result, _ = run("sync", "--csv-file", "user_list.csv", "--dry-run", "--detailed-exitcode", users=users)
    assert result.exit_code == expected, result.output


def test_detailed_exitcode_error_is_1(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    csv(tmp_path, "email\nnot-an-email\n")
    result, _ = run("sync", "--csv-file", "user_list.csv", "--dry-run", "--detailed-exitcode")
    assert result.exit_code == 1


def test_version(run: Callable[..., tuple[Result, list[str]]]) -> None:
    result, _ = run("--version")
    assert result.exit_code == 0 and "litellm-usersync, version" in result.output
    result, _ = run("sync", "--version")
    assert result.exit_code == 0 and "version" in result.output


def test_debug_keeps_the_exit_code_and_adds_the_traceback(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    """Regression: with --debug an error used to escape as a traceback with exit 1 instead of 2."""
    csv(tmp_path, "email\na@x.com\n")
    result, _ = run("sync", "--csv-file", "user_list.csv", "--debug", env={"LITELLM_MASTER_KEY": "sk-wrong-0123456789"})
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "Unauthorized by the proxy at http://proxy.test" in result.stderr
    assert "sk-wrong-0123456789" not in result.stderr


def test_apply_plan_refuses_options_it_would_ignore(run: Callable[..., tuple[Result, list[str]]]) -> None:
    """Regression: --apply-plan PLAN --no-delete --protect X silently deleted (the plan's own options won)."""
    result, calls = run("sync", "--apply-plan", "plan.json", "--no-delete", "--max-delete", "0")
    assert result.exit_code == 2
    assert "--no-delete, --max-delete cannot change it" in result.stderr
    assert calls == []


# --------------------------------------------------------------------------------------------------
# Issue 9 §2: team moves destroy team keys — shown, counted, kept on request

TEAM_KEY = {"token": "0f" * 32, "user_id": "stay@x.com", "team_id": "t-dev", "key_alias": "ci"}


def test_a_move_that_destroys_a_team_key_says_so_everywhere(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\nother@x.com,internal_user,development\n")
    users = [user("stay@x.com", "internal_user", ("t-dev",)), user("other@x.com", "internal_user", ("t-sup",))]
    result, calls = run(
        "sync", "--csv-file", "user_list.csv", "--dry-run", "--plan-out", "plan.json", users=users, keys=[TEAM_KEY]
    )
    assert result.exit_code == 0, result.output
    assert "    ~ stay@x.com (Teams: development → support) — destroys 1 team key(s)\n" in result.output
    assert "  Team keys destroyed by team moves: 1\n" in result.output
    # a move that destroys nothing says nothing about keys
    assert "    ~ other@x.com (Teams: support → development)\n" in result.output
    # one read per team left, not one per user
    assert sorted(c for c in calls if c == "GET /key/list") == ["GET /key/list", "GET /key/list"]
    saved = json.loads((tmp_path / "plan.json").read_text())
    item = next(i for i in saved["items"] if i["email"] == "stay@x.com")
    assert item["team_keys_destroyed"] == 1
    leave = next(a for a in item["actions"] if a["type"] == "remove_membership")
    assert leave["destroys_keys"] == 1
    result, _ = run(
        "sync", "--csv-file", "user_list.csv", "--dry-run", "--output", "json", users=users, keys=[TEAM_KEY]
    )
    doc = json.loads(result.output)
    assert doc["summary"]["team_keys_destroyed"] == 1
    assert [i["team_keys_destroyed"] for i in doc["items"] if i["email"] == "stay@x.com"] == [1]


def test_a_move_of_users_without_keys_reads_no_team_keys(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    """``key_count`` 0: nothing bound to the team can be destroyed, so the team's keys are not read (issue 14: a
    nightly run that moves users costs no key read per team left); a user holding keys still gets its read."""
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\nother@x.com,internal_user,development\n")
    users = [
        {**user("stay@x.com", "internal_user", ("t-dev",)), "key_count": 0},
        {**user("other@x.com", "internal_user", ("t-sup",)), "key_count": 0},
    ]
    result, calls = run("sync", "--csv-file", "user_list.csv", "--dry-run", users=users, keys=[TEAM_KEY])
    assert result.exit_code == 0, result.output
    assert "GET /key/list" not in calls, "nobody moved holds a key: no team-key read"
    assert "destroys" not in result.output
    users[0]["key_count"] = 1  # stay@x.com holds a key (TEAM_KEY, bound to t-dev): its team is read
    result, calls = run("sync", "--csv-file", "user_list.csv", "--dry-run", users=users, keys=[TEAM_KEY])
    assert calls.count("GET /key/list") == 1
    assert "    ~ stay@x.com (Teams: development → support) — destroys 1 team key(s)\n" in result.output


def test_destroyed_team_keys_count_against_max_delete(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\n")
    users = [user("stay@x.com", "internal_user", ("t-dev",))]
    result, calls = run("sync", "--csv-file", "user_list.csv", "--max-delete", "0", users=users, keys=[TEAM_KEY])
    assert result.exit_code == 3, result.output
    assert "destroy 1 team key(s)" in result.output and "--keep-team-keys" in result.output
    assert all(c.startswith("GET ") for c in calls), "refused before any change"
    # keeping the keys destroys nothing: the same run is allowed, and the plan says what happens to the key
    result, _ = run(
        "sync",
        "--csv-file",
        "user_list.csv",
        "--max-delete",
        "0",
        "--keep-team-keys",
        "--dry-run",
        users=users,
        keys=[TEAM_KEY],
    )
    assert result.exit_code == 0, result.output
    assert "    ~ stay@x.com (Teams: development → support) — re-binds 1 team key(s) to support\n" in result.output


def test_keep_team_keys_refuses_a_move_that_is_not_one_team_to_one_other(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\n")
    users = [user("stay@x.com", "internal_user", ("t-dev", "t-sup"))]  # leaves development, joins nothing
    result, _ = run(
        "sync", "--csv-file", "user_list.csv", "--keep-team-keys", "--dry-run", users=users, keys=[TEAM_KEY]
    )
    assert "✗ will FAIL: --keep-team-keys: 1 team key(s) can only be re-bound when the user moves" in result.output


def test_a_saved_plan_is_stale_when_a_team_key_appeared_that_its_move_would_destroy(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\n")
    users = [user("stay@x.com", "internal_user", ("t-dev",))]
    made, _ = run("sync", "--csv-file", "user_list.csv", "--dry-run", "--plan-out", "plan.json", users=users)
    assert made.exit_code == 0, made.output
    result, calls = run("sync", "--apply-plan", "plan.json", users=users, keys=[TEAM_KEY])
    assert result.exit_code == 3, result.output
    assert "stale plan" in result.output + result.stderr
    assert all(c.startswith("GET ") for c in calls), "nothing was sent"


def test_a_failed_read_of_the_team_keys_stops_the_run_before_any_change(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    csv(tmp_path, "email,role,team_name\nstay@x.com,internal_user,support\n")
    users = [user("stay@x.com", "internal_user", ("t-dev",))]
    result, calls = run("sync", "--csv-file", "user_list.csv", users=users, keys=[{"refuse": True}])
    assert result.exit_code == 2, result.output
    assert "key listing refused" in result.stderr
    assert all(c.startswith("GET ") for c in calls), "a move whose key losses are unknown is not made"
