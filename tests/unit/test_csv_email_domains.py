"""Which addresses the CSV reader accepts: internal (special-use) domains yes, broken syntax no."""

from __future__ import annotations

import pytest

from litellm_usersync.csvfile import parse_users_csv
from litellm_usersync.errors import CsvError


@pytest.mark.parametrize("email", ["a@corp.local", "first.last@lab.test", "ä@example.com", "x+tag@example.co.uk"])
def test_accepted(email: str) -> None:
    (user,) = parse_users_csv(f"email\n{email}\n").users
    assert user.email == email


@pytest.mark.parametrize("email", ["a b@x.com", "a@x", "@x.com", "a@", "a@@x.com", "a@localhost"])
def test_rejected_with_location(email: str) -> None:
    with pytest.raises(CsvError) as exc:
        parse_users_csv(f"email,role\n{email},internal_user\n", "in.csv")
    (problem,) = exc.value.problems
    assert (problem.path, problem.line, problem.column) == ("in.csv", 2, "1 (email)")
    assert problem.message.startswith("invalid email")
