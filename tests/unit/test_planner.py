"""The planner: tables over hand-built snapshots, safety brakes, determinism, and generated invariants.

Pure: no network, no clock. The invariants are checked on many generated cases (hypothesis): the plan never
deletes a user that is in the CSV, and applying the plan to the snapshot then planning again gives no action.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litellm_usersync.identity import DEFAULT_USER_ID, PROXY_ROLES, normalize_email
from litellm_usersync.models import (
    Action,
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    Plan,
    PlanOptions,
    RebindKeys,
    RecreateUser,
    RemoveMembership,
    Snapshot,
    Team,
    TeamKey,
    TeamMember,
)
from litellm_usersync.plans.sync import build_plan, user_id_for

# --------------------------------------------------------------------------------------------------
# Builders


def live(
    email: str | None,
    role: str | None = "internal_user",
    teams: Sequence[str] = (),
    *,
    uid: str | None = None,
    keys: int = 0,
    spend: float = 0.0,
) -> LiveUser:
    user_id = uid or (f"u-{normalize_email(email)}" if email else "u-noemail")
    return LiveUser(user_id=user_id, email=email, role=role, team_ids=tuple(teams), key_count=keys, spend=spend)


TEAMS = (
    Team("t-dev", "development"),
    Team("t-sup", "support"),
    Team("t-adm", "admin"),
    Team("t-ops", "Ops Team"),
)


def snap(users: Iterable[LiveUser], teams: Iterable[Team] = TEAMS, *, caller: str = DEFAULT_USER_ID) -> Snapshot:
    return Snapshot(users=tuple(users), teams=tuple(teams), proxy_version="1.110.2", caller_user_id=caller)


def want(email: str, role: str | None = None, teams: Sequence[str] | None = None, line: int = 0) -> DesiredUser:
    return DesiredUser(email=email, role=role, team_names=None if teams is None else tuple(teams), line=line)


def desired(*users: DesiredUser) -> DesiredState:
    return DesiredState(users=tuple(users))


def keys(plan: Plan) -> list[str]:
    return [a.key for a in plan.actions]


def table(plan: Plan) -> list[tuple[str, str, tuple[str, ...], str | None]]:
    return [(i.kind.name, i.email, tuple(a.key for a in i.actions), i.blocked) for i in plan.items]


# --------------------------------------------------------------------------------------------------
# Tables


def test_seed_example_plan() -> None:
    """The manual's dry-run example: 2 adds, 1 delete, 1 update (role and team), the rest unchanged."""
    s = snap(
        [
            live("old_user@example.com", "internal_user", ["t-sup"], keys=3, spend=4.5),
            live("existing@example.com", "internal_user", ["t-sup"]),
            live("same@example.com", "internal_user", ["t-dev"]),
        ]
    )
    d = desired(
        want("new_user@example.com", "internal_user", ["development"], line=2),
        want("another@example.com", "proxy_admin", ["admin"], line=3),
        want("existing@example.com", "proxy_admin", ["development"], line=4),
        want("same@example.com", "internal_user", ["development"], line=5),
    )
    plan = build_plan(d, s)
    assert table(plan) == [
        ("ADD", "another@example.com", ("create:another@example.com",), None),
        ("ADD", "new_user@example.com", ("create:new_user@example.com",), None),
        ("DELETE", "old_user@example.com", ("delete:u-old_user@example.com",), None),
        (
            "UPDATE",
            "existing@example.com",
            (
                "role:u-existing@example.com",
                "join:u-existing@example.com:t-dev",
                "leave:u-existing@example.com:t-sup",
            ),
            None,
        ),
        ("UNCHANGED", "same@example.com", (), None),
    ]
    assert plan.refusals == ()
    add = plan.of_kind(ItemKind.ADD)[1]
    assert add.actions == (CreateUser("new_user@example.com", "new_user@example.com", "internal_user", ("t-dev",)),)
    assert (add.role, add.team_names, add.team_ids, add.line) == ("internal_user", ("development",), ("t-dev",), 2)
    [delete] = plan.of_kind(ItemKind.DELETE)
    assert delete.actions == (DeleteUser("u-old_user@example.com", "old_user@example.com", ("t-sup",)),)
    assert (delete.key_count, delete.spend, delete.team_names, delete.role) == (3, 4.5, ("support",), "internal_user")
    [update] = plan.of_kind(ItemKind.UPDATE)
    assert (update.old_role, update.role) == ("internal_user", "proxy_admin")
    assert (update.old_team_names, update.team_names) == (("support",), ("development",))
    assert (update.old_team_ids, update.team_ids) == (("t-sup",), ("t-dev",))
    assert update.may_recreate is True
    leave = update.actions[2]
    assert isinstance(leave, RemoveMembership)
    assert leave.requires == ("join:u-existing@example.com:t-dev",)
    assert plan.counts == {
        ItemKind.ADD: 2,
        ItemKind.DELETE: 1,
        ItemKind.UPDATE: 1,
        ItemKind.UNCHANGED: 1,
        ItemKind.BLOCK: 0,
        ItemKind.REACTIVATE: 0,
    }
    assert plan.has_changes and not plan.has_blocked


