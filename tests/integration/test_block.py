"""Deprovision by block, reactivation and purge on the real proxy (issue 13).

What a blocked user can still do is asserted here and stated in docs/safety.md from these tests.
"""

from __future__ import annotations

import csv
import json
import pathlib
import time
from typing import Any

import httpx
import pytest

from litellm_usersync.files.audit import read_audit_log
from litellm_usersync.models import BLOCK_RECORD
from litellm_usersync.proxy.client import ProxyClient

from ..faultproxy import Decision, FaultConfig, FaultProxy
from .conftest import Proxy, live_users

pytestmark = pytest.mark.litellm(">=1.110")

CHAT = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}]}


def _call(proxy: Proxy, key: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    """What the proxy answers ``key`` itself (status, error message)."""
    r = httpx.request(
        method, f"{proxy.base_url}{path}", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=60
    )
    try:
        err = r.json().get("error", {})
        msg = str(err.get("message") if isinstance(err, dict) else err)
    except (ValueError, AttributeError):
        msg = r.text
    return r.status_code, msg


def _key_status(proxy: Proxy, key: str) -> int:
    time.sleep(0.7)  # the proxy caches keys it authenticated for 0.5 s (lib/config.yaml)
    return _call(proxy, key, "GET", "/key/info")[0]


def _arrange(proxy: Proxy) -> dict[str, str]:
    """team-a; gone@x.com (internal_user, team-a, spend 1.5) holding a personal key, a team-a key and a
    personal key an admin blocked by hand; stay@x.com and other@x.com (internal_user, team-a)."""

    async def go(c: ProxyClient) -> dict[str, str]:
        await c.create_team("team-a", team_id="team-a")
        for email in ("gone@x.com", "stay@x.com", "other@x.com"):
            await c.create_user(
                {
                    "user_id": email,
                    "user_email": email,
                    "user_role": "internal_user",
                    "teams": ["team-a"],
                    "auto_create_key": False,
                }
            )
        await c.update_user("gone@x.com", spend=1.5, metadata={"cost_center": "42"})
        keys = {
            "personal": await c.generate_key("gone@x.com", key_alias="gone-personal"),
            "team": await c.generate_key("gone@x.com", key_alias="gone-team", team_id="team-a"),
            "admin_blocked": await c.generate_key("gone@x.com", key_alias="gone-admin-blocked"),
        }
        assert await c.block_key(keys["admin_blocked"])
        return keys

    return proxy.run(go)


def _user(proxy: Proxy, user_id: str) -> dict[str, Any]:
    async def go(c: ProxyClient) -> dict[str, Any]:
        return (await c.read_users_by_ids([user_id]))[user_id]

    return proxy.run(go)


def _roster(proxy: Proxy, team_id: str) -> frozenset[str]:
    async def go(c: ProxyClient) -> frozenset[str]:
        return (await c.read_team_rosters([team_id]))[team_id]

    return proxy.run(go)


def _write_csv(workdir: pathlib.Path, *rows: str) -> str:
    path = workdir / "users.csv"
    path.write_text("email,role,team_name\n" + "".join(f"{r}\n" for r in rows))
    return str(path)


def _report(workdir: pathlib.Path) -> dict[str, dict[str, str]]:
    with open(workdir / "user_sync_result.csv", encoding="utf-8") as fh:
        return {r["email"]: r for r in csv.DictReader(fh)}


def _writes(fp: FaultProxy) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in fp.log if m != "GET"]


