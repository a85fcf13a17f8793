"""Which addresses the CSV reader accepts: internal (special-use) domains yes, broken syntax no."""

from __future__ import annotations

import pytest

from litellm_usersync.errors import CsvError
from litellm_usersync.files.csvfile import parse_users_csv


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


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com",
        "first.last@example.com",
        "a+tag@example.co.uk",
        "a_b%c-d@x.io",
        "a@corp.local",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example..com",
        "a@localhost",
        "a@x",
        "a@123",
        "a@[127.0.0.1]",
        "a@exa_mple.com",
        "a@bücher.de",
        "ä@example.com",
        "x" * 64 + "@example.com",
        "x" * 65 + "@example.com",
        "a@" + "d" * 64 + ".com",
        "a@" + ".".join(["d" * 60] * 5) + ".com",
        '"quoted"@example.com',
        "a b@example.com",
        "a@example.com.",
    ],
)
def test_the_fast_path_agrees_with_the_library(address: str) -> None:
    from litellm_usersync.files.csvfile import _check_email, _full_check

    assert (_check_email(address) is None) == (_full_check(address) is None)