@pytest.mark.parametrize(
    ("live_user", "row", "expected_kind", "expected_keys"),
    [
        pytest.param(None, want("a@x.com", "internal_user"), "ADD", ["create:a@x.com"], id="add"),
        pytest.param(
            live("a@x.com", "internal_user"),
            want("a@x.com", "proxy_admin"),
            "UPDATE",
            ["role:u-a@x.com"],
            id="role-change",
        ),
        pytest.param(
            live("a@x.com", "internal_user", ["t-dev"]),
            want("a@x.com", "internal_user", ["support"]),
            "UPDATE",
            ["join:u-a@x.com:t-sup", "leave:u-a@x.com:t-dev"],
            id="team-move",
        ),
        pytest.param(
            live("a@x.com", "internal_user", ["t-dev"]),
            want("a@x.com", "internal_user", ["development", "support", "admin"]),
            "UPDATE",
            ["join:u-a@x.com:t-adm", "join:u-a@x.com:t-sup"],
            id="multi-team-join",
        ),
        pytest.param(
            live("a@x.com", "internal_user", ["t-dev", "t-sup", "t-adm"]),
            want("a@x.com", "internal_user", ["support"]),
            "UPDATE",
            ["leave:u-a@x.com:t-adm", "leave:u-a@x.com:t-dev"],
            id="multi-team-leave",
        ),
        pytest.param(
            live("a@x.com", "internal_user", ["t-dev", "t-sup"]),
            want("a@x.com", "internal_user", None),
            "UNCHANGED",
            [],
            id="empty-team-cell-leaves-teams",
        ),
        pytest.param(
            live("a@x.com", "proxy_admin_viewer", ["t-dev"]),
            want("a@x.com", None, ["development"]),
            "UNCHANGED",
            [],
            id="empty-role-keeps-role",
        ),
        pytest.param(
            live("a@x.com", "proxy_admin_viewer", ["t-dev"]),
            want("a@x.com", None, ["support"]),
            "UPDATE",
            ["join:u-a@x.com:t-sup", "leave:u-a@x.com:t-dev"],
            id="empty-role-team-move",
        ),
        pytest.param(
            live("a@x.com", "internal_user", ["t-ops"]),
            want("a@x.com", "internal_user", ["  ops   TEAM "]),
            "UNCHANGED",
            [],
            id="team-alias-case-and-space",
        ),
        pytest.param(
            live("  A@X.com", "internal_user"),
            want("\ufeffa@x.COM ", "internal_user"),
            "UNCHANGED",
            [],
            id="bom-case-space-email",
        ),
        pytest.param(
            live("a@x.com", None),
            want("a@x.com", "internal_user"),
            "UPDATE",
            ["role:u-a@x.com"],
            id="role-null-gets-csv-role",
        ),
        pytest.param(
            live("a@x.com", "org_admin"),
            want("a@x.com", None),
            "UNCHANGED",
            [],
            id="unmanaged-role-kept-when-not-given",
        ),
    ],
)
def test_single_user_table(
    live_user: LiveUser | None, row: DesiredUser, expected_kind: str, expected_keys: list[str]
) -> None:
    plan = build_plan(desired(row), snap([live_user] if live_user else []))
    [item] = plan.items
    assert item.kind.name == expected_kind
    assert keys(plan) == expected_keys
    assert plan.skipped == ()
    assert plan.refusals == ()


def test_add_with_empty_role_gets_the_default_role() -> None:
    plan = build_plan(desired(want("a@x.com")), snap([]))
    assert plan.items[0].actions == (CreateUser("a@x.com", "a@x.com", "proxy_admin", ()),)
    plan = build_plan(desired(want("a@x.com")), snap([]), PlanOptions(default_role="internal_user_viewer"))
    assert plan.items[0].role == "internal_user_viewer"
    assert plan.items[0].actions[0] == CreateUser("a@x.com", "a@x.com", "internal_user_viewer", ())


def test_add_user_id_is_the_normalised_email_and_email_is_kept_as_given() -> None:
    assert user_id_for("  Alice@Example.COM ") == "alice@example.com"
    plan = build_plan(desired(want("Alice@Example.COM", "internal_user", ["Development"])), snap([]))
    [create] = plan.actions
    assert create == CreateUser("alice@example.com", "Alice@Example.COM", "internal_user", ("t-dev",))
    assert plan.items[0].user_id == "alice@example.com"


def test_add_carries_key_alias_and_create_keys_option() -> None:
    row = DesiredUser("a@x.com", "internal_user", ("admin",), key_name="laptop")
    [create] = build_plan(desired(row), snap([]), PlanOptions(create_keys=False)).actions
    assert create == CreateUser("a@x.com", "a@x.com", "internal_user", ("t-adm",), key_alias="laptop", create_key=False)


def test_add_multi_team_resolves_each_and_deduplicates() -> None:
    plan = build_plan(desired(want("a@x.com", "internal_user", ["support", "development", "SUPPORT"])), snap([]))
    [create] = plan.actions
    assert isinstance(create, CreateUser)
    assert create.team_ids == ("t-sup", "t-dev")
    assert plan.items[0].team_names == ("development", "support")


def test_membership_from_roster_only_counts() -> None:
    """A user listed on a roster but missing the id in its own ``teams`` is a member all the same."""
    teams = (Team("t-dev", "development", (TeamMember("u-a@x.com", "a@x.com", "user"),)), Team("t-sup", "support"))
    s = snap([live("a@x.com", "internal_user", [])], teams)
    assert keys(build_plan(desired(want("a@x.com", None, ["development"])), s)) == []
    assert keys(build_plan(desired(want("a@x.com", None, ["support"])), s)) == [
        "join:u-a@x.com:t-sup",
        "leave:u-a@x.com:t-dev",
    ]


def test_stale_team_id_of_a_deleted_team_is_ignored() -> None:
    s = snap([live("a@x.com", "internal_user", ["t-gone", "t-dev"])])
    plan = build_plan(desired(want("a@x.com", None, ["development"])), s)
    assert keys(plan) == []
    assert plan.items[0].kind is ItemKind.UNCHANGED