def test_block_stops_every_key_keeps_teams_and_spend_and_reactivation_undoes_exactly_that(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    keys = _arrange(clean_proxy)
    assert _key_status(clean_proxy, keys["personal"]) == 200
    assert _key_status(clean_proxy, keys["team"]) == 200
    assert _key_status(clean_proxy, keys["admin_blocked"]) == 401
    without = _write_csv(workdir, "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a")

    dry = cli_run("sync", "--csv-file", without, "--deprovision", "block", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Users to block: 1" in dry.output
    assert "  Users to BLOCK:" in dry.output
    assert (
        "⊘ gone@x.com (Role: internal_user → internal_user_viewer; budget → 0; Team: team-a kept) — blocks 2 API "
        "key(s): gone-personal, gone-team (team team-a); 1 key(s) blocked before stay blocked; spend $1.50 kept"
    ) in dry.output, dry.output
    assert _key_status(clean_proxy, keys["personal"]) == 200  # a dry run changes nothing

    run = cli_run("sync", "--csv-file", without, "--deprovision", "block")
    assert run.exit_code == 0, run.output
    row = _report(workdir)["gone@x.com"]
    assert (row["action"], row["status"]) == ("BLOCKED", "SUCCESS"), row
    assert "blocked 2 API key(s); 1 blocked before stay blocked" in row["error_reason"]
    assert "BLOCKED   1 succeeded" in run.output

    # both keys answer 401 when used, for management and for LLM routes alike
    for name in ("personal", "team"):
        assert _key_status(clean_proxy, keys[name]) == 401, name
        status, msg = _call(clean_proxy, keys[name], "GET", "/v1/models")
        assert status == 401 and "Key is blocked" in msg, (name, status, msg)
        assert _call(clean_proxy, keys[name], "POST", "/v1/chat/completions", CHAT)[0] == 401
    # the user stays, with its teams and spend; viewer, budget 0; what was changed is recorded
    user = _user(clean_proxy, "gone@x.com")
    assert user["user_role"] == "internal_user_viewer"
    assert user["max_budget"] == 0
    assert user["spend"] == pytest.approx(1.5)
    assert user["teams"] == ["team-a"]
    assert "gone@x.com" in _roster(clean_proxy, "team-a")
    record = user["metadata"][BLOCK_RECORD]
    assert user["metadata"]["cost_center"] == "42"  # the rest of its metadata is kept
    assert record["state"] == "blocked" and record["role"] == "internal_user" and record["max_budget"] is None
    assert len(record["tokens"]) == 2
    # the audit log and the backup were written
    audit = [
        line for line in read_audit_log(workdir / "usersync-backups" / "audit.jsonl") if line["kind"] == "block_user"
    ]
    assert len(audit) == 1 and audit[0]["status"] == "done" and audit[0]["after"]["keys_blocked"] == 2
    backups = sorted((workdir / "usersync-backups").glob("*.json"))
    assert backups, "a backup is written before the block"
    doc = json.loads(backups[-1].read_text())
    saved = {u["user_id"]: u for u in doc["users"]}
    assert saved["gone@x.com"]["role"] == "internal_user"
    assert sorted((k["alias"], k["blocked"]) for k in doc["user_keys"]) == [
        ("gone-admin-blocked", True),
        ("gone-personal", False),
        ("gone-team", False),
    ]  # the keys the block stops, by hash (never a key)
    assert all(not k["token"].startswith("sk-") for k in doc["user_keys"])

    # the rerun sends no write
    with FaultProxy(clean_proxy.base_url, FaultConfig(rate=0.0)) as fp:
        again = cli_run("sync", "--csv-file", without, "--deprovision", "block", env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert again.exit_code == 0, again.output
    assert _writes(fp) == [], _writes(fp)
    assert "Nothing to change." in again.output

    # back in the CSV (no role given): exactly those keys unblocked, the role and budget given back
    back = _write_csv(
        workdir, "gone@x.com,,team-a", "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a"
    )
    dry = cli_run("sync", "--csv-file", back, "--deprovision", "block", "--dry-run")
    assert "  Users to REACTIVATE:" in dry.output, dry.output
    assert (
        "↺ gone@x.com (Role: internal_user_viewer → internal_user, budget → none) — unblocks the 2 API key(s) its "
        "block stopped"
    ) in dry.output
    run = cli_run("sync", "--csv-file", back)  # the default --deprovision delete reactivates all the same
    assert run.exit_code == 0, run.output
    row = _report(workdir)["gone@x.com"]
    assert (row["action"], row["status"]) == ("REACTIVATED", "SUCCESS"), row
    assert "unblocked 2 API key(s)" in row["error_reason"]
    assert _key_status(clean_proxy, keys["personal"]) == 200
    assert _key_status(clean_proxy, keys["team"]) == 200
    assert _key_status(clean_proxy, keys["admin_blocked"]) == 401, "a key an admin blocked stays blocked"
    user = _user(clean_proxy, "gone@x.com")
    assert user["user_role"] == "internal_user"
    assert user["max_budget"] is None
    assert not (user["metadata"] or {}).get(BLOCK_RECORD)
    assert user["metadata"]["cost_center"] == "42"
    assert user["teams"] == ["team-a"]

    with FaultProxy(clean_proxy.base_url, FaultConfig(rate=0.0)) as fp:
        again = cli_run("sync", "--csv-file", back, env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert again.exit_code == 0 and _writes(fp) == [], (again.output, _writes(fp))


def test_what_a_blocked_user_can_still_do(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    """The limits of a block, for docs/safety.md: a viewer cannot make keys, a budget of 0 stops personal keys,
    a team key an admin mints after the block still works (the user budget does not apply to team keys)."""
    _arrange(clean_proxy)
    run = cli_run(
        "sync", "--csv-file", _write_csv(workdir, "stay@x.com,internal_user,team-a"), "--deprovision", "block"
    )
    assert run.exit_code == 0, run.output

    async def mint(c: ProxyClient) -> tuple[str, str]:
        return (
            await c.generate_key("gone@x.com", key_alias="minted-personal"),
            await c.generate_key("gone@x.com", key_alias="minted-team", team_id="team-a"),
        )

    personal, team = clean_proxy.run(mint)  # an admin mints new keys for the blocked user
    time.sleep(0.7)
    # the personal key authenticates, but cannot spend: the user's budget is 0
    assert _call(clean_proxy, personal, "GET", "/key/info")[0] == 200
    status, msg = _call(clean_proxy, personal, "POST", "/v1/chat/completions", CHAT)
    assert "ExceededBudget" in msg, (status, msg)
    # with it, the user cannot make a key of its own (viewer), personal or for its team
    for body in ({}, {"team_id": "team-a"}):
        status, msg = _call(clean_proxy, personal, "POST", "/key/generate", body)
        assert status == 401 and "internal_user_viewer" in msg, (status, msg)
    # a team key is not held to the user's budget: the call reaches the model (fake-gpt fails upstream: 500)
    status, msg = _call(clean_proxy, team, "POST", "/v1/chat/completions", CHAT)
    assert status != 401 and "ExceededBudget" not in msg, (status, msg)


def test_the_brake_refuses_a_mass_block_before_any_change(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    keys = _arrange(clean_proxy)
    before = live_users(clean_proxy)
    only = _write_csv(workdir, "stay@x.com,internal_user,team-a")
    r = cli_run("sync", "--csv-file", only, "--deprovision", "block", "--max-delete", "1")
    assert r.exit_code == 3, r.output
    assert "this run would block 2 users, more than the limit of 1" in r.stderr
    assert live_users(clean_proxy) == before
    assert _key_status(clean_proxy, keys["personal"]) == 200
    assert not (workdir / "usersync-backups").exists()


def _age_block(proxy: Proxy, user_id: str, at: str) -> None:
    """Pretend the block is older: rewrite the time in its record (as if the days had passed)."""

    async def go(c: ProxyClient) -> None:
        row = (await c.read_users_by_ids([user_id]))[user_id]
        metadata = dict(row["metadata"])
        metadata[BLOCK_RECORD] = {**metadata[BLOCK_RECORD], "at": at}
        await c.update_user(user_id, metadata=metadata)

    proxy.run(go)


def test_purge_deletes_users_blocked_longer_ago_than_the_grace_period(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    _arrange(clean_proxy)
    two = _write_csv(workdir, "stay@x.com,internal_user,team-a")
    r = cli_run("sync", "--csv-file", two, "--deprovision", "block")
    assert r.exit_code == 0, r.output
    assert live_users(clean_proxy)["other@x.com"]["user_role"] == "internal_user_viewer"
    _age_block(clean_proxy, "gone@x.com", "2020-01-01T00:00:00Z")  # long ago
    _age_block(clean_proxy, "other@x.com", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400)))

    dry = cli_run("sync", "--csv-file", two, "--deprovision", "block", "--purge-blocked-after", "30d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "- gone@x.com (Role: internal_user_viewer, Team: team-a) — destroys 3 API key(s)" in dry.output
    assert "other@x.com" not in dry.output.split("Users to DELETE:")[1]

    refused = cli_run(
        "sync", "--csv-file", two, "--deprovision", "block", "--purge-blocked-after", "30d", "--max-delete", "0"
    )
    assert refused.exit_code == 3, refused.output
    assert "gone@x.com" in live_users(clean_proxy)

    r = cli_run("sync", "--csv-file", two, "--deprovision", "block", "--purge-blocked-after", "30d")
    assert r.exit_code == 0, r.output
    assert _report(workdir)["gone@x.com"]["action"] == "DELETED"
    users = live_users(clean_proxy)
    assert "gone@x.com" not in users
    assert users["other@x.com"]["user_role"] == "internal_user_viewer", "blocked a day ago: kept"


def test_delete_block_blocks_the_listed_users_and_sync_reactivates_them(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, script_run: Any
) -> None:
    keys = _arrange(clean_proxy)
    (workdir / "user_dellist.csv").write_text("email\ngone@x.com\nnobody@x.com\n")
    dry = cli_run("delete", "--block", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Block Plan:" in dry.output and "DRY RUN - Users that would be blocked:" in dry.output
    assert "⊘ gone@x.com (Role: internal_user → internal_user_viewer; budget → 0; Team: team-a kept)" in dry.output
    assert "blocks 2 API key(s): gone-personal, gone-team (team team-a)" in dry.output

    run = script_run("del_user.py", "--csv-file", "user_dellist.csv", "--block")  # the seed's script, same flag
    assert run.returncode == 1, run.stdout + run.stderr  # nobody@x.com is not found
    assert "✓ Blocked user: gone@x.com (gone@x.com)" in run.stdout
    with open(workdir / "user_del_result.csv", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["email", "user_id", "status"], ["gone@x.com", "gone@x.com", "Blocked"]]
    assert _key_status(clean_proxy, keys["personal"]) == 401
    assert _key_status(clean_proxy, keys["team"]) == 401
    assert "gone@x.com" in _roster(clean_proxy, "team-a")

    # a second block of the same user is an error row, not a write
    again = cli_run("delete", "--block", "--dry-run")
    assert "gone@x.com (gone@x.com): already blocked (since " in again.output, again.output

    # list shows who is blocked
    listed = cli_run("list", "--columns", "user_email,user_role,status")
    assert listed.exit_code == 0, listed.output
    assert "gone@x.com\tinternal_user_viewer\tblocked" in listed.output
    assert "stay@x.com\tinternal_user\tactive" in listed.output

    # the JSON and Markdown plans carry the reactivation
    back = _write_csv(
        workdir,
        "gone@x.com,internal_user_viewer,team-a",
        "stay@x.com,internal_user,team-a",
        "other@x.com,internal_user,team-a",
    )
    plan = json.loads(cli_run("sync", "--csv-file", back, "--dry-run", "--output", "json").stdout)
    assert plan["summary"]["reactivate"] == 1 and plan["summary"]["block"] == 0
    (item,) = [i for i in plan["items"] if i["action"] == "REACTIVATED"]
    assert item["operations"] == ["reactivate:gone@x.com"]
    assert item["reactivate"] == {"keys_unblocked": 2, "max_budget": None, "budget_restored": True}
    md = cli_run("sync", "--csv-file", back, "--dry-run", "--output", "markdown").stdout
    assert "| ↺ reactivate | `gone@x.com` |" in md, md
    # the CSV's role wins over the one before the block
    run2 = cli_run("sync", "--csv-file", back, "--output", "json")
    assert run2.exit_code == 0, run2.output
    result = json.loads(run2.stdout)
    (row,) = [r for r in result["results"] if r["action"] == "REACTIVATED"]
    assert row["status"] == "SUCCESS" and row["note"] == "unblocked 2 API key(s)"
    user = _user(clean_proxy, "gone@x.com")
    assert user["user_role"] == "internal_user_viewer" and user["max_budget"] is None
    assert _key_status(clean_proxy, keys["personal"]) == 200
    assert _key_status(clean_proxy, keys["admin_blocked"]) == 401


def test_sync_block_in_json_and_markdown(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    _arrange(clean_proxy)
    only = _write_csv(workdir, "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a")
    env = {"USERSYNC_DEPROVISION": "block"}  # as a cron job's .env would set it
    plan = json.loads(cli_run("sync", "--csv-file", only, "--dry-run", "--output", "json", env=env).stdout)
    assert plan["summary"]["block"] == 1
    (item,) = [i for i in plan["items"] if i["action"] == "BLOCKED"]
    assert item["operations"] == ["block:gone@x.com"]
    assert item["block"] == {
        "keys_blocked": 2,
        "keys": ["gone-personal", "gone-team (team team-a)"],
        "keys_already_blocked": 1,
        "budget_zeroed": True,
        "resumes_interrupted_block": False,
    }
    md = cli_run("sync", "--csv-file", only, "--dry-run", "--output", "markdown", env=env).stdout
    assert "| ⊘ block | `gone@x.com` |" in md and "blocks 2 API key(s)" in md, md
    run = cli_run("sync", "--csv-file", only, "--output", "markdown", env=env)
    assert run.exit_code == 0, run.output
    assert "1 blocked" in run.stdout, run.stdout


def _fail_after_first(route: str) -> Any:
    """A fault-proxy script: the first ``POST route`` goes through, every later one is refused (400)."""
    seen: list[str] = []

    def script(method: str, target: str, n: int) -> Decision | None:
        if method == "POST" and target.split("?")[0] == route:
            seen.append(target)
            if len(seen) > 1:
                body = {"error": {"message": "scripted refusal", "type": "bad_request_error", "code": "400"}}
                return Decision("answer", answer=(400, body))
        return None

    return script


def _record(proxy: Proxy, user_id: str) -> dict[str, Any] | None:
    return (_user(proxy, user_id).get("metadata") or {}).get(BLOCK_RECORD)


def test_an_interrupted_block_or_reactivation_is_completed_by_the_next_run(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    keys = _arrange(clean_proxy)
    without = str(workdir / "without.csv")
    (workdir / "without.csv").write_text(
        "email,role,team_name\nstay@x.com,internal_user,team-a\nother@x.com,internal_user,team-a\n"
    )
    with_gone = _write_csv(
        workdir, "gone@x.com,,team-a", "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a"
    )
    args = ("sync", "--deprovision", "block")

    # the second /key/block fails: the row says how far it got, the record says the block is unfinished
    with FaultProxy(clean_proxy.base_url, FaultConfig(rate=0.0, script=_fail_after_first("/key/block"))) as fp:
        r = cli_run(*args, "--csv-file", without, env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert r.exit_code == 1, r.output
    row = _report(workdir)["gone@x.com"]
    assert row["status"] == "FAILED" and "blocked 1 of 2 API key(s)" in row["error_reason"], row
    record = _record(clean_proxy, "gone@x.com")
    assert record is not None and record["state"] == "blocking"
    assert sorted(_key_status(clean_proxy, keys[k]) for k in ("personal", "team")) == [200, 401]
    assert _user(clean_proxy, "gone@x.com")["user_role"] == "internal_user_viewer"

    # the next run completes it
    dry = cli_run(*args, "--csv-file", without, "--dry-run")
    assert "(completes an interrupted block)" in dry.output, dry.output
    r = cli_run(*args, "--csv-file", without)
    assert r.exit_code == 0, r.output
    assert _report(workdir)["gone@x.com"]["action"] == "BLOCKED"
    assert [_key_status(clean_proxy, keys[k]) for k in ("personal", "team")] == [401, 401]
    assert _record(clean_proxy, "gone@x.com")["state"] == "blocked"  # type: ignore[index]

    # a reactivation cut short, then the user leaves the CSV again: blocked again, no key left working
    with FaultProxy(clean_proxy.base_url, FaultConfig(rate=0.0, script=_fail_after_first("/key/unblock"))) as fp:
        r = cli_run("sync", "--csv-file", with_gone, env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert r.exit_code == 1, r.output
    assert "unblocked 1 of 2 API key(s)" in _report(workdir)["gone@x.com"]["error_reason"]
    assert _record(clean_proxy, "gone@x.com")["state"] == "unblocking"  # type: ignore[index]
    r = cli_run(*args, "--csv-file", without)
    assert r.exit_code == 0, r.output
    assert [_key_status(clean_proxy, keys[k]) for k in ("personal", "team")] == [401, 401]
    record = _record(clean_proxy, "gone@x.com")
    assert record is not None and record["state"] == "blocked" and record["role"] == "internal_user"

    # and back: the role from before the first block, every key it blocked working
    r = cli_run("sync", "--csv-file", with_gone)
    assert r.exit_code == 0, r.output
    assert [_key_status(clean_proxy, keys[k]) for k in ("personal", "team", "admin_blocked")] == [200, 200, 401]
    assert _user(clean_proxy, "gone@x.com")["user_role"] == "internal_user"


def test_a_saved_block_plan_is_applied_as_made(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    keys = _arrange(clean_proxy)
    only = _write_csv(workdir, "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a")
    dry = cli_run("sync", "--csv-file", only, "--deprovision", "block", "--dry-run", "--plan-out", "plan.json")
    assert dry.exit_code == 0, dry.output
    r = cli_run("sync", "--apply-plan", "plan.json")
    assert r.exit_code == 0, r.output
    assert _report(workdir)["gone@x.com"]["action"] == "BLOCKED"
    assert _key_status(clean_proxy, keys["team"]) == 401
    # applied again, the plan is stale: the user it blocks changed since (its role)
    r = cli_run("sync", "--apply-plan", "plan.json")
    assert r.exit_code == 3 and "stale plan" in r.stderr, r.output


def test_a_scoped_block_leaves_the_users_outside_the_scope_alone_and_a_role_scope_purges_its_blocked(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    """Issue 13 x issue 17: ``--scope domain:x.com`` blocks only that domain's leaver; an SSO-like user at
    another domain, also missing from the CSV, keeps its role and a working key; a ``role:internal_user``
    scope still owns (and purges) the user it blocked, though that user holds internal_user_viewer now."""
    keys = _arrange(clean_proxy)

    async def sso(c: ProxyClient) -> str:
        await c.create_user(
            {"user_id": "sso@y.com", "user_email": "sso@y.com", "user_role": "internal_user", "auto_create_key": False}
        )
        return await c.generate_key("sso@y.com", key_alias="sso-personal")

    sso_key = clean_proxy.run(sso)
    rows = _write_csv(workdir, "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a")
    scoped = ("--deprovision", "block", "--scope", "domain:x.com")

    dry = cli_run("sync", "--csv-file", rows, *scoped, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Users to block: 1" in dry.output and "user outside the scope (domain:x.com), left alone" in dry.output
    r = cli_run("sync", "--csv-file", rows, *scoped)
    assert r.exit_code == 0, r.output + r.stderr
    assert _report(workdir)["gone@x.com"]["action"] == "BLOCKED"
    assert _key_status(clean_proxy, keys["personal"]) == 401 and _key_status(clean_proxy, keys["team"]) == 401
    sso_row = _user(clean_proxy, "sso@y.com")
    assert sso_row["user_role"] == "internal_user" and BLOCK_RECORD not in (sso_row.get("metadata") or {})
    assert _key_status(clean_proxy, sso_key) == 200
    again = cli_run("sync", "--csv-file", rows, *scoped, "--dry-run")
    assert again.exit_code == 0 and "Users to block: 0" in again.output, again.output

    _age_block(clean_proxy, "gone@x.com", "2020-01-01T00:00:00Z")
    by_role = ("--deprovision", "block", "--scope", "domain:x.com", "--scope", "role:internal_user")
    r = cli_run("sync", "--csv-file", rows, *by_role, "--purge-blocked-after", "30d")
    assert r.exit_code == 0, r.output + r.stderr
    assert _report(workdir)["gone@x.com"]["action"] == "DELETED"
    users = live_users(clean_proxy)
    assert "gone@x.com" not in users and users["sso@y.com"]["user_role"] == "internal_user"
    assert _key_status(clean_proxy, sso_key) == 200


def test_a_reactivation_takes_the_role_and_budget_the_csv_manages_and_the_rerun_sends_nothing(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    """Issue 13 x 12 on the real proxy: a blocked user back in a CSV with a max_budget column gets the CSV's
    budget and role (not the record's), its other managed fields too, and a rerun sends no write."""
    _arrange(clean_proxy)
    clean_proxy.run(lambda c: c.update_user("gone@x.com", max_budget=25.0))
    without = _write_csv(workdir, "stay@x.com,internal_user,team-a", "other@x.com,internal_user,team-a")
    run = cli_run("sync", "--csv-file", without, "--deprovision", "block")
    assert run.exit_code == 0, run.output
    assert (_record(clean_proxy, "gone@x.com") or {}).get("max_budget") == 25.0

    back = workdir / "users.csv"
    back.write_text(
        "email,role,team_name,max_budget,tpm_limit\n"
        "gone@x.com,proxy_admin_viewer,team-a,10,5\n"
        "stay@x.com,internal_user,team-a,,\n"
        "other@x.com,internal_user,team-a,,\n"
    )
    dry = cli_run("sync", "--csv-file", str(back), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "↺ gone@x.com (Role: internal_user_viewer → proxy_admin_viewer, budget → 10.0, TPM: - → 5) — unblocks the "
        "2 API key(s) its block stopped"
    ) in dry.output, dry.output
    run = cli_run("sync", "--csv-file", str(back))
    assert run.exit_code == 0, run.output
    assert _report(workdir)["gone@x.com"]["status"] == "SUCCESS"
    user = _user(clean_proxy, "gone@x.com")
    assert (user["user_role"], user["max_budget"], user["tpm_limit"]) == ("proxy_admin_viewer", 10.0, 5)
    assert not (user["metadata"] or {}).get(BLOCK_RECORD)

    with FaultProxy(clean_proxy.base_url, FaultConfig(rate=0.0)) as fp:
        again = cli_run("sync", "--csv-file", str(back), env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert again.exit_code == 0 and _writes(fp) == [], (again.output, _writes(fp))
