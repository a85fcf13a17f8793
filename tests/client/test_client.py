"""The client over ``httpx.MockTransport``: scripted responses, a recording no-op sleep, no network.

Pagination, the status table, the retry table (how many requests were sent), Retry-After, the uncertain
create, idempotent deletes and roster writes, missing bulk routes, and no secret in any message or log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from litellm_usersync.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProxyError,
    RateLimitedError,
    RefusedError,
    RejectedError,
    ServerError,
    UnavailableError,
)
from litellm_usersync.proxy.client import CreatedUser, ProxyClient, mask_text, parse_version
from litellm_usersync.settings import ClientSettings, RetryPolicy

MASTER = "sk-master-SECRET0123456789"
USER_KEY = "sk-userkey-PRIVATE9876543210"
BASE = "http://proxy.test"

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Sleeps:
    """A no-op sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make(
    handler: Handler, *, attempts: int = 3, master_key: str = MASTER, **kw: Any
) -> tuple[ProxyClient, Sleeps, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    async def recording(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        result = handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, httpx.Response)
        return result

    sleeps = Sleeps()
    settings = ClientSettings(
        base_url=BASE, master_key=master_key, retry=RetryPolicy(attempts=attempts, total_s=3600.0), **kw
    )
    client = ProxyClient(settings, transport=httpx.MockTransport(recording), sleep=sleeps)
    return client, sleeps, sent


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def paths(sent: list[httpx.Request]) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in sent]


# --------------------------------------------------------------------------------------------------
# Pagination


def user_rows(n: int) -> list[dict[str, Any]]:
    return [{"user_id": f"u{i:04d}", "user_email": f"u{i}@x.com", "user_role": "internal_user"} for i in range(n)]


def paged(rows: list[dict[str, Any]], key: str, page_size: int = 100) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        size = int(request.url.params["page_size"])
        assert size == page_size
        chunk = rows[(page - 1) * size : page * size]
        pages = max(1, -(-len(rows) // size))
        return httpx.Response(200, json={key: chunk, "total": len(rows), "page": page, "total_pages": pages})

    return handler


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250, 1000])
async def test_read_all_users_reads_every_page(n: int) -> None:
    rows = user_rows(n)
    client, _, sent = make(paged(rows, "users"))
    progress: list[tuple[int, int]] = []
    async with client:
        got = await client.read_all_users(on_page=lambda done, total: progress.append((done, total)))
    assert got == rows
    pages = max(1, -(-n // 100))
    assert sorted(int(r.url.params["page"]) for r in sent) == list(range(1, pages + 1))
    for r in sent:
        assert r.url.path == "/user/list"
        assert r.url.params["sort_by"] == "user_id" and r.url.params["sort_order"] == "asc"
        assert r.headers["authorization"] == f"Bearer {MASTER}"
    # progress counts users, not pages (issue 11: "1/20" pages said nothing about 2,000 users)
    assert progress[0] == (min(n, 100), n) and progress[-1] == (n, n)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


async def test_read_all_teams_reads_every_page() -> None:
    teams = [{"team_id": f"t{i:03d}", "team_alias": f"team {i}", "members_with_roles": []} for i in range(230)]
    client, _, sent = make(paged(teams, "teams"))
    async with client:
        assert await client.read_all_teams() == teams
    assert {r.url.path for r in sent} == {"/v2/team/list"}
    assert len(sent) == 3


async def test_pages_after_the_first_are_read_concurrently_within_the_bound() -> None:
    rows = user_rows(1000)
    inner = paged(rows, "users")
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1
        return await inner(request)  # type: ignore[misc]

    client, _, sent = make(handler, concurrency=3)
    async with client:
        assert len(await client.read_all_users()) == 1000
    assert len(sent) == 10
    assert peak == 3


async def test_a_total_that_changes_while_reading_is_refused() -> None:
    rows = user_rows(250)

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        total = 250 if page == 1 else 251
        return httpx.Response(
            200, json={"users": rows[(page - 1) * 100 : page * 100], "total": total, "total_pages": 3}
        )

    client, _, _ = make(handler)
    async with client:
        with pytest.raises(RefusedError, match=r"changed while they were read \(total 250 → 251\)"):
            await client.read_all_users()


async def test_a_short_read_is_refused() -> None:
    rows = user_rows(250)

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        chunk = rows[(page - 1) * 100 : page * 100]
        if page == 3:
            chunk = chunk[:-1]  # one user lost
        return httpx.Response(200, json={"users": chunk, "total": 250, "total_pages": 3})

    client, _, _ = make(handler)
    async with client:
        with pytest.raises(RefusedError, match="incomplete read of users: the proxy reported 250 but 249"):
            await client.read_all_users()


async def test_duplicated_rows_across_pages_are_refused() -> None:
    """A page shifted by a concurrent insert repeats a user and hides another: same count, wrong set."""
    rows = user_rows(200)

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        chunk = rows[(page - 1) * 100 : page * 100]
        if page == 2:
            chunk = [rows[99], *chunk[:-1]]
        return httpx.Response(200, json={"users": chunk, "total": 200, "total_pages": 2})

    client, _, _ = make(handler)
    async with client:
        with pytest.raises(RefusedError, match="incomplete read"):
            await client.read_all_users()


async def test_total_pages_missing_is_derived_from_total() -> None:
    rows = user_rows(150)

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"users": rows[(page - 1) * 100 : page * 100], "total": 150})

    client, _, sent = make(handler)
    async with client:
        assert len(await client.read_all_users()) == 150
    assert len(sent) == 2