def test_team_without_alias_is_named_by_its_id() -> None:
    s = snap([], (Team("t-raw", None),))
    [create] = build_plan(desired(want("a@x.com", None, ["t-raw"])), s).actions
    assert isinstance(create, CreateUser) and create.team_ids == ("t-raw",)


# --------------------------------------------------------------------------------------------------
# --no-add / --no-delete / --no-update


def _mixed() -> tuple[DesiredState, Snapshot]:
    s = snap(
        [
            live("gone@x.com", "internal_user"),
            live("role@x.com", "internal_user"),
            live("move@x.com", "internal_user", ["t-dev"]),
            live("same@x.com", "internal_user"),
        ]
    )
    d = desired(
        want("new@x.com", "internal_user"),
        want("role@x.com", "proxy_admin"),
        want("move@x.com", None, ["support"]),
        want("same@x.com", "internal_user"),
    )
    return d, s


@pytest.mark.parametrize(
    ("options", "expected_keys", "expected_skipped"),
    [
        pytest.param(
            PlanOptions(),
            [
                "create:new@x.com",
                "delete:u-gone@x.com",
                "join:u-move@x.com:t-sup",
                "leave:u-move@x.com:t-dev",
                "role:u-role@x.com",
            ],
            [],
            id="all",
        ),
        pytest.param(
            PlanOptions(allow_add=False),
            [
                "delete:u-gone@x.com",
                "join:u-move@x.com:t-sup",
                "leave:u-move@x.com:t-dev",
                "role:u-role@x.com",
            ],
            [("new@x.com", "", "not added: --no-add")],
            id="no-add",
        ),
        pytest.param(
            PlanOptions(allow_delete=False),
            ["create:new@x.com", "join:u-move@x.com:t-sup", "leave:u-move@x.com:t-dev", "role:u-role@x.com"],
            [("gone@x.com", "u-gone@x.com", "not deleted: --no-delete")],
            id="no-delete",
        ),
        pytest.param(
            PlanOptions(allow_update=False),
            ["create:new@x.com", "delete:u-gone@x.com"],
            [
                ("move@x.com", "u-move@x.com", "differs but not updated: --no-update"),
                ("role@x.com", "u-role@x.com", "differs but not updated: --no-update"),
            ],
            id="no-update",
        ),
        pytest.param(
            PlanOptions(allow_add=False, allow_delete=False, allow_update=False),
            [],
            [
                ("gone@x.com", "u-gone@x.com", "not deleted: --no-delete"),
                ("move@x.com", "u-move@x.com", "differs but not updated: --no-update"),
                ("new@x.com", "", "not added: --no-add"),
                ("role@x.com", "u-role@x.com", "differs but not updated: --no-update"),
            ],
            id="nothing",
        ),
    ],
)
def test_allow_flags(
    options: PlanOptions, expected_keys: list[str], expected_skipped: list[tuple[str, str, str]]
) -> None:
    d, s = _mixed()
    plan = build_plan(d, s, options)
    assert sorted(keys(plan)) == sorted(expected_keys)
    assert [(x.email, x.user_id, x.reason) for x in plan.skipped] == expected_skipped
    # the unchanged user is always reported as such
    assert [i.email for i in plan.of_kind(ItemKind.UNCHANGED)] == ["same@x.com"]


def test_no_recreate_clears_may_recreate() -> None:
    s = snap([live("a@x.com", "internal_user", ["t-dev"])])
    d = desired(want("a@x.com", None, ["support"]))
    assert build_plan(d, s).items[0].may_recreate is True
    assert build_plan(d, s, PlanOptions(allow_recreate=False)).items[0].may_recreate is False
    # a role change alone never recreates
    assert build_plan(desired(want("a@x.com", "proxy_admin", ["development"])), s).items[0].may_recreate is False


# --------------------------------------------------------------------------------------------------
# Protected identities


def test_default_user_id_is_never_touched_even_with_an_email() -> None:
    admin = live("admin@x.com", "proxy_admin", uid=DEFAULT_USER_ID)
    plan = build_plan(desired(want("other@x.com", "internal_user")), snap([admin]))
    assert all(getattr(a, "user_id", None) != DEFAULT_USER_ID for a in plan.actions)
    assert keys(plan) == ["create:other@x.com"]


def test_caller_is_never_deleted() -> None:
    me = live("me@x.com", "proxy_admin", uid="u-me")
    plan = build_plan(desired(want("other@x.com")), snap([me], caller="u-me"))
    assert keys(plan) == ["create:other@x.com"]
    assert [(x.email, x.reason) for x in plan.skipped] == [
        ("me@x.com", "not deleted: protected: the identity of the credentials in use")
    ]


def test_caller_is_never_demoted_but_teams_may_change() -> None:
    me = live("me@x.com", "proxy_admin", ["t-dev"], uid="u-me")
    plan = build_plan(desired(want("me@x.com", "internal_user", ["support"])), snap([me], caller="u-me"))
    [item] = plan.items
    assert [a.key for a in item.actions] == ["join:u-me:t-sup", "leave:u-me:t-dev"]
    assert item.role == "proxy_admin"
    assert item.may_recreate is False  # never recreate the caller
    assert [x.reason for x in plan.skipped] == [
        "role change to internal_user refused: protected: the identity of the credentials in use"
    ]


@pytest.mark.parametrize("protect", ["boss@x.com", " BOSS@x.com ", "\ufeffBoss@X.com"])
def test_protected_emails_normalised(protect: str) -> None:
    boss = live("Boss@x.com", "proxy_admin")
    plan = build_plan(desired(want("a@x.com")), snap([boss]), PlanOptions(protected_emails=frozenset({protect})))
    assert keys(plan) == ["create:a@x.com"]
    assert [x.reason for x in plan.skipped] == ["not deleted: protected (--protect)"]
    plan = build_plan(
        desired(want("boss@x.com", "internal_user")), snap([boss]), PlanOptions(protected_emails=frozenset({protect}))
    )
    assert keys(plan) == []
    assert [x.reason for x in plan.skipped] == ["role change to internal_user refused: protected (--protect)"]


