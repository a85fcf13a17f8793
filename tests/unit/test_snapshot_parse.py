"""The pure half of snapshot.py: proxy rows -> LiveUser / Team."""

from __future__ import annotations

from litellm_usersync.models import LiveUser, Team, TeamMember
from litellm_usersync.proxy.snapshot import parse_live_user, parse_team


def test_parse_live_user_full_row() -> None:
    row = {
        "user_id": "u1",
        "user_email": "a@x.com",
        "user_role": "internal_user",
        "teams": ["t1", "t2"],
        "key_count": 3,
        "spend": 1.5,
        "user_alias": "Ann",
        "max_budget": 10.0,
        "models": ["gpt-4"],
        "created_at": "2025-01-01",
        "updated_at": "2025-01-02",
        "metadata": {"managed_by": "litellm-usersync"},
    }
    assert parse_live_user(row) == LiveUser(
        "u1",
        "a@x.com",
        "internal_user",
        ("t1", "t2"),
        key_count=3,
        spend=1.5,
        user_alias="Ann",
        max_budget=10.0,
        models=("gpt-4",),
        created_at="2025-01-01",
        updated_at="2025-01-02",
        managed_marker=True,
        metadata={"managed_by": "litellm-usersync"},
    )


def test_parse_live_user_sparse_row() -> None:
    user = parse_live_user({"user_id": "u2", "user_email": "", "teams": None, "metadata": None, "models": "all"})
    assert user == LiveUser("u2", None, None, ())
    assert not user.managed_marker
    assert parse_live_user({"user_id": "u3", "metadata": {"managed_by": "someone"}}).managed_marker is False


def test_parse_team() -> None:
    row = {
        "team_id": "t1",
        "team_alias": "Dev",
        "members_with_roles": [
            {"user_id": "default_user_id", "user_email": None, "role": "admin"},
            {"user_id": "u1", "user_email": "a@x.com", "role": "user"},
            {"user_email": "legacy@x.com"},
            "garbage",
        ],
    }
    assert parse_team(row) == Team(
        "t1",
        "Dev",
        (
            TeamMember("default_user_id", None, "admin"),
            TeamMember("u1", "a@x.com", "user"),
            TeamMember(None, "legacy@x.com", "user"),
        ),
        roster_read=True,
    )
    # no members_with_roles: no roster to trust (the users' own team lists stand in for it)
    assert parse_team({"team_id": "t2", "team_alias": ""}) == Team("t2", None, roster_read=False)
