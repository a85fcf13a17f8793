"""The seed's fallback (recreate a user whose team update did not take) on the real proxy (issue 9 §1).

A real proxy does not fail a team move on demand, so the loopback fault proxy (tests/faultproxy.py) sits in
front of it with the "claims success without acting" fault: every ``/team/member_delete`` and bulk members
delete is answered 200 without being forwarded, as a stale read replica or a buggy gateway would. The
verification (re-read + the same planner) then finds the users still in their old team.
"""

from __future__ import annotations

import csv
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from litellm_usersync.apply.executor import LEAVE_ROUNDS
from litellm_usersync.proxy.client import BULK_MIN_VERSION, ProxyClient, parse_version

from ..faultproxy import Decision, FaultConfig, FaultProxy
from .conftest import Proxy, live_users, teams_of

#: every field of a user that /user/new can set, as the tests give it
FIELDS: dict[str, Any] = {
    "user_alias": "Mover One",
    "max_budget": 12.5,
    "budget_duration": "30d",
    "models": ["gpt-4o"],
    "tpm_limit": 1000,
    "rpm_limit": 10,
    "max_parallel_requests": 3,
    "metadata": {"department": "R&D", "cost_center": 42},
}
MOVERS = ("mover1@x.com", "mover2@x.com")


@pytest.fixture
def swallowing_proxy(proxy: Proxy) -> Iterator[Callable[..., FaultProxy]]:
    started: list[FaultProxy] = []

    def start(**kw: Any) -> FaultProxy:
        fp = FaultProxy(proxy.base_url, FaultConfig(rate=0.0, claims_success_on_leaves=True, **kw)).start()
        started.append(fp)
        return fp

    yield start
    for fp in started:
        fp.stop()


def _needs_110(proxy: Proxy, why: str) -> None:
    """Skip on proxies older than 1.100 (LITELLM_PROXY_VERSION=1.74.x), where ``why`` does not hold."""

    async def version(c: ProxyClient) -> str | None:
        return await c.proxy_version()

    v = parse_version(proxy.run(version))
    if v is None or v < BULK_MIN_VERSION:
        pytest.skip(f"LiteLLM {v}: {why}")


def _arrange(proxy: Proxy, *, keys: bool = False) -> dict[str, dict[str, Any]]:
    """Teams team-a and team-b; two users in team-a with every field set (and an API key each if ``keys``)."""

    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        for alias in ("team-a", "team-b"):
            await c.create_team(alias, team_id=alias)
        for n, email in enumerate(MOVERS):
            await c.create_user(
                {
                    "user_id": email,
                    "user_email": email,
                    "user_role": "internal_user",
                    "teams": ["team-a"],
                    "auto_create_key": keys,
                    **FIELDS,
                    "sso_user_id": f"sso-{n}",
                }
            )
        return await c.read_all_users()

    return {u["user_id"]: u for u in proxy.run(go)}


def _csv(workdir: pathlib.Path) -> str:
    path = workdir / "move.csv"
    path.write_text("email,role,team_name\n" + "".join(f"{e},internal_user,team-b\n" for e in MOVERS))
    return str(path)


def _report(workdir: pathlib.Path) -> dict[str, dict[str, str]]:
    with open(workdir / "user_sync_result.csv", encoding="utf-8") as fh:
        return {r["email"]: r for r in csv.DictReader(fh)}


