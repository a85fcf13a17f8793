"""read_snapshot over the in-memory fake proxy: every page, version, caller identity, progress."""

from __future__ import annotations

import httpx

from litellm_usersync.proxy.snapshot import read_snapshot

from ..executor._fake_proxy import FakeProxy


async def test_read_snapshot_reads_everything_once() -> None:
    fake = FakeProxy(version="1.110.2")
    for i in range(130):
        fake.add_team(f"t{i:03d}", f"team {i}")
    for i in range(260):
        fake.add_user(f"u{i:03d}", f"u{i}@x.com" if i % 10 else None, "internal_user", (f"t{i % 130:03d}",))
    progress: list[tuple[str, int, int]] = []
    async with fake.client() as client:
        snap = await read_snapshot(client, on_progress=lambda what, done, total: progress.append((what, done, total)))
    assert len(snap.users) == 260 and len(snap.teams) == 130
    assert snap.proxy_version == "1.110.2"
    assert snap.caller_user_id == "default_user_id"
    assert snap.team_ids_of("u007") == frozenset({"t007"})
    assert snap.teams_by_id["t007"].members[0].user_id == "u007"
    assert fake.count("GET /user/list") == 3 and fake.count("GET /v2/team/list") == 2
    # in rows, not pages: 260 users on 3 pages, 130 teams on 2
    assert ("reading users", 100, 260) in progress and ("reading users", 260, 260) in progress
    assert ("reading teams", 130, 130) in progress


async def test_read_snapshot_with_a_virtual_key_names_its_owner() -> None:
    fake = FakeProxy(version="1.74.0")

    def virtual_key(request: httpx.Request, body: dict[str, object]) -> httpx.Response | None:
        if request.url.path == "/key/info":
            return httpx.Response(200, json={"key": "hashed", "info": {"user_id": "ops-bot"}})
        return None

    fake.faults.append(virtual_key)
    async with fake.client() as client:
        snap = await read_snapshot(client)
    assert snap.caller_user_id == "ops-bot"
    assert snap.proxy_version == "1.74.0"
    assert snap.users == () and snap.teams == ()
