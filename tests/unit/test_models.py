"""Value objects: identity keys, managed users, snapshot indexes, plan and report helpers, the error tree."""

from __future__ import annotations

import pytest

from litellm_usersync.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    CsvError,
    CsvProblem,
    InputError,
    NotFoundError,
    ProxyError,
    RateLimitedError,
    RefusedError,
    RejectedError,
    ServerError,
    UnavailableError,
    UsersyncError,
)
from litellm_usersync.models import (
    AddMembership,
    ChangeRole,
    CreateUser,
    DeleteUser,
    DesiredUser,
    ItemKind,
    ItemResult,
    LiveUser,
    Plan,
    PlanItem,
    RecreateUser,
    RemoveMembership,
    RunReport,
    Snapshot,
    Team,
    TeamMember,
)
from litellm_usersync.settings import default_max_delete


def test_email_keys() -> None:
    assert DesiredUser(" \ufeffAnn@X.com ").email_key == "ann@x.com"
    assert LiveUser("u", " Ann@X.com", "internal_user").email_key == "ann@x.com"
    assert LiveUser("u", None, "internal_user").email_key == ""


@pytest.mark.parametrize(
    ("user", "manageable", "managed"),
    [
        (LiveUser("u", "a@x.com", "internal_user"), True, True),
        (LiveUser("u", "a@x.com", "proxy_admin_viewer"), True, True),
        (LiveUser("u", "a@x.com", None), True, False),
        (LiveUser("u", "a@x.com", "org_admin"), True, False),
        (LiveUser("u", None, "proxy_admin"), False, False),
        (LiveUser("u", "  ", "proxy_admin"), False, False),
        (LiveUser("default_user_id", "admin@x.com", "proxy_admin"), False, False),
    ],
)
def test_manageable_and_managed(user: LiveUser, manageable: bool, managed: bool) -> None:
    assert (user.is_manageable, user.is_managed) == (manageable, managed)


def snapshot() -> Snapshot:
    return Snapshot(
        users=(
            LiveUser("u1", "a@x.com", "internal_user", ("t1", "t-gone")),
            LiveUser("u2", "A@x.com ", "internal_user"),
            LiveUser("u3", None, "internal_user", ("t2",)),
            LiveUser("default_user_id", "admin@x.com", "proxy_admin"),
        ),
        teams=(
            Team("t1", "Dev", (TeamMember("u2", "a@x.com", "user"), TeamMember(None, "x@x.com", "user"))),
            Team("t2", None),
            Team("t3", "dev"),
        ),
    )


def test_snapshot_indexes() -> None:
    s = snapshot()
    assert set(s.users_by_id) == {"u1", "u2", "u3", "default_user_id"}
    assert {k: [u.user_id for u in v] for k, v in s.users_by_email_key.items()} == {"a@x.com": ["u1", "u2"]}
    assert s.team_ids_by_name == {"dev": ["t1", "t3"], "t2": ["t2"]}
    # rosters united with the users' own lists; a stale id of a deleted team is ignored
    assert s.memberships == {"u1": frozenset({"t1"}), "u2": frozenset({"t1"}), "u3": frozenset({"t2"})}
    assert s.team_ids_of("nobody") == frozenset()
    assert s.team_names_of("u1") == ("Dev",)
    assert s.team_names(["t3", "t2", "t-gone"]) == ("dev", "t-gone", "t2")


def test_fingerprint_of() -> None:
    s = snapshot()
    assert s.fingerprint_of(["u1", "u2"]) == s.fingerprint_of(["u2", "u1", "u1"])
    assert s.fingerprint_of(["u1"]) != s.fingerprint_of(["u2"])
    assert s.fingerprint_of(["absent"]) != s.fingerprint_of([])
    assert len(s.fingerprint_of([])) == 64