def test_protected_roles() -> None:
    users = [live("adm@x.com", "proxy_admin"), live("usr@x.com", "internal_user")]
    plan = build_plan(desired(), snap(users), PlanOptions(protected_roles=frozenset({"proxy_admin"}), max_delete=99))
    assert [a.key for a in plan.actions] == ["delete:u-usr@x.com"]
    assert [(x.email, x.reason) for x in plan.skipped] == [
        ("adm@x.com", "not deleted: protected (--protect-role proxy_admin)")
    ]


def test_protected_role_blocks_demotion_only() -> None:
    users = [live("adm@x.com", "proxy_admin")]
    opts = PlanOptions(protected_roles=frozenset({"proxy_admin"}))
    assert keys(build_plan(desired(want("adm@x.com", "internal_user")), snap(users), opts)) == []
    # promotion of an unprotected user to a protected role is fine
    users = [live("usr@x.com", "internal_user")]
    assert keys(build_plan(desired(want("usr@x.com", "proxy_admin")), snap(users), opts)) == ["role:u-usr@x.com"]


# --------------------------------------------------------------------------------------------------
# Users the sync may not touch


def test_users_without_email_are_never_touched() -> None:
    users = [
        live(None, "internal_user", ["t-dev"], uid="u-anon"),
        live("", "proxy_admin", uid="u-empty"),
        live("   ", "proxy_admin", uid="u-blank"),
    ]
    plan = build_plan(desired(want("a@x.com", "internal_user", ["support"])), snap(users))
    assert keys(plan) == ["create:a@x.com"]
    assert plan.skipped == ()


@pytest.mark.parametrize("role", [None, "org_admin", "team", "customer"])
def test_unmanaged_roles_are_never_deleted(role: str | None) -> None:
    plan = build_plan(desired(want("a@x.com")), snap([live("other@x.com", role)]), PlanOptions(max_delete=100))
    assert keys(plan) == ["create:a@x.com"]


@pytest.mark.parametrize("role", PROXY_ROLES)
def test_every_proxy_role_is_managed(role: str) -> None:
    plan = build_plan(desired(want("a@x.com")), snap([live("other@x.com", role)]))
    assert keys(plan) == ["create:a@x.com", "delete:u-other@x.com"]


def test_two_live_users_sharing_an_email_in_the_csv_is_a_blocked_conflict() -> None:
    users = [live("a@x.com", "internal_user", uid="u-1"), live(" A@X.com", "proxy_admin", uid="u-2")]
    plan = build_plan(desired(want("a@x.com", "internal_user_viewer", ["support"], line=7)), snap(users))
    [item] = plan.items
    assert item.kind is ItemKind.UPDATE
    assert item.actions == ()
    assert item.blocked == "conflict: 2 live users share this email (u-1, u-2); none was touched"
    assert (item.user_id, item.line) == ("u-1, u-2", 7)
    assert plan.actions == ()
    assert plan.has_blocked and not plan.has_changes


def test_two_live_users_sharing_an_email_not_in_the_csv_are_skipped_not_deleted() -> None:
    users = [live("dup@x.com", uid="u-1"), live("DUP@x.com", uid="u-2"), live("keep@x.com")]
    plan = build_plan(desired(want("keep@x.com")), snap(users), PlanOptions(max_delete=100))
    assert keys(plan) == []
    assert [(x.user_id, x.reason) for x in plan.skipped] == [
        ("u-1, u-2", "conflict: 2 live users share this email; not deleted")
    ]


def test_new_user_whose_id_is_taken_without_this_email_is_blocked() -> None:
    squatter = live(None, "internal_user", uid="a@x.com")
    plan = build_plan(desired(want("A@x.com", "internal_user")), snap([squatter]))
    [item] = plan.items
    assert item.kind is ItemKind.ADD
    # actionable (issue 11): it says what to send, not "fix it by hand"
    assert item.blocked == (
        "a user with id a@x.com already exists without an email (added to a team by id?): give it this email "
        'with POST /user/update {"user_id": "a@x.com", "user_email": "a@x.com"} (see docs/sync.md), '
        "then run again and the sync manages it as this row"
    )
    assert plan.actions == ()


# --------------------------------------------------------------------------------------------------
# Teams that cannot be resolved


def test_team_not_found_blocks_only_that_row() -> None:
    s = snap([live("b@x.com", "internal_user", ["t-dev"])])
    d = desired(
        want("a@x.com", "internal_user", ["Marketing"], line=2),
        want("b@x.com", "internal_user", ["support", "Ghost"], line=3),
        want("c@x.com", "internal_user", ["development"], line=4),
    )
    plan = build_plan(d, s)
    assert table(plan) == [
        ("ADD", "a@x.com", ("create:a@x.com",), "Team not found: Marketing"),
        ("ADD", "c@x.com", ("create:c@x.com",), None),
        ("UPDATE", "b@x.com", ("join:u-b@x.com:t-sup", "leave:u-b@x.com:t-dev"), "Team not found: Ghost"),
    ]
    assert keys(plan) == ["create:c@x.com"]  # blocked items contribute no action
    assert plan.items[0].team_names == ("Marketing",)


def test_several_missing_teams_are_all_named() -> None:
    plan = build_plan(desired(want("a@x.com", None, ["X", "Y"])), snap([]))
    assert plan.items[0].blocked == "Team not found: X; Team not found: Y"


