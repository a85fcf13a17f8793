"""`sync` against the real LiteLLM Proxy: every example of the seed manual, and the semantics of issue 2.

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

from litellm_usersync import PlanOptions, apply_plan, build_plan, parse_users_csv, read_snapshot
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, create_users, live_users, teams_of, write

SEED_CSV = """email,role,team_name
user@example.com,internal_user,development
admin@company.com,proxy_admin,admin
viewer@company.com,internal_user_viewer,support
api_user@example.com,internal_user,api_team
"""
SEED_TEAMS = ("development", "admin", "support", "api_team")
REPORT_COLUMNS = ["action", "email", "user_id", "role", "team_name", "api_keys", "status", "error_reason"]

BULK_MODES = [pytest.param([], id="bulk"), pytest.param(["--no-bulk"], id="per-user")]


def report_rows(path: pathlib.Path = pathlib.Path("user_sync_result.csv")) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == REPORT_COLUMNS
        return list(reader)


def by_email(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["email"].lower(): r for r in rows}


def state(proxy: Proxy) -> dict[str, tuple[str, frozenset[str]]]:
    """email -> (role, team aliases) of every user with an email."""
    return {e: (u["user_role"], frozenset(teams_of(proxy, u))) for e, u in live_users(proxy).items()}


# --------------------------------------------------------------------------------------------------
# The seed manual's examples


def test_seed_example_dry_run_then_sync_then_rerun(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams(*SEED_TEAMS)
    write(workdir / "user_list.csv", SEED_CSV)

    dry = cli_run("sync", "--csv-file", "user_list.csv", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith(
        "Synchronization Plan:\n  Users to add: 4\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 0\n"
    )
    assert "DRY RUN - Changes that would be made:" in dry.output
    assert "    + user@example.com (Role: internal_user, Team: development)" in dry.output
    assert "    + viewer@company.com (Role: internal_user_viewer, Team: support)" in dry.output
    assert state(clean_proxy) == {}, "a dry run must not change anything"
    assert not (workdir / "user_sync_result.csv").exists()

    run = cli_run("sync", "--csv-file", "user_list.csv")
    assert run.exit_code == 0, run.output
    assert state(clean_proxy) == {
        "user@example.com": ("internal_user", frozenset({"development"})),
        "admin@company.com": ("proxy_admin", frozenset({"admin"})),
        "viewer@company.com": ("internal_user_viewer", frozenset({"support"})),
        "api_user@example.com": ("internal_user", frozenset({"api_team"})),
    }
    report = workdir / "user_sync_result.csv"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    rows = by_email(report_rows(report))
    assert {r["action"] for r in rows.values()} == {"ADDED"}
    assert {r["status"] for r in rows.values()} == {"SUCCESS"}
    for r in rows.values():
        assert r["api_keys"].startswith("sk-") and len(r["api_keys"]) > 10, "new users' keys go into the report"
        assert r["api_keys"] not in run.output, "keys are masked on screen"
        assert r["api_keys"][:5] + "…" in run.output or "holds 4 new API key" in run.output
    assert rows["user@example.com"]["team_name"] == "development"
    assert rows["user@example.com"]["user_id"] == "user@example.com"

    again = cli_run("sync", "--csv-file", "user_list.csv")
    assert again.exit_code == 0, again.output
    assert "Users to add: 0\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 4" in again.output
    assert {r["action"] for r in report_rows(report)} == {"UNCHANGED"}


@pytest.mark.parametrize("mode", BULK_MODES)
def test_add_delete_update_in_one_run(
    mode: list[str],
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    t = make_teams("old_team", "new_team", "development", "admin", "support")
    seed_users(
        [
            ("existing@example.com", "internal_user", [t["old_team"]]),
            ("stable@example.com", "internal_user", [t["development"]]),
            ("old_user@example.com", "internal_user", [t["support"]]),
            ("promote@example.com", "internal_user", [t["admin"]]),
        ]
    )
    write(
        workdir / "user_list.csv",
        "email,role,team_name\n"
        "existing@example.com,proxy_admin,new_team\n"
        "stable@example.com,internal_user,development\n"
        "promote@example.com,proxy_admin,admin\n"
        "new_user@example.com,internal_user,development\n",
    )
    dry = cli_run("sync", "--csv-file", "user_list.csv", "--dry-run", *mode)
    assert dry.exit_code == 0, dry.output
    assert "Users to add: 1\n  Users to delete: 1\n  Users to update: 2\n  Users unchanged: 1" in dry.output
    assert "    ~ existing@example.com (Role: internal_user → proxy_admin, Teams: old_team → new_team)" in dry.output
    assert "    - old_user@example.com (Role: internal_user, Team: support)" in dry.output

    run = cli_run("sync", "--csv-file", "user_list.csv", *mode)
    assert run.exit_code == 0, run.output
    assert state(clean_proxy) == {
        "existing@example.com": ("proxy_admin", frozenset({"new_team"})),
        "stable@example.com": ("internal_user", frozenset({"development"})),
        "promote@example.com": ("proxy_admin", frozenset({"admin"})),
        "new_user@example.com": ("internal_user", frozenset({"development"})),
    }
    rows = by_email(report_rows())
    assert rows["existing@example.com"]["action"] == "UPDATED"
    assert rows["old_user@example.com"]["action"] == "DELETED"
    assert rows["new_user@example.com"]["action"] == "ADDED"
    assert rows["stable@example.com"]["action"] == "UNCHANGED"
    assert all(r["status"] == "SUCCESS" for r in rows.values())

    # the team move really left the old roster too (not only user.teams)
    async def rosters(c: ProxyClient) -> dict[str, set[str]]:
        return {x.get("team_alias"): {m["user_id"] for m in x["members_with_roles"]} for x in await c.read_all_teams()}

    r = clean_proxy.run(rosters)
    assert "existing@example.com" not in r["old_team"]
    assert "existing@example.com" in r["new_team"]

    rerun = cli_run("sync", "--csv-file", "user_list.csv", *mode)
    assert rerun.exit_code == 0
    assert "Users to add: 0\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 4" in rerun.output


def test_no_delete_no_update_no_add(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    t = make_teams("a", "b")
    seed_users([("keep@x.com", "internal_user", [t["a"]]), ("gone@x.com", "internal_user", [])])
    write(workdir / "user_list.csv", "email,role,team_name\nkeep@x.com,proxy_admin,b\nnew@x.com,internal_user,a\n")
    before = state(clean_proxy)

    r = cli_run("sync", "--csv-file", "user_list.csv", "--no-delete", "--no-update", "--no-add")
    assert r.exit_code == 0, r.output
    assert state(clean_proxy) == before

    r = cli_run("sync", "--csv-file", "user_list.csv", "--no-delete", "--no-update")
    assert r.exit_code == 0, r.output
    after = state(clean_proxy)
    assert after["new@x.com"] == ("internal_user", frozenset({"a"}))
    assert after["keep@x.com"] == before["keep@x.com"] and "gone@x.com" in after

    # the seed's "Gradual Migration" step 2: only updates
    r = cli_run("sync", "--csv-file", "user_list.csv", "--no-delete", "--no-add")
    assert r.exit_code == 0, r.output
    after = state(clean_proxy)
    assert after["keep@x.com"] == ("proxy_admin", frozenset({"b"}))
    assert "gone@x.com" in after

    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 0, r.output
    assert "gone@x.com" not in state(clean_proxy)


def test_debug_logs_requests_with_secrets_masked(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("development")
    write(workdir / "user_list.csv", "email,role,team_name\nd@x.com,internal_user,development\n")
    r = cli_run("sync", "--csv-file", "user_list.csv", "--debug")
    assert r.exit_code == 0, r.output
    combined = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "→ GET /user/list" in combined and "← 200" in combined
    assert clean_proxy.master_key not in combined
    key = by_email(report_rows())["d@x.com"]["api_keys"]
    assert key.startswith("sk-") and key not in combined


# --------------------------------------------------------------------------------------------------
# Identity rules


def test_case_whitespace_and_bom_in_emails(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    t = make_teams("dev")
    seed_users([("Mixed.Case@Example.COM", "internal_user", [t["dev"]])])
    (workdir / "user_list.csv").write_bytes(
        "\ufeffemail,role,team_name\r\n"
        "  mixed.case@example.com  ,internal_user,dev\r\n"
        "NEW@Example.com ,internal_user,dev\r\n".encode()
    )
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 0, r.output
    assert "Users to add: 1\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 1" in r.output
    users = live_users(clean_proxy)
    assert set(users) == {"mixed.case@example.com", "new@example.com"}
    assert users["new@example.com"]["user_id"] == "new@example.com"
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert "Users to add: 0" in r.output and r.exit_code == 0


def test_nfd_and_idna_forms_of_a_live_email_are_the_same_user(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    """Issue 9 §4: an NFD josé@ in the CSV deleted the live (NFC) user and created a twin."""
    t = make_teams("dev")
    seed_users([("jos\u00e9@example.com", "internal_user", [t["dev"]]), ("ana@m\u00fcnchen.de", "internal_user", [])])
    before = {u["user_id"] for u in live_users(clean_proxy).values()}
    (workdir / "user_list.csv").write_text(
        "email,role,team_name\njose\u0301@example.com,internal_user,dev\nana@xn--mnchen-3ya.de,internal_user,\n"
        "Rene\u0301@example.com,internal_user,\n",
        encoding="utf-8",
    )
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 0, r.output
    assert "Users to add: 1\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 2" in r.output
    users = live_users(clean_proxy)
    assert {u["user_id"] for u in users.values()} == before | {"ren\u00e9@example.com"}
    # a new user is stored in NFC (the proxy's own duplicate check does not normalise Unicode)
    assert users["ren\u00e9@example.com"]["user_email"] == "Ren\u00e9@example.com"


def test_users_without_email_and_default_user_id_are_never_touched(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    t = make_teams("dev")  # creates default_user_id as team admin

    async def arrange(c: ProxyClient) -> None:
        await c.create_user({"user_id": "service-bot", "user_role": "internal_user", "auto_create_key": False})
        await c.create_user(
            {"user_id": "sso-user", "user_email": "sso@x.com", "user_role": "org_admin", "auto_create_key": False}
        )

    try:
        clean_proxy.run(arrange)
    except Exception:  # org_admin is refused by /user/new (422): create it with no role instead
        clean_proxy.run(
            lambda c: c.create_user({"user_id": "sso-user", "user_email": "sso@x.com", "auto_create_key": False})
        )
    write(workdir / "user_list.csv", "email,role,team_name\nonly@x.com,internal_user,dev\n")
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 0, r.output

    async def ids(c: ProxyClient) -> set[str]:
        return {u["user_id"] for u in await c.read_all_users()}

    assert {"service-bot", "sso-user", "default_user_id", "only@x.com"} <= clean_proxy.run(ids)
    assert t


def test_two_live_users_sharing_an_email_are_a_conflict(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("dev")

    async def arrange(c: ProxyClient) -> None:
        await c.create_user({"user_id": "u1", "user_email": "twin@x.com", "user_role": "internal_user"})
        await c.create_user({"user_id": "u2", "user_email": "other@x.com", "user_role": "internal_user"})
        await c.update_user("u2", user_email="TWIN@x.com")  # /user/update has no duplicate check

    clean_proxy.run(arrange)
    write(workdir / "user_list.csv", "email,role,team_name\ntwin@x.com,proxy_admin,dev\n")
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 1, r.output
    rows = report_rows()
    assert len(rows) == 1 and rows[0]["status"] == "FAILED" and "conflict" in rows[0]["error_reason"]

    async def roles(c: ProxyClient) -> dict[str, Any]:
        return {u["user_id"]: u["user_role"] for u in await c.read_all_users()}

    assert clean_proxy.run(roles)["u1"] == "internal_user"  # untouched


# --------------------------------------------------------------------------------------------------
# Teams and failures


def test_team_not_found_fails_only_that_row(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("dev")
    write(workdir / "user_list.csv", "email,role,team_name\nok@x.com,internal_user,dev\nbad@x.com,internal_user,nope\n")
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 1, r.output
    rows = by_email(report_rows())
    assert rows["ok@x.com"]["status"] == "SUCCESS"
    assert rows["bad@x.com"]["status"] == "FAILED"
    assert rows["bad@x.com"]["error_reason"] == "Team not found: nope"
    assert set(live_users(clean_proxy)) == {"ok@x.com"}


def test_multiple_teams_and_empty_team_cell(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    t = make_teams("a", "b", "c")
    seed_users([("keepteams@x.com", "internal_user", [t["c"]])])
    write(
        workdir / "user_list.csv",
        "email,role,team_name\nmulti@x.com,internal_user,a; b\nkeepteams@x.com,internal_user_viewer,\n",
    )
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 0, r.output
    s = state(clean_proxy)
    assert s["multi@x.com"] == ("internal_user", frozenset({"a", "b"}))
    assert s["keepteams@x.com"] == ("internal_user_viewer", frozenset({"c"}))
    assert by_email(report_rows())["multi@x.com"]["team_name"] == "a;b"


def test_partial_failure_during_apply_keeps_going(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    clean_proxy: Proxy,
) -> None:
    """A team deleted between planning and applying: that row fails, the others are applied."""
    t = make_teams("stays", "vanishes")
    seed_users([("mover@x.com", "internal_user", [])])
    desired = parse_users_csv(
        "email,role,team_name\nmover@x.com,internal_user,vanishes\nfine@x.com,internal_user,stays\n"
    )

    async def go(c: ProxyClient) -> Any:
        snap = await read_snapshot(c)
        plan = build_plan(desired, snap, PlanOptions(allow_recreate=False))
        await c.request("POST", "/team/delete", body={"team_ids": [t["vanishes"]]})
        return await apply_plan(c, plan)

    report = clean_proxy.run(go)
    res = {r.item.email: r for r in report.results}
    assert res["fine@x.com"].success
    assert not res["mover@x.com"].success and res["mover@x.com"].error
    assert state(clean_proxy)["fine@x.com"] == ("internal_user", frozenset({"stays"}))


# --------------------------------------------------------------------------------------------------
# Scale: more users than one page


@pytest.mark.parametrize("mode", BULK_MODES)
def test_pagination_over_250_users(
    mode: list[str],
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    t = make_teams("t1", "t2")
    n = 260

    async def arrange(c: ProxyClient) -> None:
        bodies = [
            {
                "user_id": f"u{i:03d}@x.com",
                "user_email": f"u{i:03d}@x.com",
                "user_role": "internal_user",
                "teams": [t["t1"]],
                "auto_create_key": False,
            }
            for i in range(n)
        ]
        await create_users(c, bodies)

    clean_proxy.run(arrange)
    # keep 0..239, move 0..9 to t2, promote 10..19, delete 240..259 (beyond the first pages), add 5
    lines = ["email,role,team_name"]
    for i in range(240):
        team = "t2" if i < 10 else "t1"
        role = "proxy_admin" if 10 <= i < 20 else "internal_user"
        lines.append(f"u{i:03d}@x.com,{role},{team}")
    lines += [f"new{i}@x.com,internal_user,t2" for i in range(5)]
    write(workdir / "user_list.csv", "\n".join(lines) + "\n")

    dry = cli_run("sync", "--csv-file", "user_list.csv", "--dry-run", "--max-delete", "20", *mode)
    assert "Users to add: 5\n  Users to delete: 20\n  Users to update: 20\n  Users unchanged: 220" in dry.output, (
        dry.output
    )

    r = cli_run("sync", "--csv-file", "user_list.csv", "--max-delete", "20", *mode)
    assert r.exit_code == 0, r.output
    s = state(clean_proxy)
    assert len(s) == 245
    assert s["u005@x.com"] == ("internal_user", frozenset({"t2"}))
    assert s["u015@x.com"] == ("proxy_admin", frozenset({"t1"}))
    assert "u250@x.com" not in s
    r = cli_run("sync", "--csv-file", "user_list.csv", *mode)
    assert r.exit_code == 0
    assert "Users to add: 0\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 245" in r.output


# --------------------------------------------------------------------------------------------------
# Errors that stop before anything is sent


def test_bad_csv_changes_nothing_and_exits_2(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("dev")
    write(
        workdir / "user_list.csv",
        "email,role,team_name\nok@x.com,internal_user,dev\nnot-an-email,internal_user,dev\n"
        "x@y.com,superuser,dev\nOK@x.com,internal_user,dev\n",
    )
    r = cli_run("sync", "--csv-file", "user_list.csv")
    assert r.exit_code == 2
    err = r.stderr
    assert "user_list.csv:3 (column 1 (email))" in err
    assert "user_list.csv:4 (column 2 (role)): unknown role 'superuser'" in err
    assert "user_list.csv:5 (column 1 (email)): duplicate email 'OK@x.com' (first seen on line 2)" in err
    assert state(clean_proxy) == {}


def test_bad_master_key_exits_2(clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path) -> None:
    write(workdir / "user_list.csv", "email\na@x.com\n")
    r = cli_run("sync", "--csv-file", "user_list.csv", env={"LITELLM_MASTER_KEY": "sk-wrong-key-123456"})
    assert r.exit_code == 2
    assert "Unauthorized" in r.stderr and "sk-wrong-key-123456" not in r.stderr


def test_unreachable_proxy_exits_2(cli_run: Callable[..., Result], workdir: pathlib.Path) -> None:
    write(workdir / "user_list.csv", "email\na@x.com\n")
    r = cli_run("sync", "--csv-file", "user_list.csv", "--base-url", "http://127.0.0.1:9", "--timeout", "2")
    assert r.exit_code == 2
    assert "Connection failed" in r.stderr


# --------------------------------------------------------------------------------------------------
# The seed's script name, as a real process


def test_sync_user_py_script(
    make_teams: Callable[..., dict[str, str]],
    script_run: Callable[..., Any],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    make_teams(*SEED_TEAMS)
    write(workdir / "user_list.csv", SEED_CSV)
    (workdir / ".env").write_text(f"LITELLM_MASTER_KEY={clean_proxy.master_key}\n")
    # the master key comes from .env, as in the seed
    p = script_run("sync_user.py", "--csv-file", "user_list.csv", "--dry-run", unset=("LITELLM_MASTER_KEY",))
    assert p.returncode == 0, p.stderr
    assert "Users to add: 4" in p.stdout
    p = script_run("sync_user.py", "--csv-file", "user_list.csv", "--no-delete", "--debug")
    assert p.returncode == 0, p.stderr
    assert clean_proxy.master_key not in p.stdout + p.stderr
    assert len(report_rows(workdir / "user_sync_result.csv")) == 4


def test_a_rerun_keeps_the_report_that_holds_keys_and_a_bad_report_path_changes_nothing(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("dev")
    write(workdir / "user_list.csv", "email,role,team_name\nk@x.com,internal_user,dev\n")
    bad = cli_run("sync", "--csv-file", "user_list.csv", "--report", "no/such/dir/r.csv")
    assert bad.exit_code == 2 and "does not exist" in bad.stderr
    assert live_users(clean_proxy) == {}, "the report path is checked before any change"
    assert not (workdir / "no").exists()

    assert cli_run("sync", "--csv-file", "user_list.csv").exit_code == 0
    key = by_email(report_rows())["k@x.com"]["api_keys"]
    rerun = cli_run("sync", "--csv-file", "user_list.csv")
    assert rerun.exit_code == 0 and "kept as" in rerun.output
    (kept,) = workdir.glob("user_sync_result.*.csv")
    assert key in kept.read_text() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert {r["action"] for r in report_rows()} == {"UNCHANGED"}
