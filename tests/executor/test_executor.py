"""The executor against an in-memory fake proxy (``_fake_proxy.FakeProxy`` over httpx.MockTransport).

Bounded concurrency, one outcome per action, dependent leaves skipped, roster writes per team never
overlapping, bulk and per-user paths giving the same report, the recreation fallback, and a stop event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litellm_usersync.apply.executor import LEAVE_ROUNDS, Executor, apply_plan
from litellm_usersync.identity import normalize_email
from litellm_usersync.models import (
    KEY_PENDING,
    RECREATE_FIELDS,
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    OutcomeStatus,
    Plan,
    PlanOptions,
    RemoveMembership,
    RowStatus,
    RunReport,
    Snapshot,
    TeamKey,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.snapshot import read_snapshot

from ..unit.test_planner import cases
from ._fake_proxy import MASTER, FakeProxy, Fault, key_for

NEW = "1.110.2"
OLD = "1.74.0"
#: the GETs that ask whether a batch route exists (once per client: the executor here has a fresh one)
PROBES = ("GET /management/", "GET /user/bulk_update", "GET /team/bulk_member_add")


def row(email: str, role: str | None = None, teams: Sequence[str] | None = None) -> DesiredUser:
    return DesiredUser(email, role, None if teams is None else tuple(teams))


def seeded(version: str | None) -> FakeProxy:
    fake = FakeProxy(version=version)
    for tid, alias in (("t-dev", "development"), ("t-sup", "support"), ("t-ops", "ops"), ("t-adm", "admin")):
        fake.add_team(tid, alias)
    fake.add_user("default_user_id", None, "proxy_admin", ("t-dev",))
    fake.add_user("u-anon", None, "internal_user", ("t-dev",))
    fake.add_user("u-keep", "keep@x.com", "internal_user", ("t-dev",))
    fake.add_user("u-role", "role@x.com", "internal_user", ("t-sup",))
    fake.add_user("u-move", "move@x.com", "internal_user", ("t-dev",))
    fake.add_user("u-multi", "Multi@x.com", "proxy_admin_viewer", ("t-dev", "t-adm"))
    fake.add_user("u-gone1", "gone1@x.com", "internal_user", ("t-dev", "t-sup"))
    fake.add_user("u-gone2", "gone2@x.com", "proxy_admin", ())
    return fake


DESIRED = DesiredState(
    (
        row("keep@x.com", "internal_user", ["development"]),
        row("role@x.com", "proxy_admin"),
        row("move@x.com", None, ["support"]),
        row("multi@x.com", "internal_user", ["support", "ops"]),
        row("new1@x.com", "internal_user", ["development"]),
        row("new2@x.com", None, ["support", "ops"]),
        row("new3@x.com", "internal_user_viewer"),
        row("ghost@x.com", "internal_user", ["Nope"]),
    )
)


async def plan_on(fake: FakeProxy, desired: DesiredState = DESIRED, **options: Any) -> Plan:
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
    return build_plan(desired, snapshot, PlanOptions(**options))


async def run(fake: FakeProxy, plan: Plan, *, concurrency: int = 8, **kw: Any) -> RunReport:
    async with fake.client(concurrency=concurrency) as client:
        return await apply_plan(client, plan, concurrency=concurrency, **kw)


def outcome_table(report: RunReport) -> list[tuple[str, str, str | None, str | None, str | None]]:
    return sorted((o.action.key, o.status.value, o.error, o.api_key, o.note) for o in report.outcomes)


# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_full_run_applies_the_plan_and_converges(version: str) -> None:
    fake = seeded(version)
    plan = await plan_on(fake)
    assert plan.refusals == ()
    report = await run(fake, plan)

    # every unblocked action has exactly one outcome, and all succeeded
    assert sorted(o.action.key for o in report.outcomes) == sorted(a.key for a in plan.actions)
    assert all(o.status is OutcomeStatus.DONE for o in report.outcomes)
    assert [(r.item.email, r.success, r.error) for r in report.results if not r.success] == [
        ("ghost@x.com", False, "Team not found: Nope")
    ]
    assert report.interrupted is False

    state = fake.state()
    assert state["new1@x.com"] == ("new1@x.com", "internal_user", ("t-dev",))
    assert state["new2@x.com"] == ("new2@x.com", "proxy_admin", ("t-ops", "t-sup"))
    assert state["new3@x.com"] == ("new3@x.com", "internal_user_viewer", ())
    assert state["u-move"] == ("move@x.com", "internal_user", ("t-sup",))
    assert state["u-multi"] == ("Multi@x.com", "internal_user", ("t-ops", "t-sup"))
    assert state["u-role"] == ("role@x.com", "proxy_admin", ("t-sup",))
    assert "u-gone1" not in state and "u-gone2" not in state
    assert "ghost@x.com" not in state
    # untouchables untouched
    assert state["default_user_id"] == (None, "proxy_admin", ("t-dev",))
    assert state["u-anon"] == (None, "internal_user", ("t-dev",))
    # rosters agree with users (older proxies would keep the deleted user on t-dev/t-sup without the leaves)
    assert "u-gone1" not in fake.rosters()["t-dev"] and "u-gone1" not in fake.rosters()["t-sup"]
    # new users' keys are reported
    keys = {r.item.email: r.api_key for r in report.results}
    assert keys["new1@x.com"] == key_for("new1@x.com")

    again = await plan_on(fake)
    assert again.actions == ()


async def test_bulk_and_per_user_paths_give_the_same_report_and_state() -> None:
    new, old = seeded(NEW), seeded(OLD)
    plan_new, plan_old = await plan_on(new), await plan_on(old)
    assert plan_new == plan_old
    report_new = await run(new, plan_new)
    report_old = await run(old, plan_old)
    assert report_new.results == report_old.results
    assert outcome_table(report_new) == outcome_table(report_old)
    assert new.state() == old.state()
    # and the paths were really different
    assert new.count("POST /management/v1/users/bulk") == 1 and old.count("POST /management/v1/users/bulk") == 0
    # one for the role changes, one clearing the "key pending" markers of the 3 new users (not one per user)
    assert new.count("POST /user/bulk_update") == 2
    assert old.count("POST /user/new") == 3 and new.count("POST /user/new") == 0
    assert old.count("POST /user/update") == 2 + 3  # the old proxy has no bulk_update: one per user


async def test_bulk_never_setting_uses_per_user_calls_on_a_new_proxy() -> None:
    fake = seeded(NEW)
    plan = await plan_on(fake)
    async with fake.client(bulk="never") as client:
        report = await apply_plan(client, plan)
    assert report.failed[0].item.email == "ghost@x.com" and len(report.failed) == 1
    assert fake.count("POST /management/v1*") == 0 and fake.count("POST /user/bulk_update") == 0
    assert fake.count("POST /user/new") == 3


@pytest.mark.parametrize("version", [NEW, OLD])
@pytest.mark.parametrize("bound", [1, 3, 8])
async def test_concurrency_never_exceeds_the_bound(version: str, bound: int) -> None:
    fake = FakeProxy(version=version)
    for i in range(6):
        fake.add_team(f"t{i}", f"team{i}")
    for i in range(40):
        fake.add_user(f"u{i}", f"old{i}@x.com", "internal_user", (f"t{i % 6}",))
    rows = [row(f"old{i}@x.com", "proxy_admin", [f"team{(i + 1) % 6}"]) for i in range(40)]
    rows += [row(f"new{i}@x.com", "internal_user", [f"team{i % 6}"]) for i in range(30)]
    plan = await plan_on(fake, DesiredState(tuple(rows)))
    fake.peak = 0
    fake.log.clear()
    report = await run(fake, plan, concurrency=bound)
    assert fake.peak <= bound
    if bound > 1:
        assert fake.peak > 1  # it does run in parallel
    assert not report.failed
    assert fake.roster_overlaps == []
    assert (await plan_on(fake, DesiredState(tuple(rows)))).actions == ()


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_roster_writes_to_one_team_never_overlap(version: str) -> None:
    fake = FakeProxy(version=version)
    fake.add_team("t-hot", "hot")
    fake.add_team("t-cold", "cold")
    for i in range(50):
        fake.add_user(f"u{i}", f"u{i}@x.com", "internal_user", ("t-cold",) if i % 2 else ("t-hot",))
    # everyone swaps: 25 joins and 25 leaves on each of the two teams, plus 20 new members of the hot team
    rows = [row(f"u{i}@x.com", None, ["hot"] if i % 2 else ["cold"]) for i in range(50)]
    rows += [row(f"n{i}@x.com", "internal_user", ["hot"]) for i in range(20)]
    plan = await plan_on(fake, DesiredState(tuple(rows)), max_delete=100)
    report = await run(fake, plan, concurrency=8)
    assert not report.failed
    assert fake.roster_overlaps == []
    assert fake.count("POST /team/member_add") + fake.count("POST /management/v1/teams*") >= 2
    assert (await plan_on(fake, DesiredState(tuple(rows)))).actions == ()


def broken_ops_join(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
    if request.url.path == "/team/member_add" and body.get("team_id") == "t-ops":
        return httpx.Response(500, json={"error": {"message": "db timeout"}})
    return None


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_a_leave_whose_join_failed_is_skipped(version: str) -> None:
    fake = seeded(version)
    fake.faults.append(broken_ops_join)
    plan = await plan_on(fake, allow_recreate=False)
    report = await run(fake, plan)
    by_key = {o.action.key: o for o in report.outcomes}
    assert by_key["join:u-multi:t-ops"].status is OutcomeStatus.FAILED
    assert by_key["join:u-multi:t-sup"].status is OutcomeStatus.DONE
    for leave in ("leave:u-multi:t-dev", "leave:u-multi:t-adm"):
        assert by_key[leave].status is OutcomeStatus.SKIPPED
        assert by_key[leave].error == "not removed from the old team because joining the new team failed"
    # the other user's move is independent and went through
    assert by_key["leave:u-move:t-dev"].status is OutcomeStatus.DONE
    # the user keeps its old teams: no loss of access
    assert fake.state()["u-multi"] == ("Multi@x.com", "internal_user", ("t-adm", "t-dev", "t-sup"))
    multi = next(r for r in report.results if r.item.email == "Multi@x.com")
    assert not multi.success and "db timeout" in (multi.error or "")
    # every action has exactly one outcome
    assert sorted(by_key) == sorted(a.key for a in plan.actions)
    assert len(report.outcomes) == len(by_key)
    # once the proxy is healthy again, a rerun finishes the move
    fake.faults.clear()
    rerun = await run(fake, await plan_on(fake))
    assert [r.item.email for r in rerun.failed] == ["ghost@x.com"]
    assert fake.state()["u-multi"] == ("Multi@x.com", "internal_user", ("t-ops", "t-sup"))


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_a_failed_join_does_not_trigger_the_destructive_recreation(version: str) -> None:
    fake = seeded(version)
    fake.faults.append(broken_ops_join)
    plan = await plan_on(fake)  # recreation allowed (the default)
    report = await run(fake, plan)
    multi = next(r for r in report.results if r.item.email == "Multi@x.com")
    assert not multi.success
    assert multi.recreated is False
    assert fake.count("POST /user/new") == (3 if version == OLD else 0)
    assert fake.state()["u-multi"] == ("Multi@x.com", "internal_user", ("t-adm", "t-dev", "t-sup"))


async def test_new_user_whose_team_join_fails_is_reported_failed_with_its_key() -> None:
    fake = seeded(OLD)

    def broken_ops(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/member_add" and body.get("team_id") == "t-ops":
            return httpx.Response(400, json={"detail": {"error": "Team id=t-ops does not exist in db"}})
        return None

    fake.faults.append(broken_ops)
    report = await run(fake, await plan_on(fake))
    new2 = next(r for r in report.results if r.item.email == "new2@x.com")
    assert not new2.success
    assert new2.error is not None and new2.error.startswith("created, but joining team ops failed:")
    assert new2.api_key == key_for("new2@x.com")  # the key of the created user is not lost
    # typed, not read from the text: the user exists although its row failed
    assert new2.partial and new2.status is RowStatus.PARTIAL and not new2.not_attempted


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_failures_of_one_user_never_stop_the_others(version: str) -> None:
    fake = seeded(version)

    def refuse(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        text = request.content.decode()
        if "new1@x.com" in text and "user" in request.url.path:
            return httpx.Response(422, json={"detail": [{"loc": ["body", "user_email"], "msg": "bad"}]})
        if request.url.path in ("/user/update", "/user/bulk_update") and "u-role" in text:
            return httpx.Response(400, json={"error": {"message": "role change refused"}})
        return None

    fake.faults.append(refuse)
    plan = await plan_on(fake)
    report = await run(fake, plan)
    failed = sorted(r.item.email for r in report.failed)
    assert "role@x.com" in failed and "ghost@x.com" in failed
    assert all(o.action.key in {a.key for a in plan.actions} for o in report.outcomes)
    state = fake.state()
    assert "new3@x.com" in state and state["u-move"][2] == ("t-sup",)
    assert "u-gone1" not in state
    assert state["u-role"][1] == "internal_user"


async def test_per_user_role_change_failure_is_isolated() -> None:
    fake = seeded(OLD)

    def refuse(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/user/update" and body.get("user_id") == "u-role":
            return httpx.Response(400, json={"error": {"message": "role change refused"}})
        return None

    fake.faults.append(refuse)
    report = await run(fake, await plan_on(fake))
    role = next(r for r in report.results if r.item.email == "role@x.com")
    assert role.success is False
    assert role.error == "POST /user/update -> 400: role change refused"
    multi = next(r for r in report.results if r.item.email == "Multi@x.com")
    assert multi.success is True


# --------------------------------------------------------------------------------------------------
# Verification and the recreation fallback


@pytest.mark.parametrize("version", [NEW])
async def test_recreation_runs_when_verification_shows_a_wrong_state(version: str) -> None:
    fake = seeded(version)
    fake.sticky.add(("u-move", "t-dev"))  # member_delete answers 200 but keeps the membership
    plan = await plan_on(fake, recreate_with_keys=True)
    move = next(i for i in plan.items if i.email == "move@x.com")
    assert move.may_recreate
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated is True
    assert result.success is True
    assert result.note == "recreated by the fallback; not carried over: its 1 API key(s) (deleted)"
    assert result.api_key == key_for("u-move")
    assert fake.state()["u-move"] == ("move@x.com", "internal_user", ("t-sup",))
    recreate = [o for o in report.outcomes if o.action.key == "recreate:u-move"]
    assert len(recreate) == 1 and recreate[0].ok
    # only the broken user was recreated
    assert [r.item.email for r in report.results if r.recreated] == ["move@x.com"]
    assert (await plan_on(fake)).actions == ()


async def test_no_recreation_when_not_allowed() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    plan = await plan_on(fake, allow_recreate=False)
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated is False
    assert result.success is False
    assert result.error == "not converged: still in team(s) development"
    assert not any(o.action.key.startswith("recreate:") for o in report.outcomes)
    assert fake.count("POST /user/new") == 0
    # the rest of the run was applied
    assert fake.state()["u-multi"][2] == ("t-ops", "t-sup")


async def test_verification_is_not_run_without_team_changes() -> None:
    fake = seeded(NEW)
    plan = await plan_on(fake, DesiredState((row("role@x.com", "proxy_admin"), row("keep@x.com"))), max_delete=100)
    fake.log.clear()
    await run(fake, plan)
    assert [entry for entry in fake.log if not entry.startswith(("GET /health", *PROBES))] == [
        "POST /management/v1/users/bulk_delete",
        "POST /user/bulk_update",
    ]


async def test_failed_recreation_is_reported() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))

    def no_create(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/user/new":
            return httpx.Response(400, json={"error": {"message": "licence limit reached"}})
        return None

    fake.faults.append(no_create)
    report = await run(fake, await plan_on(fake, recreate_with_keys=True), backup_file="backups/snap.json")
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated is True and result.success is False
    assert result.error == (
        "User recreation failed: the user was deleted, but creating it again failed (POST /user/new -> 400: "
        "licence limit reached); restore it from the backup: litellm-usersync restore backups/snap.json --no-delete"
    )
    assert fake.count("POST /user/new") == 2, "the create after the delete is tried once more"


# --------------------------------------------------------------------------------------------------
# Stopping


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_stop_event_mid_run_leaves_the_rest_not_started(version: str) -> None:
    fake = seeded(version)
    plan = await plan_on(fake)
    stop = asyncio.Event()
    writes = 0

    def stop_after_first_write(request: httpx.Request) -> None:
        nonlocal writes
        if request.method == "POST":
            writes += 1
            if writes == 1:
                stop.set()

    fake.on_request = stop_after_first_write
    fake.log.clear()
    report = await run(fake, plan, concurrency=1, stop=stop)
    assert report.interrupted is True
    assert report.ok is False
    posts = [e for e in fake.log if e.startswith("POST")]
    # what was in flight finished; nothing new started, except clearing the "key pending" marker of the
    # users whose keys arrived (bookkeeping of work done, so the next run does not revoke those keys)
    clears = [e for e in posts if e in ("POST /user/update", "POST /user/bulk_update")]
    assert len(posts) - len(clears) == 1 and len(clears) == 1
    assert not any(u["metadata"].get("usersync_key_pending") for u in fake.users.values())
    not_started = [r for r in report.results if r.error and "not attempted (run interrupted)" in r.error]
    assert len(not_started) >= 4
    # the typed field says the same as the text, row for row
    assert [r for r in report.results if r.not_attempted] == not_started
    assert all(r.status is RowStatus.NOT_ATTEMPTED for r in not_started)
    # the actions that did run have outcomes; the others have none
    assert len(report.outcomes) < len(plan.actions)
    # a rerun plans exactly what is left and converges
    rerun = await plan_on(fake)
    assert rerun.actions
    final = await run(fake, rerun)
    assert not final.interrupted
    assert (await plan_on(fake)).actions == ()


async def test_stop_before_start_sends_nothing() -> None:
    fake = seeded(NEW)
    plan = await plan_on(fake)
    stop = asyncio.Event()
    stop.set()
    fake.log.clear()
    report = await run(fake, plan, stop=stop)
    assert report.interrupted is True
    assert report.outcomes == ()
    assert [e for e in fake.log if e.startswith("POST")] == []
    assert all(not r.success for r in report.results if r.item.actions)
    # unchanged items are still reported as successes
    assert all(r.success for r in report.results if r.item.kind is ItemKind.UNCHANGED)


# --------------------------------------------------------------------------------------------------
# Hooks, fatal errors, direct appliers


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_on_outcome_sees_every_outcome_and_progress_reports_phases(version: str) -> None:
    fake = seeded(version)
    plan = await plan_on(fake)
    seen: list[str] = []
    phases: list[tuple[str, int, int]] = []
    report = await run(
        fake, plan, on_outcome=lambda o: seen.append(o.action.key), on_progress=lambda *a: phases.append(a)
    )
    assert sorted(seen) == sorted(o.action.key for o in report.outcomes)
    started = [p[0] for p in phases if p[1] == 0]
    # the seed's order, but the role changes of users nothing else touches run beside the adds and deletes
    assert started == ["adding users", "changing roles", "deleting users", *started[3:]]
    assert started[3:] == ["adding team memberships", "removing team memberships", "verifying"]
    assert ("adding users", 0, 3) in phases
    # each phase advanced its own bar, even the two that overlapped: every bar ends full
    last = {name: (done, total) for name, done, total in phases}
    assert all(done == total for done, total in last.values()), last


async def test_bad_credentials_stop_the_run_and_the_report_says_so() -> None:
    fake = seeded(OLD)
    plan = await plan_on(fake)

    def expired(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(401, json={"error": {"message": f"Authentication Error: {MASTER}"}})
        return None

    fake.faults.append(expired)
    report = await run(fake, plan)
    assert report.aborted is not None and "Authentication Error" in report.aborted
    assert MASTER not in report.aborted
    assert report.interrupted and not report.ok and not report.applied_any
    # it stopped at the first phase (and the role changes started beside it), every row with work not done
    assert fake.count("POST /user/delete") == 0 and fake.count("POST /team/member_add") == 0
    assert all(not r.success for r in report.results if r.item.actions)
    assert any("run aborted" in (r.error or "") for r in report.results)


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_a_403_that_is_not_about_credentials_fails_only_its_rows(version: str) -> None:
    """Issue 9 §4: a seat-limit 403 on the creates (and a 'not allowed for this team' 403 on one join) used to
    end the whole run as 'bad credentials'; the role change and the deletes must still be applied."""
    fake = seeded(version)
    plan = await plan_on(fake)
    seat = "License is over limit. Please contact support@berri.ai to upgrade your license."

    def refuse(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path in ("/user/new", "/management/v1/users/bulk"):
            return httpx.Response(403, json={"error": {"message": seat, "type": "auth_error", "code": "403"}})
        if "member_add" in request.url.path and "t-ops" in json.dumps(body):
            refused = "Call not allowed. User not proxy admin OR team admin. route=/team/member_add, team_id=t-ops"
            return httpx.Response(403, json={"detail": {"error": refused}})
        return None

    fake.faults.append(refuse)
    report = await run(fake, plan)
    assert report.aborted is None and not report.interrupted
    by_email = {r.item.email: r for r in report.results}
    for email in ("new1@x.com", "new2@x.com", "new3@x.com"):
        assert not by_email[email].success and seat in (by_email[email].error or ""), by_email[email]
    assert by_email["role@x.com"].success and by_email["move@x.com"].success
    multi = by_email["Multi@x.com"]
    assert not multi.success and "Call not allowed" in (multi.error or ""), multi
    state = fake.state()
    assert "u-gone1" not in state and "u-gone2" not in state, "the deletes ran after the refused creates"
    assert state["u-role"][1] == "proxy_admin"
    assert not any(u.startswith("new") for u in state)


async def test_deleting_an_already_deleted_user_counts_as_done() -> None:
    fake = seeded(OLD)
    plan = await plan_on(fake)
    del fake.users["u-gone2"]  # someone deleted it between plan and apply
    report = await run(fake, plan)
    by_key = {o.action.key: o for o in report.outcomes}
    assert by_key["delete:u-gone2"].ok and by_key["delete:u-gone1"].ok


async def test_delete_chunk_failure_is_isolated_per_user() -> None:
    fake = seeded(OLD)

    def fk_violation(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/user/delete" and "u-gone1" in body.get("user_ids", []):
            return httpx.Response(500, json={"error": {"message": "foreign key violation"}})
        return None

    fake.faults.append(fk_violation)
    async with fake.client(attempts=1) as client:
        out = await Executor(client).apply_deletes(
            [DeleteUser("u-gone1", "gone1@x.com"), DeleteUser("u-gone2", "gone2@x.com")]
        )
    status = {o.action.key: (o.status, o.error) for o in out}
    assert status["delete:u-gone2"] == (OutcomeStatus.DONE, None)
    assert status["delete:u-gone1"][0] is OutcomeStatus.FAILED
    assert "foreign key violation" in (status["delete:u-gone1"][1] or "")
    assert "u-gone2" not in fake.users and "u-gone1" in fake.users


async def test_join_batch_failure_isolates_the_bad_member() -> None:
    fake = seeded(OLD)

    def one_bad(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/member_add" and any(m["user_id"] == "u-bad" for m in body["member"]):
            return httpx.Response(400, json={"detail": {"error": "bad member"}})
        return None

    fake.faults.append(one_bad)
    actions = [AddMembership("u-keep", "keep@x.com", "t-ops"), AddMembership("u-bad", "bad@x.com", "t-ops")]
    async with fake.client() as client:
        out = await Executor(client).apply_joins(actions)
    assert {o.action.key: o.status for o in out} == {
        "join:u-keep:t-ops": OutcomeStatus.DONE,
        "join:u-bad:t-ops": OutcomeStatus.FAILED,
    }
    assert "t-ops" in fake.state()["u-keep"][2]


async def test_already_in_team_and_not_in_team_count_as_done() -> None:
    fake = seeded(OLD)
    async with fake.client() as client:
        ex = Executor(client)
        joins = await ex.apply_joins([AddMembership("u-keep", "keep@x.com", "t-dev")])  # already there
        leaves = await ex.apply_leaves([RemoveMembership("u-keep", "keep@x.com", "t-ops")], {})  # not there
    assert [o.status for o in joins] == [OutcomeStatus.DONE]
    assert [o.status for o in leaves] == [OutcomeStatus.DONE]


async def test_role_changes_and_creates_direct() -> None:
    fake = seeded(NEW)
    async with fake.client() as client:
        ex = Executor(client)
        roles = await ex.apply_role_changes([ChangeRole("u-keep", "keep@x.com", "internal_user", "proxy_admin")])
        creates = await ex.apply_creates(
            [
                CreateUser("z@x.com", "z@x.com", "internal_user", ("t-ops",)),
                CreateUser("u-keep", "keep@x.com", "internal_user"),
            ]
        )
    assert [o.status for o in roles] == [OutcomeStatus.DONE]
    assert fake.state()["u-keep"][1] == "proxy_admin"
    by_key = {o.action.key: o for o in creates}
    assert by_key["create:z@x.com"].ok and by_key["create:z@x.com"].api_key == key_for("z@x.com")
    assert by_key["create:u-keep"].status is OutcomeStatus.FAILED
    assert (by_key["create:u-keep"].error or "").startswith("User already exists")
    assert fake.state()["z@x.com"] == ("z@x.com", "internal_user", ("t-ops",))


async def test_per_user_create_conflict_says_user_already_exists() -> None:
    fake = seeded(OLD)
    async with fake.client() as client:
        [out] = await Executor(client).apply_creates([CreateUser("u-keep", "keep@x.com", "internal_user")])
    assert out.status is OutcomeStatus.FAILED
    assert out.error == "User already exists: User u-keep already exists"


async def test_uncertain_create_in_a_run_is_recovered_once() -> None:
    """The proxy applies the create but the answer is lost: one user, reported created with its key unknown."""
    fake = seeded(OLD)
    lost = {"new1@x.com"}

    async def lose_answer(request: httpx.Request) -> httpx.Response:
        response = await fake.handle(request)
        if request.url.path == "/user/new" and lost & set(request.content.decode().split('"')):
            lost.clear()
            raise httpx.ReadTimeout("answer lost")
        return response

    plan = await plan_on(fake)
    async with fake.client() as client:
        client._http._transport = httpx.MockTransport(lose_answer)  # wrap the fake's handler
        report = await apply_plan(client, plan)
    assert fake.count("POST /user/new") == 3
    new1 = next(r for r in report.results if r.item.email == "new1@x.com")
    assert new1.success is True
    # the key minted with the lost answer was revoked (nobody saw it) and a new one issued and reported
    assert new1.api_key is not None and fake.keys_of("new1@x.com") == [new1.api_key]
    assert new1.api_key != key_for("new1@x.com")
    assert new1.note == "a new API key: the proxy's answer with the first one was lost, so that key was revoked"
    assert not fake.users["new1@x.com"]["metadata"].get("usersync_key_pending")
    assert report.keys_unknown == ()
    assert fake.state()["new1@x.com"][2] == ("t-dev",)


async def test_a_recreation_whose_rejoin_fails_still_reports_the_new_key() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    created: list[str] = []

    def rejoin_fails(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/user/new":
            created.append(body["user_id"])
        if request.url.path == "/team/member_add" and "u-move" in created:
            return httpx.Response(400, json={"detail": {"error": "Team id=t-sup does not exist in db"}})
        return None

    fake.faults.append(rejoin_fails)
    report = await run(fake, await plan_on(fake, recreate_with_keys=True))
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated is True and result.success is False
    assert "u-move" in fake.users  # the user was created again...
    assert result.api_key == key_for("u-move")  # ...and its new key must reach the report


async def test_a_bulk_create_failing_on_a_later_chunk_keeps_the_earlier_chunks() -> None:
    fake = FakeProxy(version=NEW)
    fake.add_team("t1", "one")
    bulk_calls = 0

    def second_chunk_invalid(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        nonlocal bulk_calls
        if request.url.path == "/management/v1/users/bulk":
            bulk_calls += 1
            if bulk_calls == 2:
                return httpx.Response(
                    422, json={"type": "urn:litellm:error:validation", "title": "Invalid", "status": 422, "detail": "x"}
                )
        return None

    fake.faults.append(second_chunk_invalid)
    rows = tuple(row(f"n{i:04d}@x.com", "internal_user", ["one"]) for i in range(600))
    report = await run(fake, await plan_on(fake, DesiredState(rows)))
    assert len(fake.users) == 600
    assert report.failed == ()
    assert all(r.api_key == key_for(r.item.user_id) for r in report.results)


async def test_recreation_never_escalates_a_role_less_user() -> None:
    fake = seeded(NEW)
    fake.add_user("u-nr", "nr@x.com", None, ("t-dev",))
    fake.sticky.add(("u-nr", "t-dev"))
    plan = await plan_on(fake, DesiredState((row("nr@x.com", None, ["support"]),)), allow_delete=False)
    await run(fake, plan)
    assert fake.state()["u-nr"][1] is None


async def test_recreation_never_loses_a_user_with_an_unmanaged_role() -> None:
    fake = seeded(NEW)
    fake.add_user("u-org", "org@x.com", "org_admin", ("t-dev",))
    fake.sticky.add(("u-org", "t-dev"))
    plan = await plan_on(fake, DesiredState((row("org@x.com", None, ["support"]),)), allow_delete=False)
    report = await run(fake, plan)
    assert "u-org" in fake.users
    assert fake.state()["u-org"][1] == "org_admin"
    assert [r.item.email for r in report.failed] == ["org@x.com"]


async def test_interrupted_before_joins_a_created_user_is_not_reported_complete() -> None:
    fake = FakeProxy(version=OLD)
    fake.add_team("t1", "one")
    rows = tuple(row(f"n{i:02d}@x.com", "internal_user", ["one"]) for i in range(10))
    plan = await plan_on(fake, DesiredState(rows))
    stop = asyncio.Event()

    def stop_at_first_create(request: httpx.Request) -> None:
        if request.url.path == "/user/new":
            stop.set()

    fake.on_request = stop_at_first_create
    report = await run(fake, plan, concurrency=4, stop=stop)
    assert report.interrupted
    state = fake.state()
    assert any(r.item.user_id in state for r in report.results)
    for r in report.results:
        if r.success:
            assert r.item.user_id in state and state[r.item.user_id][2] == ("t1",), r


# --------------------------------------------------------------------------------------------------
# Generated end-to-end convergence: plan, apply through the real client on the fake, plan again


def load_fake(snapshot: Snapshot, version: str) -> FakeProxy:
    fake = FakeProxy(version=version, yields=1)
    for t in snapshot.teams:
        fake.add_team(t.team_id, t.alias)
    for u in snapshot.users:
        fake.add_user(u.user_id, u.email, u.role)
        fake.users[u.user_id]["teams"] = list(u.team_ids)  # stale ids of deleted teams included
        for tid in u.team_ids:
            if tid in fake.teams:
                fake._join(u.user_id, tid)
    for t in snapshot.teams:
        for m in t.members:
            if m.user_id and m.user_id in fake.users:
                fake._join(m.user_id, t.team_id)
    return fake


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), version=st.sampled_from([NEW, OLD]))
def test_generated_runs_converge_through_the_executor(
    case: tuple[DesiredState, Snapshot, PlanOptions], version: str
) -> None:
    desired, snapshot, options = case

    async def scenario() -> None:
        fake = load_fake(snapshot, version)
        async with fake.client() as client:
            live = await read_snapshot(client)
            plan = build_plan(desired, live, options)
            report = await apply_plan(client, plan)
        assert not report.interrupted
        assert sorted(o.action.key for o in report.outcomes) == sorted(a.key for a in plan.actions)
        for r in report.results:
            assert r.success is (r.item.blocked is None), r
        assert fake.roster_overlaps == []
        async with fake.client() as client:
            again = build_plan(desired, await read_snapshot(client), options)
        assert again.actions == (), [a.key for a in again.actions]

    asyncio.run(scenario())


def chaos(seed: int, rate: float, fake: FakeProxy) -> Any:
    """Seeded faults on writes: 500/503, 429 with Retry-After, and the write applied but its answer lost."""
    import random

    rng = random.Random(seed)
    original = fake.handle

    async def handler(request: httpx.Request) -> httpx.Response:
        roll = rng.random()
        if request.method != "POST" or roll >= rate:
            return await original(request)
        kind = rng.choice(("500", "503", "429", "lost", "lost"))
        if kind == "lost":
            await original(request)
            raise httpx.ReadTimeout("answer lost")
        if kind == "429":
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": {"message": "slow down"}})
        return httpx.Response(int(kind), json={"error": {"message": f"injected {kind}"}})

    return handler


def expected_after(desired: DesiredState, before: Snapshot, plan: Plan) -> set[str]:
    """Ids the run may touch: the users of unblocked items."""
    return {i.user_id for i in plan.items if i.actions and not i.blocked}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), version=st.sampled_from([NEW, OLD]), seed=st.integers(0, 10**6))
def test_generated_runs_under_faults_converge_in_two_runs(
    case: tuple[DesiredState, Snapshot, PlanOptions], version: str, seed: int
) -> None:
    desired, snapshot, options = case

    async def scenario() -> None:
        fake = load_fake(snapshot, version)
        untouched_before = fake.state()
        async with fake.client(attempts=3) as client:
            client._http._transport = httpx.MockTransport(chaos(seed, 0.2, fake))
            plan = build_plan(desired, await read_snapshot(client), options)
            report = await apply_plan(client, plan)
        # every planned action got exactly one outcome, faults or not
        planned = sorted(a.key for a in plan.actions)
        assert sorted(o.action.key for o in report.outcomes if not o.action.key.startswith("recreate:")) == planned
        may_touch = expected_after(desired, snapshot, plan)
        after = fake.state()
        for uid, row_before in untouched_before.items():
            if uid not in may_touch:
                assert after.get(uid) == row_before, uid
        # rows reported SUCCESS match reality
        for r in report.results:
            if r.success and r.item.kind is not ItemKind.UNCHANGED:
                if r.item.kind is ItemKind.DELETE:
                    assert r.item.user_id not in after, r
                else:
                    _email, role, teams = after[r.item.user_id]
                    assert role == r.item.role, r
                    assert set(teams) >= set(r.item.team_ids), r
        # a second run without faults finishes the job
        async with fake.client() as client:
            plan2 = build_plan(desired, await read_snapshot(client), options)
            await apply_plan(client, plan2)
            again = build_plan(desired, await read_snapshot(client), options)
        assert again.actions == (), [a.key for a in again.actions]
        emails = [normalize_email(u["user_email"]) for u in fake.users.values() if u["user_email"]]
        before_dups = len([u for u in snapshot.users if u.email_key]) - len(
            {u.email_key for u in snapshot.users if u.email_key}
        )
        assert len(emails) - len(set(emails)) <= before_dups

    asyncio.run(scenario())


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_roster_writes_concerning_one_user_never_overlap(version: str) -> None:
    """The proxy rewrites ``user.teams`` without a per-user lock: two parallel roster writes of one user lose one."""
    fake = FakeProxy(version=version)
    for i in range(6):
        fake.add_team(f"t{i}", f"team{i}")
    for i in range(12):
        fake.add_user(f"u{i}", f"u{i}@x.com", "internal_user", ("t0", "t1", "t2"))
    # everyone leaves three teams and joins three others
    rows = tuple(row(f"u{i}@x.com", None, ["team3", "team4", "team5"]) for i in range(12))
    plan = await plan_on(fake, DesiredState(rows))
    report = await run(fake, plan, concurrency=8)
    assert not report.failed
    assert fake.user_overlaps == []
    assert fake.roster_overlaps == []
    assert all(fake.state()[f"u{i}"][2] == ("t3", "t4", "t5") for i in range(12))


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_no_key_in_any_debug_log_record_of_a_run(version: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="litellm_usersync")
    fake = seeded(version)
    fake.sticky.add(("u-move", "t-dev"))  # a recreation too: a second kind of fresh key
    report = await run(fake, await plan_on(fake, recreate_with_keys=True))
    keys = [r.api_key for r in report.results if r.api_key]
    assert len(keys) == 4  # three new users and one recreated
    logged = [rec.getMessage() for rec in caplog.records]
    assert any("/user/" in m or "/management/" in m for m in logged)
    for text in logged:
        assert MASTER not in text
        for key in keys:
            assert key not in text, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), version=st.sampled_from([NEW, OLD]), stop_after=st.integers(1, 8), bound=st.integers(1, 4))
def test_generated_runs_stopped_at_any_point_report_truthfully_and_converge(
    case: tuple[DesiredState, Snapshot, PlanOptions], version: str, stop_after: int, bound: int
) -> None:
    desired, snapshot, options = case

    async def scenario() -> None:
        fake = load_fake(snapshot, version)
        stop = asyncio.Event()
        writes = 0

        def count_writes(request: httpx.Request) -> None:
            nonlocal writes
            if request.method == "POST":
                writes += 1
                if writes == stop_after:
                    stop.set()

        async with fake.client(concurrency=bound) as client:
            plan = build_plan(desired, await read_snapshot(client), options)
            fake.on_request = count_writes
            report = await apply_plan(client, plan, concurrency=bound, stop=stop)
            fake.on_request = None
        assert report.interrupted is stop.is_set()
        after = fake.state()
        for r in report.results:
            if r.success and r.item.kind is ItemKind.DELETE:
                assert r.item.user_id not in after, r
            elif r.success and r.item.kind is not ItemKind.UNCHANGED:
                assert after[r.item.user_id][1] == r.item.role, r
                assert set(after[r.item.user_id][2]) >= set(r.item.team_ids), r
        async with fake.client() as client:
            await apply_plan(client, build_plan(desired, await read_snapshot(client), options))
            again = build_plan(desired, await read_snapshot(client), options)
        assert again.actions == (), [a.key for a in again.actions]

    asyncio.run(scenario())


@pytest.mark.parametrize(("version", "leaves_first"), [(NEW, False), (OLD, True), (None, True)])
async def test_teams_are_left_before_a_delete_only_where_delete_does_not_cascade(
    version: str | None, leaves_first: bool
) -> None:
    """1.110's /user/delete cleans rosters itself; older (or unknown) proxies need the leaves first.

    Regression (bench finding): --no-bulk on 1.110 used to send a member_delete for every team of every
    deleted user before the delete.
    """
    fake = seeded(version)
    plan = await plan_on(fake, DesiredState((row("keep@x.com"),)), allow_update=False, allow_add=False)
    async with fake.client(bulk="never") as client:
        report = await apply_plan(client, plan)
    assert {r.item.email for r in report.results if r.item.kind.value == "DELETED" and r.success} == {
        "role@x.com",
        "move@x.com",
        "Multi@x.com",
        "gone1@x.com",
        "gone2@x.com",
    }
    # the deleted users hold 6 memberships (move: dev; multi: dev, adm; gone1: dev, sup; role: sup)
    assert fake.count("POST /team/member_delete") == (6 if leaves_first else 0)
    assert "u-gone1" not in fake.users


async def test_a_user_id_with_a_comma_is_never_recreated_for_want_of_a_read_back() -> None:
    """/user/list splits user_ids on commas: such a user cannot be read back, which is not 'wrong'."""
    fake = seeded(NEW)
    fake.add_user("u,comma", "comma@x.com", "internal_user", ("t-dev",))
    fake.users["u,comma"]["key_count"] = 0
    plan = await plan_on(fake, DesiredState((row("comma@x.com", None, ["support"]),)), allow_delete=False)
    assert plan.items[0].may_recreate
    report = await run(fake, plan)
    (result,) = report.results
    assert not result.recreated and fake.count("POST /user/new") == 0
    assert not result.success and "user id contains a comma" in (result.error or "")


async def test_debug_shows_each_team_step_the_verification_and_the_fallback_steps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 11: --debug showed only HTTP lines; the manual promises the team update and fallback steps."""
    import logging

    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))  # member_delete answers 200 but keeps the membership
    plan = await plan_on(fake, recreate_with_keys=True)  # the user holds a key: recreated only when asked
    with caplog.at_level(logging.DEBUG, logger="litellm_usersync.apply"):  # the executor's rooms log here
        await run(fake, plan)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("litellm_usersync.apply.")]
    assert any(x.startswith("step: team support: add ") and "move@x.com" in x for x in lines), lines
    assert any(x.startswith("step: team development: remove ") and "move@x.com" in x for x in lines), lines
    assert "verify: move@x.com: still in team(s) development" in lines
    fallback = [x for x in lines if x.startswith("fallback for move@x.com")]
    assert [x.split(":")[1].strip()[:3] for x in fallback] == ["1/3", "2/3", "3/3"]
    assert "3/3 add it to its team(s): support" in fallback[-1]


