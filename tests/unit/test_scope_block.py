"""Scope (issue 17) x block deprovisioning (issue 13) in the planner. Pure.

A user outside the scope is never blocked, reactivated or purged (the scope step filters blocks as it
filters deletions: ``ScopeView.managed`` is the candidate list); the brake's percentage counts the in-scope
users for blocks too; a ``role:`` scope still owns the users it blocked (they hold the blocked role for now);
a scoped snapshot keeps only its users' keys; a plan file carries the scope and the deprovision mode together.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.models import (
    BLOCK_RECORD,
    AdoptUser,
    BlockRecord,
    BlockUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    PlanOptions,
    ProxyFeatures,
    ReactivateUser,
    Snapshot,
    Team,
    UserKey,
    parse_scope,
)
from litellm_usersync.plans.sync import build_plan

NOW = "2026-12-02T00:00:00Z"
TEAMS = (Team("t-dev", "development"),)
MONTH = 30 * 86400


def user(email: str, role: str = "internal_user", *, marked: bool = True, **kw: Any) -> LiveUser:
    return LiveUser(user_id=email, email=email, role=role, team_ids=("t-dev",), managed_marker=marked, **kw)


def blocked(email: str, *, at: str = "2026-11-01T00:00:00Z", marked: bool = True) -> LiveUser:
    """A user the tool blocked (its record in the metadata), once an ``internal_user``."""
    record = BlockRecord(at=at, state="blocked", tokens=("h1",), role="internal_user", max_budget=None)
    return user(email, "internal_user_viewer", marked=marked, max_budget=0.0, metadata={BLOCK_RECORD: record.to_json()})


def snap(*users: LiveUser, keys: tuple[UserKey, ...] = ()) -> Snapshot:
    return Snapshot(
        users=users,
        teams=TEAMS,
        features=ProxyFeatures.from_version("1.110.2", {}),
        proxy_version="1.110.2",
        user_keys=keys,
        user_keys_read=frozenset(k.user_id for k in keys),
    )


def csv(*emails: str) -> DesiredState:
    return DesiredState(tuple(DesiredUser(e, None, ("development",)) for e in emails))


def block(*scope: str, **kw: Any) -> PlanOptions:
    return PlanOptions(deprovision="block", now=NOW, scope=parse_scope(scope), **kw)


def emails(plan: Any, kind: ItemKind) -> list[str]:
    return [i.email for i in plan.of_kind(kind)]


def test_a_leaver_outside_the_scope_is_not_blocked() -> None:
    s = snap(user("stay@a.example"), user("gone@a.example"), user("sso@b.example"), user("svc@a.example", marked=False))
    plan = build_plan(csv("stay@a.example"), s, block("domain:a.example", "managed"))
    assert emails(plan, ItemKind.BLOCK) == ["gone@a.example"]
    assert not plan.of_kind(ItemKind.DELETE) and not plan.refusals
    assert plan.out_of_scope == 2  # the other domain's user and the unmarked one: one number, no line each
    blocked_ids = {a.user_id for i in plan.items for a in i.actions if isinstance(a, BlockUser)}
    assert blocked_ids == {"gone@a.example"}
    # without the scope both would be blocked: the scope is what spares them
    unscoped = build_plan(csv("stay@a.example"), s, block())
    assert emails(unscoped, ItemKind.BLOCK) == ["gone@a.example", "sso@b.example", "svc@a.example"]


def test_a_blocked_user_outside_the_scope_back_in_the_csv_is_left_blocked() -> None:
    s = snap(user("stay@a.example"), blocked("back@b.example"))
    plan = build_plan(csv("stay@a.example", "back@b.example"), s, block("domain:a.example"))
    assert not plan.of_kind(ItemKind.REACTIVATE) and not plan.has_changes
    assert not any(isinstance(a, ReactivateUser) for i in plan.items for a in i.actions)
    (skip,) = plan.skipped
    assert skip.email == "back@b.example" and "outside the scope (domain:a.example); left alone" in skip.reason
    # in the scope the same user is reactivated
    inside = build_plan(csv("stay@a.example", "back@b.example"), s, block("domain:b.example", "domain:a.example"))
    assert emails(inside, ItemKind.REACTIVATE) == ["back@b.example"]


def test_adopt_reactivates_a_listed_blocked_user_outside_the_scope_marking_it_first() -> None:
    s = snap(user("stay@a.example"), blocked("back@a.example", marked=False))
    plan = build_plan(csv("stay@a.example", "back@a.example"), s, block("managed", adopt=True))
    (item,) = plan.of_kind(ItemKind.REACTIVATE)
    assert [type(a) for a in item.actions][:2] == [AdoptUser, ReactivateUser]
    assert build_plan(csv("stay@a.example", "back@a.example"), s, block("managed")).has_changes is False


def test_a_blocked_user_outside_the_scope_is_never_purged() -> None:
    s = snap(
        user("stay@a.example"),
        blocked("old@a.example", at="2026-01-01T00:00:00Z"),
        blocked("old@b.example", at="2026-01-01T00:00:00Z"),
    )
    plan = build_plan(csv("stay@a.example"), s, block("domain:a.example", purge_blocked_after_s=MONTH))
    assert emails(plan, ItemKind.DELETE) == ["old@a.example"]
    purged = {a.user_id for i in plan.items for a in i.actions if isinstance(a, DeleteUser)}
    assert purged == {"old@a.example"}
    unscoped = build_plan(csv("stay@a.example"), s, block(purge_blocked_after_s=MONTH))
    assert emails(unscoped, ItemKind.DELETE) == ["old@a.example", "old@b.example"]


def test_the_brake_counts_blocks_against_the_in_scope_users_only() -> None:
    # 30 managed users at a.example (11 of them leave) and 100 at b.example that the CSV still lists
    stay_a = [f"s{n}@a.example" for n in range(19)]
    gone_a = [f"g{n}@a.example" for n in range(11)]
    other = [f"o{n}@b.example" for n in range(100)]
    s = snap(*(user(e) for e in stay_a + gone_a + other))
    listed = csv(*stay_a, *other)
    # the whole proxy: 130 managed users, a limit of 26, and 11 blocks pass
    whole = build_plan(listed, s, block())
    assert len(whole.of_kind(ItemKind.BLOCK)) == 11 and whole.delete_limit == 26 and not whole.refusals
    # the scope: 30 managed users in it, a limit of 10, and the same 11 blocks are refused before any change
    scoped = build_plan(listed, s, block("domain:a.example"))
    assert scoped.delete_limit == 10
    assert scoped.refusals == (
        "this run would block 11 users, more than the limit of 10 (30 managed users in the scope); check the CSV, "
        "or raise the limit with --max-delete 11",
    )
    assert not build_plan(listed, s, block("domain:a.example", max_delete=11)).refusals


def test_the_brake_counts_in_scope_blocks_and_purges_together() -> None:
    s = snap(
        user("a@a.example"),
        user("b@a.example"),
        user("c@a.example"),
        blocked("old@a.example", at="2020-01-01T00:00:00Z"),
        *(user(f"o{n}@b.example") for n in range(5)),
        *(blocked(f"p{n}@b.example", at="2020-01-01T00:00:00Z") for n in range(5)),
    )
    options = block("domain:a.example", max_delete=2, purge_blocked_after_s=86400)
    plan = build_plan(csv("a@a.example"), s, options)
    # only a.example counts: 1 purge + 2 blocks; b.example's 5 leavers and 5 overdue blocks are not planned
    assert plan.refusals == (
        "this run would delete 1 users and block 2 users, more than the limit of 2 (4 managed users in the scope); "
        "check the CSV, or raise the limit with --max-delete 3",
    )
    assert all(i.email.endswith("@a.example") for i in plan.items if i.actions)


def test_a_role_scope_still_owns_the_users_it_blocked() -> None:
    # a blocked user holds internal_user_viewer for now; its record says it was an internal_user
    s = snap(
        user("stay@a.example"),
        blocked("old@a.example", at="2026-01-01T00:00:00Z"),
        blocked("back@a.example"),
        user("viewer@a.example", "internal_user_viewer"),
    )
    options = block("role:internal_user", purge_blocked_after_s=MONTH)
    plan = build_plan(csv("stay@a.example", "back@a.example"), s, options)
    assert emails(plan, ItemKind.DELETE) == ["old@a.example"]  # purged: still the scope's
    assert emails(plan, ItemKind.REACTIVATE) == ["back@a.example"]  # reactivated: still the scope's
    assert not plan.of_kind(ItemKind.BLOCK)  # a real viewer is outside role:internal_user: left alone
    assert plan.out_of_scope == 1
    # a viewer scope does not own them: nothing is purged or reactivated under it
    viewers = build_plan(csv("stay@a.example", "back@a.example"), s, block("role:internal_user_viewer"))
    assert not viewers.of_kind(ItemKind.DELETE) and not viewers.of_kind(ItemKind.REACTIVATE)
    assert emails(viewers, ItemKind.BLOCK) == ["viewer@a.example"]


def test_a_scoped_snapshot_keeps_only_its_users_keys() -> None:
    keys = (UserKey("h-a", "gone@a.example", None, "a-1"), UserKey("h-b", "gone@b.example", "t-dev", "b-1"))
    s = snap(user("gone@a.example"), user("gone@b.example"), keys=keys)
    kept = parse_scope(["domain:a.example"]).restrict(s)
    assert [u.email for u in kept.users] == ["gone@a.example"]
    assert kept.user_keys == keys[:1] and kept.user_keys_read == frozenset({"gone@a.example"})


def test_a_plan_file_carries_the_scope_and_the_block_together() -> None:
    keys = (UserKey("h-a", "gone@a.example", None, "a-1"),)
    s = snap(user("stay@a.example"), user("gone@a.example"), user("sso@b.example"), keys=keys)
    plan = build_plan(csv("stay@a.example"), s, block("domain:a.example", purge_blocked_after_s=MONTH))
    doc = plan_to_document(plan, source="users.csv")
    assert doc["version"] == 2
    assert doc["options"]["scope"] == ["domain:a.example"] and doc["options"]["deprovision"] == "block"
    back = plan_from_document(doc)
    assert back.options.scope == plan.options.scope and back.options.deprovision == "block"
    assert back.options.purge_blocked_after_s == MONTH and back.options.now == NOW
    assert back.items == plan.items and back.out_of_scope == plan.out_of_scope == 1
    # a version-1 file (from before both) still reads: the default scope, the seed's deletions
    v1 = dataclasses.replace(plan, options=PlanOptions())
    old = plan_to_document(v1, source="users.csv")
    old["version"] = 1
    for name in ("scope", "adopt", "deprovision", "purge_blocked_after_s", "now"):
        old["options"].pop(name)
    read = plan_from_document(old)
    assert read.options.scope.is_default and read.options.deprovision == "delete" and read.options.now is None