def test_ambiguous_team_alias_blocks_the_row() -> None:
    teams = (*TEAMS, Team("t-dev-2", "Development"))
    plan = build_plan(
        desired(want("a@x.com", None, ["development"]), want("b@x.com", None, ["support"])), snap([], teams)
    )
    assert plan.items[0].blocked == "Team name is ambiguous: development matches 2 teams (t-dev, t-dev-2)"
    assert plan.items[1].blocked is None
    assert keys(plan) == ["create:b@x.com"]


# --------------------------------------------------------------------------------------------------
# Mass-deletion brake


def _population(n: int) -> list[LiveUser]:
    return [live(f"user{i:03d}@x.com") for i in range(n)]


@pytest.mark.parametrize(
    ("managed", "kept", "refused"),
    [
        (20, 10, False),  # 10 deletions, limit max(10, 4) = 10
        (20, 9, True),  # 11 > 10
        (60, 48, False),  # 12 deletions, limit max(10, 12) = 12
        (60, 47, True),  # 13 > 12
        (100, 80, False),  # 20 = 20
        (100, 79, True),  # 21 > 20
        (5, 1, False),  # 4 <= 10
    ],
)
def test_default_mass_deletion_brake(managed: int, kept: int, refused: bool) -> None:
    users = _population(managed)
    d = desired(*(want(u.email or "") for u in users[:kept]))
    plan = build_plan(d, snap(users))
    deletions = managed - kept
    assert len(plan.of_kind(ItemKind.DELETE)) == deletions
    if refused:
        limit = max(10, int(managed * 0.2))
        assert plan.refusals == (
            f"this run would delete {deletions} users, more than the limit of {limit} ({managed} managed users); "
            f"check the CSV, or raise the limit with --max-delete {deletions}",
        )
    else:
        assert plan.refusals == ()


def test_managed_count_for_the_brake_ignores_unmanaged_users() -> None:
    users = _population(20) + [live(f"anon{i}@x.com", None) for i in range(100)]
    plan = build_plan(desired(*(want(u.email or "") for u in users[:9])), snap(users))
    assert "more than the limit of 10 (20 managed users)" in plan.refusals[0]


@pytest.mark.parametrize(("max_delete", "refused"), [(0, True), (2, True), (3, False), (1000, False)])
def test_explicit_max_delete(max_delete: int, refused: bool) -> None:
    users = _population(4)
    plan = build_plan(desired(want("user000@x.com")), snap(users), PlanOptions(max_delete=max_delete))
    assert bool(plan.refusals) is refused
    assert len(plan.of_kind(ItemKind.DELETE)) == 3


def test_no_deletion_no_refusal_even_with_zero_limit() -> None:
    users = _population(3)
    plan = build_plan(desired(*(want(u.email or "") for u in users)), snap(users), PlanOptions(max_delete=0))
    assert plan.refusals == ()


@pytest.mark.parametrize("max_delete", [None, 10**6])
def test_empty_csv_is_refused_whatever_the_limit(max_delete: int | None) -> None:
    plan = build_plan(desired(), snap(_population(3)), PlanOptions(max_delete=max_delete))
    assert plan.refusals == (
        "the CSV has no users: refusing to delete all 3 managed users (an empty source never means 'delete everyone')",
    )


def test_empty_csv_with_no_delete_is_not_refused() -> None:
    plan = build_plan(desired(), snap(_population(3)), PlanOptions(allow_delete=False))
    assert plan.refusals == ()
    assert plan.actions == ()


def test_empty_csv_against_empty_proxy_is_fine() -> None:
    plan = build_plan(desired(), snap([]))
    assert plan.items == () and plan.refusals == ()


# --------------------------------------------------------------------------------------------------
# Determinism and fingerprint


def test_items_sorted_by_kind_then_email_key() -> None:
    users = [live(e) for e in ("zed@x.com", "Mid@x.com", "alpha@x.com", "beta@x.com")]
    d = desired(
        want("Yak@x.com"),
        want("beta@x.com", "proxy_admin"),
        want("ant@x.com"),
        want("alpha@x.com", "internal_user"),
    )
    plan = build_plan(d, snap(users))
    assert [(i.kind.name, i.email) for i in plan.items] == [
        ("ADD", "ant@x.com"),
        ("ADD", "Yak@x.com"),
        ("DELETE", "Mid@x.com"),
        ("DELETE", "zed@x.com"),
        ("UPDATE", "beta@x.com"),
        ("UNCHANGED", "alpha@x.com"),
    ]


def test_same_input_in_any_order_gives_an_identical_plan() -> None:
    d, s = _mixed()
    reference = build_plan(d, s)
    rng = random.Random(1234)
    for _ in range(20):
        users = list(s.users)
        rows = list(d.users)
        teams = list(s.teams)
        rng.shuffle(users)
        rng.shuffle(rows)
        rng.shuffle(teams)
        again = build_plan(DesiredState(tuple(rows)), snap(users, teams))
        assert again == reference


def test_fingerprint_changes_only_when_a_touched_user_changes() -> None:
    base = [live("a@x.com", "internal_user"), live("b@x.com", "internal_user"), live("c@x.com", "internal_user")]
    d = desired(want("a@x.com", "proxy_admin"), want("b@x.com", "internal_user"))
    fp = build_plan(d, snap(base)).fingerprint
    assert fp and fp == build_plan(d, snap(base)).fingerprint

    # a field the planner does not compare (spend) changes on the unchanged user b
    same = [base[0], dataclasses.replace(base[1], spend=99.0), base[2]]
    assert build_plan(d, snap(same)).fingerprint == fp

    # the user to delete (c) changed its role
    changed_c = [base[0], base[1], dataclasses.replace(base[2], role="internal_user_viewer")]
    assert build_plan(d, snap(changed_c)).fingerprint != fp

    # the user being updated (a) gained a team
    changed_a = [dataclasses.replace(base[0], team_ids=("t-dev",)), base[1], base[2]]
    assert build_plan(d, snap(changed_a)).fingerprint != fp


