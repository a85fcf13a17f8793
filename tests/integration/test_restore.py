"""Snapshots, restore, plan files and the audit log against the real LiteLLM Proxy (issue 6).

Arrange through the library, act through the CLI (or the library for plan files, whose CLI flags live in
``sync``), assert through the library.
"""

from __future__ import annotations

import asyncio
import csv
import json
import pathlib
import stat
from collections.abc import Callable

import pytest
from click.testing import Result

from litellm_usersync import PlanOptions, apply_plan, build_plan, parse_users_csv, read_snapshot
from litellm_usersync.errors import RefusedError
from litellm_usersync.files.audit import AuditLog, read_audit_log
from litellm_usersync.files.backups import read_snapshot_file
from litellm_usersync.files.jsonfiles import read_json_file, read_plan_file, write_json_file, write_plan_file
from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.models import Plan, RunReport, Snapshot
from litellm_usersync.plans.freshness import check_plan_fresh
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write

#: email -> (user_id, role, team aliases)
State = dict[str, tuple[str, str, frozenset[str]]]


def state(proxy: Proxy) -> State:
    return {e: (u["user_id"], u["user_role"], frozenset(teams_of(proxy, u))) for e, u in live_users(proxy).items()}


def read_live(proxy: Proxy) -> Snapshot:
    return proxy.run(read_snapshot)


def only_file(folder: pathlib.Path, pattern: str) -> pathlib.Path:
    files = sorted(folder.glob(pattern))
    assert len(files) == 1, files
    return files[0]


