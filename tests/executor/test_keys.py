"""No API key is ever lost (issues 16 and 9 §3), over the fake proxy: keys are handed to ``on_key`` before the
user's "key pending" marker is cleared, markers are cleared in batches, a lost create answer ends with a
new working key, and a marker left by an interrupted run is repaired (or kept, when a journal holds it)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from litellm_usersync.apply.executor import KEPT_NOTE, LOST_KEY_NOTE, REISSUED_NOTE, apply_plan
from litellm_usersync.models import KEY_PENDING, DesiredState, DesiredUser, ItemKind, PlanOptions, ReissueKey
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.snapshot import read_snapshot

from ._fake_proxy import FakeProxy, key_for

NEW, OLD = "1.110.2", "1.74.0"


def fake_with(version: str, *, pending: tuple[str, ...] = ()) -> FakeProxy:
    fake = FakeProxy(version=version)
    fake.add_team("t-dev", "development")
    for uid in pending:  # what a killed run leaves: a user with its minted key and the marker still set
        fake._create(
            {
                "user_id": uid,
                "user_email": uid,
                "user_role": "internal_user",
                "metadata": {"managed_by": "litellm-usersync", KEY_PENDING: True},
            }
        )
    return fake


def desired(*emails: str) -> DesiredState:
    return DesiredState(
        tuple(DesiredUser(e, "internal_user", ("development",) if "team" in e else None) for e in emails)
    )


async def run(fake: FakeProxy, ds: DesiredState, **kw: Any) -> Any:
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
        plan = build_plan(ds, snapshot, PlanOptions())
        return plan, await apply_plan(client, plan, **kw)


def pending(fake: FakeProxy) -> set[str]:
    return {uid for uid, u in fake.users.items() if (u.get("metadata") or {}).get(KEY_PENDING)}


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_every_key_reaches_on_key_before_its_marker_is_cleared(version: str) -> None:
    fake = fake_with(version)
    seen: list[tuple[str, str, bool]] = []

    def on_key(uid: str, _email: str, key: str, _note: str | None) -> None:
        seen.append((uid, key, uid in pending(fake)))  # the marker is still set while the key is recorded

    _plan, report = await run(fake, desired("a@x.com", "b@x.com", "team-c@x.com"), on_key=on_key)
    assert sorted(seen) == sorted((u, key_for(u), True) for u in ("a@x.com", "b@x.com", "team-c@x.com"))
    assert pending(fake) == set()
    assert report.keys_unknown == () and report.markers_left == ()
    # cleared in one batch where the proxy has /user/bulk_update, else one update per user
    if version == NEW:
        assert fake.count("POST /user/bulk_update") == 1 and fake.count("POST /user/update") == 0
    else:
        assert fake.count("POST /user/update") == 3


async def test_a_key_that_cannot_be_recorded_keeps_its_marker() -> None:
    fake = fake_with(NEW)

    def disk_full(uid: str, _email: str, _key: str, _note: str | None) -> None:
        if uid == "b@x.com":
            raise OSError(28, "No space left on device")

    _plan, report = await run(fake, desired("a@x.com", "b@x.com"), on_key=disk_full)
    assert pending(fake) == {"b@x.com"}  # the next run reissues it
    assert report.keys_unknown == ("b@x.com",)
    row = next(r for r in report.results if r.item.user_id == "b@x.com")
    assert row.success is False and "could not be recorded" in (row.error or "")


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_a_lost_create_answer_ends_with_a_new_working_key(version: str) -> None:
    """Bulk (a whole chunk's answer lost) and per-user: the unseen key is revoked, a new one issued."""
    fake = fake_with(version)
    lost = [True]

    async def lose_first_create(request: httpx.Request) -> httpx.Response:
        response = await fake.handle(request)
        if request.url.path in ("/user/new", "/management/v1/users/bulk") and lost[0]:
            lost[0] = False
            raise httpx.ReadTimeout("answer lost")
        return response

    ds = desired("a@x.com", "b@x.com")
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
        plan = build_plan(ds, snapshot, PlanOptions())
        client._http._transport = httpx.MockTransport(lose_first_create)
        report = await apply_plan(client, plan)
    assert report.keys_unknown == ()
    for r in report.results:
        assert r.success and r.api_key, r
        assert fake.keys_of(r.item.user_id) == [r.api_key]  # the only key the user has is the reported one
    lost_rows = [r for r in report.results if r.note == LOST_KEY_NOTE]
    assert len(lost_rows) == (2 if version == NEW else 1)  # the whole chunk, or the one user
    assert pending(fake) == set()


async def test_a_lost_key_whose_reissue_fails_is_counted_and_stays_marked() -> None:
    fake = fake_with(OLD)

    def no_keys(request: httpx.Request, _body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/key/generate":
            return httpx.Response(400, json={"error": {"message": "key generation disabled"}})
        return None

    async def lose_create(request: httpx.Request) -> httpx.Response:
        response = await fake.handle(request)
        if request.url.path == "/user/new":
            raise httpx.ReadTimeout("answer lost")
        return response

    fake.faults.append(no_keys)
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
        plan = build_plan(desired("a@x.com"), snapshot, PlanOptions())
        client._http._transport = httpx.MockTransport(lose_create)
        report = await apply_plan(client, plan)
    assert report.keys_unknown == ("a@x.com",)
    (row,) = report.results
    assert row.success is False and "API key is unknown" in (row.error or "")
    assert pending(fake) == {"a@x.com"}


async def test_the_plan_repairs_a_marker_an_interrupted_run_left() -> None:
    fake = fake_with(NEW, pending=("lost@x.com",))
    old_key = key_for("lost@x.com")
    fake.add_user("ok@x.com", "ok@x.com", "internal_user")
    got: dict[str, str] = {}
    plan, report = await run(fake, desired("lost@x.com", "ok@x.com"), on_key=lambda u, _e, k, _n: got.__setitem__(u, k))
    (item,) = [i for i in plan.items if i.user_id == "lost@x.com"]
    assert item.kind is ItemKind.UPDATE and item.actions == (ReissueKey("lost@x.com", "lost@x.com"),)
    assert next(i for i in plan.items if i.user_id == "ok@x.com").kind is ItemKind.UNCHANGED
    (row,) = [r for r in report.results if r.item.user_id == "lost@x.com"]
    assert row.success and row.api_key and row.api_key != old_key and row.note == REISSUED_NOTE
    assert fake.keys_of("lost@x.com") == [row.api_key] == [got["lost@x.com"]]
    assert pending(fake) == set()


async def test_a_key_recorded_in_a_journal_is_kept_not_revoked() -> None:
    """Killed between writing the journal and clearing the marker: the key is in a journal, so it is kept."""
    fake = fake_with(NEW, pending=("lost@x.com",))
    recorded = key_for("lost@x.com")
    _plan, report = await run(fake, desired("lost@x.com"), recorded_keys={"lost@x.com": recorded})
    (row,) = report.results
    assert row.success and row.api_key == recorded and row.note == KEPT_NOTE
    assert fake.keys_of("lost@x.com") == [recorded]
    assert fake.count("POST /key/delete") == 0 and fake.count("POST /key/generate") == 0
    assert pending(fake) == set()


async def test_a_stale_repair_does_not_revoke_a_key_recorded_since() -> None:
    """A saved plan's repair applied after another run fixed the user: the marker is re-read first."""
    fake = fake_with(NEW, pending=("lost@x.com",))
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
    plan = build_plan(desired("lost@x.com"), snapshot, PlanOptions())
    fake.users["lost@x.com"]["metadata"] = {"managed_by": "litellm-usersync"}  # repaired meanwhile
    async with fake.client() as client:
        report = await apply_plan(client, plan)
    assert report.results[0].success
    assert fake.keys_of("lost@x.com") == [key_for("lost@x.com")]
    assert fake.count("POST /key/delete") == 0


async def test_team_bound_keys_are_never_revoked_by_a_repair() -> None:
    fake = fake_with(NEW, pending=("lost@x.com",))
    team_key = "sk-team-bound-key-0001"
    fake.keys[hashlib.sha256(team_key.encode()).hexdigest()] = {
        "user_id": "lost@x.com",
        "team_id": "t-dev",
        "key": team_key,
    }
    _plan, report = await run(fake, desired("lost@x.com"))
    new = report.results[0].api_key
    assert new and fake.keys_of("lost@x.com") == sorted([team_key, new])


async def test_a_lost_chunk_interrupted_before_its_keys_were_replaced_says_so() -> None:
    """Ctrl-C right after a bulk chunk's answer was lost: no new key is issued (nothing new starts), so the
    rows say the key is unknown (FAILED, counted) and the markers stay for the next run."""
    import asyncio

    fake = fake_with(NEW)
    stop = asyncio.Event()

    async def lose_and_stop(request: httpx.Request) -> httpx.Response:
        response = await fake.handle(request)
        if request.url.path == "/management/v1/users/bulk" and not stop.is_set():
            stop.set()
            raise httpx.ReadTimeout("answer lost")
        return response

    async with fake.client() as client:
        snapshot = await read_snapshot(client)
        plan = build_plan(desired("a@x.com", "b@x.com"), snapshot, PlanOptions())
        client._http._transport = httpx.MockTransport(lose_and_stop)
        report = await apply_plan(client, plan, stop=stop)
    assert report.keys_unknown == ("a@x.com", "b@x.com")
    for r in report.results:
        assert not r.success and "API key is unknown" in (r.error or ""), r
        assert r.partial and not r.not_attempted, r  # created (add lists it), its key unknown
    assert pending(fake) == {"a@x.com", "b@x.com"}
    assert fake.count("POST /key/generate") == 0
