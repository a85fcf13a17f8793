"""Issue 15 on the real proxies admins run: 1.74.0, 1.74.15.post2 and 1.110.2 (CI runs this file on each).

What differs between them is detected, not guessed (``ProxyClient.detect_features``); the tests below prove
the detection on each real proxy and the bugs review found on the old ones:

* 1.74.15.post2's ``/team/member_add`` with a list appends a team id to ``user.teams`` again for a user
  already on the roster, and ``/team/member_delete`` removes one copy: moving such a user to another team
  must not "fail verification" and recreate it (its personal API key would stop working);
* 1.74.0's ``/user/delete`` leaves rosters behind: a recreate must leave the teams first, or its joins answer
  "already in team" and the user ends up with SUCCESS and no teams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import Result

from litellm_usersync import PlanOptions, apply_plan, build_plan, parse_users_csv, read_snapshot
from litellm_usersync.apply.executor import LEAVE_ROUNDS
from litellm_usersync.errors import RejectedError
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, write


class SwallowLeaves(httpx.AsyncHTTPTransport):
    """Answers 200 to the first ``limit`` team-member removals without sending them: the move's leave, each of
    the LEAVE_ROUNDS times it is sent while the roster still lists the user. The fallback's own leaves pass."""

    def __init__(self, limit: int = LEAVE_ROUNDS) -> None:
        super().__init__()
        self.swallowed = 0
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if (
            request.method == "POST"
            and (path == "/team/member_delete" or path.endswith("/members/bulk_delete"))
            and self.swallowed < self.limit
        ):
            self.swallowed += 1
            body: Any = {"data": []} if path.endswith("bulk_delete") else {"team_id": "x", "members_with_roles": []}
            return httpx.Response(200, json=body, request=request)
        return await super().handle_async_request(request)