def report_rows(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def arranged(make_teams: Callable[..., dict[str, str]], clean_proxy: Proxy) -> tuple[dict[str, str], list[str]]:
    """Three teams and four users; two of them hold an API key. Returns (team ids, plaintext keys)."""
    teams = make_teams("development", "support", "admin")

    async def go(c: ProxyClient) -> list[str]:
        keys = []
        rows = [
            ("alice@example.com", "internal_user", [teams["development"]], True),
            ("bob@example.com", "proxy_admin", [teams["support"]], False),
            ("carol@example.com", "internal_user_viewer", [teams["development"], teams["support"]], True),
            ("dave@example.com", "internal_user", [teams["admin"]], False),
        ]
        for email, role, team_ids, with_key in rows:
            created = await c.create_user(
                {
                    "user_id": email,
                    "user_email": email,
                    "user_role": role,
                    "teams": team_ids,
                    "auto_create_key": with_key,
                }
            )
            if created.api_key:
                keys.append(created.api_key)
        return keys

    keys = clean_proxy.run(go)
    assert len(keys) == 2
    return teams, keys


def assert_no_secret_in(folder: pathlib.Path, secrets: list[str], *, skip: tuple[str, ...] = ()) -> int:
    """No file under ``folder`` (except those named in ``skip``) contains any of ``secrets``; returns files read."""
    seen = 0
    for path in folder.rglob("*"):
        if path.is_file() and path.name not in skip:
            text = path.read_text(encoding="utf-8", errors="replace")
            for s in secrets:
                assert s not in text, f"a secret ({s[:5]}…) is in {path}"
            seen += 1
    return seen


# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [pytest.param([], id="bulk"), pytest.param(["--no-bulk"], id="per-user")])
def test_snapshot_destructive_sync_then_restore_gets_everything_back(
    mode: list[str],
    arranged: tuple[dict[str, str], list[str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    _, keys = arranged
    before = state(clean_proxy)
    assert len(before) == 4

    snap = cli_run("snapshot", "--backup-dir", "backups")
    assert snap.exit_code == 0, snap.output
    snapshot_file = only_file(workdir / "backups", "snapshot-*-snapshot.json")
    assert str(snapshot_file.relative_to(workdir)) in snap.output
    assert stat.S_IMODE(snapshot_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((workdir / "backups").stat().st_mode) == 0o700
    saved, doc = read_snapshot_file(snapshot_file)
    assert doc["command"] == "snapshot"
    assert {u.email for u in saved.users if u.email} == set(before)

    # the destructive change: delete alice and carol (one had a key), demote bob and move him, add erin
    write(
        workdir / "user_list.csv",
        "email,role,team_name\n"
        "bob@example.com,internal_user,development\n"
        "dave@example.com,internal_user,admin\n"
        "erin@example.com,proxy_admin,support\n",
    )
    sync = cli_run("sync", "--csv-file", "user_list.csv")
    assert sync.exit_code == 0, sync.output
    changed = state(clean_proxy)
    assert set(changed) == {"bob@example.com", "dave@example.com", "erin@example.com"}
    assert changed["bob@example.com"][1:] == ("internal_user", frozenset({"development"}))
    erin_key = next(
        r["api_keys"] for r in report_rows(workdir / "user_sync_result.csv") if r["email"].startswith("erin")
    )
    assert erin_key.startswith("sk-")

    dry = cli_run("restore", str(snapshot_file), "--backup-dir", "backups", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Users to add: 2\n  Users to delete: 1\n  Users to update: 1\n" in dry.output
    assert "+ alice@example.com (Role: internal_user, Team: development)" in dry.output
    assert "- erin@example.com (Role: proxy_admin, Team: support)" in dry.output
    assert "~ bob@example.com (Role: internal_user → proxy_admin, Teams: development → support)" in dry.output
    assert "API keys of deleted users cannot be restored" in dry.output
    assert state(clean_proxy) == changed, "a dry run changes nothing"

    run = cli_run("restore", str(snapshot_file), "--backup-dir", "backups", *mode)
    assert run.exit_code == 0, run.output
    assert "API keys of deleted users cannot be restored: the 2 user(s) to recreate had 2 API key(s)" in run.output
    assert state(clean_proxy) == before, "same users (same ids), roles and teams as in the snapshot"

    # the state before the restore was saved first
    pre_restore = only_file(workdir / "backups", "snapshot-*-restore.json")
    saved_before_restore, _ = read_snapshot_file(pre_restore)
    assert {u.email for u in saved_before_restore.users if u.email} == set(changed)
    assert f"saved in {pre_restore.relative_to(workdir)}" in run.output

    # the report: one row per user, new keys for the recreated users that had keys, mode 0600
    report = workdir / "user_restore_result.csv"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    rows = {r["email"]: r for r in report_rows(report)}
    assert {e: (r["action"], r["status"]) for e, r in rows.items()} == {
        "alice@example.com": ("ADDED", "SUCCESS"),
        "carol@example.com": ("ADDED", "SUCCESS"),
        "erin@example.com": ("DELETED", "SUCCESS"),
        "bob@example.com": ("UPDATED", "SUCCESS"),
        "dave@example.com": ("UNCHANGED", "SUCCESS"),
    }
    new_keys = [rows[e]["api_keys"] for e in ("alice@example.com", "carol@example.com")]
    assert all(k.startswith("sk-") for k in new_keys) and not set(new_keys) & set(keys)

    # the audit log: one line per change, matching the report
    lines = read_audit_log(workdir / "backups" / "audit.jsonl")
    assert stat.S_IMODE((workdir / "backups" / "audit.jsonl").stat().st_mode) == 0o600
    assert {(line["action"].split(":")[0], line["email"], line["status"]) for line in lines} == {
        ("create", "alice@example.com", "done"),
        ("create", "carol@example.com", "done"),
        ("delete", "erin@example.com", "done"),
        ("role", "bob@example.com", "done"),
        ("join", "bob@example.com", "done"),
        ("leave", "bob@example.com", "done"),
    }
    assert len(lines) == 6
    assert {line["command"] for line in lines} == {"restore"} and len({line["run_id"] for line in lines}) == 1
    role = next(line for line in lines if line["kind"] == "change_role")
    assert (role["before"], role["after"]) == ({"role": "internal_user"}, {"role": "proxy_admin"})
    assert [line["team_name"] for line in lines if line["kind"] == "remove_membership"] == ["development"]
    assert next(line for line in lines if line["kind"] == "delete_user")["before"]["key_count"] == 1

    # no key and no master key in any written file; the report alone holds the new keys, by design
    secrets = [*keys, erin_key, clean_proxy.master_key]
    assert assert_no_secret_in(workdir, secrets + new_keys, skip=("user_restore_result.csv", "user_sync_result.csv"))
    assert clean_proxy.master_key not in report.read_text() + run.output + dry.output
    for k in new_keys:
        assert k not in run.output, "keys are never shown in full on screen"

    again = cli_run("restore", str(snapshot_file), "--backup-dir", "backups")
    assert again.exit_code == 0, again.output
    assert "Nothing to change: the proxy already matches the snapshot." in again.output
    assert len(read_audit_log(workdir / "backups" / "audit.jsonl")) == 6, "nothing done, nothing audited"


def test_restore_takes_a_user_out_of_two_teams_at_once(
    arranged: tuple[dict[str, str], list[str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams, _ = arranged
    before = state(clean_proxy)
    assert cli_run("snapshot", "--file", "before.json").exit_code == 0

    async def join_two(c: ProxyClient) -> None:  # dave joins two more teams, one after the other
        await c.add_team_members(teams["development"], [("dave@example.com", "dave@example.com")])
        await c.add_team_members(teams["support"], [("dave@example.com", "dave@example.com")])

    clean_proxy.run(join_two)
    assert state(clean_proxy)["dave@example.com"][2] == {"development", "support", "admin"}
    r = cli_run("restore", "before.json")
    assert r.exit_code == 0, r.output
    assert state(clean_proxy) == before


def test_a_team_deleted_since_fails_only_its_rows(
    arranged: tuple[dict[str, str], list[str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams, _ = arranged
    assert cli_run("snapshot", "--file", "before.json").exit_code == 0

    async def change(c: ProxyClient) -> None:
        await c.delete_users(["alice@example.com", "dave@example.com"])
        await c.update_user("bob@example.com", user_role="internal_user")
        await c.request("POST", "/team/delete", body={"team_ids": [teams["admin"]]})

    clean_proxy.run(change)
    r = cli_run("restore", "before.json", "--output", "json")
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    by_email = {row["email"]: row for row in data["results"]}
    assert by_email["dave@example.com"]["status"] == "FAILED"
    assert "team(s) deleted since the snapshot cannot be restored: admin" in by_email["dave@example.com"]["error"]
    assert by_email["alice@example.com"]["status"] == "SUCCESS"
    assert by_email["bob@example.com"]["status"] == "SUCCESS"
    now = state(clean_proxy)
    assert now["alice@example.com"] == ("alice@example.com", "internal_user", frozenset({"development"}))
    assert now["bob@example.com"][1] == "proxy_admin"
    assert "dave@example.com" not in now
    assert data["backup_file"] and pathlib.Path(data["backup_file"]).exists()


def test_restore_is_refused_by_the_mass_deletion_brake(
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    seed_users([("keep@example.com", "internal_user", [])])
    assert cli_run("snapshot", "--file", "small.json").exit_code == 0

    async def add_many(c: ProxyClient) -> None:
        for i in range(11):
            await c.create_user(
                {
                    "user_id": f"n{i}@example.com",
                    "user_email": f"n{i}@example.com",
                    "user_role": "internal_user",
                    "auto_create_key": False,
                }
            )

    clean_proxy.run(add_many)
    before = state(clean_proxy)
    r = cli_run("restore", "small.json")
    assert r.exit_code == 3, r.output
    assert "would delete 11 users added since the snapshot, more than the limit of 10" in r.output
    assert state(clean_proxy) == before
    assert not (workdir / "usersync-backups").exists(), "a refused restore writes no backup and no audit line"
    r = cli_run("restore", "small.json", "--max-delete", "11", "--protect", "N0@example.com")
    assert r.exit_code == 0, r.output
    assert set(state(clean_proxy)) == {"keep@example.com", "n0@example.com"}


def test_restore_keeps_syncs_scope_and_all_widens_it(
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    """Issue 9 §4: a user added since without a proxy role (sync never deletes it) survives a restore."""
    seed_users([("keep@example.com", "internal_user", [])])
    assert cli_run("snapshot", "--output", "before.json").exit_code == 0

    async def add(c: ProxyClient) -> None:
        # /user/new without user_role stores role null (contract §1.3): outside sync's scope
        no_key = {"auto_create_key": False}
        await c.create_user({"user_id": "norole@example.com", "user_email": "norole@example.com", **no_key})
        new = {"user_id": "new@example.com", "user_email": "new@example.com", "user_role": "internal_user"}
        await c.create_user({**new, **no_key})

    clean_proxy.run(add)
    assert live_users(clean_proxy)["norole@example.com"]["user_role"] is None
    r = cli_run("restore", "before.json")
    assert r.exit_code == 0, r.output
    assert set(live_users(clean_proxy)) == {"keep@example.com", "norole@example.com"}
    assert "outside sync's scope (restore --all deletes it)" in r.output

    dry = cli_run("restore", "before.json", "--all", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "--all: 1 of the deletions are users sync never deletes" in dry.output
    assert "norole@example.com (no role)" in dry.output
    r = cli_run("restore", "before.json", "--all")
    assert r.exit_code == 0, r.output
    assert set(live_users(clean_proxy)) == {"keep@example.com"}


def test_snapshot_to_stdout_and_a_bad_snapshot_file(
    arranged: tuple[dict[str, str], list[str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    _, keys = arranged
    r = cli_run("snapshot", "--file", "-")
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["schema"] == "litellm-usersync/snapshot"
    assert {u["email"] for u in doc["users"] if u["email"]} == set(state(clean_proxy))
    assert not any(k in r.output for k in [*keys, clean_proxy.master_key])
    assert not (workdir / "usersync-backups").exists()

    write(workdir / "plan.json", json.dumps({"schema": "litellm-usersync/plan-file", "version": 1}))
    bad = cli_run("restore", "plan.json")
    assert bad.exit_code == 2
    assert "not a litellm-usersync/snapshot document" in bad.stderr
    missing = cli_run("restore", "nope.json")
    assert missing.exit_code == 2 and "snapshot file not found: nope.json" in missing.stderr


# --------------------------------------------------------------------------------------------------
# Plan files through the library (the sync flags --plan-out/--apply-plan wire these same calls)


def _plan_and_apply(proxy: Proxy, plan: Plan, audit: AuditLog) -> RunReport:
    async def go(c: ProxyClient) -> RunReport:
        check_plan_fresh(plan, await read_snapshot(c))
        return await apply_plan(c, plan, on_outcome=audit.for_plan(plan))

    return proxy.run(go)


def test_plan_file_round_trip_applies_exactly_that_plan(
    arranged: tuple[dict[str, str], list[str]], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    _, keys = arranged
    desired = parse_users_csv(
        "email,role,team_name\nalice@example.com,proxy_admin,support\nbob@example.com,proxy_admin,support\n"
        "carol@example.com,internal_user_viewer,development;support\nfrank@example.com,internal_user,admin\n",
        path="u.csv",
    )
    plan = build_plan(desired, read_live(clean_proxy), PlanOptions(create_keys=False))
    path = write_plan_file(workdir / "plan.json", plan, source="u.csv")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any(s in path.read_text() for s in [*keys, clean_proxy.master_key])
    loaded = read_plan_file(path)
    assert loaded == plan

    audit = AuditLog(workdir / "audit.jsonl", run_id="r1", command="sync", secrets=(clean_proxy.master_key,))
    report = _plan_and_apply(clean_proxy, loaded, audit)
    assert report.ok
    now = state(clean_proxy)
    assert now["alice@example.com"][1:] == ("proxy_admin", frozenset({"support"}))
    assert now["frank@example.com"][1:] == ("internal_user", frozenset({"admin"}))
    assert "dave@example.com" not in now
    lines = read_audit_log(workdir / "audit.jsonl")
    assert sorted(line["action"] for line in lines) == sorted(o.action.key for o in report.outcomes)
    assert all(line["status"] == "done" for line in lines)


def test_a_saved_plan_is_refused_after_a_concurrent_change(
    arranged: tuple[dict[str, str], list[str]], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    desired = parse_users_csv("email,role\nbob@example.com,internal_user\ndave@example.com,proxy_admin\n", path="u.csv")
    plan = build_plan(desired, read_live(clean_proxy), PlanOptions(allow_delete=False))
    write_json_file(workdir / "plan.json", plan_to_document(plan, source="u.csv"))

    # somebody else changes a user the plan touches
    clean_proxy.run(lambda c: c.update_user("dave@example.com", user_role="internal_user_viewer"))
    loaded = plan_from_document(read_json_file(workdir / "plan.json"))
    before = state(clean_proxy)
    with pytest.raises(RefusedError) as exc:
        _plan_and_apply(clean_proxy, loaded, AuditLog(workdir / "audit.jsonl", run_id="r", command="sync"))
    assert "stale plan" in str(exc.value)
    assert "dave@example.com: role internal_user -> internal_user_viewer" in str(exc.value)
    assert state(clean_proxy) == before
    assert not (workdir / "audit.jsonl").exists()

    # a change to a user the plan does not touch leaves it fresh
    fresh = build_plan(desired, read_live(clean_proxy), PlanOptions(allow_delete=False))
    clean_proxy.run(lambda c: c.update_user("alice@example.com", user_role="proxy_admin_viewer"))
    asyncio.run(_check_fresh(clean_proxy, fresh))


async def _check_fresh(proxy: Proxy, plan: Plan) -> None:
    async with ProxyClient(proxy.settings()) as c:
        check_plan_fresh(plan, await read_snapshot(c))


def test_restore_without_a_writable_backup_folder_changes_nothing(
    arranged: tuple[dict[str, str], list[str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    assert cli_run("snapshot", "--file", "before.json").exit_code == 0
    clean_proxy.run(lambda c: c.delete_users(["alice@example.com"]))
    changed = state(clean_proxy)
    write(workdir / "a-file", "")
    r = cli_run("restore", "before.json", "--backup-dir", "a-file/backups")
    assert r.exit_code == 2, r.output
    assert "cannot write the backup or the audit log" in r.stderr and "nothing was changed" in r.stderr
    assert state(clean_proxy) == changed
