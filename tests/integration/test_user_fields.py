"""Issue 12 on the real proxy: the whole user from the CSV (alias, budget, period, models, limits, metadata).

Arrange through the library, act through the CLI, assert through the library (the rows as ``/user/list`` has
them). Every case ends with a rerun that must plan nothing.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from litellm_usersync.files.audit import read_audit_log

from .conftest import Proxy, create_users, live_users, version_matches, write

BULK_MODES = [pytest.param([], id="bulk"), pytest.param(["--no-bulk"], id="per-user")]
HEADER = "email,role,team_name,user_alias,max_budget,budget_duration,models,tpm_limit,rpm_limit,metadata.cost_center"
FIELDS = ("user_alias", "max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit")


def fields_of(row: dict[str, Any]) -> dict[str, Any]:
    """The managed fields of a live user row, and its cost_center metadata key."""
    out = {f: row.get(f) for f in FIELDS}
    out["cost_center"] = (row.get("metadata") or {}).get("cost_center")
    return out


def rerun_plans_nothing(cli_run: Callable[..., Result], *args: str) -> None:
    again = cli_run("sync", "--csv-file", "users.csv", "--dry-run", "--detailed-exitcode", *args)
    assert again.exit_code == 0, again.output
    assert "0 to add, 0 to delete, 0 to update" in again.output


def arrange(proxy: Proxy, **fields: Any) -> None:
    """alice@example.com as an internal user with ``fields`` (and a metadata key nobody manages)."""
    body = {
        "user_id": "alice@example.com",
        "user_email": "alice@example.com",
        "user_role": "internal_user",
        "auto_create_key": False,
        "metadata": {"managed_by": "litellm-usersync", "owner": "hr-system", **fields.pop("metadata", {})},
        **fields,
    }
    proxy.run(lambda c: create_users(c, [body]))


@pytest.mark.parametrize("mode", BULK_MODES)
def test_create_with_every_column_then_rerun_is_inert(
    mode: list[str], clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    write(
        workdir / "users.csv",
        f"{HEADER}\n"
        "alice@example.com,internal_user,,Alice,10.5,30d,gpt-4o;gpt-4o-mini,1000,60,CC-1\n"
        "bob@example.com,internal_user_viewer,,,,,,,,\n",
    )
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", *mode)
    assert dry.exit_code == 0, dry.output
    assert (
        "+ alice@example.com (Role: internal_user, Team: -, Alias: Alice, Budget: 10.5, Budget period: 30d, "
        "Models: gpt-4o, gpt-4o-mini, TPM: 1000, RPM: 60, Metadata cost_center: CC-1)"
    ) in dry.output
    assert live_users(clean_proxy) == {}

    run = cli_run("sync", "--csv-file", "users.csv", *mode)
    assert run.exit_code == 0, run.output
    users = live_users(clean_proxy)
    assert fields_of(users["alice@example.com"]) == {
        "user_alias": "Alice",
        "max_budget": 10.5,
        "budget_duration": "30d",
        "models": ["gpt-4o", "gpt-4o-mini"],
        "tpm_limit": 1000,
        "rpm_limit": 60,
        "cost_center": "CC-1",
    }
    # the tool's own marker survives the metadata key of the CSV (and the key-marker clearing after creation)
    assert users["alice@example.com"]["metadata"] == {"managed_by": "litellm-usersync", "cost_center": "CC-1"}
    assert fields_of(users["bob@example.com"]) == dict.fromkeys((*FIELDS, "cost_center")) | {"models": []}
    rerun_plans_nothing(cli_run, *mode)


UPDATES = [
    pytest.param(
        "user_alias",
        "Alicia",
        "user_alias",
        "Alicia",
        "Alias: Alice → Alicia",
        id="alias",
        marks=pytest.mark.litellm(
            ">=1.100", reason="LiteLLM 1.74's /user/update has no user_alias (UpdateUserRequest lacks it): ignored"
        ),
    ),
    pytest.param("max_budget", "20", "max_budget", 20.0, "Budget: 5 → 20", id="budget"),
    pytest.param("budget_duration", "1mo", "budget_duration", "1mo", "Budget period: 30d → 1mo", id="period"),
    pytest.param("models", "gpt-4o;o3", "models", ["gpt-4o", "o3"], "Models: gpt-4o → gpt-4o, o3", id="models"),
    pytest.param("tpm_limit", "500", "tpm_limit", 500, "TPM: 100 → 500", id="tpm"),
    pytest.param("rpm_limit", "0", "rpm_limit", 0, "RPM: 10 → 0", id="rpm"),
    pytest.param("metadata.cost_center", "CC-9", "cost_center", "CC-9", "Metadata cost_center: CC-1 → CC-9", id="md"),
]
START = {
    "user_alias": "Alice",
    "max_budget": 5.0,
    "budget_duration": "30d",
    "models": ["gpt-4o"],
    "tpm_limit": 100,
    "rpm_limit": 10,
    "cost_center": "CC-1",
}


@pytest.mark.parametrize("mode", BULK_MODES)
@pytest.mark.parametrize(("column", "cell", "field", "value", "shown"), UPDATES)
def test_update_each_column_alone(
    mode: list[str],
    column: str,
    cell: str,
    field: str,
    value: Any,
    shown: str,
    clean_proxy: Proxy,
    cli_run: Callable[..., Result],
    workdir: pathlib.Path,
) -> None:
    """Only the changed column moves; every other managed field, and the metadata nobody manages, stay."""
    arrange(
        clean_proxy,
        **{k: v for k, v in START.items() if k != "cost_center"},
        metadata={"cost_center": "CC-1"},
    )
    cells = {"user_alias": "Alice", "max_budget": "5", "budget_duration": "30d", "models": "gpt-4o"}
    cells |= {"tpm_limit": "100", "rpm_limit": "10", "metadata.cost_center": "CC-1", column: cell}
    order = HEADER.split(",")[3:]
    write(workdir / "users.csv", f"{HEADER}\nalice@example.com,internal_user,,{','.join(cells[c] for c in order)}\n")
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", *mode)
    assert f"~ alice@example.com ({shown})" in dry.output, dry.output

    run = cli_run("sync", "--csv-file", "users.csv", "--output", "json", *mode)
    assert run.exit_code == 0, run.output
    (row,) = json.loads(run.stdout)["results"]
    assert row["status"] == "SUCCESS" and row["changes"][0]["field"] == column
    alice = live_users(clean_proxy)["alice@example.com"]
    assert fields_of(alice) == {**START, field: value}
    assert alice["metadata"]["owner"] == "hr-system" and alice["user_role"] == "internal_user"
    rerun_plans_nothing(cli_run, *mode)


def test_empty_cells_and_absent_columns_leave_values_alone(
    clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    arrange(clean_proxy, **{k: v for k, v in START.items() if k != "cost_center"}, metadata={"cost_center": "CC-1"})
    # every managed column present but empty, then a file without them: nothing is planned, nothing changes
    write(workdir / "users.csv", f"{HEADER}\nalice@example.com,internal_user,,,,,,,,\n")
    rerun_plans_nothing(cli_run)
    write(workdir / "users.csv", "email,role\nalice@example.com,internal_user\n")
    rerun_plans_nothing(cli_run)
    assert cli_run("sync", "--csv-file", "users.csv").exit_code == 0
    assert fields_of(live_users(clean_proxy)["alice@example.com"]) == START


@pytest.mark.litellm(">=1.110", reason="LiteLLM 1.74 ignores an explicit null on /user/update: it cannot clear budgets")
@pytest.mark.parametrize("mode", BULK_MODES)
def test_the_clear_token_clears_each_field(
    mode: list[str], clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    arrange(clean_proxy, **{k: v for k, v in START.items() if k != "cost_center"}, metadata={"cost_center": "CC-1"})
    write(workdir / "users.csv", f"{HEADER}\nalice@example.com,internal_user,,-,-,-,-,-,-,-\n")
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", *mode)
    assert (
        "~ alice@example.com (Alias: Alice → -, Budget: 5 → -, Budget period: 30d → -, Models: gpt-4o → all, "
        "TPM: 100 → -, RPM: 10 → -, Metadata cost_center: CC-1 → -)"
    ) in dry.output
    run = cli_run("sync", "--csv-file", "users.csv", "--backup-dir", "bk", *mode)
    assert run.exit_code == 0, run.output
    alice = live_users(clean_proxy)["alice@example.com"]
    assert alice["max_budget"] is None and alice["budget_duration"] is None
    assert alice["tpm_limit"] is None and alice["rpm_limit"] is None
    assert not alice["user_alias"]  # LiteLLM keeps "" (a null alias is dropped by /user/update)
    assert alice["models"] == ["all-proxy-models"]  # every model (an empty list is dropped by /user/update)
    assert alice["metadata"] == {"managed_by": "litellm-usersync", "owner": "hr-system"}
    rerun_plans_nothing(cli_run, *mode)
    # the audit log has the values before and after
    (line,) = [x for x in read_audit_log(workdir / "bk" / "audit.jsonl") if x["kind"] == "update_user"]
    assert line["before"]["max_budget"] == 5.0 and line["after"]["max_budget"] is None
    assert line["before"]["models"] == ["gpt-4o"] and line["after"]["models"] == []


@pytest.mark.litellm("<1.100", reason="the alias change and the null clear 1.74's /user/update ignores")
@pytest.mark.parametrize("mode", BULK_MODES)
def test_on_1_74_an_alias_change_or_a_null_clear_fails_its_row_and_the_others_apply(
    mode: list[str], clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path, litellm_version: str
) -> None:
    """LiteLLM 1.74 answers success to an alias change and to an explicit null and changes nothing: those rows
    must fail with why (nothing sent for them), never say SUCCESS; the rows it can apply are applied."""
    start = {k: v for k, v in START.items() if k != "cost_center"}
    people = ("alice", "bob", "carol")
    for who in people:
        body = {
            "user_id": f"{who}@example.com",
            "user_email": f"{who}@example.com",
            "user_role": "internal_user",
            "auto_create_key": False,
            "metadata": {"managed_by": "litellm-usersync", "cost_center": "CC-1"},
            **start,
        }
        clean_proxy.run(lambda c, body=body: create_users(c, [body]))
    write(
        workdir / "users.csv",
        f"{HEADER}\n"
        "alice@example.com,internal_user,,Alicia,20,30d,gpt-4o,100,10,CC-1\n"  # alias: cannot
        "bob@example.com,internal_user,,Alice,-,30d,gpt-4o,100,-,CC-1\n"  # budget and RPM clear: cannot
        "carol@example.com,internal_user,,Alice,20,1mo,-,100,10,-\n"  # can: set, models to all, metadata key cleared
        "dave@example.com,internal_user,,Dave,3,,,,,\n",  # a new user with an alias: /user/new can
    )
    alias_why = (
        f"user_alias: LiteLLM {litellm_version}'s /user/update cannot change a user's alias (needs LiteLLM >= 1.100); "
        "nothing was sent for this row"
    )
    clear_why = (
        f"max_budget, rpm_limit: LiteLLM {litellm_version}'s /user/update cannot clear them (it ignores an explicit "
        "null; needs LiteLLM >= 1.110); nothing was sent for this row"
    )
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", *mode)
    assert f"~ alice@example.com (Alias: Alice → Alicia, Budget: 5 → 20)  ✗ will FAIL: {alias_why}" in dry.output
    assert f"~ bob@example.com (Budget: 5 → -, RPM: 10 → -)  ✗ will FAIL: {clear_why}" in dry.output

    run = cli_run("sync", "--csv-file", "users.csv", "--output", "json", *mode)
    assert run.exit_code == 1, run.output
    results = {r["email"]: r for r in json.loads(run.stdout)["results"]}
    assert (results["alice@example.com"]["status"], results["alice@example.com"]["error"]) == ("FAILED", alias_why)
    assert (results["bob@example.com"]["status"], results["bob@example.com"]["error"]) == ("FAILED", clear_why)
    assert results["carol@example.com"]["status"] == "SUCCESS" and results["dave@example.com"]["status"] == "SUCCESS"
    users = live_users(clean_proxy)
    # nothing of the failed rows was sent (alice's budget too), the others are applied
    assert fields_of(users["alice@example.com"]) == START and fields_of(users["bob@example.com"]) == START
    assert fields_of(users["carol@example.com"]) == {
        **START,
        "max_budget": 20.0,
        "budget_duration": "1mo",
        "models": ["all-proxy-models"],
        "cost_center": None,
    }
    assert (users["dave@example.com"]["user_alias"], users["dave@example.com"]["max_budget"]) == ("Dave", 3.0)
    # the human report says so too
    text = cli_run("sync", "--csv-file", "users.csv", *mode)
    assert text.exit_code == 1 and alias_why in text.output and clear_why in text.output


def test_a_role_change_with_fields_is_one_update_and_keeps_the_budget(
    clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    """Becoming internal_user: the budget the row does not change is sent as it is (the proxy's
    max_internal_user_budget defaults, where configured, would otherwise overwrite it: API contract §1.3)."""
    arrange(clean_proxy, user_role="proxy_admin", max_budget=50.0, budget_duration="30d")
    write(workdir / "users.csv", "email,role,models\nalice@example.com,internal_user,gpt-4o\n")
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", "--output", "json")
    (item,) = json.loads(dry.stdout)["items"]
    assert item["operations"] == ["update:alice@example.com"]
    assert cli_run("sync", "--csv-file", "users.csv").exit_code == 0
    alice = live_users(clean_proxy)["alice@example.com"]
    assert (alice["user_role"], alice["models"], alice["max_budget"], alice["budget_duration"]) == (
        "internal_user",
        ["gpt-4o"],
        50.0,
        "30d",
    )
    rerun_plans_nothing(cli_run)


def test_list_columns_round_trip_every_managed_column(
    clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    arrange(clean_proxy, **{k: v for k, v in START.items() if k != "cost_center"}, metadata={"cost_center": "CC-1"})
    proxy_bob = {"user_id": "bob@example.com", "user_email": "bob@example.com", "user_role": "proxy_admin"}
    clean_proxy.run(lambda c: create_users(c, [{**proxy_bob, "auto_create_key": False}]))
    listed = cli_run("list", "--format", "csv", "--columns", HEADER)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        HEADER,
        "alice@example.com,internal_user,,Alice,5,30d,gpt-4o,100,10,CC-1",
        "bob@example.com,proxy_admin,,,,,,,,",
    ]
    write(workdir / "users.csv", listed.stdout)
    rerun_plans_nothing(cli_run)
    # an edit of one cell plans exactly that edit
    write(workdir / "users.csv", listed.stdout.replace(",5,30d,", ",7,30d,"))
    dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run")
    assert "~ alice@example.com (Budget: 5 → 7)" in dry.output and "0 to add, 0 to delete, 1 to update" in dry.output


def test_add_creates_users_with_their_fields(
    clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path
) -> None:
    write(workdir / "add.csv", "email,role,max_budget,models,metadata.cost_center\nnew@example.com,,3,o3,CC-7\n")
    run = cli_run("add", "--csv-file", "add.csv", "--no-invite")
    assert run.exit_code == 0, run.output
    new = live_users(clean_proxy)["new@example.com"]
    assert (new["max_budget"], new["models"], new["metadata"].get("cost_center")) == (3.0, ["o3"], "CC-7")


def test_restore_brings_the_fields_back(
    clean_proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path, litellm_version: str
) -> None:
    arrange(clean_proxy, **{k: v for k, v in START.items() if k != "cost_center"}, metadata={"cost_center": "CC-1"})
    assert cli_run("snapshot", "--backup-dir", "backups").exit_code == 0
    (snapshot_file,) = (workdir / "backups").glob("snapshot-*-snapshot.json")
    # LiteLLM 1.74 can neither change the alias nor clear the period (that row would fail): only what it can
    old = version_matches(litellm_version, "<1.110")
    alias, period = ("Alice", "30d") if old else ("Al", "-")
    write(workdir / "users.csv", f"{HEADER}\nalice@example.com,internal_user,,{alias},99,{period},o3,,,CC-2\n")
    assert cli_run("sync", "--csv-file", "users.csv").exit_code == 0
    assert live_users(clean_proxy)["alice@example.com"]["max_budget"] == 99.0
    restored = cli_run("restore", str(snapshot_file), "--backup-dir", "backups")
    assert restored.exit_code == 0, restored.output
    assert "Budget: 99 → 5" in restored.output
    assert fields_of(live_users(clean_proxy)["alice@example.com"]) == START