def _key_works(proxy: Proxy, key: str) -> int:
    """The status a request authenticated with ``key`` gets (200: the key works, 401: it does not)."""
    r = httpx.get(f"{proxy.base_url}/key/info", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return r.status_code


def _user_row(proxy: Proxy, user_id: str) -> dict[str, Any]:
    async def go(c: ProxyClient) -> dict[str, dict[str, Any]]:
        return await c.read_users_by_ids([user_id])

    return proxy.run(go)[user_id]


def _roster(proxy: Proxy, team_id: str) -> set[str]:
    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_teams()

    (team,) = [t for t in proxy.run(go) if t["team_id"] == team_id]
    return {str(m.get("user_id")) for m in team.get("members_with_roles") or []}


# --------------------------------------------------------------------------------------------------
# feature detection, on each real proxy


def test_features_are_detected_from_the_routes_and_the_version(clean_proxy: Proxy, litellm_version: str) -> None:
    async def go(c: ProxyClient) -> Any:
        return await c.detect_features()

    f = clean_proxy.run(go)
    assert f.version == litellm_version
    expected = {
        # measured on each real proxy (../shared/LITELLM_API_CONTRACT.md §5)
        "1.110.2": (dict(create=True, delete=True, leave=True, update=True, join=True), True, "case-insensitive", 409),
        "1.74.15.post2": (
            dict(create=False, delete=False, leave=False, update=True, join=True),
            True,
            "case-insensitive",
            400,
        ),
        "1.74.0": (
            dict(create=False, delete=False, leave=False, update=False, join=False),
            False,
            "case-sensitive",
            400,
        ),
    }
    if litellm_version not in expected:
        pytest.skip(f"no measured expectation for LiteLLM {litellm_version}")
    routes, cascades, dup_check, dup_status = expected[litellm_version]
    assert dict(f.batch_routes) == routes
    assert f.delete_cascades is cascades
    assert (f.duplicate_email_check, f.duplicate_email_status) == (dup_check, dup_status)
    # --no-bulk: detected and reported all the same, but not used
    f_never = clean_proxy.run(go, bulk="never")
    assert dict(f_never.batch_routes) == routes and not any(f_never.uses_batch(k) for k in routes)


def test_duplicate_email_check_is_what_was_detected(clean_proxy: Proxy, litellm_version: str) -> None:
    """The detected duplicate-email check is the proxy's real one: 1.74.0 lets a different-case email through."""

    async def go(c: ProxyClient) -> tuple[Any, int]:
        f = await c.detect_features()
        await c.create_user({"user_id": "dup-1", "user_email": "Dup@x.com", "auto_create_key": False})
        try:
            await c.create_user({"user_id": "dup-2", "user_email": "dup@X.com", "auto_create_key": False})
        except Exception as exc:
            return f, int(getattr(exc, "status", 0) or 0)
        return f, 200

    f, status = clean_proxy.run(go)
    if f.duplicate_email_check == "case-sensitive":
        assert status == 200, "a case-sensitive check lets a different-case duplicate through"
    else:
        assert status == f.duplicate_email_status


def test_debug_and_json_output_say_what_was_detected(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    workdir: pathlib.Path,
    litellm_version: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_teams("dev")
    write(workdir / "u.csv", "email,role,team_name\na@x.com,internal_user,dev\n")
    dry = cli_run("sync", "--csv-file", "u.csv", "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.output
    proxy_info = json.loads(dry.stdout)["proxy"]
    assert proxy_info["litellm_version"] == litellm_version
    assert set(proxy_info["batch_routes"]) == {"create", "delete", "leave", "update", "join"}
    assert isinstance(proxy_info["delete_cascades"], bool) and proxy_info["delete_cascade_basis"]
    done = cli_run("sync", "--csv-file", "u.csv", "--output", "json", "--no-backup")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["proxy"] == proxy_info
    with caplog.at_level("DEBUG"):
        debug = cli_run("sync", "--csv-file", "u.csv", "--dry-run", "--debug")
    assert debug.exit_code == 0
    logged = debug.output + caplog.text
    assert f"proxy features: LiteLLM {litellm_version}; batch routes:" in logged
    assert "/user/delete cascades:" in logged and "duplicate-email check:" in logged


# --------------------------------------------------------------------------------------------------
# the duplicate in user.teams (1.74.15.post2) and the recreate without cascade (1.74.0)


def _user_with_a_duplicate_team_entry(proxy: Proxy, old: str) -> str:
    """mover@x.com with a personal key, on ``old``'s roster once and, on 1.74.15.post2, twice in user.teams
    (LiteLLM's own ``/team/member_add`` with a list does that). Returns the key."""

    async def go(c: ProxyClient) -> str:
        created = await c.create_user(
            {"user_id": "mover@x.com", "user_email": "mover@x.com", "user_role": "internal_user"}
        )
        assert created.api_key
        await c.request(
            "POST", "/team/member_add", body={"team_id": old, "member": [{"user_id": "mover@x.com", "role": "user"}]}
        )
        # a list with one already-member: 1.74.15.post2 skips it on the roster but appends the id to its
        # user.teams again; 1.74.0 refuses the whole list (400), 1.110.2 skips it cleanly
        with contextlib.suppress(RejectedError):
            await c.request(
                "POST",
                "/team/member_add",
                body={
                    "team_id": old,
                    "member": [{"user_id": "mover@x.com", "role": "user"}, {"user_id": "other", "role": "user"}],
                },
            )
        return created.api_key

    return proxy.run(go)


def test_move_of_a_user_listed_twice_in_its_old_team_keeps_the_user(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
    litellm_version: str,
) -> None:
    t = make_teams("team-a", "team-b")
    key = _user_with_a_duplicate_team_entry(clean_proxy, t["team-a"])
    before = _user_row(clean_proxy, "mover@x.com")["teams"]
    if litellm_version == "1.74.15.post2":
        assert before == [t["team-a"], t["team-a"]], "the arrangement reproduces LiteLLM's duplicate"
    assert _key_works(clean_proxy, key) == 200

    write(workdir / "u.csv", "email,role,team_name\nmover@x.com,internal_user,team-b\n")
    result = cli_run("sync", "--csv-file", "u.csv", "--no-backup")
    assert result.exit_code == 0, result.output
    assert "Recreated by the fallback" not in result.output
    assert _key_works(clean_proxy, key) == 200, "the user was not recreated: its personal key still works"
    assert "mover@x.com" not in _roster(clean_proxy, t["team-a"])
    assert "mover@x.com" in _roster(clean_proxy, t["team-b"])
    # a rerun sees nothing to do: the roster is the truth, a stale copy in user.teams is not a membership
    again = cli_run("sync", "--csv-file", "u.csv", "--dry-run")
    assert again.exit_code == 0 and "Users to update: 0" in again.output, again.output


def test_recreate_on_a_proxy_whose_delete_leaves_rosters_ends_in_the_right_teams(
    make_teams: Callable[..., dict[str, str]], clean_proxy: Proxy
) -> None:
    """A move that silently does not land is recreated; on 1.74.0 (no cascade) the recreated user must really
    be on its new team, not SUCCESS with no teams because the stale roster entry answered "already in team"."""
    t = make_teams("old", "new")

    async def arrange(c: ProxyClient) -> None:
        await c.create_user(
            {
                "user_id": "mover@x.com",
                "user_email": "mover@x.com",
                "user_role": "internal_user",
                "auto_create_key": False,
            }
        )
        await c.add_team_members(t["old"], [("mover@x.com", "mover@x.com")])

    clean_proxy.run(arrange)
    desired = parse_users_csv("email,role,team_name\nmover@x.com,internal_user,new\n")

    async def go() -> Any:
        async with ProxyClient(clean_proxy.settings(bulk="never"), transport=SwallowLeaves()) as c:
            snap = await read_snapshot(c)
            plan = build_plan(desired, snap, PlanOptions())
            return await apply_plan(c, plan)

    report = asyncio.run(go())
    (row,) = report.results
    assert row.recreated
    user = _user_row(clean_proxy, "mover@x.com")
    assert set(user["teams"]) == {t["new"]}, "the recreated user is in its new team (user.teams)"
    assert "mover@x.com" in _roster(clean_proxy, t["new"])
    assert "mover@x.com" not in _roster(clean_proxy, t["old"]), "no stale roster entry of the deleted user"
    assert row.success, row.error
