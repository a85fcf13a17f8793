"""Output on the real proxy (issue 11): counts last, refusals on stderr, a mistyped team, a user added by id."""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable

from click.testing import Result

from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write


def test_a_mistyped_team_is_named_and_its_failed_row_keeps_the_teams_the_user_has(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams = make_teams("support", "development")
    seed_users([("typo@example.com", "internal_user", [teams["support"]])])
    write(workdir / "user_list.csv", "email,role,team_name\ntypo@example.com,internal_user,suport\n")

    dry = cli_run("sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "    ~ typo@example.com (Teams: support → ✗ suport (no such team; did you mean support?))"
        "  ✗ will FAIL: Team not found: suport (did you mean support?)"
    ) in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == (
        "Synchronization plan: 0 to add, 0 to delete, 1 to update, 0 unchanged, 1 cannot be applied."
    )

    run = cli_run("sync")
    assert run.exit_code == 1, run.output
    with open(workdir / "user_sync_result.csv", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert (row["status"], row["role"], row["team_name"]) == ("FAILED", "internal_user", "support")
    assert teams_of(clean_proxy, live_users(clean_proxy)["typo@example.com"]) == {"support"}, "nothing was sent"
    assert run.stdout.splitlines()[-1] == (
        "Synchronization result: 0 added, 0 deleted, 0 updated, 0 unchanged, 1 FAILED."
    )
    # the real run shows the row that will fail and the plan's counts, as the dry run does (trial: it showed
    # the summary alone, 'Rows that cannot be applied: 1', and no row)
    lines = run.stdout.splitlines()
    assert "Changes to be made:" in lines
    assert any(x.startswith("    ~ typo@example.com (Teams: support → ✗ suport (no such team;") for x in lines)
    assert "Synchronization plan: 0 to add, 0 to delete, 1 to update, 0 unchanged, 1 cannot be applied." in lines


def test_a_brake_refusal_is_on_stderr_and_nothing_changes(
    seed_users: Callable[..., None], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    seed_users([(f"u{i:02d}@example.com", "internal_user", []) for i in range(12)])
    write(workdir / "user_list.csv", "email\nu00@example.com\n")
    run = cli_run("sync")
    assert run.exit_code == 3
    assert "Refused: this run would delete 11 users" in run.stderr
    assert "Refused" not in run.stdout
    assert len(live_users(clean_proxy)) == 12


def test_a_user_added_to_a_team_by_id_gets_what_to_run_and_that_works(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams = make_teams("support")

    async def add_by_id(c: ProxyClient) -> None:
        # what an admin does in the UI or with curl: a member by user_id, no user_email
        await c.request(
            "POST",
            "/team/member_add",
            body={"team_id": teams["support"], "member": [{"user_id": "alice@example.com", "role": "user"}]},
        )

    clean_proxy.run(add_by_id)
    write(workdir / "user_list.csv", "email,role,team_name\nalice@example.com,internal_user,support\n")
    dry = cli_run("sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    line = next(x for x in dry.stdout.splitlines() if "alice@example.com" in x and "will FAIL" in x)
    assert "already exists without an email (added to a team by id?)" in line
    assert 'POST /user/update {"user_id": "alice@example.com", "user_email": "alice@example.com"}' in line

    async def do_what_it_says(c: ProxyClient) -> None:
        await c.request(
            "POST", "/user/update", body={"user_id": "alice@example.com", "user_email": "alice@example.com"}
        )

    clean_proxy.run(do_what_it_says)
    again = cli_run("sync", "--dry-run", "--detailed-exitcode")
    # now matched by email: member_add made it an internal_user in support, as the row wants
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == "Synchronization plan: 0 to add, 0 to delete, 0 to update, 1 unchanged."


def test_a_dead_proxy_says_retrying_on_stderr(cli_run: Callable[..., Result], workdir: pathlib.Path) -> None:
    """A real refused connection (nothing listens on loopback port 9): each retry is announced."""
    write(workdir / "user_list.csv", "email\na@example.com\n")
    run = cli_run("sync", "--dry-run", env={"LITELLM_BASE_URL": "http://127.0.0.1:9"})
    assert run.exit_code == 2
    retries = [x for x in run.stderr.splitlines() if x.startswith("retrying (")]
    assert retries and retries[0].startswith("retrying (2/5) in ")
    assert "cannot connect to http://127.0.0.1:9" in retries[0]
    assert run.stderr.splitlines()[-1].startswith("Error: Connection failed")
    assert run.stdout == ""
