"""The incremental read is exactly the full read, on the real proxy (issue 14).

A randomized run interleaves other clients' changes through every user, team and key endpoint of the API
contract (including those that do not bump ``updated_at``: team deletes, key writes) with cached reads, and
compares each cached snapshot with a full read made right after it. The short version runs in the suite;
``USERSYNC_EQUIVALENCE_STEPS=200`` makes the long one, ``USERSYNC_EQUIVALENCE_SEED=N`` replays a seed.
Then each fall-back of the issue, the no-change read's request count and the re-read before destructive writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from litellm_usersync.apply.cached_read import CachedRead, read_for_run
from litellm_usersync.errors import ProxyError
from litellm_usersync.models import ChangeRole, ItemKind, Plan, PlanItem, Snapshot
from litellm_usersync.models.readcache import WATERMARK_OVERLAP_S
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.incremental import ReadPolicy
from litellm_usersync.proxy.reread import reread_for_plan

from .conftest import Proxy, create_users

pytestmark = pytest.mark.litellm(">=1.110", reason="/user/list sorts by updated_at from 1.110")

STEPS = int(os.environ.get("USERSYNC_EQUIVALENCE_STEPS", "10"))
#: a wait after which writes are older than the next watermark (the proxy's Date was seen ~2 s behind)
PAST_OVERLAP_S = WATERMARK_OVERLAP_S + 4
TEAMS = ("t-red", "t-green", "t-blue")
Op = Callable[[ProxyClient, random.Random], Awaitable[str]]


# --------------------------------------------------------------------------------------------------
# Other clients' changes, through every endpoint of the contract


async def _users(c: ProxyClient) -> list[dict[str, Any]]:
    data = await c.request_object("GET", "/user/list", params={"page": 1, "page_size": 100})
    return [u for u in data["users"] if u["user_id"] != "default_user_id"]


async def _teams(c: ProxyClient) -> list[str]:
    data = await c.request_object("GET", "/v2/team/list", params={"page": 1, "page_size": 100})
    return [t["team_id"] for t in data["teams"]]


async def _keys(c: ProxyClient) -> list[dict[str, Any]]:
    return (await c.list_keys_page(1)).items


async def _some_user(c: ProxyClient, rng: random.Random) -> str | None:
    users = await _users(c)
    return rng.choice(users)["user_id"] if users else None


async def _post(c: ProxyClient, path: str, body: dict[str, Any]) -> str:
    try:
        await c.request("POST", path, body=body, retry=lambda e: False)
    except ProxyError as exc:  # a leave of a non-member, a duplicate: the attempt is part of the mix
        return f"{path} → {exc.status}"
    return path


async def op_user_new(c: ProxyClient, rng: random.Random) -> str:
    n = rng.randrange(10**6)
    body: dict[str, Any] = {"user_id": f"n{n}@x.com", "user_email": f"n{n}@x.com", "user_role": "internal_user"}
    body["auto_create_key"] = rng.random() < 0.3
    if rng.random() < 0.5:
        body["teams"] = [rng.choice(await _teams(c))]
    return await _post(c, "/user/new", body)


async def op_user_update(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    field = rng.choice(
        [
            {"user_role": "internal_user_viewer"},
            {"user_role": "internal_user"},
            {"user_alias": f"a{rng.random()}"},
            {"metadata": {"note": rng.randrange(9)}},
            {"max_budget": float(rng.randrange(1, 50))},
            {"spend": 1.5},
        ]
    )
    return await _post(c, "/user/update", {"user_id": uid, **field}) if uid else "none"


async def op_bulk_update(c: ProxyClient, rng: random.Random) -> str:
    users = await _users(c)
    picked = rng.sample(users, min(2, len(users)))
    role = rng.choice(["internal_user", "internal_user_viewer"])
    return await _post(
        c, "/user/bulk_update", {"users": [{"user_id": u["user_id"], "user_role": role} for u in picked]}
    )


async def op_user_delete(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    return await _post(c, "/user/delete", {"user_ids": [uid]}) if uid else "none"


async def op_bulk_create(c: ProxyClient, rng: random.Random) -> str:
    n = rng.randrange(10**6)
    teams = await _teams(c)
    body = [
        {"user_id": f"b{n}-{i}@x.com", "user_email": f"b{n}-{i}@x.com", "teams": [rng.choice(teams)]} for i in range(2)
    ]
    return await _post(c, "/management/v1/users/bulk", {"users": body})


async def op_bulk_delete(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    return await _post(c, "/management/v1/users/bulk_delete", {"user_ids": [uid]}) if uid else "none"


async def op_member_add(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    team = rng.choice(await _teams(c))
    return await _post(c, "/team/member_add", {"team_id": team, "member": {"user_id": uid, "role": "user"}})


async def op_bulk_member_add(c: ProxyClient, rng: random.Random) -> str:
    users = await _users(c)
    team = rng.choice(await _teams(c))
    members = [{"user_id": u["user_id"], "role": "user"} for u in rng.sample(users, min(2, len(users)))]
    return await _post(c, "/team/bulk_member_add", {"team_id": team, "members": members})


async def op_member_delete(c: ProxyClient, rng: random.Random) -> str:
    users = [u for u in await _users(c) if u.get("teams")]
    if not users:
        return "none"
    u = rng.choice(users)
    return await _post(c, "/team/member_delete", {"team_id": rng.choice(u["teams"]), "user_id": u["user_id"]})


async def op_bulk_member_delete(c: ProxyClient, rng: random.Random) -> str:
    users = [u for u in await _users(c) if u.get("teams")]
    if not users:
        return "none"
    u = rng.choice(users)
    team = rng.choice(u["teams"])
    return await _post(c, f"/management/v1/teams/{team}/members/bulk_delete", {"members": [{"user_id": u["user_id"]}]})


async def op_member_update(c: ProxyClient, rng: random.Random) -> str:
    users = [u for u in await _users(c) if u.get("teams")]
    if not users:
        return "none"
    u = rng.choice(users)
    body = {"team_id": rng.choice(u["teams"]), "user_id": u["user_id"], "max_budget_in_team": float(rng.randrange(9))}
    return await _post(c, "/team/member_update", body)


async def op_team_update(c: ProxyClient, rng: random.Random) -> str:
    team = rng.choice(await _teams(c))
    return await _post(c, "/team/update", {"team_id": team, "team_alias": f"{team}-{rng.randrange(99)}"})


async def op_team_new(c: ProxyClient, rng: random.Random) -> str:
    body: dict[str, Any] = {"team_id": f"t-new-{rng.randrange(10**6)}"}
    uid = await _some_user(c, rng)
    if uid and rng.random() < 0.5:
        body["members_with_roles"] = [{"user_id": uid, "role": "user"}]
    return await _post(c, "/team/new", body)


async def op_team_delete(c: ProxyClient, rng: random.Random) -> str:
    extra = [t for t in await _teams(c) if t not in TEAMS]
    return await _post(c, "/team/delete", {"team_ids": [rng.choice(extra)]}) if extra else "none"


async def op_key_generate(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    body: dict[str, Any] = {"user_id": uid}
    if rng.random() < 0.3:
        body["team_id"] = rng.choice(await _teams(c))
    return await _post(c, "/key/generate", body) if uid else "none"


async def op_key_update(c: ProxyClient, rng: random.Random) -> str:
    keys = await _keys(c)
    if not keys:
        return "none"
    k = rng.choice(keys)
    if rng.random() < 0.5:
        uid = await _some_user(c, rng)
        return await _post(c, "/key/update", {"key": k["token"], "user_id": uid})  # the key changes owner
    return await _post(c, "/key/update", {"key": k["token"], "key_alias": f"alias-{rng.randrange(10**6)}"})


async def op_key_block(c: ProxyClient, rng: random.Random) -> str:
    keys = await _keys(c)
    if not keys:
        return "none"
    return await _post(c, rng.choice(["/key/block", "/key/unblock"]), {"key": rng.choice(keys)["token"]})


async def op_key_delete(c: ProxyClient, rng: random.Random) -> str:
    keys = await _keys(c)
    return await _post(c, "/key/delete", {"keys": [rng.choice(keys)["token"]]}) if keys else "none"


async def op_invitation(c: ProxyClient, rng: random.Random) -> str:
    uid = await _some_user(c, rng)
    return await _post(c, "/invitation/new", {"user_id": uid}) if uid else "none"


#: (operation, weight): changes that force a full read (deletes) are rarer, so most reads are incremental
OPS: list[tuple[Op, int]] = [
    (op_user_new, 3), (op_user_update, 4), (op_bulk_update, 3), (op_user_delete, 1), (op_bulk_create, 2),
    (op_bulk_delete, 1), (op_member_add, 4), (op_bulk_member_add, 2), (op_member_delete, 2),
    (op_bulk_member_delete, 1), (op_member_update, 2), (op_team_update, 2), (op_team_new, 1), (op_team_delete, 1),
    (op_key_generate, 3), (op_key_update, 2), (op_key_block, 2), (op_key_delete, 1), (op_invitation, 1),
]  # fmt: skip


# --------------------------------------------------------------------------------------------------


def _arrange(c: ProxyClient) -> Awaitable[None]:
    async def go() -> None:
        for t in TEAMS:
            await c.create_team(t, team_id=t)
        bodies = [
            {"user_id": f"u{i}@x.com", "user_email": f"u{i}@x.com", "user_role": "internal_user",
             "teams": [TEAMS[i % 3]], "auto_create_key": False}
            for i in range(12)
        ]  # fmt: skip
        await create_users(c, bodies)
        for i in range(3):
            await c.generate_key(f"u{i}@x.com")

    return go()


def assert_same(cached: Snapshot, full: Snapshot, context: str) -> None:
    by_id = {u.user_id: u for u in full.users}
    for u in cached.users:
        assert u == by_id.get(u.user_id), f"{context}: user {u.user_id} differs from the full read"
    assert [u.user_id for u in cached.users] == [u.user_id for u in full.users], context
    assert cached.teams == full.teams, context
    assert (cached.caller_user_id, cached.features) == (full.caller_user_id, full.features), context


async def _read(proxy: Proxy, state: Path | None, **kw: Any) -> tuple[CachedRead, int]:
    async with ProxyClient(proxy.settings()) as c:  # each read is a new run: a new client
        read = await read_for_run(c, state, ReadPolicy(**kw))
        return read, sum(c.request_counts.values())


def test_cached_reads_equal_full_reads(clean_proxy: Proxy, tmp_path: Path) -> None:
    seed = int(os.environ.get("USERSYNC_EQUIVALENCE_SEED") or random.randrange(10**9))
    rng = random.Random(seed)
    state = tmp_path / "state"
    ops, weights = zip(*OPS, strict=True)

    async def go() -> Counter[str]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
        first, _ = await _read(clean_proxy, state)
        assert first.outcome.mode == "full" and first.outcome.cached
        modes: Counter[str] = Counter()
        done: list[str] = []
        for step in range(STEPS):
            async with ProxyClient(clean_proxy.settings()) as c:
                for op in rng.choices(ops, weights, k=rng.randint(1, 3)):
                    done.append(await op(c, rng))
            cached, _ = await _read(clean_proxy, state)
            full, _ = await _read(clean_proxy, None)
            context = f"seed {seed}, step {step}, after {done[-3:]}, read {cached.outcome}"
            assert_same(cached.snapshot, full.snapshot, context)
            modes[cached.outcome.mode] += 1
        return modes

    modes = asyncio.run(go())
    print(f"seed {seed}: {dict(modes)}")
    # the point is the cache: most reads must have used it (deletes and team deletes fall back by design)
    assert modes["incremental"] >= STEPS // 3, (seed, modes)


def test_no_change_read_is_five_requests(clean_proxy: Proxy, tmp_path: Path) -> None:
    async def go() -> tuple[CachedRead, int, CachedRead, int]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
        full, n_full = await _read(clean_proxy, tmp_path)
        again, n_again = await _read(clean_proxy, tmp_path)
        return full, n_full, again, n_again

    full, _, again, n_again = asyncio.run(go())
    assert full.outcome.mode == "full" and again.outcome.mode == "incremental"
    # version, identity, the keys updated since, one page of users updated since, the team page
    assert n_again == 5, n_again
    assert again.snapshot.users == full.snapshot.users


def test_more_changes_than_the_first_page_are_read_page_by_page(clean_proxy: Proxy, tmp_path: Path) -> None:
    """The first page is small (PROBE_PAGE_SIZE): with more users changed than it holds, the pages that follow
    read them all, and the result is still exactly the full read."""
    from litellm_usersync.proxy.incremental import PROBE_PAGE_SIZE

    async def go() -> tuple[CachedRead, CachedRead, Counter[str]]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
            more = [
                {"user_id": f"v{i}@x.com", "user_email": f"v{i}@x.com", "auto_create_key": False} for i in range(20)
            ]
            await create_users(c, more)
        await _read(clean_proxy, tmp_path)
        await asyncio.sleep(PAST_OVERLAP_S)  # the next read's watermark is after everything above
        async with ProxyClient(clean_proxy.settings()) as c:
            changed = [f"v{i}@x.com" for i in range(PROBE_PAGE_SIZE + 5)]
            await c.bulk_update_users([{"user_id": u, "user_role": "internal_user_viewer"} for u in changed])
        # pages of 10 after the probe: two of them, then the first again (a write while paging moves its user)
        async with ProxyClient(clean_proxy.settings(page_size=10)) as c:
            cached = await read_for_run(c, tmp_path, ReadPolicy())
            counts = Counter(c.request_counts)
        full, _ = await _read(clean_proxy, None)
        return cached, full, counts

    cached, full, counts = asyncio.run(go())
    assert cached.outcome.mode == "incremental", cached.outcome
    assert cached.outcome.users_reread >= PROBE_PAGE_SIZE + 5
    assert_same(cached.snapshot, full.snapshot, "after 15 role changes")
    assert {u.user_id: u.role for u in cached.snapshot.users}["v14@x.com"] == "internal_user_viewer"
    assert counts["GET /user/list"] >= 3, counts  # the probe, then the pages


FALLBACKS: dict[str, tuple[str, Callable[[ProxyClient], Awaitable[Any]]]] = {
    "a user deleted": ("users were deleted", lambda c: c.delete_users(["u5@x.com"])),
    "a team deleted": ("team t-blue was deleted", lambda c: _post(c, "/team/delete", {"team_ids": ["t-blue"]})),
    # a key older than the watermark: the cache has no mark of it, so only the key total tells
    "an old key deleted": ("keys were deleted", lambda c: _delete_oldest_key(c)),
}  # fmt: skip


async def _delete_oldest_key(c: ProxyClient) -> None:
    keys = (await c.list_keys_page(1)).items
    await c.delete_keys([keys[-1]["token"]])


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_changes_that_escape_updated_at_fall_back_to_the_full_read(
    clean_proxy: Proxy, tmp_path: Path, case: str
) -> None:
    why, change = FALLBACKS[case]

    async def go() -> tuple[CachedRead, CachedRead]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
        if "key" in case:
            await asyncio.sleep(PAST_OVERLAP_S)  # past the overlap of the watermark
        await _read(clean_proxy, tmp_path)
        async with ProxyClient(clean_proxy.settings()) as c:
            await change(c)
        cached, _ = await _read(clean_proxy, tmp_path)
        full, _ = await _read(clean_proxy, None)
        return cached, full

    cached, full = asyncio.run(go())
    assert cached.outcome.mode == "full", cached.outcome
    assert why in cached.outcome.reason, cached.outcome
    assert_same(cached.snapshot, full.snapshot, case)


def test_other_reasons_for_the_full_read(clean_proxy: Proxy, tmp_path: Path) -> None:
    async def go() -> dict[str, CachedRead]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
        out: dict[str, CachedRead] = {}
        out["no cache"] = (await _read(clean_proxy, tmp_path))[0]
        out["--full-read"] = (await _read(clean_proxy, tmp_path, full_read=True))[0]
        out["too old"] = (await _read(clean_proxy, tmp_path, full_read_after_s=0))[0]
        path = out["too old"].path
        assert path is not None and path.stat().st_mode & 0o777 == 0o600
        header, *rest = path.read_text().splitlines()
        doc = json.loads(header)
        path.write_text("\n".join([json.dumps({**doc, "proxy_version": "1.109.0"}), *rest]) + "\n")
        out["another proxy version"] = (await _read(clean_proxy, tmp_path))[0]
        path.write_text(path.read_text()[:-40])
        out["damaged"] = (await _read(clean_proxy, tmp_path))[0]
        out["used"] = (await _read(clean_proxy, tmp_path))[0]
        return out

    reads = asyncio.run(go())
    reasons = {k: r.outcome.reason for k, r in reads.items()}
    assert [k for k, r in reads.items() if r.outcome.mode == "incremental"] == ["used"], reasons
    assert reasons["no cache"] == "no cache of an earlier run"
    assert reasons["--full-read"] == "--full-read"
    assert "old (--full-read-after 0 h)" in reasons["too old"]
    assert "LiteLLM 1.109.0" in reasons["another proxy version"]
    assert "damaged" in reasons["damaged"] or "incomplete" in reasons["damaged"]
    text = reads["used"].path.read_text() if reads["used"].path else ""
    assert "sk-" not in text and clean_proxy.master_key not in text  # no secret in the cache


def test_destructive_users_are_read_again_and_replanned(clean_proxy: Proxy, tmp_path: Path) -> None:
    """A cache that says something else than the proxy (here: edited) never decides a destructive write."""

    async def go() -> tuple[bool, str | None]:
        async with ProxyClient(clean_proxy.settings()) as c:
            await _arrange(c)
        await asyncio.sleep(PAST_OVERLAP_S)  # past the overlap: the next read takes u7 from the cache, not the proxy
        full, _ = await _read(clean_proxy, tmp_path)
        assert full.path is not None
        lines = full.path.read_text().splitlines()
        edited = [line.replace('"internal_user"', '"proxy_admin"') if '"u7@x.com"' in line else line for line in lines]
        full.path.write_text("\n".join(edited) + "\n")
        stale, _ = await _read(clean_proxy, tmp_path)
        assert stale.outcome.mode == "incremental"
        assert stale.snapshot.users_by_id["u7@x.com"].role == "proxy_admin"  # what the (edited) cache says
        demote = ChangeRole("u7@x.com", "u7@x.com", "proxy_admin", "internal_user_viewer")
        item = PlanItem(ItemKind.UPDATE, "u7@x.com", "u7@x.com", "internal_user_viewer", (), actions=(demote,))
        async with ProxyClient(clean_proxy.settings()) as c:
            plan = Plan(items=(item,))
            fresh, changed = await reread_for_plan(c, stale.snapshot, plan)
        return changed, fresh.users_by_id["u7@x.com"].role

    changed, role = asyncio.run(go())
    assert changed is True
    assert role == "internal_user"


def test_sync_cli_uses_the_cache_and_converges(clean_proxy: Proxy, cli_run: Callable[..., Any], workdir: Path) -> None:
    async def arrange(c: ProxyClient) -> None:
        await _arrange(c)

    clean_proxy.run(arrange)
    rows = [f"u{i}@x.com,internal_user,{TEAMS[(i + 1) % 3] if i < 2 else TEAMS[i % 3]}" for i in range(11)]
    (workdir / "u.csv").write_text("email,role,team_name\n" + "\n".join(rows) + "\n")
    first = cli_run("sync", "--csv-file", "u.csv", "--no-backup", "--debug")
    assert first.exit_code == 0, first.output
    assert "read: full (no cache of an earlier run)" in first.stderr
    second = cli_run("sync", "--csv-file", "u.csv", "--no-backup", "--debug")
    assert second.exit_code == 0, second.output
    assert "read: incremental" in second.stderr
    assert "Nothing to change." in second.stdout