def test_action_keys_are_unique_per_kind_and_target() -> None:
    actions = [
        CreateUser("u", "u@x", "internal_user"),
        DeleteUser("u", "u@x"),
        ChangeRole("u", "u@x", None, "proxy_admin"),
        AddMembership("u", "u@x", "t"),
        RemoveMembership("u", "u@x", "t"),
        RecreateUser("u", "u@x", "proxy_admin"),
    ]
    assert [a.key for a in actions] == ["create:u", "delete:u", "role:u", "join:u:t", "leave:u:t", "recreate:u"]


def test_plan_helpers() -> None:
    add = PlanItem(ItemKind.ADD, "a@x", "a", "r", (), actions=(CreateUser("a", "a@x", "r"),))
    blocked = PlanItem(ItemKind.ADD, "b@x", "b", "r", (), actions=(CreateUser("b", "b@x", "r"),), blocked="no")
    same = PlanItem(ItemKind.UNCHANGED, "c@x", "c", "r", ())
    plan = Plan(items=(add, blocked, same))
    assert plan.actions == add.actions
    assert plan.has_changes and plan.has_blocked
    assert plan.counts == {
        ItemKind.ADD: 2,
        ItemKind.DELETE: 0,
        ItemKind.UPDATE: 0,
        ItemKind.UNCHANGED: 1,
        ItemKind.BLOCK: 0,
        ItemKind.REACTIVATE: 0,
    }
    assert plan.of_kind(ItemKind.UNCHANGED) == (same,)
    only_blocked = Plan(items=(blocked, same))
    assert not only_blocked.has_changes and only_blocked.actions == ()
    assert ItemKind.ADD.value == "ADDED" and ItemKind.DELETE.value == "DELETED"


def test_run_report_ok() -> None:
    item = PlanItem(ItemKind.UNCHANGED, "c@x", "c", "r", ())
    assert RunReport((ItemResult(item, True),)).ok
    assert not RunReport((ItemResult(item, True),), interrupted=True).ok
    bad = RunReport((ItemResult(item, True), ItemResult(item, False, error="x")))
    assert not bad.ok and len(bad.failed) == 1


@pytest.mark.parametrize(("managed", "limit"), [(0, 10), (10, 10), (50, 10), (55, 11), (100, 20), (1000, 200)])
def test_default_max_delete(managed: int, limit: int) -> None:
    assert default_max_delete(managed) == limit


# --------------------------------------------------------------------------------------------------
# The error tree


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (InputError, UsersyncError),
        (CsvError, InputError),
        (ConfigError, UsersyncError),
        (RefusedError, UsersyncError),
        (ProxyError, UsersyncError),
        (AuthError, ProxyError),
        (NotFoundError, ProxyError),
        (ConflictError, ProxyError),
        (RejectedError, ProxyError),
        (RateLimitedError, ProxyError),
        (ServerError, ProxyError),
        (UnavailableError, ProxyError),
    ],
)
def test_error_tree(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)
    assert not issubclass(UsersyncError, (TypeError, RuntimeError, ValueError))


def test_csv_problem_and_error_text() -> None:
    p1 = CsvProblem("u.csv", 3, "2 (role)", "unknown role")
    p2 = CsvProblem("u.csv", 1, None, "missing email")
    assert str(p1) == "u.csv:3 (column 2 (role)): unknown role"
    assert str(p2) == "u.csv:1: missing email"
    err = CsvError([p1, p2])
    assert str(err) == "u.csv:3 (column 2 (role)): unknown role (and 1 more problem(s))"
    assert err.render() == "u.csv:3 (column 2 (role)): unknown role\nu.csv:1: missing email"
    assert str(CsvError([p2])) == "u.csv:1: missing email"
    assert str(CsvError([])) == "invalid CSV"


def test_proxy_error_text_and_fields() -> None:
    exc = RateLimitedError("slow down", retry_after_s=3.0, method="GET", path="/user/list", status=429)
    assert str(exc) == "GET /user/list -> 429: slow down"
    assert (exc.message, exc.status, exc.retry_after_s) == ("slow down", 429, 3.0)
    assert str(ProxyError("bare")) == "bare"
    assert UnavailableError("x").maybe_sent is True
    assert UnavailableError("x", maybe_sent=False).maybe_sent is False
