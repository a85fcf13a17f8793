"""Restore planning: tables over hand-built snapshots, the brakes, and the invariant that applying the restore
plan to the current state gives back the snapshot (then a second restore plan is empty). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES
from litellm_usersync.models import (
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    RebindKeys,
    RemoveMembership,
    Snapshot,
    Team,
    TeamKey,
)
from litellm_usersync.plans.freshness import check_plan_fresh
from litellm_usersync.plans.restore import build_restore_plan, scope_notice

TEAMS = (Team("t-dev", "development"), Team("t-sup", "support"), Team("t-adm", "admin"))


def user(email: str | None, role: str | None = "internal_user", teams: Sequence[str] = (), **kw: object) -> LiveUser:
    uid = str(kw.pop("uid", None) or (email or "").lower())
    return LiveUser(user_id=uid, email=email, role=role, team_ids=tuple(teams), **kw)  # type: ignore[arg-type]


def snap(*users: LiveUser, teams: tuple[Team, ...] = TEAMS, caller: str = DEFAULT_USER_ID) -> Snapshot:
    return Snapshot(users=(user(None, "proxy_admin", uid=DEFAULT_USER_ID), *users), teams=teams, caller_user_id=caller)


def only(plan: Plan, kind: ItemKind) -> PlanItem:
    items = plan.of_kind(kind)
    assert len(items) == 1, items
    return items[0]


def test_nothing_changed_plans_nothing() -> None:
    state = snap(user("a@x.com", "proxy_admin", ["t-dev"]), user("b@x.com", "internal_user", ["t-sup", "t-adm"]))
    plan = build_restore_plan(state, state, PlanOptions())
    assert not plan.has_changes and not plan.refusals and not plan.skipped
    assert plan.counts[ItemKind.UNCHANGED] == 2


def test_a_deleted_user_is_recreated_with_its_id_email_role_and_teams() -> None:
    backup = snap(user("Alice@X.com", "proxy_admin_viewer", ["t-dev", "t-adm"], uid="alice-original", key_count=2))
    current = snap()
    plan = build_restore_plan(backup, current, PlanOptions())
    item = only(plan, ItemKind.ADD)
    assert item.actions == (
        CreateUser(
            user_id="alice-original",
            email="Alice@X.com",
            role="proxy_admin_viewer",
            team_ids=("t-adm", "t-dev"),
            key_alias=None,
            create_key=True,
        ),
    )
    assert item.key_count == 2 and item.team_names == ("admin", "development") and not item.blocked


def test_a_recreated_user_without_keys_gets_no_key() -> None:
    plan = build_restore_plan(snap(user("a@x.com", key_count=0)), snap(), PlanOptions())
    (create,) = only(plan, ItemKind.ADD).actions
    assert isinstance(create, CreateUser) and create.create_key is False
    plan = build_restore_plan(snap(user("a@x.com", key_count=1)), snap(), PlanOptions(create_keys=False))
    (create,) = only(plan, ItemKind.ADD).actions
    assert isinstance(create, CreateUser) and create.create_key is False


def test_role_and_teams_are_reverted_join_before_leave() -> None:
    backup = snap(user("a@x.com", "proxy_admin", ["t-dev"]))
    current = snap(user("a@x.com", "internal_user", ["t-sup"]))
    item = only(build_restore_plan(backup, current, PlanOptions()), ItemKind.UPDATE)
    assert item.actions == (
        ChangeRole("a@x.com", "a@x.com", "internal_user", "proxy_admin"),
        AddMembership("a@x.com", "a@x.com", "t-dev"),
        RemoveMembership("a@x.com", "a@x.com", "t-sup", requires=("join:a@x.com:t-dev",)),
    )
    assert (item.old_role, item.role) == ("internal_user", "proxy_admin")
    assert (item.old_team_ids, item.team_ids) == (("t-sup",), ("t-dev",))


def test_users_added_since_are_deleted_but_never_unmanageable_or_protected_ones() -> None:
    backup = snap(user("a@x.com"))
    current = snap(
        user("a@x.com"),
        user("new@x.com", "internal_user", ["t-dev"], key_count=3),
        user(None, "internal_user", uid="no-email-added"),
        user("boss@x.com", "proxy_admin"),
        user("viewer@x.com", "proxy_admin_viewer"),
        user("me@x.com", "proxy_admin", uid="caller-id"),
        caller="caller-id",
    )
    plan = build_restore_plan(
        backup,
        current,
        PlanOptions(protected_emails=frozenset({"BOSS@x.com"}), protected_roles=frozenset({"proxy_admin_viewer"})),
    )
    item = only(plan, ItemKind.DELETE)
    assert item.actions == (DeleteUser("new@x.com", "new@x.com", ("t-dev",)),)
    assert item.key_count == 3
    reasons = {s.user_id: s.reason for s in plan.skipped}
    assert reasons == {
        "boss@x.com": "added since the snapshot; not deleted: protected (--protect)",
        "viewer@x.com": "added since the snapshot; not deleted: protected (--protect-role proxy_admin_viewer)",
        "caller-id": "added since the snapshot; not deleted: protected: the identity of the credentials in use",
    }


def test_no_delete_keeps_users_added_since() -> None:
    plan = build_restore_plan(snap(), snap(user("new@x.com")), PlanOptions(allow_delete=False))
    assert not plan.has_changes
    assert [s.reason for s in plan.skipped] == ["added since the snapshot; not deleted (--no-delete)"]


def test_no_add_and_no_update_are_obeyed() -> None:
    backup = snap(user("gone@x.com"), user("a@x.com", "proxy_admin"))
    current = snap(user("a@x.com", "internal_user"))
    plan = build_restore_plan(backup, current, PlanOptions(allow_add=False, allow_update=False))
    assert not plan.has_changes
    assert sorted(s.reason for s in plan.skipped) == [
        "deleted since the snapshot; not recreated (--no-add)",
        "differs from the snapshot but not reverted (--no-update)",
    ]


def test_a_protected_user_keeps_its_role_but_gets_its_teams_back() -> None:
    backup = snap(user("boss@x.com", "internal_user", ["t-dev"]))
    current = snap(user("boss@x.com", "proxy_admin", []))
    plan = build_restore_plan(backup, current, PlanOptions(protected_emails=frozenset({"boss@x.com"})))
    item = only(plan, ItemKind.UPDATE)
    assert item.actions == (AddMembership("boss@x.com", "boss@x.com", "t-dev"),)
    assert not item.may_recreate
    assert [s.reason for s in plan.skipped] == ["role change to internal_user refused: protected (--protect)"]


@pytest.mark.parametrize("kind", [ItemKind.ADD, ItemKind.UPDATE])
def test_a_team_deleted_since_blocks_the_row_with_a_clear_reason(kind: ItemKind) -> None:
    backup = snap(user("a@x.com", "internal_user", ["t-dev", "t-old"]), teams=(*TEAMS, Team("t-old", "legacy")))
    current = snap(user("a@x.com", "proxy_admin", ["t-dev"])) if kind is ItemKind.UPDATE else snap()
    plan = build_restore_plan(backup, current, PlanOptions())
    item = only(plan, kind)
    assert item.blocked is not None
    assert "team(s) deleted since the snapshot cannot be restored: legacy (t-old)" in item.blocked
    assert not plan.has_changes, "a blocked row sends nothing"


def test_a_user_re_added_under_another_id_is_matched_by_email_and_kept() -> None:
    backup = snap(user("a@x.com", "proxy_admin", ["t-dev"], uid="old-id"))
    current = snap(user("A@x.com", "internal_user", [], uid="new-uuid"))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert not plan.of_kind(ItemKind.DELETE) and not plan.of_kind(ItemKind.ADD)
    item = only(plan, ItemKind.UPDATE)
    assert item.user_id == "new-uuid"
    assert item.actions == (
        ChangeRole("new-uuid", "A@x.com", "internal_user", "proxy_admin"),
        AddMembership("new-uuid", "A@x.com", "t-dev"),
    )
    assert any("user id changed since the snapshot (was old-id)" in s.reason for s in plan.skipped)


def test_two_accounts_sharing_the_email_of_a_deleted_user_block_it() -> None:
    backup = snap(user("a@x.com", uid="old"))
    current = snap(user("a@x.com", uid="n1"), user("a@x.com", uid="n2"))
    plan = build_restore_plan(backup, current, PlanOptions())
    item = only(plan, ItemKind.ADD)
    assert item.blocked is not None and "2 live users now share this email (n1, n2)" in item.blocked
    assert not plan.of_kind(ItemKind.DELETE)


def test_an_email_taken_by_another_snapshot_user_blocks_the_recreation() -> None:
    backup = snap(user("a@x.com", uid="one"), user("a@x.com", uid="two"))
    current = snap(user("a@x.com", uid="two"))
    item = only(build_restore_plan(backup, current, PlanOptions()), ItemKind.ADD)
    assert item.blocked == "another live user has this email now (two); not recreated"


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        (None, "the snapshot has no role for this user"),
        ("org_admin", "the snapshot's role 'org_admin' cannot be given by this tool"),
    ],
)
def test_a_deleted_user_without_a_settable_role_is_blocked(role: str | None, reason: str) -> None:
    item = only(build_restore_plan(snap(user("a@x.com", role)), snap(), PlanOptions()), ItemKind.ADD)
    assert item.blocked is not None and reason in item.blocked


def test_users_without_email_are_not_recreated_and_say_so() -> None:
    plan = build_restore_plan(snap(user(None, uid="svc")), snap(), PlanOptions())
    assert not plan.items
    assert [(s.user_id, s.reason) for s in plan.skipped] == [
        ("svc", "not recreated: users without an email are not managed")
    ]


def test_an_email_changed_since_is_reported_not_reverted() -> None:
    backup = snap(user("old@x.com", uid="u1"))
    current = snap(user("new@x.com", uid="u1"))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert not plan.has_changes
    assert [s.reason for s in plan.skipped] == ["email changed since the snapshot (was old@x.com); not reverted"]


def test_the_mass_deletion_brake() -> None:
    backup = snap(user("keep@x.com"))
    current = snap(user("keep@x.com"), *(user(f"n{i}@x.com") for i in range(11)))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert plan.refusals == (
        "this restore would delete 11 users added since the snapshot, more than the limit of 10 "
        "(12 users in scope); check the snapshot, or raise the limit with --max-delete 11",
    )
    assert not build_restore_plan(backup, current, PlanOptions(max_delete=11)).refusals
    assert build_restore_plan(backup, current, PlanOptions(max_delete=0)).refusals


def test_an_empty_snapshot_never_deletes_everyone() -> None:
    plan = build_restore_plan(snap(), snap(user("a@x.com")), PlanOptions(max_delete=100))
    assert plan.refusals and "the snapshot has no users" in plan.refusals[0]


def test_the_restore_plan_is_deterministic_fresh_and_survives_a_plan_file() -> None:
    backup = snap(user("b@x.com", "proxy_admin", ["t-dev"]), user("a@x.com", "internal_user", ["t-sup"]))
    current = snap(user("b@x.com", "internal_user", []), user("c@x.com"))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert plan == build_restore_plan(backup, current, PlanOptions())
    assert [(i.kind, i.email) for i in plan.items] == [
        (ItemKind.ADD, "a@x.com"),
        (ItemKind.DELETE, "c@x.com"),
        (ItemKind.UPDATE, "b@x.com"),
    ]
    check_plan_fresh(plan, current)
    assert plan_from_document(plan_to_document(plan, source="snap.json")) == plan
    assert plan.team_label("t-dev") == "development"


# --------------------------------------------------------------------------------------------------
# Invariant: applying the plan to the current state gives the snapshot back


def apply_to(plan: Plan, state: Snapshot) -> Snapshot:
    """What the proxy would look like after every unblocked action succeeded (memberships in ``user.teams``)."""
    users = {u.user_id: u for u in state.users}
    for a in plan.actions:
        if isinstance(a, CreateUser):
            users[a.user_id] = LiveUser(a.user_id, a.email, a.role, a.team_ids)
        elif isinstance(a, DeleteUser):
            users.pop(a.user_id)
        elif isinstance(a, ChangeRole):
            users[a.user_id] = dataclasses.replace(users[a.user_id], role=a.new_role)
        elif isinstance(a, AddMembership):
            u = users[a.user_id]
            users[a.user_id] = dataclasses.replace(u, team_ids=tuple(sorted({*u.team_ids, a.team_id})))
        elif isinstance(a, RemoveMembership):
            u = users[a.user_id]
            users[a.user_id] = dataclasses.replace(u, team_ids=tuple(t for t in u.team_ids if t != a.team_id))
    return Snapshot(users=tuple(users.values()), teams=state.teams, caller_user_id=state.caller_user_id)


def view(state: Snapshot) -> dict[str, tuple[str, str | None, frozenset[str]]]:
    return {u.email_key: (u.user_id, u.role, state.team_ids_of(u.user_id)) for u in state.users if u.is_manageable}


EMAILS = [f"user{i}@x.com" for i in range(8)]
team_sets = st.frozensets(st.sampled_from([t.team_id for t in TEAMS]), max_size=3)
states = st.dictionaries(st.sampled_from(EMAILS), st.tuples(st.sampled_from(PROXY_ROLES), team_sets), max_size=8)
#: an empty snapshot trips the brake on purpose (tested above), so the snapshot side has a user
snapshots = st.dictionaries(
    st.sampled_from(EMAILS), st.tuples(st.sampled_from(PROXY_ROLES), team_sets), min_size=1, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(before=snapshots, after=states)
def test_applying_the_restore_plan_gives_the_snapshot_back(
    before: dict[str, tuple[str, frozenset[str]]], after: dict[str, tuple[str, frozenset[str]]]
) -> None:
    backup = snap(*(user(e, r, sorted(t)) for e, (r, t) in sorted(before.items())))
    current = snap(*(user(e, r, sorted(t)) for e, (r, t) in sorted(after.items())))
    plan = build_restore_plan(backup, current, PlanOptions(max_delete=100))
    assert not plan.refusals and not plan.has_blocked
    restored = apply_to(plan, current)
    assert view(restored) == view(backup)
    assert not build_restore_plan(backup, restored, PlanOptions(max_delete=100)).has_changes


def test_the_fallback_recreation_is_only_offered_for_a_role_it_can_give_back() -> None:
    backup = snap(user("a@x.com", "org_admin", ["t-dev"]), user("b@x.com", "internal_user", ["t-dev"]))
    current = snap(user("a@x.com", "org_admin", ["t-sup"]), user("b@x.com", "internal_user", ["t-sup"]))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert {i.email: i.may_recreate for i in plan.items} == {"a@x.com": False, "b@x.com": True}
    assert not any(i.may_recreate for i in build_restore_plan(backup, current, PlanOptions(allow_recreate=False)).items)


@pytest.mark.parametrize("role", [None, "org_admin", "customer"])
def test_restore_keeps_syncs_scope_users_without_a_proxy_role_are_not_deleted(role: str | None) -> None:
    """Issue 9 §4: sync never deletes a user without a proxy role; restore must not either, unless --all."""
    backup = snap(user("a@x.com"))
    current = snap(user("a@x.com"), user("wide@x.com", role), user("new@x.com"))
    plan = build_restore_plan(backup, current, PlanOptions())
    assert [i.user_id for i in plan.of_kind(ItemKind.DELETE)] == ["new@x.com"]
    (skip,) = plan.skipped
    assert skip.user_id == "wide@x.com"
    assert "outside sync's scope (restore --all deletes it)" in skip.reason
    assert scope_notice(plan) is None

    wide = build_restore_plan(backup, current, PlanOptions(), all_users=True)
    assert sorted(i.user_id for i in wide.of_kind(ItemKind.DELETE)) == ["new@x.com", "wide@x.com"]
    assert not wide.skipped
    notice = scope_notice(wide)
    assert notice is not None and "1 of the deletions" in notice and "wide@x.com" in notice


def test_the_restore_brake_counts_only_the_users_in_scope() -> None:
    backup = snap(user("a@x.com"))
    # 11 proxy-role users added since, 40 role-less users: 20% of 52 would be 10 (tripped either way), but
    # the denominator must be the users a restore may delete, as for sync
    added = [*(user(f"n{i}@x.com") for i in range(11)), *(user(f"r{i}@x.com", None) for i in range(40))]
    current = snap(user("a@x.com"), *added)
    (refusal,) = build_restore_plan(backup, current, PlanOptions()).refusals
    assert "(12 users in scope)" in refusal
    (refusal,) = build_restore_plan(backup, current, PlanOptions(), all_users=True).refusals
    assert "(52 users in scope)" in refusal


# --------------------------------------------------------------------------------------------------
# Issue 9 §2, restore side: a team leave deletes the user's keys bound to that team


def keyed(state: Snapshot, *keys: tuple[str, str]) -> Snapshot:
    """``state`` with team keys (user id, team id), as ``snapshot.with_team_keys`` reads them."""
    found = tuple(TeamKey(f"{n:064x}", uid, tid) for n, (uid, tid) in enumerate(keys))
    return dataclasses.replace(state, team_keys=found)


def test_a_restore_move_counts_the_team_keys_its_leaves_destroy() -> None:
    backup = snap(user("a@x.com", teams=["t-adm"]))
    current = keyed(
        snap(user("a@x.com", teams=["t-dev", "t-sup"])),
        ("a@x.com", "t-dev"),
        ("a@x.com", "t-dev"),
        ("a@x.com", "t-sup"),
        ("someone", "t-dev"),
    )
    plan = build_restore_plan(backup, current, PlanOptions())
    item = only(plan, ItemKind.UPDATE)
    assert item.team_keys_destroyed == 3 and plan.team_keys_destroyed == 3
    leaves = {a.team_id: a.destroys_keys for a in item.actions if isinstance(a, RemoveMembership)}
    assert leaves == {"t-dev": 2, "t-sup": 1}
    assert plan_from_document(plan_to_document(plan, source="snap.json")).team_keys_destroyed == 3, (
        "a saved restore plan keeps them"
    )
    # a restore that keeps the user in the keyed team destroys nothing
    stay = build_restore_plan(snap(user("a@x.com", teams=["t-dev", "t-adm"])), current, PlanOptions())
    assert stay.team_keys_destroyed == 1  # only the t-sup key


def test_destroyed_team_keys_count_against_the_restore_brake() -> None:
    backup = snap(user("a@x.com", teams=["t-sup"]))
    current = keyed(snap(user("a@x.com", teams=["t-dev"]), user("new@x.com")), ("a@x.com", "t-dev"))
    plan = build_restore_plan(backup, current, PlanOptions(max_delete=1))
    assert plan.refusals == (
        "this restore would delete 1 users and destroy 1 team key(s) (a team leave deletes the user's keys bound "
        "to that team), more than the limit of 1; keep the keys with --keep-team-keys, or raise the limit with "
        "--max-delete 2",
    )
    assert plan.delete_limit == 1
    assert build_restore_plan(backup, current, PlanOptions(max_delete=2)).refusals == ()
    assert build_restore_plan(backup, current, PlanOptions(max_delete=1, keep_team_keys=True)).refusals == ()
    # no deletion at all: the keys alone trip a zero brake
    alone = build_restore_plan(
        backup, keyed(snap(user("a@x.com", teams=["t-dev"])), ("a@x.com", "t-dev")), PlanOptions(max_delete=0)
    )
    assert alone.refusals and "destroy 1 team key(s)" in alone.refusals[0]
    # a blocked row destroys nothing, so it counts nothing
    gone = snap(user("a@x.com", teams=["t-sup", "t-gone"]), teams=(*TEAMS, Team("t-gone", "gone")))
    blocked = build_restore_plan(
        gone, keyed(snap(user("a@x.com", teams=["t-dev"])), ("a@x.com", "t-dev")), PlanOptions(max_delete=0)
    )
    assert only(blocked, ItemKind.UPDATE).blocked and blocked.refusals == ()


def test_restore_keep_team_keys_rebinds_on_a_one_to_one_move_and_blocks_any_other() -> None:
    current = keyed(snap(user("a@x.com", teams=["t-dev"])), ("a@x.com", "t-dev"))
    plan = build_restore_plan(snap(user("a@x.com", teams=["t-sup"])), current, PlanOptions(keep_team_keys=True))
    item = only(plan, ItemKind.UPDATE)
    assert [a.key for a in item.actions] == ["join:a@x.com:t-sup", "rebind:a@x.com:t-dev", "leave:a@x.com:t-dev"]
    rebind = item.actions[1]
    assert isinstance(rebind, RebindKeys) and rebind.to_team == "t-sup" and rebind.tokens == (f"{0:064x}",)
    assert (item.team_keys_destroyed, item.team_keys_rebound) == (0, 1) and not item.blocked
    # out of the keyed team into none (or two): nothing to re-bind to, the row is blocked, nothing is sent
    two = build_restore_plan(snap(user("a@x.com", teams=["t-sup", "t-adm"])), current, PlanOptions(keep_team_keys=True))
    row = only(two, ItemKind.UPDATE)
    assert row.blocked and "--keep-team-keys: 1 team key(s) can only be re-bound" in row.blocked
    assert not two.has_changes


@pytest.mark.parametrize(("version", "blocked"), [("1.74.15.post2", True), ("1.110.2", False), (None, False)])
def test_restore_of_an_alias_or_a_null_budget_fails_on_1_74(version: str | None, blocked: bool) -> None:
    """LiteLLM 1.74's /user/update ignores the alias and an explicit null: the row fails instead of saying done."""
    backup = snap(user("a@x.com", user_alias="Alice"), user("b@x.com"), user("c@x.com", max_budget=5.0))
    now = dataclasses.replace(
        snap(user("a@x.com", user_alias="Al"), user("b@x.com", max_budget=9.0), user("c@x.com", max_budget=7.0)),
        proxy_version=version,
    )
    plan = build_restore_plan(backup, now, PlanOptions())
    by_email = {i.email: i for i in plan.items}
    assert bool(by_email["a@x.com"].blocked) is blocked and bool(by_email["b@x.com"].blocked) is blocked
    assert by_email["c@x.com"].blocked is None  # a budget to set back is no clear
    if blocked:
        assert "cannot change a user's alias" in (by_email["a@x.com"].blocked or "")
        assert (by_email["b@x.com"].blocked or "").startswith("max_budget: LiteLLM 1.74.15.post2's /user/update")