async def test_read_users_by_ids_single_id_travels_with_a_placeholder_and_matches_exactly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["user_ids"].split(",")
        assert len(ids) == 2 and ids[0] == "bob"
        # a substring match would also return "bobby"
        return httpx.Response(200, json={"users": [{"user_id": "bobby"}, {"user_id": "bob"}], "total": 2})

    client, _, sent = make(handler)
    async with client:
        assert await client.read_users_by_ids(["bob"]) == {"bob": {"user_id": "bob"}}
    assert len(sent) == 1


async def test_read_users_by_ids_chunks_by_page_size() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["user_ids"].split(",")
        assert len(ids) <= 100
        return httpx.Response(200, json={"users": [{"user_id": i} for i in ids], "total": len(ids)})

    client, _, sent = make(handler)
    wanted = [f"id{i}" for i in range(230)]
    async with client:
        got = await client.read_users_by_ids([*wanted, "id0"])
    assert sorted(got) == sorted(wanted)
    assert len(sent) == 3


async def test_find_users_by_email_keeps_only_exact_normalised_matches() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["user_email"] == "Ann@X.com"
        users = [
            {"user_id": "1", "user_email": "ann@x.com"},
            {"user_id": "2", "user_email": "joann@x.com"},
            {"user_id": "3", "user_email": " ANN@x.com "},
            {"user_id": "4", "user_email": None},
        ]
        return httpx.Response(200, json={"users": users, "total": 4})

    client, _, _ = make(handler)
    async with client:
        found = await client.find_users_by_email("  Ann@X.com ")
    assert [u["user_id"] for u in found] == ["1", "3"]


# --------------------------------------------------------------------------------------------------
# The status table and the four error body shapes


