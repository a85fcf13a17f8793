"""A header cell that looks like one of ours is a typo, reported on line 1; other extra columns are fine."""

from __future__ import annotations

import pytest

from litellm_usersync.errors import CsvError
from litellm_usersync.files.csvfile import parse_users_csv


@pytest.mark.parametrize(
    ("header", "column", "suggestion"),
    [
        ("email,rol,team_name", "2 (rol)", "role"),
        ("email,roles,team_name", "2 (roles)", "role"),
        ("emails,role", "1 (emails)", "email"),
        ("emial,role", "1 (emial)", "email"),
        ("email,role,teamname", "3 (teamname)", "team_name"),
    ],
)
def test_a_typo_in_a_column_name_is_an_error(header: str, column: str, suggestion: str) -> None:
    """Regression: 'rol' was ignored, so every new user silently got the default role (proxy_admin)."""
    with pytest.raises(CsvError) as info:
        parse_users_csv(f"{header}\na@x.com,internal_user_viewer,dev\n", "u.csv")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (1, column)
    assert problem.message.endswith(f"did you mean {suggestion!r}?")


@pytest.mark.parametrize(
    "header", ["email,role,team_name,name,department", "Email,Role,Team", "email,user_role,teams,employee_id"]
)
def test_extra_and_alias_columns_are_accepted(header: str) -> None:
    extra = ",x" * (header.count(",") - 2)
    (user,) = parse_users_csv(f"{header}\na@x.com,internal_user,dev{extra}\n").users
    assert user.role == "internal_user" and user.team_names == ("dev",)


def test_key_name_is_only_known_to_add() -> None:
    assert parse_users_csv("email,key_nme\na@x.com,k\n").users  # not ours for sync: ignored
    with pytest.raises(CsvError, match="did you mean 'key_name'"):
        parse_users_csv("email,key_nme\na@x.com,k\n", with_key_name=True)


def test_a_semicolon_separated_file_is_read() -> None:
    """Excel in many locales saves ';': it used to be refused with advice often impossible to follow."""
    (user,) = parse_users_csv('email;role;team_name\na@x.com;internal_user;"dev;ops"\n', "excel.csv").users
    assert (user.email, user.role, user.team_names) == ("a@x.com", "internal_user", ("dev", "ops"))


def test_a_team_name_typo_gets_a_suggestion() -> None:
    from litellm_usersync.identity import resolve_team

    index = {"development": ["t-dev"], "support": ["t-sup"]}
    assert resolve_team("devlopment", index) == (None, "Team not found: devlopment (did you mean development?)")
    assert resolve_team("nope", index) == (None, "Team not found: nope")