def test_fingerprint_ignores_unchanged_users() -> None:
    d = desired(want("a@x.com", "proxy_admin"), want("b@x.com", "internal_user"))
    one = build_plan(d, snap([live("a@x.com", "internal_user"), live("b@x.com", "internal_user")]))
    two = build_plan(d, snap([live("a@x.com", "internal_user"), live("b@x.com", "internal_user", ["t-dev"])]))
    assert one.fingerprint == two.fingerprint


def test_build_plan_options_are_normalised_in_the_plan() -> None:
    plan = build_plan(desired(), snap([]), PlanOptions(protected_emails=frozenset({" X@Y.com"})))
    assert plan.options.protected_emails == frozenset({"x@y.com"})


# --------------------------------------------------------------------------------------------------
# Invariants on generated cases


def apply_to_snapshot(plan: Plan, s: Snapshot) -> Snapshot:
    """Simulate a perfectly successful run: every unblocked action of ``plan`` applied to ``s``."""
    users = {u.user_id: u for u in s.users}
    rosters = {t.team_id: {m.user_id: m for m in t.members} for t in s.teams}

    def set_teams(uid: str, change: set[str]) -> None:
        users[uid] = dataclasses.replace(users[uid], team_ids=tuple(sorted(change)))

    def memberships(uid: str) -> set[str]:
        tids = {tid for tid, r in rosters.items() if uid in r}
        return tids | {t for t in users[uid].team_ids if t in rosters}

    action: Action
    for action in plan.actions:
        if isinstance(action, CreateUser | RecreateUser):
            assert action.user_id not in users or isinstance(action, RecreateUser)
            users[action.user_id] = LiveUser(action.user_id, action.email, action.role, tuple(action.team_ids))
        elif isinstance(action, DeleteUser):
            del users[action.user_id]
            for r in rosters.values():
                r.pop(action.user_id, None)
        elif isinstance(action, ChangeRole):
            users[action.user_id] = dataclasses.replace(users[action.user_id], role=action.new_role)
        elif isinstance(action, AddMembership):
            assert action.team_id in rosters
            set_teams(action.user_id, memberships(action.user_id) | {action.team_id})
            rosters[action.team_id][action.user_id] = TeamMember(action.user_id, action.email, "user")
        elif isinstance(action, RemoveMembership):
            set_teams(action.user_id, memberships(action.user_id) - {action.team_id})
            rosters[action.team_id].pop(action.user_id, None)
        else:  # pragma: no cover
            raise AssertionError(action)
    teams = tuple(dataclasses.replace(t, members=tuple(rosters[t.team_id].values())) for t in s.teams)
    return Snapshot(tuple(users.values()), teams, s.proxy_version, s.caller_user_id)


EMAIL_POOL = ("ann@x.com", "bob@x.com", "cy@y.org", "dee@y.org", "eve@z.net", "fay@z.net", "gus@z.net")
GEN_TEAMS = (
    Team("t1", "dev"),
    Team("t2", "Ops"),
    Team("t3", "sales"),
    Team("t4", "Sales"),  # shares an alias with t3: ambiguous
    Team("t5", None),  # named by its id
)
TEAM_NAMES = ("dev", "DEV ", "ops", "sales", "t5", "ghost")
ROLES_LIVE = (*PROXY_ROLES, None, "org_admin")
ROLES_CSV = (*PROXY_ROLES, None)


@st.composite
def email_variant(draw: st.DrawFn, email: str) -> str:
    return draw(st.sampled_from((email, email.upper(), f"  {email} ", "\ufeff" + email, email.title())))


@st.composite
def cases(draw: st.DrawFn) -> tuple[DesiredState, Snapshot, PlanOptions]:
    live_users: list[LiveUser] = []
    n_live = draw(st.integers(0, 9))
    for i in range(n_live):
        email = draw(st.one_of(st.none(), st.sampled_from(EMAIL_POOL).flatmap(email_variant)))
        uid = draw(
            st.sampled_from(
                (f"u{i}", normalize_email(email) if email else f"u{i}", DEFAULT_USER_ID if i == 0 else f"u{i}")
            )
        )
        if any(u.user_id == uid for u in live_users):
            uid = f"u{i}-x"
        teams = draw(st.lists(st.sampled_from(("t1", "t2", "t3", "t4", "t5", "t-gone")), max_size=3, unique=True))
        live_users.append(LiveUser(uid, email, draw(st.sampled_from(ROLES_LIVE)), tuple(teams)))
    # some memberships only on rosters
    rosters: dict[str, list[TeamMember]] = {t.team_id: [] for t in GEN_TEAMS}
    for u in live_users:
        if draw(st.booleans()):
            tid = draw(st.sampled_from(tuple(rosters)))
            rosters[tid].append(TeamMember(u.user_id, u.email, "user"))
    teams = tuple(dataclasses.replace(t, members=tuple(rosters[t.team_id])) for t in GEN_TEAMS)
    caller = draw(st.sampled_from((DEFAULT_USER_ID, *(u.user_id for u in live_users))))

    chosen = draw(st.lists(st.sampled_from(EMAIL_POOL), unique=True, max_size=len(EMAIL_POOL)))
    rows = []
    for line, e in enumerate(chosen, start=2):
        team_cell = draw(st.one_of(st.none(), st.lists(st.sampled_from(TEAM_NAMES), max_size=3, unique=True)))
        rows.append(
            DesiredUser(
                draw(email_variant(e)),
                draw(st.sampled_from(ROLES_CSV)),
                None if not team_cell else tuple(team_cell),
                line=line,
            )
        )
    options = PlanOptions(
        allow_add=draw(st.booleans()),
        allow_delete=draw(st.booleans()),
        allow_update=draw(st.booleans()),
        allow_recreate=draw(st.booleans()),
        default_role=draw(st.sampled_from(PROXY_ROLES)),
        max_delete=10**6,
        protected_emails=frozenset(draw(st.lists(st.sampled_from(EMAIL_POOL), max_size=2))),
        protected_roles=frozenset(draw(st.lists(st.sampled_from(PROXY_ROLES), max_size=1))),
    )
    return DesiredState(tuple(rows)), Snapshot(tuple(live_users), teams, "1.110.2", caller), options