SHAPE_A = {"error": {"message": "Invalid user_role", "type": "bad_request_error", "param": None, "code": "400"}}
SHAPE_B = {"detail": {"error": "Team id=t-x does not exist in db"}}
SHAPE_B_STR = {"detail": "Assigning team admins is a premium feature."}
SHAPE_C = {
    "detail": [
        {"loc": ["body", "user_role"], "msg": "Input should be 'proxy_admin'", "type": "literal_error"},
        {"loc": ["body"], "msg": "Field required", "type": "missing"},
    ]
}
SHAPE_D = {"type": "urn:litellm:error:too_many", "title": "Too many users", "status": 400, "detail": "max 500"}


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "error_type"),
    [
        (400, SHAPE_A, RejectedError, "Invalid user_role", "bad_request_error"),
        (400, SHAPE_B, RejectedError, "Team id=t-x does not exist in db", None),
        (400, SHAPE_B_STR, RejectedError, "Assigning team admins is a premium feature.", None),
        (
            422,
            SHAPE_C,
            RejectedError,
            "user_role: Input should be 'proxy_admin'; Field required",
            "validation_error",
        ),
        (400, SHAPE_D, RejectedError, "Too many users: max 500", "urn:litellm:error:too_many"),
        (
            401,
            {"error": {"message": "Authentication Error", "type": "auth_error"}},
            AuthError,
            "Authentication Error",
            "auth_error",
        ),
        (403, {"detail": {"error": "not allowed"}}, ForbiddenError, "not allowed", None),
        (
            404,
            {"error": {"message": "User bob not found", "type": "not_found_error"}},
            NotFoundError,
            "User bob not found",
            "not_found_error",
        ),
        (
            409,
            {"error": {"message": "User with email a@x.com already exists"}},
            ConflictError,
            "User with email a@x.com already exists",
            None,
        ),
        (
            400,
            {"error": {"message": "{'error': 'User with email a@x.com already exists'}"}},
            ConflictError,
            "{'error': 'User with email a@x.com already exists'}",
            None,
        ),
        (
            500,
            {"error": {"message": "db down", "type": "internal_server_error"}},
            ServerError,
            "db down",
            "internal_server_error",
        ),
        (503, "Service Unavailable", ServerError, "Service Unavailable", None),
        (502, b"", ServerError, "Bad Gateway", None),
    ],
)
async def test_status_maps_to_its_class(
    status: int, body: Any, cls: type[ProxyError], message: str, error_type: str | None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    client, _, _ = make(handler, attempts=1)
    async with client:
        with pytest.raises(ProxyError) as info:
            await client.request("POST", "/user/update", body={"user_id": "x"})
    exc = info.value
    assert type(exc) is cls
    assert (exc.message, exc.status, exc.error_type) == (message, status, error_type)
    assert (exc.method, exc.path) == ("POST", "/user/update")
    assert str(exc) == f"POST /user/update -> {status}: {message}"


async def test_429_carries_retry_after() -> None:
    client, _, _ = make(lambda r: httpx.Response(429, headers={"Retry-After": "12"}, json={}), attempts=1)
    async with client:
        with pytest.raises(RateLimitedError) as info:
            await client.request("GET", "/user/list")
    assert info.value.retry_after_s == 12.0


async def test_long_messages_are_truncated() -> None:
    client, _, _ = make(lambda r: httpx.Response(400, json={"detail": "x" * 1000}), attempts=1)
    async with client:
        with pytest.raises(RejectedError) as info:
            await client.request("GET", "/user/list")
    assert len(info.value.message) == 301 and info.value.message.endswith("…")


async def test_non_json_success_is_a_server_error() -> None:
    client, _, _ = make(lambda r: httpx.Response(200, text="<html>login</html>"), attempts=1)
    async with client:
        with pytest.raises(ServerError, match="expected JSON"):
            await client.request("GET", "/user/list")


async def test_empty_success_body_is_none() -> None:
    client, _, _ = make(lambda r: httpx.Response(200, content=b""))
    async with client:
        assert await client.request("POST", "/user/delete", body={"user_ids": ["a"]}) is None


@pytest.mark.parametrize(
    ("exc", "maybe_sent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.PoolTimeout("pool"), False),
        (httpx.ReadTimeout("read"), True),
        (httpx.WriteTimeout("write"), True),
        (httpx.RemoteProtocolError("server disconnected"), True),
        (httpx.ReadError("reset by peer"), True),
    ],
)
async def test_transport_errors_are_unavailable_with_maybe_sent(exc: Exception, maybe_sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, _, _ = make(handler, attempts=1)
    async with client:
        with pytest.raises(UnavailableError) as info:
            await client.request("GET", "/user/list")
    assert info.value.maybe_sent is maybe_sent
    assert info.value.__cause__ is exc


# --------------------------------------------------------------------------------------------------
# Retries: which codes, how many requests


def status_handler(status: int, then_ok_after: int | None = None) -> Handler:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if then_ok_after is not None and count > then_ok_after:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(status, json={"detail": f"status {status}"})

    return handler


@pytest.mark.parametrize(
    ("status", "requests_sent"),
    [
        (400, 1),
        (401, 1),
        (403, 1),
        (404, 1),
        (409, 1),
        (422, 1),
        (429, 4),
        (500, 4),
        (501, 1),
        (502, 4),
        (503, 4),
        (504, 4),
    ],
)
async def test_which_statuses_are_retried(status: int, requests_sent: int) -> None:
    client, sleeps, sent = make(status_handler(status), attempts=4)
    async with client:
        with pytest.raises(ProxyError) as info:
            await client.request("GET", "/user/list")
    assert info.value.status == status
    assert len(sent) == requests_sent
    assert len(sleeps.calls) == requests_sent - 1


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("read"), httpx.RemoteProtocolError("cut")],
)
async def test_transport_errors_are_retried_for_safe_requests(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, sleeps, sent = make(handler, attempts=3)
    async with client:
        with pytest.raises(UnavailableError):
            await client.request("GET", "/user/list")
    assert len(sent) == 3
    assert len(sleeps.calls) == 2


async def test_retry_succeeds_after_transient_errors_with_growing_backoff() -> None:
    client, sleeps, sent = make(status_handler(503, then_ok_after=3), attempts=5)
    async with client:
        assert await client.request("GET", "/user/list") == {"ok": True}
    assert len(sent) == 4
    # exponential backoff (0.5, 1, 2) plus jitter in [0, 0.5]
    for wait, base in zip(sleeps.calls, (0.5, 1.0, 2.0), strict=True):
        assert base <= wait <= base + 0.5


async def test_backoff_is_capped_by_max_wait() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, json={})

    sleeps = Sleeps()
    settings = ClientSettings(
        base_url=BASE, master_key=MASTER, retry=RetryPolicy(attempts=8, total_s=3600, max_wait_s=3.0, jitter_s=0.0)
    )
    async with ProxyClient(settings, transport=httpx.MockTransport(handler), sleep=sleeps) as client:
        with pytest.raises(ServerError):
            await client.request("GET", "/user/list")
    assert sleeps.calls == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert len(sent) == 8


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0", 0.0), ("3600", 60.0), ("2.5", 2.5)])
async def test_retry_after_is_obeyed_and_capped(header: str, expected: float) -> None:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if count == 1:
            return httpx.Response(429, headers={"Retry-After": header}, json={"error": {"message": "slow down"}})
        return httpx.Response(200, json={"users": [], "total": 0})

    client, sleeps, sent = make(handler)
    async with client:
        await client.request("GET", "/user/list")
    assert sleeps.calls == [expected]
    assert len(sent) == 2


async def test_retry_after_as_http_date_in_the_past_waits_zero() -> None:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if count == 1:
            return httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, json={})
        return httpx.Response(200, json={})

    client, sleeps, _ = make(handler)
    async with client:
        await client.request("GET", "/user/list")
    assert sleeps.calls == [0.0]


async def test_the_last_error_is_raised_after_the_last_attempt() -> None:
    client, _, sent = make(status_handler(502), attempts=2)
    async with client:
        with pytest.raises(ServerError) as info:
            await client.request("GET", "/v2/team/list")
    assert info.value.status == 502
    assert str(info.value) == "GET /v2/team/list -> 502: status 502"
    assert len(sent) == 2


# --------------------------------------------------------------------------------------------------
# The uncertain create


