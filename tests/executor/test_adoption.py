"""``--adopt`` over the fake proxy: the marker is added to each user's own metadata (kept whole), through
``/user/bulk_update`` where the proxy has it and ``/user/update`` otherwise; a user deleted since the plan was
made is not brought back (``/user/update`` by id would create it); a marked user is not written again."""

from __future__ import annotations

import pytest

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.models import AdoptUser, DesiredState, DesiredUser, PlanOptions, parse_scope
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.snapshot import read_snapshot

from ._fake_proxy import FakeProxy

NEW, OLD = "1.110.2", "1.74.0"


def fake_with(version: str) -> FakeProxy:
    fake = FakeProxy(version=version)
    fake.add_user("sso-1", "a@corp.example", "internal_user")
    fake.users["sso-1"]["metadata"] = {"sso": {"idp": "okta"}}
    fake.add_user("sso-2", "b@corp.example", "internal_user")
    fake.add_user("ours", "c@corp.example", "internal_user")
    fake.users["ours"]["metadata"] = {"managed_by": "litellm-usersync"}
    fake.add_user("leaver", "gone@corp.example", "internal_user")  # SSO-made, not in the CSV
    return fake


CSV = DesiredState(
    tuple(DesiredUser(e, "internal_user") for e in ("a@corp.example", "b@corp.example", "c@corp.example"))
)
OPTIONS = PlanOptions(scope=parse_scope(["managed"]), adopt=True)


@pytest.mark.parametrize("version", [NEW, OLD])
async def test_adopt_writes_the_marker_into_each_users_own_metadata(version: str) -> None:
    fake = fake_with(version)
    async with fake.client() as client:
        plan = build_plan(CSV, await read_snapshot(client), OPTIONS)
        assert sorted(a.user_id for a in plan.actions) == ["sso-1", "sso-2"]  # adoptions only: leaver is outside
        report = await apply_plan(client, plan)
    assert report.ok, report.failed
    assert fake.users["sso-1"]["metadata"] == {"sso": {"idp": "okta"}, "managed_by": "litellm-usersync"}
    assert fake.users["sso-2"]["metadata"] == {"managed_by": "litellm-usersync"}
    assert "leaver" in fake.users
    path = "POST /user/bulk_update" if version == NEW else "POST /user/update"
    assert fake.count(path) == (1 if version == NEW else 2)
    # planned again: everyone the CSV lists is managed now, nothing left to adopt
    async with fake.client() as client:
        again = build_plan(CSV, await read_snapshot(client), OPTIONS)
    assert not again.actions


async def test_a_user_deleted_since_the_plan_is_not_recreated_and_a_marked_one_not_rewritten() -> None:
    fake = fake_with(OLD)
    async with fake.client() as client:
        plan = build_plan(CSV, await read_snapshot(client), OPTIONS)
        del fake.users["sso-2"]  # deleted by someone else after the plan was made
        fake.users["sso-1"]["metadata"] = {"managed_by": "litellm-usersync"}  # adopted by another run meanwhile
        writes = fake.count("POST /user/update")
        report = await apply_plan(client, plan)
    outcomes = {o.action.user_id: o for o in report.outcomes if isinstance(o.action, AdoptUser)}
    assert not outcomes["sso-2"].ok and "user not found" in (outcomes["sso-2"].error or "")
    assert outcomes["sso-1"].ok and outcomes["sso-1"].note == "already marked as managed (by another run)"
    assert "sso-2" not in fake.users
    assert fake.count("POST /user/update") == writes