def _conflicted_ids(s: Snapshot) -> set[str]:
    return {u.user_id for group in s.users_by_email_key.values() if len(group) > 1 for u in group}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_invariants_on_generated_cases(case: tuple[DesiredState, Snapshot, PlanOptions]) -> None:
    d, s, options = case
    plan = build_plan(d, s, options)
    wanted = {u.email_key for u in d.users}
    by_id = s.users_by_id
    conflicted = _conflicted_ids(s)
    protected = {DEFAULT_USER_ID, s.caller_user_id}

    for a in plan.actions:
        if isinstance(a, CreateUser):
            assert options.allow_add
            continue
        target = by_id[a.user_id]
        # (a) never delete a user whose email is in the CSV; only managed, unprotected users are deleted
        if isinstance(a, DeleteUser):
            assert options.allow_delete
            assert target.email_key not in wanted
            assert target.is_managed
            assert target.user_id not in protected
            assert target.email_key not in {normalize_email(e) for e in options.protected_emails}
            assert target.role not in options.protected_roles
        else:
            assert options.allow_update
        if isinstance(a, ChangeRole):
            assert target.user_id not in protected
        # users without email, default_user_id and conflicting users are never touched
        assert target.email_key
        assert target.user_id != DEFAULT_USER_ID
        assert target.user_id not in conflicted

    # determinism
    assert build_plan(d, s, options) == plan
    emails = [(i.kind, i.email_key) for i in plan.items]
    assert emails == sorted(
        emails, key=lambda k: ({"ADDED": 0, "DELETED": 1, "UPDATED": 2, "UNCHANGED": 3}[k[0]], k[1])
    )

    # (b) applying the plan then planning again gives no action
    after = apply_to_snapshot(plan, s)
    again = build_plan(d, after, options)
    assert again.actions == (), [a.key for a in again.actions]
    assert [i.blocked for i in again.items if i.blocked] == [i.blocked for i in plan.items if i.blocked]


def test_convergence_on_seeded_random_large_cases() -> None:
    """Bigger populations than hypothesis draws: 300 users, a random CSV, several seeds."""
    for seed in range(8):
        rng = random.Random(seed)
        teams = tuple(Team(f"t{i}", f"team {i}") for i in range(12))
        users = []
        for i in range(300):
            email = None if rng.random() < 0.05 else f"user{i}@corp.example"
            tids = tuple(rng.sample([t.team_id for t in teams], rng.randint(0, 3)))
            users.append(LiveUser(f"id-{i}", email, rng.choice(ROLES_LIVE), tids))
        rows = []
        for i in rng.sample(range(400), 280):
            email = f"user{i}@corp.example"
            email = email.upper() if rng.random() < 0.1 else email
            names = None if rng.random() < 0.3 else tuple(f"TEAM {j}" for j in rng.sample(range(12), rng.randint(1, 3)))
            rows.append(DesiredUser(email, rng.choice(ROLES_CSV), names, line=len(rows) + 2))
        d = DesiredState(tuple(rows))
        s = Snapshot(tuple(users), teams)
        plan = build_plan(d, s, PlanOptions(max_delete=10**6))
        assert plan.has_changes
        deleted = {by.email_key for by in plan.of_kind(ItemKind.DELETE)}
        assert not deleted & {u.email_key for u in d.users}
        again = build_plan(d, apply_to_snapshot(plan, s), PlanOptions(max_delete=10**6))
        assert again.actions == ()
        assert {i.kind for i in again.items} <= {ItemKind.UNCHANGED}


def test_a_csv_row_for_the_admin_identity_does_not_create_a_second_account() -> None:
    admin = live("admin@x.com", "proxy_admin", uid=DEFAULT_USER_ID)
    plan = build_plan(desired(want("Admin@x.com", "proxy_admin")), snap([admin]))
    assert not any(isinstance(a, CreateUser) for a in plan.actions)


@pytest.mark.parametrize(
    ("csv_email", "live_email"),
    [
        ("jose\u0301@example.com", "jos\u00e9@example.com"),  # NFD in the CSV, NFC live
        ("jos\u00e9@example.com", "jose\u0301@example.com"),
        ("ana@xn--mnchen-3ya.de", "ana@m\u00fcnchen.de"),  # IDNA ASCII form in the CSV, Unicode live
        ("ana@m\u00fcnchen.de", "ana@XN--MNCHEN-3YA.de"),
    ],
)
def test_an_email_in_another_unicode_or_idna_form_is_the_same_user(csv_email: str, live_email: str) -> None:
    """Issue 9 §4: an NFD josé@ in the CSV deleted the live user and created a twin."""
    current = snap([live(live_email, "internal_user", ["t-dev"])])
    plan = build_plan(desired(want(csv_email, "internal_user", ["development"])), current)
    assert keys(plan) == []
    assert [i.kind for i in plan.items] == [ItemKind.UNCHANGED]


