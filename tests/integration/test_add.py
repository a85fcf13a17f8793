"""`add` (and `python add_user.py`) against the real LiteLLM Proxy: the seed manual's examples and issue 3.

Arrange through the library, act through the CLI, assert through the library.
"""

from __future__ import annotations

import csv
import pathlib
import re
import stat
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, live_users, teams_of, write

SEED_ADDLIST = """email,role,team_name,key_name
user@example.com,internal_user,development,00000001_chatbot
admin@company.com,proxy_admin,admin,00000002_admin
viewer@company.com,internal_user_viewer,support,00000003_support
"""
RESULT_COLUMNS = ["email", "role", "user_id", "team_name", "models", "api_keys", "invitation_url"]
ERROR_COLUMNS = ["email", "role", "error_reason"]
BULK_MODES = [pytest.param([], id="bulk"), pytest.param(["--no-bulk"], id="per-user")]


def rows(path: pathlib.Path, columns: list[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == columns
        return list(reader)


def state(proxy: Proxy) -> dict[str, tuple[str, frozenset[str]]]:
    """email -> (role, team aliases) of every user with an email."""
    return {e: (u["user_role"], frozenset(teams_of(proxy, u))) for e, u in live_users(proxy).items()}


def key_aliases(proxy: Proxy) -> dict[str, set[str]]:
    """user_id -> aliases of the user's keys (UI session keys left out)."""

    async def go(c: ProxyClient) -> Any:
        return await c.request("GET", "/key/list", params={"return_full_object": "true", "size": 100})

    out: dict[str, set[str]] = {}
    for k in proxy.run(go)["keys"]:
        if k.get("team_id") != "litellm-dashboard" and k.get("user_id"):
            out.setdefault(k["user_id"], set()).add(k.get("key_alias") or "")
    return out


def invitation_ids(proxy: Proxy, url: str) -> str:
    m = re.fullmatch(re.escape(proxy.base_url) + r"/ui/\?invitation_id=([0-9a-f-]{36})&action=reset_password", url)
    assert m, url
    return m.group(1)


@pytest.mark.parametrize("mode", BULK_MODES)
def test_seed_example_dry_run_then_register(
    mode: list[str],
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    make_teams("development", "admin", "support")
    write(workdir / "user_addlist.csv", SEED_ADDLIST)

    dry = cli_run("add", "--csv-file", "user_addlist.csv", "--dry-run", *mode)
    assert dry.exit_code == 0, dry.output
    assert dry.output == (
        "Registration Plan:\n"
        "  Users to add: 3\n"
        "  Users that already exist: 0\n"
        "\n"
        "DRY RUN - Users that would be created:\n"
        "  + admin@company.com (Role: proxy_admin, Team: admin, Key Name: 00000002_admin)\n"
        "  + user@example.com (Role: internal_user, Team: development, Key Name: 00000001_chatbot)\n"
        "  + viewer@company.com (Role: internal_user_viewer, Team: support, Key Name: 00000003_support)\n"
        "\n"
        "Registration plan: 3 to add, 0 already exist.\n"
    )
    assert state(clean_proxy) == {}, "a dry run must not change anything"
    assert not (workdir / "user_reg_result.csv").exists() and not (workdir / "user_reg_error.csv").exists()

    run = cli_run("add", "--csv-file", "user_addlist.csv", *mode)
    assert run.exit_code == 0, run.output
    assert state(clean_proxy) == {
        "user@example.com": ("internal_user", frozenset({"development"})),
        "admin@company.com": ("proxy_admin", frozenset({"admin"})),
        "viewer@company.com": ("internal_user_viewer", frozenset({"support"})),
    }
    result_file = workdir / "user_reg_result.csv"
    assert stat.S_IMODE(result_file.stat().st_mode) == 0o600, "it holds API keys"
    result = {r["email"]: r for r in rows(result_file, RESULT_COLUMNS)}
    assert set(result) == {"user@example.com", "admin@company.com", "viewer@company.com"}
    row = result["user@example.com"]
    assert (row["role"], row["user_id"], row["team_name"], row["models"]) == (
        "internal_user",
        "user@example.com",
        "development",
        "All proxy models",
    )
    for r in result.values():
        assert r["api_keys"].startswith("sk-") and len(r["api_keys"]) > 10
        assert r["api_keys"] not in run.output, "full keys never on screen"
        assert f"key {r['api_keys'][:5]}…" in run.output, "masked keys on screen"
        invitation_ids(clean_proxy, r["invitation_url"])
        assert r["invitation_url"] not in run.output, "invitation links (password resets) stay in the 0600 file"
    assert rows(workdir / "user_reg_error.csv", ERROR_COLUMNS) == []
    assert key_aliases(clean_proxy) == {
        "user@example.com": {"00000001_chatbot"},
        "admin@company.com": {"00000002_admin"},
        "viewer@company.com": {"00000003_support"},
    }


def test_seed_script_existing_users_missing_team_and_update_existing(
    make_teams: Callable[..., dict[str, str]],
    seed_users: Callable[..., None],
    script_run: Callable[..., Any],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    teams = make_teams("development", "support")
    seed_users([("Old@Example.com", "proxy_admin", [teams["support"]])])
    write(
        workdir / "user_addlist.csv",
        "email,role,team_name\n"
        "old@example.com,internal_user,development\n"
        "new@example.com,,development\n"
        "lost@example.com,internal_user,nosuchteam\n",
    )

    proc = script_run("add_user.py", "--csv-file", "user_addlist.csv", "--update-existing")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✗ old@example.com (internal_user): User already exists" in proc.stdout
    assert "✗ lost@example.com (internal_user): Team not found: nosuchteam" in proc.stdout
    assert state(clean_proxy) == {
        "old@example.com": ("proxy_admin", frozenset({"support"})),  # untouched
        "new@example.com": ("proxy_admin", frozenset({"development"})),  # --user-role default
    }
    assert rows(workdir / "user_reg_error.csv", ERROR_COLUMNS) == [
        {"email": "old@example.com", "role": "internal_user", "error_reason": "User already exists"},
        {"email": "lost@example.com", "role": "internal_user", "error_reason": "Team not found: nosuchteam"},
    ]
    assert [r["email"] for r in rows(workdir / "user_reg_result.csv", RESULT_COLUMNS)] == ["new@example.com"]

    # the existing users, as sync input with their current role and teams: a no-op for sync
    update = workdir / "user_update_list.csv"
    assert update.read_text(encoding="utf-8") == "email,role,team_name\nold@example.com,proxy_admin,support\n"
    for path in (update, workdir / "user_reg_error.csv"):  # they hold emails (issue 9 §4)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    noop = cli_run("sync", "--csv-file", str(update), "--no-delete", "--dry-run", "--output", "json")
    assert noop.exit_code == 0, noop.output
    assert '"update": 0' in noop.output and '"add": 0' in noop.output

    # ... edited, fed back to sync, it updates exactly that user
    write(update, "email,role,team_name\nold@example.com,internal_user,development\n")
    synced = cli_run("sync", "--csv-file", str(update), "--no-delete")
    assert synced.exit_code == 0, synced.output
    assert state(clean_proxy)["old@example.com"] == ("internal_user", frozenset({"development"}))

    again = cli_run("add", "--csv-file", "user_addlist.csv")
    assert again.exit_code == 1
    assert {r["email"]: r["error_reason"] for r in rows(workdir / "user_reg_error.csv", ERROR_COLUMNS)} == {
        "old@example.com": "User already exists",
        "new@example.com": "User already exists",
        "lost@example.com": "Team not found: nosuchteam",
    }
    assert rows(workdir / "user_reg_result.csv", RESULT_COLUMNS) == [], "no stale rows from the previous run"


def test_a_proxy_that_cannot_make_invitations_still_gets_its_users(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    # on a freshly emptied proxy the master key's user row (default_user_id) does not exist yet, and
    # /invitation/new needs it: every invitation fails with a 400
    write(workdir / "user_addlist.csv", "email,role\nuser1@example.com,internal_user\nuser2@example.com,proxy_admin\n")
    run = cli_run("add")
    assert run.exit_code == 1, run.output
    assert state(clean_proxy) == {
        "user1@example.com": ("internal_user", frozenset()),
        "user2@example.com": ("proxy_admin", frozenset()),
    }
    result = rows(workdir / "user_reg_result.csv", RESULT_COLUMNS)
    assert [(r["email"], r["invitation_url"]) for r in result] == [("user1@example.com", ""), ("user2@example.com", "")]
    assert all(r["api_keys"].startswith("sk-") for r in result)
    errors = rows(workdir / "user_reg_error.csv", ERROR_COLUMNS)
    assert [e["email"] for e in errors] == ["user1@example.com", "user2@example.com"]
    for e in errors:
        assert e["error_reason"].startswith("user created, but no invitation link: ")
        assert "default_user_id" in e["error_reason"], "the reason explains the proxy's misleading message"
    assert "Created without an invitation link: 2 users" in run.output

    write(workdir / "more.csv", "email\nuser3@example.com\n")
    skipped = cli_run("add", "--csv-file", "more.csv", "--no-invite")
    assert skipped.exit_code == 0, skipped.output
    assert rows(workdir / "user_reg_error.csv", ERROR_COLUMNS) == []
    assert "user3@example.com" in live_users(clean_proxy)


def test_debug_output_never_shows_a_full_key(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    workdir: pathlib.Path,
) -> None:
    make_teams("development")
    write(workdir / "user_addlist.csv", "email,role,team_name,key_name\nd@example.com,internal_user,development,k1\n")
    run = cli_run("add", "--debug")
    assert run.exit_code == 0, run.output
    key = rows(workdir / "user_reg_result.csv", RESULT_COLUMNS)[0]["api_keys"]
    assert key.startswith("sk-")
    assert key not in run.output and key not in (run.stderr or "")
    # the create was logged (with the key masked): one batch on 1.110, /user/new on 1.74 (no batch route)
    assert "POST /management/v1/users/bulk" in (run.stderr or run.output) or "POST /user/new" in (
        run.stderr or run.output
    )


def test_invalid_csv_sends_nothing(cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path) -> None:
    write(workdir / "user_addlist.csv", "email,role\nnot-an-email,internal_user\nx@example.com,superuser\n")
    run = cli_run("add")
    assert run.exit_code == 2
    assert "2 problem(s) in the CSV" in run.output
    assert live_users(clean_proxy) == {}
