"""`delete` (and `python del_user.py`) against the real LiteLLM Proxy: the seed manual's examples and issue 3.

Arrange through the library, act through the CLI, assert through the library.
"""

from __future__ import annotations

import csv
import pathlib
import stat
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, write

RESULT_COLUMNS = ["email", "user_id", "status"]
ERROR_COLUMNS = ["email", "user_id", "error_reason"]
BULK_MODES = [pytest.param([], id="bulk"), pytest.param(["--no-bulk"], id="per-user")]


def rows(path: pathlib.Path, columns: list[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == columns
        return list(reader)


def all_user_ids(proxy: Proxy) -> set[str]:
    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_users()

    return {u["user_id"] for u in proxy.run(go)}


def give_keys(proxy: Proxy, user_id: str, n: int) -> None:
    async def go(c: ProxyClient) -> None:
        for _ in range(n):
            await c.generate_key(user_id)

    proxy.run(go)


@pytest.mark.parametrize("mode", BULK_MODES)
def test_seed_example_dry_run_then_delete(
    mode: list[str],
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    script_run: Callable[..., Any],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams = make_teams("development", "support")
    seed_users(
        [
            ("old_user@example.com", "internal_user", [teams["development"]]),
            ("Inactive@Company.com", "internal_user_viewer", [teams["support"], teams["development"]]),
            ("stay@example.com", "proxy_admin", [teams["development"]]),
        ]
    )
    give_keys(clean_proxy, "old_user@example.com", 2)
    write(workdir / "user_dellist.csv", "email\nold_user@example.com\ninactive@company.com\ntest_user@example.com\n")
    before = all_user_ids(clean_proxy)

    dry = cli_run("delete", "--csv-file", "user_dellist.csv", "--dry-run", *mode)
    assert dry.exit_code == 0, dry.output
    assert dry.output == (
        "Deletion Plan:\n"
        "  Users to delete: 2 (limit 10, 3 managed users)\n"
        "  API keys destroyed with them: 2\n"
        "  Spend recorded on them: $0.00\n"
        "  Rows that cannot be deleted: 1\n"
        "\n"
        "DRY RUN - Users that would be deleted:\n"
        "  - Inactive@Company.com (user_id: inactive@company.com, Role: internal_user_viewer, "
        "Team: development, support) — destroys 0 API key(s), spend $0.00\n"
        "  - old_user@example.com (user_id: old_user@example.com, Role: internal_user, Team: development)"
        " — destroys 2 API key(s), spend $0.00\n"
        "\n"
        "  Not deleted:\n"
        "  ✗ test_user@example.com: User not found in the system\n"
        "\n"
        "Deletion plan: 2 to delete, 1 cannot be deleted.\n"
    )
    assert all_user_ids(clean_proxy) == before, "a dry run must not change anything"
    assert not (workdir / "user_del_result.csv").exists()

    proc = script_run("del_user.py", "--csv-file", "user_dellist.csv", *mode)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one row was not found
    assert all_user_ids(clean_proxy) == before - {"old_user@example.com", "inactive@company.com"}
    assert rows(workdir / "user_del_result.csv", RESULT_COLUMNS) == [
        {"email": "Inactive@Company.com", "user_id": "inactive@company.com", "status": "Deleted"},
        {"email": "old_user@example.com", "user_id": "old_user@example.com", "status": "Deleted"},
    ]
    assert rows(workdir / "user_del_error.csv", ERROR_COLUMNS) == [
        {"email": "test_user@example.com", "user_id": "", "error_reason": "User not found in the system"},
    ]
    for name in ("user_del_result.csv", "user_del_error.csv"):  # they hold emails (issue 9 §4)
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o600, name

    # the seed's follow-up check: list what is left
    left = cli_run("list", "--email-like", "@example.com", "--columns", "user_email")
    assert left.stdout == "user_email\nstay@example.com\n"

    # deleting again: both are now unknown, nothing else is touched
    again = cli_run("delete", *mode)
    assert again.exit_code == 1
    assert rows(workdir / "user_del_result.csv", RESULT_COLUMNS) == []
    assert {r["email"] for r in rows(workdir / "user_del_error.csv", ERROR_COLUMNS)} == {
        "old_user@example.com",
        "inactive@company.com",
        "test_user@example.com",
    }
    assert all_user_ids(clean_proxy) == before - {"old_user@example.com", "inactive@company.com"}


def test_everything_deleted_exits_0_and_deleted_users_leave_their_teams(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams = make_teams("development")
    seed_users([("a@example.com", "internal_user", [teams["development"]]), ("b@example.com", "proxy_admin", [])])
    write(workdir / "user_dellist.csv", "email,role\nA@example.com,whatever-is-ignored\n")
    run = cli_run("delete")
    assert run.exit_code == 2, "the role column is still checked by the one CSV reader"
    write(workdir / "user_dellist.csv", "email\nA@example.com\n")
    run = cli_run("delete")
    assert run.exit_code == 0, run.output
    assert set(live_users(clean_proxy)) == {"b@example.com"}

    async def roster(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_teams()

    members = {m["user_id"] for t in clean_proxy.run(roster) for m in t["members_with_roles"]}
    assert "a@example.com" not in members
    assert rows(workdir / "user_del_error.csv", ERROR_COLUMNS) == []


def test_mass_deletion_brake(
    seed_users: Callable[..., None], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    seed_users([(f"u{i:02d}@example.com", "internal_user", []) for i in range(12)])
    write(workdir / "user_dellist.csv", "email\n" + "".join(f"u{i:02d}@example.com\n" for i in range(11)))
    before = all_user_ids(clean_proxy)

    dry = cli_run("delete", "--dry-run")
    assert dry.exit_code == 3, dry.output
    run = cli_run("delete")
    assert run.exit_code == 3, run.output
    assert (
        "Refused: this run would delete 11 users, more than the limit of 10 (12 managed users); "
        "check the CSV, or raise the limit with --max-delete 11" in run.output
    )
    assert all_user_ids(clean_proxy) == before, "refused: nothing deleted"
    assert not (workdir / "user_del_result.csv").exists()

    low = cli_run("delete", "--max-delete", "2", "--csv-file", "user_dellist.csv")
    assert low.exit_code == 3

    ok = cli_run("delete", "--max-delete", "11")
    assert ok.exit_code == 0, ok.output
    assert {u for u in live_users(clean_proxy)} == {"u11@example.com"}


def test_never_deletes_the_master_keys_identity_or_an_ambiguous_email(
    seed_users: Callable[..., None], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    seed_users([("twin1@example.com", "internal_user", []), ("twin2@example.com", "internal_user", [])])

    async def arrange(c: ProxyClient) -> None:
        # /user/update upserts and never checks for duplicate emails: give default_user_id an email,
        # and a second user the same email as the first
        await c.update_user("default_user_id", user_email="root@example.com", user_role="proxy_admin")
        await c.update_user("twin2@example.com", user_email="TWIN1@example.com")

    clean_proxy.run(arrange)
    before = all_user_ids(clean_proxy)
    assert "default_user_id" in before
    write(workdir / "user_dellist.csv", "email\nroot@example.com\ntwin1@example.com\n")

    run = cli_run("delete")
    assert run.exit_code == 1, run.output
    assert all_user_ids(clean_proxy) == before
    assert rows(workdir / "user_del_error.csv", ERROR_COLUMNS) == [
        {
            "email": "root@example.com",
            "user_id": "default_user_id",
            "error_reason": "protected: the identity of the credentials in use; never deleted",
        },
        {
            "email": "twin1@example.com",
            "user_id": "twin1@example.com, twin2@example.com",
            "error_reason": "conflict: 2 live users share this email; none was deleted",
        },
    ]
    assert rows(workdir / "user_del_result.csv", RESULT_COLUMNS) == []
