"""Issue 12 on the real proxy: teams created on demand (``--create-teams``) and described by ``--teams-file``."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

from click.testing import Result

from litellm_usersync.files.audit import read_audit_log
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write


def teams(proxy: Proxy) -> dict[str, dict[str, Any]]:
    """alias -> team row (every team)."""

    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_teams()

    return {str(t.get("team_alias") or t["team_id"]): t for t in proxy.run(go)}


USERS = "email,role,team_name\nann@example.com,internal_user,Research;development\nben@example.com,internal_user,Ops\n"


def test_without_the_flag_a_missing_team_fails_its_row_and_nothing_is_created(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("development")
    write(workdir / "users.csv", USERS)
    run = cli_run("sync", "--csv-file", "users.csv")
    assert run.exit_code == 1, run.output
    assert "Team not found: Research" in run.output and "Team not found: Ops" in run.output
    assert set(teams(clean_proxy)) == {"development"} and live_users(clean_proxy) == {}


def test_create_teams_creates_them_before_the_joins_and_a_rerun_is_inert(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams("development")
    write(workdir / "users.csv", USERS)
    dry = cli_run("sync", "--csv-file", "users.csv", "--create-teams", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Teams to CREATE: Ops, Research" in dry.output and "Teams to create: 2" in dry.output
    assert "+ ann@example.com (Role: internal_user, Team: Research, development)" in dry.output
    assert set(teams(clean_proxy)) == {"development"}  # a dry run creates nothing

    run = cli_run("sync", "--csv-file", "users.csv", "--create-teams", "--backup-dir", "bk")
    assert run.exit_code == 0, run.output
    now = teams(clean_proxy)
    assert set(now) == {"development", "Research", "Ops"}
    assert now["Research"]["team_id"] == "team-research" and now["Ops"]["team_id"] == "team-ops"
    users = live_users(clean_proxy)
    assert teams_of(clean_proxy, users["ann@example.com"]) == {"Research", "development"}
    assert teams_of(clean_proxy, users["ben@example.com"]) == {"Ops"}
    created = [x for x in read_audit_log(workdir / "bk" / "audit.jsonl") if x["kind"] == "create_team"]
    assert sorted((x["team_id"], x["team_name"], x["status"]) for x in created) == [
        ("team-ops", "Ops", "done"),
        ("team-research", "Research", "done"),
    ]
    again = cli_run("sync", "--csv-file", "users.csv", "--create-teams", "--dry-run", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "Teams to CREATE" not in again.output


def test_more_new_teams_than_the_brake_refuse_the_run(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "users.csv", USERS)
    run = cli_run("sync", "--csv-file", "users.csv", "--create-teams", "--max-create-teams", "2")
    assert run.exit_code == 3, run.output
    assert "would create 3 teams, more than the limit of 2" in run.output
    assert teams(clean_proxy) == {} and live_users(clean_proxy) == {}


def test_a_teams_file_creates_and_updates_team_settings(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    ids = make_teams("development")

    async def budget(c: ProxyClient) -> None:
        await c.update_team(ids["development"], max_budget=5.0, models=["gpt-4o"])

    clean_proxy.run(budget)
    write(workdir / "users.csv", "email,role,team_name\nann@example.com,internal_user,Research\n")
    write(
        workdir / "teams.csv",
        "team_name,max_budget,budget_duration,models,tpm_limit,rpm_limit\n"
        "development,100,1mo,-,,\n"
        "Research,25.5,7d,o3;gpt-4o,1000,\n",
    )
    dry = cli_run("sync", "--csv-file", "users.csv", "--teams-file", "teams.csv", "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["summary"]["teams_create"] == 1 and plan["summary"]["teams_update"] == 1
    text = cli_run("sync", "--csv-file", "users.csv", "--teams-file", "teams.csv", "--dry-run").output
    assert "~ development (Budget: 5 → 100, Budget period: - → 1mo, Models: gpt-4o → all)" in text
    assert "+ Research (Budget: 25.5, Budget period: 7d, Models: gpt-4o, o3, TPM: 1000)" in text

    run = cli_run("sync", "--csv-file", "users.csv", "--teams-file", "teams.csv")
    assert run.exit_code == 0, run.output
    now = teams(clean_proxy)
    dev, research = now["development"], now["Research"]
    assert (dev["max_budget"], dev["budget_duration"], dev["models"]) == (100.0, "1mo", [])
    assert (research["max_budget"], research["budget_duration"], sorted(research["models"])) == (
        25.5,
        "7d",
        ["gpt-4o", "o3"],
    )
    assert research["tpm_limit"] == 1000
    assert teams_of(clean_proxy, live_users(clean_proxy)["ann@example.com"]) == {"Research"}
    again = cli_run("sync", "--csv-file", "users.csv", "--teams-file", "teams.csv", "--dry-run", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_a_bad_teams_file_is_a_located_error_and_nothing_is_sent(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "users.csv", "email\nann@example.com\n")
    write(workdir / "teams.csv", "team_name,max_budget\nEng,lots\n")
    run = cli_run("sync", "--csv-file", "users.csv", "--teams-file", "teams.csv")
    assert run.exit_code == 2, run.output
    assert "teams.csv:2 (column 2 (max_budget)): invalid max_budget 'lots'" in run.output
    assert teams(clean_proxy) == {} and live_users(clean_proxy) == {}


def test_a_saved_plan_creates_its_teams(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    write(workdir / "users.csv", "email,role,team_name,max_budget\nann@example.com,internal_user,Ops,4\n")
    saved = cli_run("sync", "--csv-file", "users.csv", "--create-teams", "--dry-run", "--plan-out", "plan.json")
    assert saved.exit_code == 0, saved.output
    assert json.loads((workdir / "plan.json").read_text())["version"] == 2
    run = cli_run("sync", "--apply-plan", "plan.json")
    assert run.exit_code == 0, run.output
    assert set(teams(clean_proxy)) == {"Ops"}
    ann = live_users(clean_proxy)["ann@example.com"]
    assert ann["max_budget"] == 4.0 and teams_of(clean_proxy, ann) == {"Ops"}
