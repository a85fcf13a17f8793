"""Scopes on the real proxy (issue 17): a CSV answers for the users of its scope and leaves the rest alone.

Users "from another source" are made the way SSO or another script makes them: ``/user/new`` directly, without
this tool's marker. The tool's own users are created by ``sync`` itself (which writes the marker).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Callable
from typing import Any

from click.testing import Result

from litellm_usersync.files.audit import read_audit_log
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write

Cli = Callable[..., Result]
HR = "email,role,team_name\n" + "".join(f"emp{i}@corp.example,internal_user,\n" for i in range(4))


def make_sso_users(proxy: Proxy, rows: list[tuple[str, list[str]]], metadata: dict[str, Any] | None = None) -> None:
    """What SSO's first login (or another team's script) leaves: a user with a proxy role and no marker."""

    async def go(c: ProxyClient) -> None:
        for email, teams in rows:
            body: dict[str, Any] = {
                "user_id": f"sso-{email.split('@')[0]}",
                "user_email": email,
                "user_role": "internal_user",
                "auto_create_key": False,
            }
            if metadata:
                body["metadata"] = metadata
            await c.create_user(body)
            for t in teams:
                await c.add_team_members(t, [(body["user_id"], email)])

    proxy.run(go)


def plan_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output + result.stderr
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def deleted_in(doc: dict[str, Any]) -> set[str]:
    return {i["email"] for i in doc["items"] if i["action"] == "DELETED"}


def test_sso_users_survive_a_managed_sync_that_would_have_deleted_them(
    cli_run: Cli, clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "hr.csv", HR)
    first = cli_run("sync", "--csv-file", "hr.csv", "--no-backup")  # the tool's own users, with its marker
    assert first.exit_code == 0, first.output + first.stderr
    make_sso_users(clean_proxy, [("contractor@corp.example", []), ("tester@other.example", [])])
    write(workdir / "hr.csv", HR.replace("emp3@corp.example,internal_user,\n", ""))  # emp3 left

    # without a scope the same CSV deletes the SSO users too (the seed's behaviour, unchanged)
    unscoped = plan_json(cli_run("sync", "--csv-file", "hr.csv", "--dry-run", "--output", "json"))
    assert deleted_in(unscoped) == {"emp3@corp.example", "contractor@corp.example", "tester@other.example"}

    run = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--backup-dir", "bk")
    assert run.exit_code == 0, run.output + run.stderr
    assert "Scope: managed (2 users outside the scope, left alone)" in run.output
    assert "! 2 users outside the scope (managed), left alone" in run.output
    users = live_users(clean_proxy)
    assert "emp3@corp.example" not in users
    assert {"contractor@corp.example", "tester@other.example", "emp0@corp.example"} <= set(users)
    lines = read_audit_log(workdir / "bk" / "audit.jsonl")
    assert [(line["kind"], line["email"], line["scope"]) for line in lines] == [
        ("delete_user", "emp3@corp.example", ["managed"])
    ]


def test_domain_and_team_scopes_delete_only_that_departments_leavers(
    cli_run: Cli, clean_proxy: Proxy, workdir: pathlib.Path, make_teams: Callable[..., dict[str, str]]
) -> None:
    t = make_teams("Sales", "Ops")
    # two departments on one proxy, made by two sources (here: created directly, none with the marker)
    make_sso_users(
        clean_proxy,
        [
            ("ann@sales.example", [t["Sales"]]),
            ("bob@sales.example", [t["Sales"]]),
            ("cid@ops.example", [t["Ops"]]),
            ("dan@ops.example", [t["Ops"]]),
        ],
    )
    # sales' own sheet: Bob left. Ops' users are not in it and must survive.
    write(workdir / "sales.csv", "email,role,team_name\nann@sales.example,internal_user,Sales\n")
    by_domain = cli_run("sync", "--csv-file", "sales.csv", "--scope", "domain:SALES.example", "--no-backup")
    assert by_domain.exit_code == 0, by_domain.output + by_domain.stderr
    assert "- bob@sales.example" in by_domain.output and "2 outside the scope" in by_domain.output
    assert set(live_users(clean_proxy)) == {"ann@sales.example", "cid@ops.example", "dan@ops.example"}

    # ops' sheet, by team: Dan left; Ann (in Sales) is outside the scope even though the CSV does not list her
    write(workdir / "ops.csv", "email,role,team_name\ncid@ops.example,internal_user,Ops\n")
    by_team = cli_run("sync", "--csv-file", "ops.csv", "--scope", "team:ops", "--no-backup")
    assert by_team.exit_code == 0, by_team.output + by_team.stderr
    users = live_users(clean_proxy)
    assert set(users) == {"ann@sales.example", "cid@ops.example"}
    assert teams_of(clean_proxy, users["ann@sales.example"]) == {"Sales"}

    # a team scope naming no team refuses the run: nothing is deleted
    refused = cli_run("sync", "--csv-file", "ops.csv", "--scope", "team:Opps", "--no-backup")
    assert refused.exit_code == 3
    assert "Refused: --scope team:Opps: no such team; did you mean ops?" in refused.stderr
    assert set(live_users(clean_proxy)) == {"ann@sales.example", "cid@ops.example"}


def test_a_csv_row_naming_a_user_outside_the_scope_is_left_alone_then_adopt_marks_and_manages_it(
    cli_run: Cli, clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_sso_users(clean_proxy, [("eve@corp.example", []), ("fay@corp.example", [])], metadata={"idp": "okta"})
    write(workdir / "hr.csv", "email,role,team_name\neve@corp.example,proxy_admin,\n")

    dry = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--dry-run")
    assert dry.exit_code == 0, dry.output + dry.stderr
    assert "! eve@corp.example (outside the scope (managed); left alone (--adopt manages it))" in dry.output
    alone = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--no-backup")
    assert alone.exit_code == 0, alone.output + alone.stderr
    assert "Users left alone: 1" in alone.output and "Nothing to change." in alone.output
    users = live_users(clean_proxy)
    assert users["eve@corp.example"]["user_role"] == "internal_user"  # not promoted: outside the scope
    assert set(users) == {"eve@corp.example", "fay@corp.example"}

    adopt = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--adopt", "--backup-dir", "bk")
    assert adopt.exit_code == 0, adopt.output + adopt.stderr
    assert "~ eve@corp.example (adopt: mark as managed by litellm-usersync, Role: internal_user → proxy_admin)" in (
        adopt.output
    )
    assert "Users to adopt (marked as managed, --adopt): 1" in adopt.output
    assert "Adopted (marked as managed): 1" in adopt.output
    eve = live_users(clean_proxy)["eve@corp.example"]
    assert eve["metadata"] == {"idp": "okta", "managed_by": "litellm-usersync"}  # its own metadata kept
    assert eve["user_role"] == "proxy_admin"
    kinds = [line["kind"] for line in read_audit_log(workdir / "bk" / "audit.jsonl")]
    assert kinds == ["adopt_user", "change_role"]

    # now managed: the next run without her in the CSV deletes her; Fay (never adopted) stays
    write(workdir / "hr.csv", "email,role,team_name\nnew@corp.example,internal_user,\n")
    later = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--no-backup")
    assert later.exit_code == 0, later.output + later.stderr
    assert set(live_users(clean_proxy)) == {"fay@corp.example", "new@corp.example"}


def test_a_saved_plan_records_its_scope_and_is_refused_under_another(
    cli_run: Cli, clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "hr.csv", HR)
    assert cli_run("sync", "--csv-file", "hr.csv", "--no-backup").exit_code == 0
    make_sso_users(clean_proxy, [("sso@corp.example", [])])
    write(workdir / "hr.csv", HR.replace("emp0@corp.example,internal_user,\n", ""))
    dry = cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--dry-run", "--plan-out", "plan.json")
    assert dry.exit_code == 0, dry.output + dry.stderr
    doc = json.loads((workdir / "plan.json").read_text())
    assert (doc["version"], doc["options"]["scope"], doc["out_of_scope"]) == (2, ["managed"], 1)

    for how in (["--scope", "domain:corp.example"], []):
        env = {} if how else {"USERSYNC_SCOPE": "role:internal_user"}
        refused = cli_run("sync", "--apply-plan", "plan.json", "--no-backup", *how, env=env)
        assert refused.exit_code == 3, refused.output + refused.stderr
        assert "Refused: the saved plan was made for the scope managed, this run's scope is" in refused.stderr
        assert "emp0@corp.example" in live_users(clean_proxy)  # nothing was changed

    applied = cli_run("sync", "--apply-plan", "plan.json", "--no-backup", env={"USERSYNC_SCOPE": "managed"})
    assert applied.exit_code == 0, applied.output + applied.stderr
    users = live_users(clean_proxy)
    assert "emp0@corp.example" not in users and "sso@corp.example" in users


def test_list_snapshot_and_restore_of_a_scope_touch_only_its_users(
    cli_run: Cli, clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "hr.csv", HR)
    assert cli_run("sync", "--csv-file", "hr.csv", "--no-backup").exit_code == 0
    make_sso_users(clean_proxy, [("sso@corp.example", [])])

    listed = cli_run("list", "--scope", "managed", "--columns", "user_email")
    assert listed.exit_code == 0, listed.output + listed.stderr
    assert listed.output.splitlines() == ["user_email", *(f"emp{i}@corp.example" for i in range(4))]

    snap = cli_run("snapshot", "--scope", "managed", "--file", "ours.json", "--output", "json")
    assert snap.exit_code == 0, snap.output + snap.stderr
    assert json.loads(snap.output)["scope"] == ["managed"]
    doc = json.loads((workdir / "ours.json").read_text())
    assert (doc["version"], doc["scope"]) == (2, ["managed"])
    assert sorted(u["email"] for u in doc["users"]) == [f"emp{i}@corp.example" for i in range(4)]

    # since: one of ours deleted, one SSO user more; restoring the scoped snapshot brings ours back and
    # deletes neither SSO user (they are not in the snapshot, but they are outside its scope)
    write(workdir / "hr.csv", HR.replace("emp1@corp.example,internal_user,\n", ""))
    assert cli_run("sync", "--csv-file", "hr.csv", "--scope", "managed", "--no-backup").exit_code == 0
    make_sso_users(clean_proxy, [("later@corp.example", [])])
    restored = cli_run("restore", "ours.json", "--backup-dir", "bk")
    assert restored.exit_code == 0, restored.output + restored.stderr
    assert "2 users outside the scope (managed), left alone" in restored.output
    users = live_users(clean_proxy)
    assert {"emp1@corp.example", "sso@corp.example", "later@corp.example"} <= set(users)

    # a scoped snapshot restored under another scope is refused
    refused = cli_run("restore", "ours.json", "--scope", "domain:corp.example", "--dry-run")
    assert refused.exit_code == 3
    assert "the snapshot holds only the users of the scope managed" in refused.stderr


def test_the_scope_in_dotenv_applies_to_the_seed_script(
    script_run: Callable[..., subprocess.CompletedProcess[str]], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    """A cron job cannot forget it: USERSYNC_SCOPE in the working directory's .env."""
    write(workdir / "user_list.csv", HR)
    first = script_run("sync_user.py", "--no-backup")
    assert first.returncode == 0, first.stdout + first.stderr
    make_sso_users(clean_proxy, [("sso@corp.example", [])])
    write(workdir / ".env", 'USERSYNC_SCOPE="managed"\n')
    write(workdir / "user_list.csv", HR.replace("emp2@corp.example,internal_user,\n", ""))
    run = script_run("sync_user.py", "--no-backup", unset=("USERSYNC_SCOPE",))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Scope: managed (1 user outside the scope, left alone)" in run.stdout
    users = live_users(clean_proxy)
    assert "emp2@corp.example" not in users and "sso@corp.example" in users