def test_swallowed_leaves_with_max_delete_0_recreate_nobody(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, swallowing_proxy: Any
) -> None:
    before = _arrange(clean_proxy)
    fp = swallowing_proxy()
    result = cli_run("sync", "--csv-file", _csv(workdir), "--max-delete", "0", env={"LITELLM_BASE_URL": fp.url})
    fp.wait_idle()
    assert fp.counts["claim_success"] >= 1, fp.counts
    assert result.exit_code == 1, result.output
    rows = _report(workdir)
    after = live_users(clean_proxy)
    for email in MOVERS:
        assert rows[email]["status"] == "FAILED"
        assert rows[email]["error_reason"] == (
            "not converged: still in team(s) team-a, recreation refused by --max-delete: "
            "2 recreation(s) and 0 deletion(s) would exceed the limit of 0"
        )
        assert after[email]["created_at"] == before[email]["created_at"], "recreated despite --max-delete 0"
        assert teams_of(clean_proxy, after[email]) == {"team-a", "team-b"}
    assert "Recreated by the fallback" not in result.output


def test_swallowed_leaves_recreate_the_users_with_every_field(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, swallowing_proxy: Any
) -> None:
    # every leave is swallowed, the recreation's own leave-first too: on a proxy whose delete leaves rosters
    # behind the recreated user stays on team-a's roster (test_a_leave_swallowed_once_... covers old proxies)
    _needs_110(clean_proxy, "/user/delete leaves rosters behind and this fault swallows the leave-first too")
    before = _arrange(clean_proxy)
    fp = swallowing_proxy()
    result = cli_run("sync", "--csv-file", _csv(workdir), env={"LITELLM_BASE_URL": fp.url})
    fp.wait_idle()
    assert result.exit_code == 0, result.output
    assert "Recreated by the fallback: 2" in result.output
    rows = _report(workdir)
    after = live_users(clean_proxy)
    for n, email in enumerate(MOVERS):
        assert rows[email]["status"] == "SUCCESS", rows[email]
        assert rows[email]["error_reason"].startswith("recreated by the fallback; not carried over: its created_at")
        assert rows[email]["api_keys"].startswith("sk-"), "a recreated user gets a new key, in the report"
        user = after[email]
        assert user["created_at"] != before[email]["created_at"], "it was recreated"
        assert user["user_role"] == "internal_user"
        assert teams_of(clean_proxy, user) == {"team-b"}
        for name, value in FIELDS.items():
            assert user[name] == value, f"{email}: {name} {user[name]!r} != {value!r}"
        assert user["sso_user_id"] == f"sso-{n}"
    # the backup written before the run holds the fields a restore would need
    (backup,) = [p for p in (workdir / "usersync-backups").glob("*.json")]
    saved = {u["user_id"]: u for u in json.loads(backup.read_text())["users"]}
    assert saved[MOVERS[0]]["max_budget"] == 12.5 and saved[MOVERS[0]]["metadata"] == FIELDS["metadata"]


def test_a_user_holding_keys_is_not_recreated(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, swallowing_proxy: Any
) -> None:
    before = _arrange(clean_proxy, keys=True)
    fp = swallowing_proxy()
    result = cli_run("sync", "--csv-file", _csv(workdir), env={"LITELLM_BASE_URL": fp.url})
    fp.wait_idle()
    assert result.exit_code == 1, result.output
    rows = _report(workdir)
    after = live_users(clean_proxy)
    for email in MOVERS:
        assert rows[email]["status"] == "FAILED"
        assert rows[email]["error_reason"] == (
            "not converged: still in team(s) team-a; "
            "not recreated: the user holds 1 API key(s) (--recreate-with-keys allows it)"
        )
        assert after[email]["created_at"] == before[email]["created_at"]
        assert after[email]["key_count"] == 1, "its key is kept"


def test_no_recreate_reports_what_is_still_wrong(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, swallowing_proxy: Any
) -> None:
    _arrange(clean_proxy)
    fp = swallowing_proxy()
    result = cli_run(
        "sync", "--csv-file", _csv(workdir), "--no-recreate", "--no-bulk", env={"LITELLM_BASE_URL": fp.url}
    )
    assert result.exit_code == 1, result.output
    rows = _report(workdir)
    assert {r["error_reason"] for r in rows.values()} == {"not converged: still in team(s) team-a"}
    assert all(teams_of(clean_proxy, u) == {"team-a", "team-b"} for u in live_users(clean_proxy).values())


