"""The seed's fallback (recreate a user whose team update did not take) on the real proxy.

A real proxy does not fail a team move on demand, so a transport in front of it *pretends* that
``/team/member_delete`` (and the bulk variant) succeeded without forwarding it: the verification read then
finds the user still in the old team, exactly as when an update silently does not land.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from litellm_usersync import PlanOptions, apply_plan, build_plan, parse_users_csv, read_snapshot
from litellm_usersync.client import ProxyClient

from .conftest import Proxy, live_users, teams_of


class SwallowLeaves(httpx.AsyncHTTPTransport):
    """Answers 200 to every team-member removal without sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.swallowed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and (path == "/team/member_delete" or path.endswith("/members/bulk_delete")):
            self.swallowed += 1
            body: Any = {"data": []} if path.endswith("bulk_delete") else {"team_id": "x", "members_with_roles": []}
            return httpx.Response(200, json=body, request=request)
        return await super().handle_async_request(request)


def _run(proxy: Proxy, csv_text: str, options: PlanOptions, transport: httpx.AsyncBaseTransport, **kw: Any) -> Any:
    desired = parse_users_csv(csv_text)

    async def go() -> Any:
        async with ProxyClient(proxy.settings(**kw), transport=transport) as c:
            snap = await read_snapshot(c)
            plan = build_plan(desired, snap, options)
            return plan, await apply_plan(c, plan)

    import asyncio

    return asyncio.run(go())


def test_failed_team_move_is_recreated_with_the_right_state(
    make_teams: Callable[..., dict[str, str]], seed_users: Callable[..., None], clean_proxy: Proxy
) -> None:
    t = make_teams("old", "new")
    seed_users([("mover@x.com", "internal_user", [t["old"]])])
    transport = SwallowLeaves()
    plan, report = _run(clean_proxy, "email,role,team_name\nmover@x.com,internal_user,new\n", PlanOptions(), transport)
    assert plan.items[0].may_recreate
    assert transport.swallowed >= 1
    (result,) = report.results
    assert result.success and result.recreated
    assert result.api_key and result.api_key.startswith("sk-"), "a recreated user gets a new key, in the report"
    assert "previous API keys were deleted" in (result.note or "")
    user = live_users(clean_proxy)["mover@x.com"]
    assert user["user_id"] == "mover@x.com" and user["user_role"] == "internal_user"
    assert teams_of(clean_proxy, user) == {"new"}


def test_no_recreate_reports_what_is_still_wrong(
    make_teams: Callable[..., dict[str, str]], seed_users: Callable[..., None], clean_proxy: Proxy
) -> None:
    t = make_teams("old", "new")
    seed_users([("mover@x.com", "internal_user", [t["old"]])])
    plan, report = _run(
        clean_proxy,
        "email,role,team_name\nmover@x.com,internal_user,new\n",
        PlanOptions(allow_recreate=False),
        SwallowLeaves(),
        bulk="never",
    )
    assert not plan.items[0].may_recreate
    (result,) = report.results
    assert not result.success and not result.recreated
    assert result.error == "verification failed: still in team(s) old"
    user = live_users(clean_proxy)["mover@x.com"]
    assert teams_of(clean_proxy, user) == {"old", "new"}, "nothing was recreated"
