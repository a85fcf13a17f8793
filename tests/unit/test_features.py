"""Proxy features (issue 15): the version rules, the safest path for unknown versions, roster-truth membership."""

from __future__ import annotations

import pytest

from litellm_usersync.models import LiveUser, ProxyFeatures, Snapshot, Team, TeamMember, version_tuple

ROUTES_110 = dict(create=True, delete=True, leave=True, update=True, join=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.110.2", (1, 110, 2)),
        ("1.74.15.post2", (1, 74, 15)),
        ("1.74.0", (1, 74, 0)),
        ("v1.74.0-stable", (1, 74, 0)),
        ("1.80", (1, 80)),
        ("1", None),
        ("main-abc123", None),
        ("", None),
        (None, None),
    ],
)
def test_version_tuple(text: str | None, expected: tuple[int, ...] | None) -> None:
    assert version_tuple(text) == expected


@pytest.mark.parametrize(
    ("version", "cascades", "check", "status"),
    [
        ("1.110.2", True, "case-insensitive", 409),
        ("1.74.15.post2", True, "case-insensitive", 400),
        ("1.74.15", True, "case-insensitive", 400),
        ("1.74.14", False, "case-sensitive", 400),
        ("1.74.0", False, "case-sensitive", 400),
        ("1.73.9", False, "case-sensitive", 400),
    ],
)
def test_version_rules(version: str, cascades: bool, check: str, status: int) -> None:
    f = ProxyFeatures.from_version(version, {})
    assert (f.delete_cascades, f.duplicate_email_check, f.duplicate_email_status) == (cascades, check, status)
    assert version.split(".post")[0].split(".")[1] in f.delete_cascade_basis


@pytest.mark.parametrize("version", [None, "", "nightly", "1"])
def test_unknown_or_unparsable_versions_take_the_safest_path(version: str | None) -> None:
    f = ProxyFeatures.from_version(version, ROUTES_110)
    assert f.delete_cascades is False, "users leave their teams before they are deleted"
    assert f.duplicate_email_check == "case-sensitive" and f.duplicate_email_status is None
    assert "assumed not to cascade" in f.delete_cascade_basis
    # the batch routes were asked of the routes themselves: a route that exists is used whatever the version
    assert f.uses_batch("create")
    assert ProxyFeatures() == ProxyFeatures.from_version(None, {}), "the defaults are the safest path"


def test_batch_routes_come_from_the_routes_not_the_version() -> None:
    # 1.74.15.post2 has /user/bulk_update and /team/bulk_member_add, not the /management/v1 routes
    f = ProxyFeatures.from_version(
        "1.74.15.post2", dict(create=False, delete=False, leave=False, update=True, join=True)
    )
    assert [k for k in ("create", "delete", "leave", "update", "join") if f.uses_batch(k)] == ["update", "join"]
    never = ProxyFeatures.from_version("1.110.2", ROUTES_110, bulk_allowed=False)
    assert not any(never.uses_batch(k) for k in ROUTES_110)
    assert "(not used: --no-bulk)" in never.describe()


def test_describe_and_dict_say_everything_detected() -> None:
    f = ProxyFeatures.from_version("1.74.0", dict(create=False, delete=False, leave=False, update=False, join=False))
    line = f.describe()
    assert line.startswith("LiteLLM 1.74.0; batch routes: create no, delete no, leave no, update no, join no;")
    assert "/user/delete cascades: no (version 1.74.0 < 1.74.15" in line
    assert line.endswith("duplicate-email check: case-sensitive (400)")
    assert f.to_dict() == {
        "litellm_version": "1.74.0",
        "batch_routes": dict(create=False, delete=False, leave=False, update=False, join=False),
        "bulk_allowed": True,
        "delete_cascades": False,
        "delete_cascade_basis": f.delete_cascade_basis,
        "duplicate_email_check": "case-sensitive",
        "duplicate_email_status": 400,
    }


# --------------------------------------------------------------------------------------------------
# membership: the roster is the truth, user.teams a set


def test_a_read_roster_decides_membership_and_user_teams_is_a_set() -> None:
    s = Snapshot(
        users=(
            # 1.74.15.post2 after a move: user.teams still names team-a (a duplicate the leave left behind)
            LiveUser("mover", "m@x.com", "internal_user", ("team-a", "team-b", "team-b")),
            # on the roster only (1.74.0 kept a deleted user's roster entry; the id came back)
            LiveUser("back", "b@x.com", "internal_user", ()),
        ),
        teams=(
            Team("team-a", "A", (TeamMember("back", "b@x.com", "user"),), roster_read=True),
            Team("team-b", "B", (TeamMember("mover", "m@x.com", "user"),), roster_read=True),
        ),
    )
    assert s.team_ids_of("mover") == frozenset({"team-b"})
    assert "team-a" in s.users_by_id["mover"].team_ids, "user.teams still names it; the roster does not"
    assert s.team_ids_of("back") == frozenset({"team-a"})


def test_without_a_read_roster_user_teams_stands_in() -> None:
    s = Snapshot(
        users=(LiveUser("u", "u@x.com", "internal_user", ("t1", "t1", "t-gone")),),
        teams=(Team("t1", "T1"),),
    )
    assert s.team_ids_of("u") == frozenset({"t1"})
