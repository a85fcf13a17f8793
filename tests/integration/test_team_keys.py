"""Team moves and team keys on the real proxy (issue 9 §2, API contract §2.12).

On LiteLLM 1.110.2 ``/team/member_delete`` deletes every key of the user bound to that team: a move says so in
the plan, and ``--keep-team-keys`` re-binds the key to the new team first, so that it keeps working.
"""

from __future__ import annotations

import csv
import json
import pathlib
import time
from typing import Any

import httpx
import pytest

from litellm_usersync.proxy.client import BULK_MIN_VERSION, ProxyClient, parse_version

from .conftest import Proxy, live_users, teams_of


def _needs_110(proxy: Proxy, why: str) -> None:
    """Skip on proxies older than 1.100 (LITELLM_PROXY_VERSION=1.74.x), where ``why`` does not hold."""

    async def version(c: ProxyClient) -> str | None:
        return await c.proxy_version()

    v = parse_version(proxy.run(version))
    if v is None or v < BULK_MIN_VERSION:
        pytest.skip(f"LiteLLM {v}: {why}")


def _arrange(proxy: Proxy) -> str:
    """team-a, team-b; mover@x.com in team-a holding one key bound to team-a; stay@x.com in team-a, no key."""

    async def go(c: ProxyClient) -> str:
        for alias in ("team-a", "team-b"):
            await c.create_team(alias, team_id=alias)
        for email in ("mover@x.com", "stay@x.com"):
            await c.create_user(
                {
                    "user_id": email,
                    "user_email": email,
                    "user_role": "internal_user",
                    "teams": ["team-a"],
                    "auto_create_key": False,
                }
            )
        return await c.generate_key("mover@x.com", team_id="team-a")

    return proxy.run(go)


def _key_works(proxy: Proxy, key: str) -> tuple[int, dict[str, Any]]:
    """What the proxy answers when the key itself asks about itself (``GET /key/info`` with the key)."""
    time.sleep(0.7)  # the proxy caches keys it authenticated for 0.5 s (lib/config.yaml)
    r = httpx.get(f"{proxy.base_url}/key/info", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else {})


def _csv(workdir: pathlib.Path) -> str:
    path = workdir / "move.csv"
    path.write_text("email,role,team_name\nmover@x.com,internal_user,team-b\nstay@x.com,internal_user,team-a\n")
    return str(path)


def _report(workdir: pathlib.Path) -> dict[str, dict[str, str]]:
    with open(workdir / "user_sync_result.csv", encoding="utf-8") as fh:
        return {r["email"]: r for r in csv.DictReader(fh)}