def test_a_new_user_is_created_with_its_email_in_nfc_and_its_case_kept() -> None:
    plan = build_plan(desired(want("Jose\u0301@Example.com", "internal_user")), snap([]))
    (create,) = plan.actions
    assert isinstance(create, CreateUser)
    assert create.email == "Jos\u00e9@Example.com" and create.user_id == "jos\u00e9@example.com"
    assert plan.items[0].email == "Jos\u00e9@Example.com"


# --------------------------------------------------------------------------------------------------
# Issue 9: the fallback's bounds and team keys


def _keyed(*users: LiveUser, keys: Sequence[tuple[str, str]] = ()) -> Snapshot:
    s = snap(users)
    return dataclasses.replace(s, team_keys=tuple(TeamKey(f"{n:064x}", uid, tid) for n, (uid, tid) in enumerate(keys)))


def test_a_user_holding_keys_is_only_marked_for_recreation_with_recreate_with_keys() -> None:
    s = snap([live("a@x.com", teams=["t-dev"], keys=2)])
    d = desired(want("a@x.com", teams=["support"]))
    assert build_plan(d, s).items[0].may_recreate is False
    assert build_plan(d, s, PlanOptions(recreate_with_keys=True)).items[0].may_recreate is True


def test_the_plan_keeps_the_brake_in_force() -> None:
    s = snap([live(f"u{i}@x.com") for i in range(60)])
    assert build_plan(desired(want("u0@x.com")), s, PlanOptions(max_delete=100)).delete_limit == 100
    assert build_plan(desired(want("u0@x.com")), s, PlanOptions(max_delete=60)).delete_limit == 60
    assert build_plan(desired(want("u0@x.com")), snap([live("a@x.com")])).delete_limit == 10  # the default


def test_a_move_counts_the_team_keys_its_leave_destroys() -> None:
    a = live("a@x.com", teams=["t-dev", "t-sup"])
    s = _keyed(a, keys=[(a.user_id, "t-dev"), (a.user_id, "t-dev"), (a.user_id, "t-sup"), ("someone", "t-dev")])
    plan = build_plan(desired(want("a@x.com", teams=["admin"])), s)
    (item,) = plan.items
    assert item.team_keys_destroyed == 3 and plan.team_keys_destroyed == 3
    leaves = {a.team_id: a.destroys_keys for a in item.actions if isinstance(a, RemoveMembership)}
    assert leaves == {"t-dev": 2, "t-sup": 1}
    # staying in the keyed team destroys nothing
    assert build_plan(desired(want("a@x.com", teams=["development", "support", "admin"])), s).team_keys_destroyed == 0


def test_destroyed_team_keys_count_against_the_deletion_brake() -> None:
    a, b = live("a@x.com", teams=["t-dev"]), live("gone@x.com")
    s = _keyed(a, b, keys=[(a.user_id, "t-dev")])
    d = desired(want("a@x.com", teams=["support"]))
    plan = build_plan(d, s, PlanOptions(max_delete=1))
    assert plan.refusals == (
        "this run would delete 1 users and destroy 1 team key(s) (a team leave deletes the user's keys bound to "
        "that team), more than the limit of 1; keep the keys with --keep-team-keys, or raise the limit with "
        "--max-delete 2",
    )
    assert build_plan(d, s, PlanOptions(max_delete=2)).refusals == ()
    assert build_plan(d, s, PlanOptions(max_delete=1, keep_team_keys=True)).refusals == ()


def test_keep_team_keys_rebinds_on_a_one_to_one_move_and_refuses_any_other() -> None:
    a = live("a@x.com", teams=["t-dev"])
    s = _keyed(a, keys=[(a.user_id, "t-dev")])
    (item,) = build_plan(desired(want("a@x.com", teams=["support"])), s, PlanOptions(keep_team_keys=True)).items
    assert [x.key for x in item.actions] == [
        f"join:{a.user_id}:t-sup",
        f"rebind:{a.user_id}:t-dev",
        f"leave:{a.user_id}:t-dev",
    ]
    rebind = item.actions[1]
    assert isinstance(rebind, RebindKeys) and rebind.to_team == "t-sup" and rebind.tokens == (f"{0:064x}",)
    leave = item.actions[2]
    assert isinstance(leave, RemoveMembership) and leave.requires == (f"join:{a.user_id}:t-sup", rebind.key)
    assert leave.destroys_keys == 0 and item.team_keys_rebound == 1 and not item.blocked
    # one team -> two teams: which one would the key go to? refused for this user
    (item,) = build_plan(
        desired(want("a@x.com", teams=["support", "admin"])), s, PlanOptions(keep_team_keys=True)
    ).items
    assert item.blocked and item.blocked.startswith("--keep-team-keys: 1 team key(s) can only be re-bound")


def test_the_fingerprint_covers_the_team_keys_a_move_destroys() -> None:
    a = live("a@x.com", teams=["t-dev"])
    assert _keyed(a).fingerprint_of([a.user_id]) == snap([a]).fingerprint_of([a.user_id])
    assert _keyed(a, keys=[(a.user_id, "t-dev")]).fingerprint_of([a.user_id]) != snap([a]).fingerprint_of([a.user_id])


def test_the_plan_line_names_the_team_the_keys_are_rebound_to() -> None:
    from litellm_usersync.render.report import render_plan

    a = live("a@x.com", teams=["t-dev", "t-ops"])
    s = _keyed(a, keys=[(a.user_id, "t-dev")])
    plan = build_plan(desired(want("a@x.com", teams=["support", "Ops Team"])), s, PlanOptions(keep_team_keys=True))
    assert "— re-binds 1 team key(s) to support" in render_plan(plan)