class FakeUsers:
    """Just enough of /user/new and /user/list to script lost answers."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.posts = 0
        #: per POST number: "timeout-after-write", "timeout-before-write", "500-after-write", "conflict", "reset"
        self.script: dict[int, str] = {}
        #: how many read-backs see nothing although the user exists (a lagging replica)
        self.blind_reads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/user/new":
            self.posts += 1
            body = body_of(request)
            step = self.script.get(self.posts, "ok")
            if step == "timeout-before-write":
                raise httpx.ReadTimeout("timed out")
            if step == "connect":
                raise httpx.ConnectError("refused")
            if body["user_id"] in self.users:
                return httpx.Response(409, json={"error": {"message": f"User {body['user_id']} already exists"}})
            self.users[body["user_id"]] = {
                "user_id": body["user_id"],
                "user_email": body.get("user_email"),
                "user_role": body.get("user_role"),
                "teams": [],
            }
            if step == "timeout-after-write":
                raise httpx.ReadTimeout("timed out")
            if step == "reset-after-write":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            if step == "500-after-write":
                return httpx.Response(500, json={"error": {"message": "internal"}})
            return httpx.Response(200, json={**self.users[body["user_id"]], "key": USER_KEY})
        if request.url.path == "/user/list":
            if self.blind_reads > 0:
                self.blind_reads -= 1
                return httpx.Response(200, json={"users": [], "total": 0})
            params = request.url.params
            if "user_ids" in params:
                ids = params["user_ids"].split(",")
                found = [u for uid, u in self.users.items() if uid in ids]
            else:
                found = [u for u in self.users.values() if params["user_email"].lower() in u["user_email"].lower()]
            return httpx.Response(200, json={"users": found, "total": len(found)})
        return httpx.Response(404, json={"detail": "Not Found"})


NEW_BODY = {"user_id": "ann@x.com", "user_email": "Ann@x.com", "user_role": "internal_user", "auto_create_key": True}


async def test_create_user_plain() -> None:
    fake = FakeUsers()
    client, _, sent = make(fake)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert created == CreatedUser("ann@x.com", "Ann@x.com", USER_KEY, (), recovered=False)
    assert paths(sent) == ["POST /user/new"]
    assert body_of(sent[0]) == NEW_BODY


@pytest.mark.parametrize("step", ["timeout-after-write", "reset-after-write", "500-after-write"])
async def test_uncertain_create_that_landed_is_read_back_not_resent(step: str) -> None:
    fake = FakeUsers()
    fake.script = {1: step}
    client, _, sent = make(fake)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert created == CreatedUser("ann@x.com", "Ann@x.com", None, (), recovered=True)
    assert fake.posts == 1
    assert paths(sent) == ["POST /user/new", "GET /user/list"]


async def test_uncertain_create_that_did_not_land_is_sent_exactly_once_more() -> None:
    fake = FakeUsers()
    fake.script = {1: "timeout-before-write"}
    client, sleeps, sent = make(fake)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert created.recovered is False
    assert created.api_key == USER_KEY
    assert fake.posts == 2
    # read back by id, then by email, then the single resend
    assert paths(sent) == ["POST /user/new", "GET /user/list", "GET /user/list", "POST /user/new"]
    assert sent[2].url.params["user_email"] == "Ann@x.com"
    assert len(sleeps.calls) == 1


async def test_conflict_after_an_uncertain_attempt_is_recovered() -> None:
    """The first write landed late: the read-back missed it, the resend gets 409, the second read-back finds it."""
    fake = FakeUsers()
    fake.script = {1: "timeout-after-write"}
    fake.blind_reads = 2  # by id and by email
    client, _, sent = make(fake)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert created.recovered is True
    assert fake.posts == 2
    assert paths(sent) == ["POST /user/new", "GET /user/list", "GET /user/list", "POST /user/new", "GET /user/list"]


async def test_conflict_without_uncertainty_is_raised() -> None:
    fake = FakeUsers()
    fake.users["ann@x.com"] = {"user_id": "ann@x.com", "user_email": "ann@x.com"}
    client, _, sent = make(fake)
    async with client:
        with pytest.raises(ConflictError):
            await client.create_user(dict(NEW_BODY))
    assert paths(sent) == ["POST /user/new"]


async def test_create_never_sent_is_retried_without_read_back() -> None:
    fake = FakeUsers()
    fake.script = {1: "connect", 2: "connect"}
    client, _, sent = make(fake, attempts=3)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert created.api_key == USER_KEY
    assert paths(sent) == ["POST /user/new"] * 3


async def test_create_every_attempt_uncertain_raises_the_last_error_and_never_duplicates() -> None:
    fake = FakeUsers()
    fake.script = {1: "timeout-before-write", 2: "timeout-before-write", 3: "timeout-before-write"}
    client, _, _ = make(fake, attempts=3)
    async with client:
        with pytest.raises(UnavailableError):
            await client.create_user(dict(NEW_BODY))
    assert fake.posts == 3
    assert fake.users == {}


@pytest.mark.parametrize(
    ("first", "requests_sent", "recovered"),
    [
        # certainly not processed: sent again without a read-back
        (httpx.Response(429, headers={"Retry-After": "1"}, json={}), ["POST /user/new", "POST /user/new"], False),
        (httpx.ConnectError("refused"), ["POST /user/new", "POST /user/new"], False),
        # uncertain and not landed: read back by id and email, then one resend
        (
            httpx.Response(503, json={}),
            ["POST /user/new", "GET /user/list", "GET /user/list", "POST /user/new"],
            False,
        ),
        (
            httpx.ReadTimeout("lost"),
            ["POST /user/new", "GET /user/list", "GET /user/list", "POST /user/new"],
            False,
        ),
    ],
)
async def test_create_retry_table(first: httpx.Response | Exception, requests_sent: list[str], recovered: bool) -> None:
    fake = FakeUsers()
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        if request.url.path == "/user/new":
            count += 1
            if count == 1:
                if isinstance(first, Exception):
                    raise first
                return first
        return fake(request)

    client, _, sent = make(handler)
    async with client:
        created = await client.create_user(dict(NEW_BODY))
    assert paths(sent) == requests_sent
    assert created.recovered is recovered
    assert len(fake.users) == 1


@pytest.mark.parametrize("status", [400, 422])
async def test_create_rejected_is_not_retried(status: int) -> None:
    client, _, sent = make(lambda r: httpx.Response(status, json={"detail": "bad"}))
    async with client:
        with pytest.raises(RejectedError):
            await client.create_user(dict(NEW_BODY))
    assert len(sent) == 1


# --------------------------------------------------------------------------------------------------
# Idempotent deletes and roster writes


async def test_delete_users_drops_ids_already_gone() -> None:
    existing = {"a", "c"}

    def handler(request: httpx.Request) -> httpx.Response:
        ids = body_of(request)["user_ids"]
        for uid in ids:
            if uid not in existing:
                return httpx.Response(404, json={"detail": {"error": f"User not found, passed user_id={uid}"}})
        existing.difference_update(ids)
        return httpx.Response(200, json=len(ids))

    client, _, sent = make(handler)
    async with client:
        gone = await client.delete_users(["a", "b", "c", "d", "a"])
    assert gone == {"a", "b", "c", "d"}
    assert [body_of(r)["user_ids"] for r in sent] == [["a", "b", "c", "d"], ["a", "c", "d"], ["a", "c"]]
    assert existing == set()


async def test_delete_users_understands_the_shape_a_repr_message() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                404, json={"error": {"message": "{'error': 'User not found, passed user_id=b@x.com'}", "code": "404"}}
            )
        return httpx.Response(200, json=1)

    client, _, sent = make(handler)
    async with client:
        assert await client.delete_users(["a@x.com", "b@x.com"]) == {"a@x.com", "b@x.com"}
    assert body_of(sent[1]) == {"user_ids": ["a@x.com"]}


async def test_delete_users_unrelated_404_is_raised() -> None:
    client, _, _ = make(lambda r: httpx.Response(404, json={"detail": {"error": "User not found, passed user_id=zz"}}))
    async with client:
        with pytest.raises(NotFoundError):
            await client.delete_users(["a"])


async def test_member_add_already_in_team_counts_as_done() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "error": {
                    "message": "User already in team. Member: user_id=a",
                    "type": "team_member_already_in_team",
                    "param": "member",
                    "code": "400",
                }
            },
        )

    client, _, sent = make(handler)
    async with client:
        assert await client.add_team_members("t1", [("a", "a@x.com"), ("b", None)]) == {"a", "b"}
    assert len(sent) == 1
    assert body_of(sent[0]) == {
        "team_id": "t1",
        "member": [{"user_id": "a", "role": "user"}, {"user_id": "b", "role": "user"}],
    }


async def test_member_add_returns_who_is_on_the_roster() -> None:
    roster = [{"user_id": "default_user_id", "role": "admin"}, {"user_id": "a", "role": "user"}]
    client, _, _ = make(lambda r: httpx.Response(200, json={"team_id": "t1", "members_with_roles": roster}))
    async with client:
        assert await client.add_team_members("t1", [("a", None), ("b", None)]) == {"a"}


async def test_member_add_other_rejection_is_raised() -> None:
    client, _, _ = make(lambda r: httpx.Response(400, json={"detail": {"error": "Team id=t9 does not exist in db"}}))
    async with client:
        with pytest.raises(RejectedError, match="does not exist"):
            await client.add_team_members("t9", [("a", None)])


@pytest.mark.parametrize(
    "body",
    [{"detail": {"error": "User not found in team"}}, {"detail": "User id doesn't exist in team table"}],
)
async def test_member_delete_not_in_team_counts_as_done(body: dict[str, Any]) -> None:
    client, _, sent = make(lambda r: httpx.Response(400, json=body))
    async with client:
        assert await client.remove_team_member("t1", "a") is None
    assert body_of(sent[0]) == {"team_id": "t1", "user_id": "a"}


async def test_member_delete_unknown_team_is_raised() -> None:
    client, _, _ = make(lambda r: httpx.Response(400, json={"detail": {"error": "Team id=t9 does not exist in db"}}))
    async with client:
        with pytest.raises(RejectedError):
            await client.remove_team_member("t9", "a")


# --------------------------------------------------------------------------------------------------
# Version detection and bulk routes


BULK_PATHS = re.compile(r"/management/v1/users/bulk(_delete)?|/management/v1/teams/[^/]+/members/bulk_delete")


def versioned(version: str | None, extra: Handler | None = None) -> Handler:
    """A proxy of ``version``: its batch routes answer a GET with 405 (they exist) from 1.100, 404 before."""
    v = parse_version(version)

    def handler(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if request.method == "GET" and (
            BULK_PATHS.fullmatch(request.url.path)
            or request.url.path
            in (
                "/user/bulk_update",
                "/team/bulk_member_add",
            )
        ):
            exists = v is not None and v >= (1, 100)
            return httpx.Response(
                405 if exists else 404, json={"detail": "Method Not Allowed" if exists else "Not Found"}
            )
        if request.url.path == "/health/readiness/details":
            if version is None:
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, json={"status": "healthy", "litellm_version": version})
        if request.url.path == "/health/readiness":
            return httpx.Response(200, json={"status": "healthy"})
        if extra is not None:
            return extra(request)
        return httpx.Response(404, json={"detail": "Not Found"})

    return handler


@pytest.mark.parametrize(
    ("version", "bulk_setting", "expected"),
    [
        ("1.110.2", "auto", True),
        ("1.100.0", "auto", True),
        ("1.74.0", "auto", False),
        (None, "auto", False),
        ("1.110.2", "never", False),
    ],
)
async def test_supports_bulk(version: str | None, bulk_setting: str, expected: bool) -> None:
    client, _, sent = make(versioned(version), bulk=bulk_setting)
    async with client:
        assert await client.supports_bulk("create") is expected
        assert await client.supports_bulk("delete") is expected
        assert await client.proxy_version() in (version, None)
    if bulk_setting == "auto":
        # detected once per client
        assert paths(sent).count("GET /health/readiness/details") == 1


def test_parse_version() -> None:
    assert parse_version("1.110.2") == (1, 110, 2)
    assert parse_version("v1.74.0-stable") == (1, 74, 0)
    assert parse_version(None) is None
    assert parse_version("unknown") is None


async def test_check_auth_master_key_and_virtual_key() -> None:
    client, _, _ = make(lambda r: httpx.Response(404, json={"error": {"message": "Key not found"}}))
    async with client:
        assert await client.check_auth() == "default_user_id"
    client, _, _ = make(lambda r: httpx.Response(200, json={"key": "x", "info": {"user_id": "u-ops"}}))
    async with client:
        assert await client.check_auth() == "u-ops"
    client, _, _ = make(lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}))
    async with client:
        with pytest.raises(AuthError):
            await client.check_auth()


async def test_a_403_is_bad_credentials_only_on_the_identity_check() -> None:
    """Issue 9 §4: a 403 elsewhere (seat limit, not allowed for this team) is ForbiddenError, never AuthError."""
    forbidden = httpx.Response(403, json={"detail": {"error": "Call not allowed. User not proxy admin OR team admin."}})
    client, _, _ = make(lambda r: forbidden)
    async with client:
        with pytest.raises(AuthError) as info:
            await client.check_auth()
        assert info.value.status == 403 and "Call not allowed" in info.value.message
        with pytest.raises(ForbiddenError) as refused:
            await client.request("POST", "/team/member_add", body={"team_id": "t"})
        assert not isinstance(refused.value, AuthError)
        assert await client.proxy_version() is None  # version detection does not judge the credentials


NOT_FOUND = httpx.Response(404, json={"detail": "Not Found"})


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("create", lambda c: c.bulk_create_users([{"user_id": "a", "user_email": "a@x.com"}])),
        ("update", lambda c: c.bulk_update_users([{"user_id": "a", "user_role": "proxy_admin"}])),
        ("delete", lambda c: c.bulk_delete_users(["a"])),
        ("leave", lambda c: c.bulk_remove_team_members("t1", ["a", "b"])),
    ],
)
async def test_bulk_endpoints_return_none_on_a_missing_route(
    kind: str, call: Callable[[ProxyClient], Awaitable[object]]
) -> None:
    client, _, sent = make(versioned("1.110.2", lambda r: httpx.Response(404, json={"detail": "Not Found"})))
    async with client:
        assert await client.supports_bulk(kind) is True
        assert await call(client) is None
        assert await client.supports_bulk(kind) is False
        # the other kinds are not disabled by this one
        others = {"create", "update", "delete", "leave"} - {kind}
        assert all([await client.supports_bulk(k) for k in others])
    assert len([r for r in sent if r.method == "POST"]) == 1


async def test_bulk_route_with_a_real_404_is_raised_not_disabled() -> None:
    """A 404 with a message of the handler itself is not a missing route."""
    client, _, _ = make(
        versioned("1.110.2", lambda r: httpx.Response(404, json={"detail": {"error": "Team not found"}}))
    )
    async with client:
        with pytest.raises(NotFoundError):
            await client.bulk_remove_team_members("t1", ["a"])
        assert await client.supports_bulk("leave") is True


async def test_bulk_create_rows_and_chunks_of_500() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        users = body_of(request)["users"]
        assert len(users) <= 500
        data = [
            {
                "user_id": u["user_id"],
                "user_email": u["user_email"],
                "success": not u["user_id"].endswith("7"),
                "key": f"sk-generated-{u['user_id']}-LONGSECRET" if not u["user_id"].endswith("7") else None,
                "error": None if not u["user_id"].endswith("7") else "User with email already exists",
                "teams": u.get("teams", []),
            }
            for u in users
        ]
        return httpx.Response(200, json={"data": data})

    client, _, sent = make(versioned("1.110.2", handler))
    bodies = [{"user_id": f"u{i}", "user_email": f"u{i}@x.com", "teams": ["t1"]} for i in range(1200)]
    async with client:
        rows = await client.bulk_create_users(bodies)
    assert rows is not None and len(rows) == 1200
    assert [len(body_of(r)["users"]) for r in sent if r.url.path == "/management/v1/users/bulk"] == [500, 500, 200]
    assert sum(1 for r in rows if not r.success) == 120
    assert rows[0].teams == ("t1",) and rows[0].api_key == "sk-generated-u0-LONGSECRET"
    # created keys are now remembered as secrets
    assert "LONGSECRET" not in client.mask("key sk-generated-u0-LONGSECRET here")


async def test_bulk_create_uncertain_chunk_is_read_back_and_only_the_rest_resent() -> None:
    landed = {"a"}
    posts: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/management/v1/users/bulk":
            ids = [u["user_id"] for u in body_of(request)["users"]]
            posts.append(ids)
            if len(posts) == 1:
                raise httpx.ReadTimeout("lost")
            return httpx.Response(
                200, json={"data": [{"user_id": i, "user_email": None, "success": True, "key": "sk-k"} for i in ids]}
            )
        if request.url.path == "/user/list":
            ids = request.url.params["user_ids"].split(",")
            return httpx.Response(200, json={"users": [{"user_id": i, "teams": []} for i in ids if i in landed]})
        return httpx.Response(404, json={"detail": "Not Found"})

    client, _, _ = make(versioned("1.110.2", handler))
    async with client:
        rows = await client.bulk_create_users([{"user_id": "a"}, {"user_id": "b"}])
    assert posts == [["a", "b"], ["b"]]
    assert rows is not None
    assert {(r.user_id, r.success, r.api_key) for r in rows} == {("a", True, None), ("b", True, "sk-k")}


async def test_bulk_delete_not_found_counts_as_gone() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "data": [
                    {"user_id": "a", "success": True},
                    {"user_id": "b", "success": False, "error": "User not found"},
                    {"user_id": "c", "success": False, "error": "foreign key violation"},
                ]
            },
        )

    client, _, _ = make(versioned("1.110.2", handler))
    async with client:
        rows = await client.bulk_delete_users(["a", "b", "c"])
    assert rows is not None
    assert [(r.user_id, r.success, r.error) for r in rows] == [
        ("a", True, None),
        ("b", True, None),
        ("c", False, "foreign key violation"),
    ]


async def test_bulk_leave_path_is_quoted() -> None:
    client, _, sent = make(versioned("1.110.2", lambda r: httpx.Response(200, json={"data": []})))
    async with client:
        assert await client.bulk_remove_team_members("team/1 x", ["a"]) == []
    assert sent[-1].url.raw_path.decode() == "/management/v1/teams/team%2F1%20x/members/bulk_delete"


# --------------------------------------------------------------------------------------------------
# Secrets never in full


def test_mask_text() -> None:
    assert mask_text(f"Bearer {MASTER} and {USER_KEY}") == "Bearer sk-ma… and sk-us…"
    assert mask_text("password hunter2-long in text", ["hunter2-long"]) == "password hunte… in text"
    assert mask_text("short abc", ["abc"]) == "short abc"


@pytest.mark.parametrize("master", [MASTER, "plain-master-password-42"])
async def test_the_master_key_is_in_no_repr(master: str) -> None:
    """Issue 9 §4: ``repr(ClientSettings)`` showed the master key in full (logs, tracebacks, test failures)."""
    settings = ClientSettings(base_url=BASE, master_key=master)
    assert master not in repr(settings) and master not in str(settings) and master not in f"{settings!r}"
    assert f"master_key='{master[:5]}…'" in repr(settings)
    assert "master_key=''" in repr(ClientSettings())
    assert repr(settings).startswith(f"ClientSettings(base_url='{BASE}', master_key=")
    assert settings == ClientSettings(base_url=BASE, master_key=master)  # still compared by value
    async with ProxyClient(settings) as client:
        for shown in (repr(client), repr(client.settings), repr(client._http), repr(client._http.headers)):
            assert master not in shown
        assert repr(dict(client._http.headers)).count(master) == 1, "the header itself still carries the key"


@pytest.mark.parametrize("master", [MASTER, "plain-master-password-42"])
async def test_no_secret_in_exceptions_or_debug_logs(master: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every path that shows text from the proxy: error messages, debug logs of requests and responses."""
    caplog.set_level(logging.DEBUG, logger="litellm_usersync")
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        auth = request.headers["authorization"]
        if request.url.path == "/user/new":
            return httpx.Response(200, json={"user_id": "a", "user_email": "a@x.com", "key": USER_KEY, "teams": []})
        if request.url.path == "/user/update":
            return httpx.Response(
                400, json={"error": {"message": f"cannot update, key {USER_KEY} and header {auth} rejected"}}
            )
        if request.url.path == "/key/info":
            return httpx.Response(401, json={"error": {"message": f"Invalid proxy server token passed: {master}"}})
        if request.url.path == "/v2/team/list":
            raise httpx.ConnectError(f"connection to {BASE} failed, auth {master}")
        return httpx.Response(502, text=f"upstream error for {auth}")

    client, _, _ = make(handler, master_key=master, attempts=2)
    messages: list[str] = []
    async with client:
        created = await client.create_user({"user_id": "a", "user_email": "a@x.com"})
        assert created.api_key == USER_KEY  # the caller gets the key itself
        for call in (
            lambda: client.update_user("a", user_role="proxy_admin"),
            client.check_auth,
            lambda: client.request("GET", "/v2/team/list"),
            lambda: client.request("GET", "/user/list"),
        ):
            with pytest.raises(ProxyError) as info:
                await call()
            messages.extend([str(info.value), info.value.message, repr(info.value)])
    assert calls >= 6
    logged = [r.getMessage() for r in caplog.records]
    assert any("/user/new" in m for m in logged)  # debug logging did happen
    for text in messages + logged:
        assert master not in text, text
        assert USER_KEY not in text, text
        assert "SECRET" not in text and "PRIVATE" not in text and "password-42" not in text, text