async def test_bulk_deletes_and_role_changes_advance_the_progress_chunk_by_chunk() -> None:
    """Issue 11: a bulk step of 1,200 users sat at 0 until all 1,200 were done; it now advances per batch."""
    fake = FakeProxy(version=NEW)
    for i in range(1200):
        fake.add_user(f"u{i:04d}", f"u{i:04d}@x.com", "internal_user", ())
    keep = DesiredState(tuple(row(f"u{i:04d}@x.com", "proxy_admin") for i in range(600)))
    plan = await plan_on(fake, keep, max_delete=1000)
    phases: list[tuple[str, int, int]] = []
    report = await run(fake, plan, on_progress=lambda *a: phases.append(a))
    assert report.ok
    assert [p for p in phases if p[0] == "deleting users"] == [
        ("deleting users", 0, 600),
        ("deleting users", 500, 600),
        ("deleting users", 600, 600),
    ]
    assert [p[1] for p in phases if p[0] == "changing roles"] == [0, 500, 600]
    assert fake.count("POST /management/v1/users/bulk_delete") == 2


# --------------------------------------------------------------------------------------------------
# Issue 9 §1: one definition of "in sync", a bounded and complete fallback


async def test_a_user_holding_keys_is_not_recreated_without_recreate_with_keys() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    fake.users["u-move"]["key_count"] = 2
    plan = await plan_on(fake)
    assert not next(i for i in plan.items if i.email == "move@x.com").may_recreate
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert not result.success and not result.recreated
    assert result.error == (
        "not converged: still in team(s) development; "
        "not recreated: the user holds 2 API key(s) (--recreate-with-keys allows it)"
    )
    assert fake.count("POST /user/new") == 0  # the new users go through the bulk route; no recreation
    assert "u-move" in fake.users