def test_a_roster_member_whose_teams_list_lacks_the_team_is_converged(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, proxy: Proxy
) -> None:
    """The drift the API contract describes (§1.5): the roster lists the user, its own ``teams`` does not.

    A read replica that lags behind on ``LiteLLM_UserTable.teams`` is played by the fault proxy, which drops
    team-b from every ``teams`` list that ``/user/list`` answers; the rosters (``/v2/team/list``) are real."""
    before = _arrange(clean_proxy)

    def lagging_teams(method: str, target: str, body: bytes) -> bytes:
        if method != "GET" or not target.startswith("/user/list"):
            return body
        data = json.loads(body)
        for u in data.get("users") or []:
            u["teams"] = [t for t in u.get("teams") or [] if t != "team-b"]
        return json.dumps(data).encode()

    fp = FaultProxy(proxy.base_url, FaultConfig(rate=0.0, rewrite_answer=lagging_teams)).start()
    try:
        result = cli_run("sync", "--csv-file", _csv(workdir), env={"LITELLM_BASE_URL": fp.url})
    finally:
        fp.stop()
    assert result.exit_code == 0, result.output
    rows = _report(workdir)
    after = live_users(clean_proxy)
    for email in MOVERS:
        assert rows[email]["status"] == "SUCCESS" and not rows[email]["error_reason"], rows[email]
        assert after[email]["created_at"] == before[email]["created_at"], "never recreated"
        assert teams_of(clean_proxy, after[email]) == {"team-b"}


def test_a_leave_swallowed_once_is_recreated_and_converges_on_any_proxy(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any, proxy: Proxy
) -> None:
    """Only the moves' leaves are swallowed; the recreation's own leaves go through.

    On a proxy whose ``/user/delete`` leaves team rosters behind (LiteLLM 1.74.0) the recreation must leave the
    user's teams before deleting it, as the deletions do: else the roster keeps the deleted id, the recreated
    user is found still in team-a, and the row fails. Run it against 1.110.2 and 1.74.0 (LITELLM_PROXY_VERSION).
    """
    before = _arrange(clean_proxy)

    swallowed = 0

    def first_leave_claims_success(method: str, target: str, n: int) -> Decision | None:
        nonlocal swallowed
        # every round of the two moves' leaves of team-a (the executor sends a leave the roster still shows
        # again, LEAVE_ROUNDS times in all); the recreation's own leave-first (1.74.0) then goes through
        if method == "POST" and _leave(target) and swallowed < len(MOVERS) * LEAVE_ROUNDS:
            swallowed += 1
            return Decision("claim_success")
        return None

    fp = FaultProxy(proxy.base_url, FaultConfig(rate=0.0, script=first_leave_claims_success)).start()
    try:
        result = cli_run("sync", "--csv-file", _csv(workdir), "--no-bulk", env={"LITELLM_BASE_URL": fp.url})
    finally:
        fp.stop()
    assert fp.counts["claim_success"] >= 2, fp.counts
    assert result.exit_code == 0, result.output
    rows = _report(workdir)
    after = live_users(clean_proxy)
    for email in MOVERS:
        assert rows[email]["status"] == "SUCCESS", rows[email]
        assert after[email]["created_at"] != before[email]["created_at"], "it was recreated"
        assert teams_of(clean_proxy, after[email]) == {"team-b"}

    async def rosters(c: ProxyClient) -> dict[str, set[str]]:
        return {
            t["team_id"]: {m.get("user_id") for m in t.get("members_with_roles") or []}
            for t in await c.read_all_teams()
        }

    assert all(not set(MOVERS) & members for tid, members in clean_proxy.run(rosters).items() if tid == "team-a")


def _leave(target: str) -> bool:
    path = target.split("?", 1)[0]
    return path == "/team/member_delete" or path.endswith("/members/bulk_delete")
