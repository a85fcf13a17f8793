"""A small dict-backed fake of the LiteLLM Proxy endpoints the executor uses, served through httpx.MockTransport.

It follows ../shared/LITELLM_API_CONTRACT.md where it matters to the executor: error shapes and statuses,
"already in team" / "not found in team", ``/user/delete`` failing on an unknown id, a single ``user_ids``
being a substring match, bulk routes only from 1.100 (404 "Not Found" before). It counts requests in flight,
checks that roster writes to one team never overlap, and can inject faults per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from litellm_usersync.identity import PROXY_ROLES
from litellm_usersync.models import RECREATE_FIELDS
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings, RetryPolicy

MASTER = "sk-fake-master-key-000000"

Fault = Callable[[httpx.Request, dict[str, Any]], httpx.Response | None]


def key_for(user_id: str) -> str:
    """Deterministic per user, so two runs on two fakes can be compared."""
    return f"sk-{re.sub(r'[^A-Za-z0-9]', '', user_id)}-0123456789"


def _not_found() -> httpx.Response:
    return httpx.Response(404, json={"detail": "Not Found"})


@dataclass
class FakeProxy:
    version: str | None = "1.110.2"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: called before every request; a response it returns is sent instead (fault injection)
    faults: list[Fault] = field(default_factory=list)
    #: (user_id, team_id) pairs that member_delete reports removed but keeps (a proxy bug)
    sticky: set[tuple[str, str]] = field(default_factory=set)
    #: how many yields each request takes, so concurrent requests really overlap
    yields: int = 3
    log: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    roster_writes_in_flight: dict[str, int] = field(default_factory=dict)
    roster_overlaps: list[str] = field(default_factory=list)
    #: users concerned by roster writes in flight (the proxy rewrites ``user.teams`` without a per-user lock)
    user_writes_in_flight: dict[str, int] = field(default_factory=dict)
    user_overlaps: list[str] = field(default_factory=list)
    on_request: Callable[[httpx.Request], None] | None = None
    #: virtual keys: sha256(key) -> {"user_id", "team_id", "key"}
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: an Enterprise licence: team admins may be added (else 400, as without one)
    licensed: bool = False

    # ---------------------------------------------------------------------------------------------
    # arrange

    @property
    def bulk(self) -> bool:
        """The /management/v1 bulk routes (LiteLLM >= 1.100; 1.74.x answers 404)."""
        return self._at_least(1, 100)

    @property
    def bulk_update(self) -> bool:
        """``/user/bulk_update`` (and ``/team/bulk_member_add``): already on 1.74.15.post2, not on 1.74.0."""
        return self._at_least(1, 74, 15)

    def _at_least(self, *version: int) -> bool:
        if not self.version:
            return False
        have = tuple(int(re.match(r"\d*", x).group() or 0) for x in self.version.split(".")[:3])  # type: ignore[union-attr]
        return have >= version

    def _post_route_exists(self, path: str) -> bool:
        if path in (
            "/user/new",
            "/user/update",
            "/user/delete",
            "/team/member_add",
            "/team/member_delete",
            "/team/new",
        ):
            return True
        if path in ("/user/bulk_update", "/team/bulk_member_add"):
            return self.bulk_update
        if path in ("/management/v1/users/bulk", "/management/v1/users/bulk_delete"):
            return self.bulk
        return self.bulk and re.fullmatch(r"/management/v1/teams/[^/]+/members/bulk_delete", path) is not None

    def add_team(self, team_id: str, alias: str | None) -> None:
        self.teams[team_id] = {"team_id": team_id, "team_alias": alias, "members_with_roles": []}

    def add_user(self, user_id: str, email: str | None, role: str | None, teams: tuple[str, ...] = ()) -> None:
        self.users[user_id] = {
            "user_id": user_id,
            "user_email": email,
            "user_role": role,
            "teams": [],
            "key_count": 1,
            "spend": 0.0,
            "metadata": {},
        }
        for t in teams:
            self._join(user_id, t)

    def state(self) -> dict[str, tuple[str | None, str | None, tuple[str, ...]]]:
        """user_id -> (email, role, sorted teams): what a test compares."""
        return {
            uid: (u["user_email"], u["user_role"], tuple(sorted(u["teams"]))) for uid, u in sorted(self.users.items())
        }

    def rosters(self) -> dict[str, tuple[str, ...]]:
        return {
            tid: tuple(sorted(m["user_id"] for m in t["members_with_roles"])) for tid, t in sorted(self.teams.items())
        }

    def count(self, request_line: str) -> int:
        """How many requests ``"METHOD /path"`` were received (exact), or with a trailing ``*`` any that start so."""
        if request_line.endswith("*"):
            return sum(1 for entry in self.log if entry.startswith(request_line[:-1]))
        return sum(1 for entry in self.log if entry == request_line)

    def client(self, *, attempts: int = 2, concurrency: int = 8, bulk: str = "auto") -> ProxyClient:
        async def no_sleep(_seconds: float) -> None:
            return None

        settings = ClientSettings(
            base_url="http://fake.test",
            master_key=MASTER,
            concurrency=concurrency,
            bulk=bulk,
            retry=RetryPolicy(attempts=attempts, total_s=3600.0),
        )
        return ProxyClient(settings, transport=httpx.MockTransport(self.handle), sleep=no_sleep)

    # ---------------------------------------------------------------------------------------------
    # state changes

    def _join(self, user_id: str, team_id: str) -> None:
        roster = self.teams[team_id]["members_with_roles"]
        if not any(m["user_id"] == user_id for m in roster):
            roster.append({"user_id": user_id, "user_email": self.users[user_id]["user_email"], "role": "user"})
        if team_id not in self.users[user_id]["teams"]:
            self.users[user_id]["teams"].append(team_id)

    def _leave(self, user_id: str, team_id: str) -> bool:
        roster = self.teams[team_id]["members_with_roles"]
        present = any(m["user_id"] == user_id for m in roster)
        if (user_id, team_id) in self.sticky:
            return present
        self.teams[team_id]["members_with_roles"] = [m for m in roster if m["user_id"] != user_id]
        if user_id in self.users and team_id in self.users[user_id]["teams"]:
            self.users[user_id]["teams"].remove(team_id)
        return present

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        uid = body["user_id"]
        self.add_user(uid, body.get("user_email"), body.get("user_role"))
        self.users[uid]["metadata"] = body.get("metadata") or {}
        for name in RECREATE_FIELDS:  # the other fields /user/new sets
            if name != "metadata" and name in body:
                self.users[uid][name] = body[name]
        for t in body.get("teams") or ():
            self._join(uid, t)
        key = key_for(uid) if body.get("auto_create_key", True) else None
        if key:
            self.keys[hashlib.sha256(key.encode()).hexdigest()] = {"user_id": uid, "team_id": None, "key": key}
        return {**self.users[uid], "key": key}

    def keys_of(self, user_id: str) -> list[str]:
        """The plaintext keys a user holds now."""
        return sorted(k["key"] for k in self.keys.values() if k["user_id"] == user_id)

    def _delete(self, uid: str) -> None:
        for tid in list(self.users[uid]["teams"]):
            if self.bulk and tid in self.teams:  # [110] cleans rosters on delete, [74] does not
                self.sticky.discard((uid, tid))
                self._leave(uid, tid)
        for t in self.teams.values():
            if self.bulk:
                t["members_with_roles"] = [m for m in t["members_with_roles"] if m["user_id"] != uid]
        del self.users[uid]
        self.keys = {h: k for h, k in self.keys.items() if k["user_id"] != uid}

    # ---------------------------------------------------------------------------------------------
    # the transport handler

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        self.log.append(f"{request.method} {path}")
        if self.on_request:
            self.on_request(request)
        roster_team = body.get("team_id") if path in ("/team/member_add", "/team/member_delete") else None
        if path.startswith("/management/v1/teams/"):
            roster_team = path.split("/")[4]
        roster_users: list[str] = []
        if roster_team:
            members = body.get("member") or body.get("members") or [{"user_id": body.get("user_id")}]
            roster_users = [str(m.get("user_id")) for m in members if isinstance(m, dict)]
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if roster_team:
            if self.roster_writes_in_flight.get(roster_team):
                self.roster_overlaps.append(roster_team)
            self.roster_writes_in_flight[roster_team] = self.roster_writes_in_flight.get(roster_team, 0) + 1
        for uid in roster_users:
            if self.user_writes_in_flight.get(uid):
                self.user_overlaps.append(uid)
            self.user_writes_in_flight[uid] = self.user_writes_in_flight.get(uid, 0) + 1
        try:
            for _ in range(self.yields):
                await asyncio.sleep(0)
            for fault in self.faults:
                injected = fault(request, body)
                if injected is not None:
                    return injected
            return self._route(request, path, body)
        finally:
            self.in_flight -= 1
            if roster_team:
                self.roster_writes_in_flight[roster_team] -= 1
            for uid in roster_users:
                self.user_writes_in_flight[uid] -= 1

    def _route(self, request: httpx.Request, path: str, body: dict[str, Any]) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {MASTER}":
            return httpx.Response(401, json={"error": {"message": "Authentication Error", "type": "auth_error"}})
        if request.method == "GET" and self._post_route_exists(path):  # how a route's existence is asked
            return httpx.Response(405, json={"detail": "Method Not Allowed"})
        if path == "/health/readiness/details":
            if self.version is None:
                return _not_found()
            return httpx.Response(200, json={"status": "healthy", "litellm_version": self.version})
        if path == "/health/readiness":
            return httpx.Response(200, json={"status": "healthy"})
        if path == "/key/info":
            return httpx.Response(404, json={"error": {"message": "Key not found"}})
        if path == "/key/list":
            uid = request.url.params.get("user_id")
            rows = [
                {"token": h, "user_id": k["user_id"], "team_id": k["team_id"], "blocked": k.get("blocked")}
                for h, k in self.keys.items()
            ]
            return httpx.Response(200, json={"keys": [r for r in rows if r["user_id"] == uid], "total_pages": 1})
        if path == "/key/delete":
            missing = [h for h in body["keys"] if h not in self.keys]
            if missing:
                return httpx.Response(404, json={"error": {"message": f"Key not found: {missing[0]}"}})
            for h in body["keys"]:
                del self.keys[h]
            return httpx.Response(200, json={"deleted_keys": body["keys"]})
        if path in ("/key/block", "/key/unblock"):  # by hash; idempotent; an unknown key is 404
            if body["key"] not in self.keys:
                return httpx.Response(404, json={"error": {"message": "Key not found.", "type": "not_found_error"}})
            self.keys[body["key"]]["blocked"] = path == "/key/block"
            return httpx.Response(200, json={"token": body["key"], "blocked": path == "/key/block"})
        if path == "/key/generate":
            uid = body["user_id"]
            key = f"{key_for(uid)}-new{len(self.log)}"
            self.keys[hashlib.sha256(key.encode()).hexdigest()] = {"user_id": uid, "team_id": None, "key": key}
            return httpx.Response(200, json={"key": key, "user_id": uid})
        if path == "/user/list":
            return self._user_list(request.url.params)
        if path == "/v2/team/list":
            return self._page(list(self.teams.values()), request.url.params, "teams", "team_id")
        if path == "/team/info":
            tid = request.url.params.get("team_id", "")
            if tid not in self.teams:
                return httpx.Response(404, json={"error": {"message": f"Team not found, passed team id: {tid}."}})
            return httpx.Response(200, json={"team_id": tid, "team_info": json.loads(json.dumps(self.teams[tid]))})
        if path == "/user/new":
            if body.get("user_role") not in (None, *PROXY_ROLES):
                return httpx.Response(
                    422, json={"detail": [{"loc": ["body", "user_role"], "msg": "Input should be 'proxy_admin', ..."}]}
                )
            if body["user_id"] in self.users:
                return httpx.Response(409, json={"error": {"message": f"User {body['user_id']} already exists"}})
            duplicate = self._email_taken(body.get("user_email"))
            if duplicate:
                return duplicate
            if any(body.get("teams") or ()):
                for t in body["teams"]:
                    if t not in self.teams:
                        return httpx.Response(400, json={"error": {"message": f"Team {t} not found"}})
            return httpx.Response(200, json=self._create(body))
        if path == "/user/update":
            uid = body["user_id"]
            if uid not in self.users:
                return httpx.Response(404, json={"error": {"message": f"User {uid} not found"}})
            self._update(uid, body)
            return httpx.Response(200, json={"user_id": uid, "data": self.users[uid]})
        if path == "/user/delete":
            ids = body["user_ids"]
            for uid in ids:
                if uid not in self.users:
                    return httpx.Response(404, json={"detail": {"error": f"User not found, passed user_id={uid}"}})
            for uid in ids:
                self._delete(uid)
            return httpx.Response(200, json=len(ids))
        if path == "/team/member_add":
            return self._member_add(body)
        if path == "/team/new":
            tid = body.get("team_id") or f"t-{len(self.teams)}"
            if tid in self.teams:
                return httpx.Response(400, json={"error": {"message": f"Team id = {tid} already exists."}})
            self.add_team(tid, body.get("team_alias"))
            self.teams[tid].update({k: v for k, v in body.items() if k not in ("team_id", "team_alias")})
            return httpx.Response(200, json=self.teams[tid])
        if path == "/team/update":
            tid = body["team_id"]
            if tid not in self.teams:
                return httpx.Response(404, json={"error": {"message": f"Team not found, passed team_id={tid}"}})
            self.teams[tid].update({k: v for k, v in body.items() if k != "team_id"})
            return httpx.Response(200, json={"team_id": tid, "data": self.teams[tid]})
        if path == "/team/member_delete":
            tid, uid = body["team_id"], body["user_id"]
            if tid not in self.teams:
                return httpx.Response(400, json={"detail": {"error": f"Team id={tid} does not exist in db"}})
            if not self._leave(uid, tid):
                return httpx.Response(400, json={"detail": {"error": "User not found in team"}})
            return httpx.Response(200, json=self.teams[tid])
        if not self._post_route_exists(path):
            return _not_found()
        if path == "/user/bulk_update":
            results = []
            for u in body["users"]:
                ok = u["user_id"] in self.users
                if ok:
                    self._update(u["user_id"], u)
                results.append({"user_id": u["user_id"], "success": ok, "error": None if ok else "User not found"})
            return httpx.Response(200, json={"results": results})
        if path == "/management/v1/users/bulk":
            data = []
            for u in body["users"]:
                if u["user_id"] in self.users:
                    data.append({"user_id": u["user_id"], "success": False, "error": "User already exists"})
                else:
                    row = self._create(u)
                    data.append({**row, "success": True, "error": None})
            return httpx.Response(200, json={"data": data})
        if path == "/management/v1/users/bulk_delete":
            data = []
            for uid in body["user_ids"]:
                if uid in self.users:
                    self._delete(uid)
                    data.append({"user_id": uid, "success": True})
                else:
                    data.append({"user_id": uid, "success": False, "error": "User not found"})
            return httpx.Response(200, json={"data": data})
        m = re.fullmatch(r"/management/v1/teams/([^/]+)/members/bulk_delete", path)
        if m:
            tid = m.group(1)
            data = []
            for member in body["members"]:
                ok = self._leave(member["user_id"], tid)
                data.append(
                    {"user_id": member["user_id"], "success": ok, "error": None if ok else "User not found in team"}
                )
            return httpx.Response(200, json={"data": data})
        return _not_found()

    def _update(self, uid: str, body: dict[str, Any]) -> None:
        """``/user/update``'s write (API contract §2.4): the fields sent; an empty list or dict, and a null other
        than for the budgets and limits, are dropped; metadata is replaced as a whole."""
        nullable = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit")
        for k, v in body.items():
            if k == "user_id" or v in ([], {}) or (v is None and k not in nullable):
                continue
            self.users[uid][k] = v

    def _email_taken(self, email: str | None) -> httpx.Response | None:
        """[110]: case-insensitive, trimmed check, 409; [74]: exact match, 400."""
        if not email:
            return None
        if self.bulk:
            taken = any((u["user_email"] or "").strip().lower() == email.strip().lower() for u in self.users.values())
            status = 409
        else:
            taken = any(u["user_email"] == email for u in self.users.values())
            status = 400
        if not taken:
            return None
        return httpx.Response(status, json={"error": {"message": f"User with email {email} already exists"}})

    def _member_add(self, body: dict[str, Any]) -> httpx.Response:
        tid = body["team_id"]
        if tid not in self.teams:
            return httpx.Response(400, json={"detail": {"error": f"Team id={tid} does not exist in db"}})
        members = body["member"]
        roster = {m["user_id"] for m in self.teams[tid]["members_with_roles"]}
        if all(m["user_id"] in roster for m in members):
            return httpx.Response(
                400,
                json={"error": {"message": "User already in team.", "type": "team_member_already_in_team"}},
            )
        if any(m.get("role") == "admin" for m in members) and not self.licensed:
            return httpx.Response(400, json={"detail": {"error": "Assigning team admins is a premium feature."}})
        for m in members:
            if m["user_id"] not in self.users:
                self.add_user(m["user_id"], None, "internal_user")
            self._join(m["user_id"], tid)
            for r in self.teams[tid]["members_with_roles"]:
                if r["user_id"] == m["user_id"]:
                    r["role"] = m.get("role") or "user"
        return httpx.Response(200, json=self.teams[tid])

    def _user_list(self, params: httpx.QueryParams) -> httpx.Response:
        rows = list(self.users.values())
        if "user_ids" in params:
            ids = params["user_ids"].split(",")
            if len(ids) == 1:  # a single id is a case-insensitive substring match on 1.110
                rows = [u for u in rows if ids[0].lower() in u["user_id"].lower()]
            else:
                rows = [u for u in rows if u["user_id"] in ids]
        if "user_email" in params:
            needle = params["user_email"].lower()
            rows = [u for u in rows if u["user_email"] and needle in u["user_email"].lower()]
        return self._page(rows, params, "users", "user_id")

    @staticmethod
    def _page(rows: list[dict[str, Any]], params: httpx.QueryParams, key: str, sort: str) -> httpx.Response:
        rows = sorted(rows, key=lambda r: r[sort])
        page = int(params.get("page", 1))
        size = int(params.get("page_size", 100))
        chunk = [json.loads(json.dumps(r)) for r in rows[(page - 1) * size : page * size]]
        pages = max(1, -(-len(rows) // size))
        return httpx.Response(200, json={key: chunk, "total": len(rows), "page": page, "total_pages": pages})
