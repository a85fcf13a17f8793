"""sync's saved plans, backups and audit log on the real proxy (issue 6)."""

from __future__ import annotations

import csv
import json
import pathlib
import stat
from collections.abc import Callable

from click.testing import Result

from litellm_usersync.files.audit import read_audit_log
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write

CSV = "email,role,team_name\nkeep@x.com,proxy_admin,b\nnew@x.com,internal_user,a\n"


def arrange(make_teams: Callable[..., dict[str, str]], seed_users: Callable[..., None]) -> dict[str, str]:
    t = make_teams("a", "b")
    seed_users([("keep@x.com", "internal_user", [t["a"]]), ("gone@x.com", "internal_user", [t["b"]])])
    return t


def test_plan_out_then_apply_plan(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    arrange(make_teams, seed_users)
    write(workdir / "user_list.csv", CSV)
    dry = cli_run("sync", "--dry-run", "--plan-out", "plan.json", "--detailed-exitcode")
    assert dry.exit_code == 2, dry.output  # changes pending
    doc = json.loads((workdir / "plan.json").read_text())
    assert doc["schema"] == "litellm-usersync/plan-file"
    assert stat.S_IMODE((workdir / "plan.json").stat().st_mode) == 0o600
    assert "gone@x.com" in live_users(clean_proxy), "a dry run with --plan-out changes nothing"

    (workdir / "user_list.csv").unlink()  # applying a plan reads no CSV
    run = cli_run("sync", "--apply-plan", "plan.json", "--backup-dir", "bk")
    assert run.exit_code == 0, run.output + run.stderr
    users = live_users(clean_proxy)
    assert set(users) == {"keep@x.com", "new@x.com"}
    assert users["keep@x.com"]["user_role"] == "proxy_admin"
    assert teams_of(clean_proxy, users["keep@x.com"]) == {"b"}

    # the backup holds the state before the change, without secrets
    (backup,) = (workdir / "bk").glob("snapshot-*-sync.json")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    text = backup.read_text()
    assert "gone@x.com" in text and clean_proxy.master_key not in text and "sk-" not in text

    # one audit line per change, matching the report, no key in it
    lines = read_audit_log(workdir / "bk" / "audit.jsonl")
    with (workdir / "user_sync_result.csv").open() as fh:
        report = list(csv.DictReader(fh))
    new_key = next(r["api_keys"] for r in report if r["email"] == "new@x.com")
    assert new_key.startswith("sk-")
    audit_text = (workdir / "bk" / "audit.jsonl").read_text()
    assert new_key not in audit_text and clean_proxy.master_key not in audit_text
    changed = {r["email"] for r in report if r["action"] != "UNCHANGED"}
    assert {line["email"] for line in lines} == changed
    assert all(line["status"] == "done" for line in lines), lines


def test_stale_plan_is_refused(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    arrange(make_teams, seed_users)
    write(workdir / "user_list.csv", CSV)
    assert cli_run("sync", "--dry-run", "--plan-out", "plan.json").exit_code == 0

    async def concurrent_change(c: ProxyClient) -> None:
        await c.update_user("keep@x.com", user_role="internal_user_viewer")

    clean_proxy.run(concurrent_change)
    r = cli_run("sync", "--apply-plan", "plan.json")
    assert r.exit_code == 3, r.output + r.stderr
    assert "stale plan" in r.stderr and "keep@x.com" in r.stderr
    users = live_users(clean_proxy)
    assert "gone@x.com" in users and "new@x.com" not in users, "nothing of a stale plan is applied"
    assert users["keep@x.com"]["user_role"] == "internal_user_viewer"


def test_no_change_run_writes_no_backup(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    make_teams("a")
    write(workdir / "user_list.csv", "email,role,team_name\nx@x.com,internal_user,a\n")
    assert cli_run("sync", "--backup-dir", "bk").exit_code == 0
    assert len(list((workdir / "bk").glob("snapshot-*.json"))) == 1
    assert cli_run("sync", "--backup-dir", "bk").exit_code == 0
    assert len(list((workdir / "bk").glob("snapshot-*.json"))) == 1, "nothing to change, nothing to back up"
