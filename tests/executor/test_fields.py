"""Applying the managed fields and the team actions (issue 12) against the fake proxy: bulk and per-user give
the same state, metadata is merged into what the user has *now*, a failed team create skips its joins."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.models import (
    KEY_PENDING,
    CreateTeam,
    DesiredState,
    DesiredUser,
    OutcomeStatus,
    Plan,
    PlanOptions,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.snapshot import read_snapshot

from ._fake_proxy import FakeProxy

NEW, OLD = "1.110.2", "1.74.0"


def seeded(version: str) -> FakeProxy:
    fake = FakeProxy(version=version)
    fake.add_team("t-dev", "development")
    fake.add_user("alice@x.com", "alice@x.com", "proxy_admin")
    fake.users["alice@x.com"].update(max_budget=50.0, budget_duration="30d", metadata={"owner": "hr"})
    return fake


async def plan_and_run(fake: FakeProxy, *rows: DesiredUser, between: Any = None, **options: Any) -> tuple[Plan, Any]:
    async with fake.client() as client:
        snapshot = await read_snapshot(client)
    plan = build_plan(DesiredState(users=rows), snapshot, PlanOptions(allow_delete=False, **options))
    if between is not None:
        between()
    async with fake.client() as client:
        report = await apply_plan(client, plan, before=snapshot)
    return plan, report


def bodies(fake: FakeProxy, path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def capture(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == path:
            out.append(json.loads(request.content))

    fake.on_request = capture
    return out


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_fields_and_role_go_in_one_update_and_the_budget_is_kept(version: str) -> None:
    fake = seeded(version)
    sent = bodies(fake, "/user/bulk_update" if version == NEW else "/user/update")
    row = DesiredUser("alice@x.com", "internal_user", fields=(("models", ("gpt-4o",)), ("metadata.cc", "X")), line=2)
    _, report = await plan_and_run(fake, row)
    assert [o.status for o in report.outcomes] == [OutcomeStatus.DONE]
    entry = sent[0]["users"][0] if version == NEW else sent[0]
    assert entry == {
        "user_id": "alice@x.com",
        "user_role": "internal_user",
        "models": ["gpt-4o"],
        "metadata": {"owner": "hr", "cc": "X"},
        # the role becomes internal_user: the budget the row does not change is sent as it is
        "max_budget": 50.0,
        "budget_duration": "30d",
    }
    alice = fake.users["alice@x.com"]
    assert (alice["user_role"], alice["models"], alice["max_budget"]) == ("internal_user", ["gpt-4o"], 50.0)


async def test_metadata_is_merged_into_what_the_user_has_when_the_update_runs() -> None:
    """Another key written between the plan and the apply (the UI, a key repair) survives the merge."""
    fake = seeded(NEW)

    def meanwhile() -> None:
        fake.users["alice@x.com"]["metadata"] = {"owner": "hr", "added": "later", KEY_PENDING: None}

    row = DesiredUser("alice@x.com", fields=(("metadata.cc", "X"), ("metadata.owner", None)))
    _, report = await plan_and_run(fake, row, between=meanwhile)
    assert report.ok
    assert fake.users["alice@x.com"]["metadata"] == {"added": "later", KEY_PENDING: None, "cc": "X"}


async def test_a_new_users_metadata_keys_survive_the_key_marker_clearing() -> None:
    fake = seeded(NEW)
    row = DesiredUser("new@x.com", "internal_user", fields=(("max_budget", 3.0), ("metadata.cc", "X")))
    _, report = await plan_and_run(fake, row)
    assert report.ok
    new = fake.users["new@x.com"]
    assert new["max_budget"] == 3.0
    assert new["metadata"] == {"cc": "X", "managed_by": "litellm-usersync"}


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_teams_are_created_first_and_a_failed_create_skips_its_joins(version: str) -> None:
    fake = seeded(version)
    fake.add_team("team-ops", "someone else's team")  # the id the planner picks for "Ops" is then team-ops-2
    taken: list[str] = []

    def refuse_research(request: httpx.Request, _body: dict[str, Any]) -> httpx.Response | None:
        if request.url.path == "/team/new" and json.loads(request.content)["team_alias"] == "Research":
            taken.append("Research")
            return httpx.Response(403, json={"error": {"message": "licence team limit reached"}})
        return None

    fake.faults.append(refuse_research)
    rows = (
        DesiredUser("alice@x.com", team_names=("Ops",)),
        DesiredUser("new@x.com", "internal_user", team_names=("Research", "development")),
    )
    plan, report = await plan_and_run(fake, *rows, create_teams=True)
    assert {t.name: t.team_id for t in plan.teams if isinstance(t, CreateTeam)} == {
        "Ops": "team-ops-2",
        "Research": "team-research",
    }
    assert taken == ["Research"]
    assert fake.teams["team-ops-2"]["team_alias"] == "Ops" and "team-research" not in fake.teams
    assert "team-ops-2" in fake.users["alice@x.com"]["teams"]
    failed = {r.item.email: r.error for r in report.results if not r.success}
    assert set(failed) == {"new@x.com"} and "team Research could not be created" in (failed["new@x.com"] or "")
    assert "new@x.com" not in fake.users  # its create was skipped, not sent without the team


async def test_an_unreadable_metadata_fails_only_the_updates_that_merge_it() -> None:
    fake = seeded(NEW)
    fake.add_user("bob@x.com", "bob@x.com", "proxy_admin")
    applying = False

    def no_reads(request: httpx.Request, _body: dict[str, Any]) -> httpx.Response | None:
        if applying and request.url.path == "/user/list":
            return httpx.Response(503, json={"error": {"message": "down"}})
        return None

    def start() -> None:
        nonlocal applying
        applying = True

    fake.faults.append(no_reads)
    rows = (
        DesiredUser("alice@x.com", fields=(("metadata.cc", "X"),)),
        DesiredUser("bob@x.com", fields=(("max_budget", 2.0),)),
    )
    _, report = await plan_and_run(fake, *rows, between=start)
    by_email = {r.item.email: r for r in report.results}
    assert by_email["bob@x.com"].success and fake.users["bob@x.com"]["max_budget"] == 2.0
    alice = by_email["alice@x.com"]
    assert not alice.success and "could not read the user's metadata before merging it" in (alice.error or "")
    assert fake.users["alice@x.com"]["metadata"] == {"owner": "hr"}  # nothing was sent for her