@pytest.mark.parametrize("answer", [[], "ok", None], ids=["array", "string", "empty"])
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.read_all_users(),
        lambda c: c.create_user({"user_id": "a", "user_email": "a@x.com"}),
        lambda c: c.add_team_members("t1", [("a", None)]),
        lambda c: c.bulk_update_users([{"user_id": "a", "user_role": "proxy_admin"}]),
    ],
    ids=["read_all_users", "create_user", "add_team_members", "bulk_update_users"],
)
async def test_a_200_answer_of_an_unexpected_shape_is_a_proxy_error(
    answer: Any, call: Callable[[ProxyClient], Awaitable[object]]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if answer is None:
            return httpx.Response(200, content=b"")
        return httpx.Response(200, json=answer)

    client, _, _ = make(handler, attempts=1)
    async with client:
        with pytest.raises(ProxyError):
            await call(client)


async def test_bulk_create_twice_uncertain_reads_back_again() -> None:
    created: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/management/v1/users/bulk":
            created.update(u["user_id"] for u in body_of(request)["users"])
            raise httpx.ReadTimeout("answer lost after the write")
        if request.url.path == "/user/list":
            ids = request.url.params["user_ids"].split(",")
            # the first read-back happens before the first write is visible (a lagging replica)
            seen = created if len(sent) > 2 else set()
            return httpx.Response(200, json={"users": [{"user_id": i, "teams": []} for i in ids if i in seen]})
        return httpx.Response(404, json={"detail": "Not Found"})

    client, _, sent = make(versioned("1.110.2", handler))
    async with client:
        rows = await client.bulk_create_users([{"user_id": "a"}, {"user_id": "b"}])
    assert rows is not None
    assert created == {"a", "b"}
    assert [(r.user_id, r.success) for r in rows] == [("a", True), ("b", True)]


async def test_an_invitation_id_never_reaches_the_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: --debug logged /invitation/new's answer, whose id lets anyone set the user's password."""
    secret_id = "54774b19-5a88-4144-b20f-4c44c06cc607"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": secret_id, "user_id": "a@x.com", "is_accepted": False})

    client, _, _ = make(handler)
    caplog.set_level(logging.DEBUG, logger="litellm_usersync")
    async with client:
        assert await client.create_invitation("a@x.com") == secret_id
    assert caplog.records, "the request itself is logged"
    assert secret_id not in caplog.text


async def test_batch_routes_are_asked_of_the_routes_once() -> None:
    """405 on a GET: the POST route exists; 404 Not Found: it does not; a 5xx that persists: treated as absent."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/health/readiness/details":
            return httpx.Response(404, json={"detail": "Not Found"})
        if path == "/health/readiness":  # 1.74 says its version here
            return httpx.Response(200, json={"status": "healthy", "litellm_version": "1.74.15.post2"})
        if path in ("/user/bulk_update", "/team/bulk_member_add"):
            return httpx.Response(405, json={"detail": "Method Not Allowed"})
        if path == "/management/v1/users/bulk_delete":
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(404, json={"detail": "Not Found"})

    client, _, sent = make(handler)
    async with client:
        f = await client.detect_features()
        assert await client.detect_features() is f, "detected once per client"
        assert f.version == "1.74.15.post2"
        assert dict(f.batch_routes) == dict(create=False, delete=False, leave=False, update=True, join=True)
        assert f.delete_cascades and await client.user_delete_cascades()
        assert await client.supports_bulk("update") and not await client.supports_bulk("create")
        assert not await client.supports_bulk("delete"), "a route that could not be asked is not used"
    probes = [p for p in paths(sent) if not p.startswith("GET /health")]
    assert all(p.startswith("GET ") for p in probes), "asking never POSTs"
    assert probes.count("GET /user/bulk_update") == 1
    assert probes.count("GET /management/v1/users/bulk_delete") == 3, "retried like any read, then given up"
    assert "GET /management/v1/teams/litellm-usersync-route-probe/members/bulk_delete" in probes
