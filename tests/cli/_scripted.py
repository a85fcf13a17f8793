"""A scripted LiteLLM Proxy for CLI tests (httpx.MockTransport): reads only, recorded calls."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

KEY = "sk-master-secret-0123456789"
#: the POST routes whose existence the client asks with a GET (a 1.110.2 proxy has them all: 405)
BATCH_ROUTE = re.compile(
    r"/management/v1/users/bulk(_delete)?|/management/v1/teams/[^/]+/members/bulk_delete|/user/bulk_update"
    r"|/team/bulk_member_add"
)


def route_probe(request: httpx.Request) -> httpx.Response | None:
    """How LiteLLM 1.110.2 answers a GET on one of its batch routes: 405 Method Not Allowed (the route exists)."""
    if request.method == "GET" and BATCH_ROUTE.fullmatch(request.url.path):
        return httpx.Response(405, json={"detail": "Method Not Allowed"})
    return None


def consistent_rosters(users: list[dict[str, Any]], teams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The teams with each user listed on the rosters of the teams its ``teams`` names, as the proxy keeps them."""
    out = []
    for t in teams:
        members = list(t.get("members_with_roles") or [])
        listed = {m.get("user_id") for m in members}
        for u in users:
            if t["team_id"] in (u.get("teams") or ()) and u["user_id"] not in listed:
                members.append({"user_id": u["user_id"], "user_email": u.get("user_email"), "role": "user"})
        out.append({**t, "members_with_roles": members})
    return out


def fake_proxy(
    users: list[dict[str, Any]],
    teams: list[dict[str, Any]],
    calls: list[str],
    keys: list[dict[str, Any]] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    teams = consistent_rosters(users, teams)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": {"message": "Authentication Error", "type": "auth_error"}})
        if (probed := route_probe(request)) is not None:
            return probed
        path = request.url.path
        if path == "/health/readiness/details":
            return httpx.Response(200, json={"status": "healthy", "litellm_version": "1.110.2"})
        if path == "/key/info":
            return httpx.Response(404, json={"error": {"message": "Key not found in database"}})
        if path == "/user/list":
            return httpx.Response(200, json={"users": users, "total": len(users), "page": 1, "total_pages": 1})
        if path == "/v2/team/list":
            return httpx.Response(200, json={"teams": teams, "total": len(teams), "page": 1, "total_pages": 1})
        if path == "/key/list":  # team-bound keys (token = the key's hash), filtered by team_id
            if keys and keys[0].get("refuse"):  # a proxy that will not list keys
                return httpx.Response(400, json={"error": {"message": "key listing refused"}})
            team = request.url.params.get("team_id")
            rows = [k for k in keys or [] if k.get("team_id") == team]
            return httpx.Response(
                200, json={"keys": rows, "total_count": len(rows), "current_page": 1, "total_pages": 1}
            )
        return httpx.Response(500, json={"detail": f"unexpected {path}"})

    return handler


def user(email: str, role: str = "internal_user", teams: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "user_id": email,
        "user_email": email,
        "user_role": role,
        "teams": list(teams),
        "key_count": 2,
        "spend": 1.5,
    }


TEAMS = [
    {"team_id": "t-dev", "team_alias": "development", "members_with_roles": []},
    {"team_id": "t-sup", "team_alias": "support", "members_with_roles": []},
]