async def test_recreations_count_against_max_delete_with_the_deletions() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    fake.users["u-move"]["key_count"] = 0
    plan = await plan_on(fake, max_delete=2)  # the run deletes gone1 and gone2: the limit is used up
    assert plan.delete_limit == 2 and not plan.refusals
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert not result.success and not result.recreated
    assert result.error == (
        "not converged: still in team(s) development, recreation refused by --max-delete: "
        "1 recreation(s) and 2 deletion(s) would exceed the limit of 2"
    )
    assert not any(o.action.key.startswith("recreate:") for o in report.outcomes)
    # one more allowed: the recreation happens
    fake2 = seeded(NEW)
    fake2.sticky.add(("u-move", "t-dev"))
    fake2.users["u-move"]["key_count"] = 0
    report2 = await run(fake2, await plan_on(fake2, max_delete=3))
    assert next(r for r in report2.results if r.item.email == "move@x.com").recreated


async def test_a_recreation_carries_every_field_a_create_can_set() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    fields = {
        "key_count": 0,
        "user_alias": "Mover",
        "max_budget": 12.5,
        "budget_duration": "30d",
        "models": ["gpt-4o"],
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "max_parallel_requests": 3,
        "sso_user_id": "sso-42",
        "metadata": {"department": "R&D"},
        "model_max_budget": {"gpt-4o": 5.0},
        "spend": 1.25,
    }
    fake.users["u-move"].update(fields)
    bodies: list[dict[str, Any]] = []

    def capture(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/user/new":
            bodies.append(body)
        return None

    async with fake.client() as client:
        before = await read_snapshot(client)
    plan = build_plan(DESIRED, before, PlanOptions())
    fake.faults.append(capture)
    report = await run(fake, plan, before=before)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.success and result.recreated, result.error
    (body,) = [b for b in bodies if b["user_id"] == "u-move"]
    # the user's own metadata, plus the "key pending" marker of the new key (cleared once the key is recorded)
    assert body["metadata"] == {**fields["metadata"], KEY_PENDING: True}
    for name in RECREATE_FIELDS:
        if name != "metadata":
            assert body[name] == fields[name], name
    assert body["user_role"] == "internal_user" and body["user_email"] == "move@x.com"
    assert result.note == "recreated by the fallback; not carried over: its spend $1.25 (restarts at 0)"
    assert fake.users["u-move"]["user_alias"] == "Mover" and fake.users["u-move"]["max_budget"] == 12.5


async def test_a_roster_member_whose_teams_list_lacks_the_team_is_converged() -> None:
    """The drift the API contract describes (§1.5): the roster lists the user, ``user.teams`` does not."""
    fake = seeded(NEW)
    fake.users["u-move"]["key_count"] = 0

    def drop_from_user_teams(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.method == "GET" and request.url.path == "/user/list" and "t-sup" in fake.users["u-move"]["teams"]:
            fake.users["u-move"]["teams"].remove("t-sup")  # on the roster of t-sup, but not in its own list
        return None

    plan = await plan_on(fake)
    fake.faults.append(drop_from_user_teams)
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.success and not result.recreated, result.error
    assert fake.count("POST /user/new") == 0


async def test_an_old_proxy_recreation_leaves_the_teams_before_the_delete() -> None:
    fake = seeded(OLD)
    fake.sticky.add(("u-move", "t-dev"))
    fake.users["u-move"]["key_count"] = 0
    plan = await plan_on(fake)
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated
    # the recreation's own leave ran before its /user/delete (the roster would keep the deleted id on 1.74)
    recreate_at = max(n for n, e in enumerate(fake.log) if e == "POST /user/delete")
    leaves = [n for n, e in enumerate(fake.log) if e == "POST /team/member_delete"]
    assert any(n < recreate_at for n in leaves)


async def test_a_recreation_that_does_not_converge_is_failed() -> None:
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    fake.users["u-move"]["key_count"] = 0

    recreated = False

    def rejoin_is_swallowed(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        nonlocal recreated
        if request.url.path == "/user/new" and body.get("user_id") == "u-move":
            recreated = True
        if recreated and request.url.path == "/team/member_add":  # claims success, does nothing
            return httpx.Response(200, json={"team_id": body["team_id"], "members_with_roles": []})
        return None

    fake.faults.append(rejoin_is_swallowed)
    report = await run(fake, await plan_on(fake))
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert result.recreated and not result.success
    assert result.error == "User recreation failed: recreated, but not converged: not in team(s) support"
    assert result.api_key == key_for("u-move"), "the new key still reaches the report"


# --------------------------------------------------------------------------------------------------
# Issue 9 §2: --keep-team-keys re-binds before the leave; a failed re-bind keeps the user in the old team


def _keyed_plan(before: Snapshot) -> Plan:
    keyed = dataclasses.replace(before, team_keys=(TeamKey("ab" * 32, "u-move", "t-dev"),))
    desired = DesiredState((row("move@x.com", None, ["support"]),))
    return build_plan(desired, keyed, PlanOptions(keep_team_keys=True, allow_delete=False))


async def test_keep_team_keys_rebinds_between_the_join_and_the_leave() -> None:
    fake = seeded(NEW)
    fake.users["u-move"]["key_count"] = 0
    updates: list[dict[str, Any]] = []

    def key_update(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/key/update":
            updates.append(body)
            return httpx.Response(200, json={"key": body["key"], "team_id": body["team_id"]})
        return None

    async with fake.client() as client:
        before = await read_snapshot(client)
    plan = _keyed_plan(before)
    (item,) = plan.items
    assert [a.key for a in item.actions] == ["join:u-move:t-sup", "rebind:u-move:t-dev", "leave:u-move:t-dev"]
    assert item.team_keys_rebound == 1 and item.team_keys_destroyed == 0
    fake.faults.append(key_update)
    fake.log.clear()
    report = await run(fake, plan, before=before)
    (result,) = report.results
    assert result.success, result.error
    assert updates == [{"key": "ab" * 32, "team_id": "t-sup"}]
    leave = "POST /management/v1/teams/t-dev/members/bulk_delete"  # one leave goes in bulk too, where it can
    order = [e for e in fake.log if e in ("POST /team/member_add", "POST /key/update", leave)]
    assert order == ["POST /team/member_add", "POST /key/update", leave]
    assert result.note == "1 team key(s) re-bound to support"


async def test_a_failed_rebind_keeps_the_user_in_the_old_team() -> None:
    fake = seeded(NEW)

    def key_update_fails(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/key/update":
            return httpx.Response(400, json={"error": {"message": "Key not found."}})
        return None

    async with fake.client() as client:
        before = await read_snapshot(client)
    fake.faults.append(key_update_fails)
    report = await run(fake, _keyed_plan(before), before=before)
    (result,) = report.results
    assert not result.success and not result.recreated
    assert "re-binding a team key to support failed" in (result.error or "")
    assert "not removed from the old team because its team keys could not be re-bound" in (result.error or "")
    assert fake.count("POST /team/member_delete") == 0, "the leave that would delete the key never ran"


async def test_an_incomplete_read_of_the_rosters_is_could_not_verify_not_a_crash() -> None:
    """After the moves, a team listing that disagrees with its own total is a RefusedError: the rows fail with
    'could not verify' (nothing is recreated), and the report is still made."""
    fake = seeded(NEW)
    fake.sticky.add(("u-move", "t-dev"))
    fake.users["u-move"]["key_count"] = 0
    plan = await plan_on(fake)
    moves_done = False

    def short_team_list(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        nonlocal moves_done
        if request.url.path.startswith("/management/v1/teams/") or request.url.path == "/team/member_delete":
            moves_done = True
        if moves_done and request.url.path == "/v2/team/list":
            return httpx.Response(200, json={"teams": [], "total": 4, "page": 1, "total_pages": 1})
        return None

    fake.faults.append(short_team_list)
    report = await run(fake, plan)
    result = next(r for r in report.results if r.item.email == "move@x.com")
    assert not result.success and not result.recreated
    assert (result.error or "").startswith("could not verify: incomplete read of teams")


async def test_a_recreation_names_a_team_admin_role_it_cannot_bring_back() -> None:
    fake = seeded(NEW)
    fake.users["u-move"]["key_count"] = 0
    fake.sticky.add(("u-move", "t-dev"))
    fake._join("u-move", "t-ops")
    for m in fake.teams["t-ops"]["members_with_roles"]:
        if m["user_id"] == "u-move":
            m["role"] = "admin"
    async with fake.client() as client:
        before = await read_snapshot(client)
    plan = build_plan(
        DesiredState((row("move@x.com", None, ["support", "ops"]),)), before, PlanOptions(allow_delete=False)
    )
    report = await run(fake, plan, before=before)
    (result,) = report.results
    assert result.recreated and result.success, result.error
    assert (
        result.note == "recreated by the fallback; not carried over: its admin role in team ops (re-added as a member)"
    )
    assert {m["user_id"]: m["role"] for m in fake.teams["t-ops"]["members_with_roles"]}["u-move"] == "user"


async def test_a_recreation_brings_a_team_admin_role_back_where_the_proxy_allows_it() -> None:
    fake = seeded(NEW)
    fake.licensed = True
    fake.users["u-move"]["key_count"] = 0
    fake.sticky.add(("u-move", "t-dev"))
    fake._join("u-move", "t-ops")
    for m in fake.teams["t-ops"]["members_with_roles"]:
        if m["user_id"] == "u-move":
            m["role"] = "admin"
    async with fake.client() as client:
        before = await read_snapshot(client)
    plan = build_plan(
        DesiredState((row("move@x.com", None, ["support", "ops"]),)), before, PlanOptions(allow_delete=False)
    )
    report = await run(fake, plan, before=before)
    (result,) = report.results
    assert result.recreated and result.success, result.error
    assert result.note == "recreated by the fallback"
    assert {m["user_id"]: m["role"] for m in fake.teams["t-ops"]["members_with_roles"]}["u-move"] == "admin"


# Issue 15: the roster is the truth; a leave is repeated while the roster still lists the user


async def test_a_move_of_a_user_whose_teams_list_its_old_team_twice_is_not_recreated() -> None:
    """1.74.15.post2: user.teams ["t-dev", "t-dev"] with the user once on t-dev's roster; one leave removes one
    copy. The roster says the move landed: no recreation (which would delete the user's keys)."""
    fake = seeded(OLD)
    fake.users["u-move"]["teams"] = ["t-dev", "t-dev"]
    plan = await plan_on(fake, DesiredState((row("move@x.com", None, ["support"]),)), allow_delete=False)
    (item,) = [i for i in plan.items if i.user_id == "u-move"]
    assert item.old_team_ids == ("t-dev",), "user.teams is read as a set"
    report = await run(fake, plan)
    (result,) = [r for r in report.results if r.item.user_id == "u-move"]
    assert result.success and not result.recreated, result.error
    assert fake.count("POST /user/delete") == 0
    assert fake.users["u-move"]["teams"] == ["t-dev", "t-sup"], "the stale copy is LiteLLM's; it is left alone"
    assert "u-move" not in fake.rosters()["t-dev"] and "u-move" in fake.rosters()["t-sup"]
    assert fake.count("POST /team/member_delete") == 1, "the roster read back confirmed the one leave"


async def test_a_leave_whose_answer_lies_is_sent_again_until_the_roster_is_right() -> None:
    fake = seeded(OLD)
    lies = {"left": 1}

    def first_leave_not_applied(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/member_delete" and lies["left"]:
            lies["left"] -= 1
            return httpx.Response(200, json=fake.teams[body["team_id"]])  # answered, not applied
        return None

    fake.faults.append(first_leave_not_applied)
    plan = await plan_on(fake, DesiredState((row("move@x.com", None, ["support"]),)), allow_delete=False)
    report = await run(fake, plan)
    (result,) = [r for r in report.results if r.item.user_id == "u-move"]
    assert result.success and not result.recreated, result.error
    assert fake.count("POST /team/member_delete") == 2
    assert fake.state()["u-move"][2] == ("t-sup",)


async def test_a_leave_still_on_the_roster_after_every_round_falls_back_to_verification() -> None:
    fake = seeded(OLD)
    fake.sticky.add(("u-move", "t-dev"))
    plan = await plan_on(
        fake, DesiredState((row("move@x.com", None, ["support"]),)), allow_delete=False, recreate_with_keys=True
    )
    report = await run(fake, plan)
    assert fake.count("POST /team/member_delete") >= LEAVE_ROUNDS, "bounded: sent LEAVE_ROUNDS times, then verified"
    (result,) = [r for r in report.results if r.item.user_id == "u-move"]
    assert result.recreated, "the fallback took over"  # (the fake keeps a sticky membership for good)


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_a_recreation_leaves_the_teams_first_and_checks_its_joins(version: str) -> None:
    """1.74.0's /user/delete keeps roster entries: without leaving first, the recreated user's join would answer
    "already in team" and the user would be SUCCESS with empty teams."""
    fake = seeded(version)
    fake.faults.append(move_leaves_not_applied(fake))  # the move's leaves do not take; the fallback's do
    plan = await plan_on(
        fake, DesiredState((row("move@x.com", None, ["support"]),)), allow_delete=False, recreate_with_keys=True
    )
    report = await run(fake, plan)
    (result,) = [r for r in report.results if r.item.user_id == "u-move"]
    assert result.recreated and result.success, result.error
    assert fake.state()["u-move"][2] == ("t-sup",)
    assert "u-move" in fake.rosters()["t-sup"] and "u-move" not in fake.rosters()["t-dev"]


def move_leaves_not_applied(fake: FakeProxy) -> Fault:
    """The move's leave (all LEAVE_ROUNDS of it) answers 200 without being applied; later leaves are applied."""
    swallowed = {"n": 0}

    def fault(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/member_delete" and swallowed["n"] < LEAVE_ROUNDS:
            swallowed["n"] += 1
            return httpx.Response(200, json=fake.teams[body["team_id"]])
        bulk_leave = request.method == "POST" and request.url.path.endswith("/members/bulk_delete")
        if bulk_leave and swallowed["n"] < LEAVE_ROUNDS:
            swallowed["n"] = LEAVE_ROUNDS  # the bulk leave is one request: answered success, not applied
            rows = [{"user_id": m["user_id"], "success": True, "error": None} for m in body["members"]]
            return httpx.Response(200, json={"data": rows})
        return None

    return fault


async def test_a_recreation_whose_join_leaves_no_team_is_not_success() -> None:
    fake = seeded(OLD)
    fake.faults.append(move_leaves_not_applied(fake))

    def join_answers_but_drops_user_teams(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/member_add" and fake.count("POST /user/delete"):
            return httpx.Response(
                400, json={"error": {"message": "User already in team.", "type": "team_member_already_in_team"}}
            )
        return None

    fake.faults.append(join_answers_but_drops_user_teams)
    plan = await plan_on(
        fake, DesiredState((row("move@x.com", None, ["support"]),)), allow_delete=False, recreate_with_keys=True
    )
    report = await run(fake, plan)
    (result,) = [r for r in report.results if r.item.user_id == "u-move"]
    assert result.recreated and not result.success
    assert "not converged: not in team(s) support" in (result.error or ""), "never SUCCESS with no teams"


async def test_a_new_user_whose_id_is_still_on_a_roster_is_really_joined() -> None:
    """1.74.0: a user deleted earlier (by anyone) stays on its teams' rosters; the tool creating a user with that
    id again got "already in team" for its join and left user.teams without the team."""
    fake = seeded(OLD)
    fake.add_user("back@x.com", "back@x.com", "internal_user", ("t-sup",))
    del fake.users["back@x.com"]  # deleted outside the tool, on a proxy that keeps roster entries
    assert "back@x.com" in fake.rosters()["t-sup"]
    plan = await plan_on(fake, DesiredState((row("back@x.com", "internal_user", ["support"]),)), allow_delete=False)
    report = await run(fake, plan)
    (result,) = [r for r in report.results if r.item.email == "back@x.com"]
    assert result.success, result.error
    assert fake.state()["back@x.com"][2] == ("t-sup",), "user.teams names the team"
    assert fake.rosters()["t-sup"].count("back@x.com") == 1


# --------------------------------------------------------------------------------------------------
# Issue 10: one shared bulk-or-per-user applier (per-chunk fallback), bounded workers (issue 14's scale)


async def test_a_bulk_delete_chunk_failing_as_a_whole_falls_back_for_that_chunk_only() -> None:
    """The chunk the batch route refuses goes per user; the chunks after it still go in bulk (before the
    shared applier, deletes and role changes sent everything after the first failed chunk per user)."""
    fake = FakeProxy(version=NEW)
    for i in range(1200):
        fake.add_user(f"u{i:04d}", f"u{i:04d}@x.com", "internal_user", ())
    bulk_calls = 0

    def first_bulk_delete_fails(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        nonlocal bulk_calls
        if request.method == "POST" and request.url.path == "/management/v1/users/bulk_delete":
            bulk_calls += 1
            if bulk_calls == 1:
                return httpx.Response(422, json={"type": "x", "title": "Invalid", "status": 422, "detail": "x"})
        return None

    fake.faults.append(first_bulk_delete_fails)
    keep = DesiredState(tuple(row(f"u{i:04d}@x.com", "internal_user") for i in range(100)))
    plan = await plan_on(fake, keep, max_delete=2000)
    async with fake.client(attempts=1) as client:
        report = await apply_plan(client, plan)
    assert report.ok and len(fake.users) == 100
    assert fake.count("POST /management/v1/users/bulk_delete") == 3  # the failed chunk, then chunks 2 and 3
    assert fake.count("POST /user/delete") == 5  # the failed chunk's 500 users, 100 per call


async def test_a_role_change_without_the_batch_route_goes_per_user_with_bounded_workers() -> None:
    """--no-bulk (no batch route): one /user/update per user, never more in flight than the bound, and the
    phase holds a few workers rather than a task per user created up front."""
    fake = FakeProxy(version=NEW)
    for i in range(300):
        fake.add_user(f"u{i:03d}", f"u{i:03d}@x.com", "internal_user", ())
    plan = await plan_on(fake, DesiredState(tuple(row(f"u{i:03d}@x.com", "proxy_admin") for i in range(300))))
    in_flight = peak = tasks = 0

    async def counting(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak, tasks
        in_flight += 1
        peak = max(peak, in_flight)
        tasks = max(tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        try:
            return await fake.handle(request)
        finally:
            in_flight -= 1

    async with fake.client(concurrency=4, bulk="never") as client:
        client._http._transport = httpx.MockTransport(counting)
        report = await apply_plan(client, plan, concurrency=4)
    assert report.ok and fake.count("POST /user/update") == 300
    assert peak <= 4
    assert tasks < 20  # the workers (and the test's own), not 300 tasks


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_joins_of_untouched_teams_run_beside_the_deletes_the_others_after(version: str) -> None:
    """Issue 14: the phases overlap where nothing depends on their order. A move into a team no delete or add
    writes joins while the delete is still in flight; a move into the deleted user's team waits for it (one
    team's roster is never written twice at once); the leaves still wait for the joins."""
    fake = FakeProxy(version=version, yields=30)
    for tid, alias in (("t-a", "alpha"), ("t-b", "beta"), ("t-c", "gamma")):
        fake.add_team(tid, alias)
    fake.add_user("u-d", "gone@x.com", "internal_user", ("t-a",))
    fake.add_user("u-m", "free@x.com", "internal_user", ("t-c",))
    fake.add_user("u-n", "busy@x.com", "internal_user", ("t-c",))
    plan = await plan_on(fake, DesiredState((row("free@x.com", None, ["beta"]), row("busy@x.com", None, ["alpha"]))))
    deleted = {"done": False}
    seen: dict[str, bool] = {}

    def arrived(request: httpx.Request) -> None:
        if request.url.path == "/team/member_add":
            seen[json.loads(request.content)["team_id"]] = deleted["done"]

    def delete_done(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path in ("/user/delete", "/management/v1/users/bulk_delete"):
            deleted["done"] = True
        return None

    fake.on_request = arrived
    fake.faults.append(delete_done)
    report = await run(fake, plan)
    assert not report.failed, [r.error for r in report.results if not r.success]
    assert seen == {"t-b": False, "t-a": True}, "beta joined beside the delete; alpha after it"
    assert fake.roster_overlaps == [] and fake.user_overlaps == []
    assert (
        await plan_on(fake, DesiredState((row("free@x.com", None, ["beta"]), row("busy@x.com", None, ["alpha"]))))
    ).actions == ()
