"""Blocks and reactivations over the fake proxy (apply/blocking.py): the record is written before the first key
is blocked and marked done after the last, so a block cut short is completed by the next run; a reactivation
unblocks exactly the keys the record names."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.models import BLOCK_RECORD, DesiredState, DesiredUser, ItemKind, PlanOptions
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.snapshot import read_snapshot
from litellm_usersync.proxy.userkeys import with_user_keys

from ._fake_proxy import FakeProxy

NOW = "2026-12-02T00:00:00Z"


def _hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def fake_with_keys() -> FakeProxy:
    fake = FakeProxy(version="1.110.2")
    fake.add_team("t-dev", "development")
    fake.add_user("stay@x.com", "stay@x.com", "internal_user", ("t-dev",))
    fake.add_user("gone@x.com", "gone@x.com", "internal_user", ("t-dev",))
    fake.users["gone@x.com"]["metadata"] = {"cost_center": "42"}
    fake.users["gone@x.com"]["max_budget"] = None
    fake.keys[_hash("personal")] = {"user_id": "gone@x.com", "team_id": None, "key": "sk-personal"}
    fake.keys[_hash("team")] = {"user_id": "gone@x.com", "team_id": "t-dev", "key": "sk-team"}
    fake.keys[_hash("old")] = {"user_id": "gone@x.com", "team_id": None, "key": "sk-old", "blocked": True}
    return fake


async def run(fake: FakeProxy, emails: tuple[str, ...], **options: Any) -> Any:
    async with fake.client(attempts=1) as client:
        snapshot = await read_snapshot(client)
        opts = PlanOptions(deprovision="block", now=NOW, **options)
        ds = DesiredState(tuple(DesiredUser(e, None, ("development",)) for e in emails))
        plan = build_plan(ds, snapshot, opts)
        snapshot = await with_user_keys(client, snapshot, plan)
        plan = build_plan(ds, snapshot, opts)
        return plan, await apply_plan(client, plan)


def record(fake: FakeProxy) -> dict[str, Any]:
    return fake.users["gone@x.com"]["metadata"][BLOCK_RECORD]


async def test_the_record_is_written_before_the_first_key_is_blocked() -> None:
    fake = fake_with_keys()
    seen: list[str] = []

    def watch(request: httpx.Request) -> None:
        if request.url.path == "/key/block":  # what the user looked like when its first key was blocked
            seen.append(str(fake.users["gone@x.com"]["metadata"].get(BLOCK_RECORD, {}).get("state")))

    fake.on_request = watch
    plan, report = await run(fake, ("stay@x.com",))
    assert [i.email for i in plan.of_kind(ItemKind.BLOCK)] == ["gone@x.com"]
    assert report.ok, report.failed
    assert seen == ["blocking", "blocking"], "both /key/block calls came after the record"
    assert {h: k.get("blocked") for h, k in fake.keys.items()} == {
        _hash("personal"): True,
        _hash("team"): True,
        _hash("old"): True,
    }
    user = fake.users["gone@x.com"]
    assert user["user_role"] == "internal_user_viewer" and user["max_budget"] == 0.0
    assert user["metadata"]["cost_center"] == "42"
    assert record(fake)["state"] == "blocked"
    assert sorted(record(fake)["tokens"]) == sorted([_hash("personal"), _hash("team")])
    assert record(fake)["role"] == "internal_user" and record(fake)["at"] == NOW
    # a rerun plans nothing and sends no write
    before = len([e for e in fake.log if not e.startswith("GET")])
    plan, _ = await run(fake, ("stay@x.com",))
    assert not plan.has_changes
    assert len([e for e in fake.log if not e.startswith("GET")]) == before


async def test_a_block_cut_short_is_completed_and_a_reactivation_unblocks_only_its_keys() -> None:
    fake = fake_with_keys()
    calls = {"n": 0}

    def second_block_fails(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/key/block":
            calls["n"] += 1
            if calls["n"] == 2:
                return httpx.Response(400, json={"error": {"message": "scripted refusal"}})
        return None

    fake.faults.append(second_block_fails)
    _, report = await run(fake, ("stay@x.com",))
    (failed,) = report.failed
    assert failed.item.kind is ItemKind.BLOCK and "blocked 1 of 2 API key(s)" in (failed.error or "")
    assert record(fake)["state"] == "blocking"
    assert sorted(bool(fake.keys[_hash(n)].get("blocked")) for n in ("personal", "team")) == [False, True]

    fake.faults.clear()
    plan, report = await run(fake, ("stay@x.com",))
    (item,) = plan.of_kind(ItemKind.BLOCK)
    assert item.actions[0].resume  # type: ignore[union-attr]
    assert report.ok and record(fake)["state"] == "blocked"
    assert all(fake.keys[_hash(n)]["blocked"] for n in ("personal", "team"))

    # back in the CSV: exactly the two keys unblocked, the admin's stays blocked, role and budget back
    plan, report = await run(fake, ("stay@x.com", "gone@x.com"))
    assert [i.email for i in plan.of_kind(ItemKind.REACTIVATE)] == ["gone@x.com"]
    assert report.ok, report.failed
    assert {n: fake.keys[_hash(n)]["blocked"] for n in ("personal", "team", "old")} == {
        "personal": False,
        "team": False,
        "old": True,
    }
    user = fake.users["gone@x.com"]
    assert user["user_role"] == "internal_user" and user["max_budget"] is None
    assert not user["metadata"].get(BLOCK_RECORD) and user["metadata"]["cost_center"] == "42"


async def test_a_reactivation_where_the_csv_manages_role_and_budget_writes_the_csvs_values_once() -> None:
    fake = fake_with_keys()
    fake.users["gone@x.com"]["max_budget"] = 25.0
    _, report = await run(fake, ("stay@x.com",))
    assert report.ok and record(fake)["max_budget"] == 25.0
    updates: list[dict[str, Any]] = []

    def watch(request: httpx.Request) -> None:
        if request.method != "POST" or not request.content:  # a route probe
            return
        if request.url.path == "/user/update":
            updates.append(json.loads(request.content))
        elif request.url.path == "/user/bulk_update":
            updates.extend(json.loads(request.content)["users"])

    fake.on_request = watch
    rows = (
        DesiredUser("stay@x.com", None, ("development",)),
        DesiredUser("gone@x.com", "proxy_admin", ("development",), fields=(("max_budget", 10.0), ("tpm_limit", 5))),
    )
    async with fake.client(attempts=1) as client:
        plan = build_plan(DesiredState(rows), await read_snapshot(client), PlanOptions(deprovision="block", now=NOW))
        assert [i.email for i in plan.of_kind(ItemKind.REACTIVATE)] == ["gone@x.com"]
        report = await apply_plan(client, plan)
    assert report.ok, report.failed
    user = fake.users["gone@x.com"]
    assert (user["user_role"], user["max_budget"], user["tpm_limit"]) == ("proxy_admin", 10.0, 5)
    assert not user["metadata"].get(BLOCK_RECORD)
    # the budget and the role each sent once (by the reactivation), the limit by the field update (single or bulk)
    assert [u["max_budget"] for u in updates if "max_budget" in u] == [10.0]
    assert [u["user_role"] for u in updates if "user_role" in u] == ["proxy_admin"]
    assert [u["tpm_limit"] for u in updates if "tpm_limit" in u] == [5]
    async with fake.client(attempts=1) as client:
        again = build_plan(DesiredState(rows), await read_snapshot(client), PlanOptions(deprovision="block", now=NOW))
    assert not again.has_changes