def test_a_move_says_it_destroys_the_team_key_and_does(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _arrange(clean_proxy)
    assert _key_works(clean_proxy, key)[0] == 200
    dry = cli_run("sync", "--csv-file", _csv(workdir), "--dry-run", "--plan-out", "plan.json")
    assert dry.exit_code == 0, dry.output
    assert "~ mover@x.com (Teams: team-a → team-b) — destroys 1 team key(s)" in dry.output
    assert "Team keys destroyed by team moves: 1" in dry.output
    assert json.loads((workdir / "plan.json").read_text())["items"][0]["team_keys_destroyed"] == 1
    result = cli_run("sync", "--csv-file", _csv(workdir))
    assert result.exit_code == 0, result.output
    assert "Team keys destroyed by team moves: 1" in result.output
    row = _report(workdir)["mover@x.com"]
    assert row["status"] == "SUCCESS" and row["error_reason"] == "destroyed 1 team key(s)"
    assert teams_of(clean_proxy, live_users(clean_proxy)["mover@x.com"]) == {"team-b"}
    assert _key_works(clean_proxy, key)[0] == 401, "the leave deleted the key, as the plan said"
    # the backup written before the run says which key went (its hash, never the key)
    (backup,) = (workdir / "usersync-backups").glob("*.json")
    saved = json.loads(backup.read_text())["team_keys"]
    assert [(k["user_id"], k["team_id"]) for k in saved] == [("mover@x.com", "team-a")]
    assert key not in backup.read_text()


def test_keep_team_keys_rebinds_the_key_and_it_still_authenticates(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _arrange(clean_proxy)
    dry = cli_run("sync", "--csv-file", _csv(workdir), "--keep-team-keys", "--dry-run")
    assert "~ mover@x.com (Teams: team-a → team-b) — re-binds 1 team key(s) to team-b" in dry.output
    assert "destroys" not in dry.output
    result = cli_run("sync", "--csv-file", _csv(workdir), "--keep-team-keys")
    assert result.exit_code == 0, result.output
    row = _report(workdir)["mover@x.com"]
    assert row["status"] == "SUCCESS" and row["error_reason"] == "1 team key(s) re-bound to team-b"
    user = live_users(clean_proxy)["mover@x.com"]
    assert teams_of(clean_proxy, user) == {"team-b"}
    assert user["key_count"] == 1
    status, info = _key_works(clean_proxy, key)
    assert status == 200, "the key survived the move and still authenticates"
    assert info["info"]["team_id"] == "team-b" and info["info"]["user_id"] == "mover@x.com"


def test_destroyed_team_keys_count_against_max_delete(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _arrange(clean_proxy)
    result = cli_run("sync", "--csv-file", _csv(workdir), "--max-delete", "0")
    assert result.exit_code == 3, result.output
    assert "destroy 1 team key(s)" in result.output
    assert teams_of(clean_proxy, live_users(clean_proxy)["mover@x.com"]) == {"team-a"}, "nothing was changed"
    assert _key_works(clean_proxy, key)[0] == 200


def _snapshot_then_move(proxy: Proxy, cli_run: Any) -> str:
    """A snapshot with mover@x.com in team-b; then mover moves to team-a and gets a key bound to team-a.

    Restoring the snapshot takes mover out of team-a: on 1.110.2 that leave deletes the team-a key.
    """

    async def before(c: ProxyClient) -> None:
        for alias in ("team-a", "team-b"):
            await c.create_team(alias, team_id=alias)
        await c.create_user(
            {
                "user_id": "mover@x.com",
                "user_email": "mover@x.com",
                "user_role": "internal_user",
                "teams": ["team-b"],
                "auto_create_key": False,
            }
        )

    async def after(c: ProxyClient) -> str:
        await c.add_team_members("team-a", [("mover@x.com", "mover@x.com")])
        await c.remove_team_member("team-b", "mover@x.com")
        return await c.generate_key("mover@x.com", team_id="team-a")

    proxy.run(before)
    assert cli_run("snapshot", "--file", "before.json").exit_code == 0
    key: str = proxy.run(after)
    assert teams_of(proxy, live_users(proxy)["mover@x.com"]) == {"team-a"}
    return key


def test_restore_says_its_move_destroys_the_team_key(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _snapshot_then_move(clean_proxy, cli_run)
    dry = cli_run("restore", "before.json", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "~ mover@x.com (Teams: team-a → team-b) — destroys 1 team key(s)" in dry.output
    assert "Team keys destroyed by team moves: 1" in dry.output
    data = json.loads(cli_run("restore", "before.json", "--dry-run", "--output", "json").output)
    assert data["items"][0]["team_keys_destroyed"] == 1
    assert _key_works(clean_proxy, key)[0] == 200, "a dry run changes nothing"
    result = cli_run("restore", "before.json")
    assert result.exit_code == 0, result.output
    assert teams_of(clean_proxy, live_users(clean_proxy)["mover@x.com"]) == {"team-b"}
    assert _key_works(clean_proxy, key)[0] == 401, "the leave deleted the key, as the plan said"
    # the backup written before the restore names the key that went (its hash, never the key)
    (backup,) = (workdir / "usersync-backups").glob("*restore*.json")
    saved = json.loads(backup.read_text())["team_keys"]
    assert [(k["user_id"], k["team_id"]) for k in saved] == [("mover@x.com", "team-a")]
    assert key not in backup.read_text()


def test_restore_counts_destroyed_team_keys_against_max_delete(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _snapshot_then_move(clean_proxy, cli_run)
    result = cli_run("restore", "before.json", "--max-delete", "0")
    assert result.exit_code == 3, result.output
    assert "destroy 1 team key(s)" in result.output
    assert teams_of(clean_proxy, live_users(clean_proxy)["mover@x.com"]) == {"team-a"}, "nothing was changed"
    assert _key_works(clean_proxy, key)[0] == 200


def test_restore_keep_team_keys_rebinds_the_key(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    _needs_110(clean_proxy, "a team leave keeps the keys bound to the team (contract §2.12)")
    key = _snapshot_then_move(clean_proxy, cli_run)
    dry = cli_run("restore", "before.json", "--keep-team-keys", "--dry-run")
    assert "~ mover@x.com (Teams: team-a → team-b) — re-binds 1 team key(s) to team-b" in dry.output
    assert "destroys" not in dry.output
    result = cli_run("restore", "before.json", "--keep-team-keys", "--max-delete", "0")
    assert result.exit_code == 0, result.output
    user = live_users(clean_proxy)["mover@x.com"]
    assert teams_of(clean_proxy, user) == {"team-b"}
    status, info = _key_works(clean_proxy, key)
    assert status == 200, "the key survived the restore's move and still authenticates"
    assert info["info"]["team_id"] == "team-b"
