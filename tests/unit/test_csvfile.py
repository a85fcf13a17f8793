"""The CSV reader and writer: pure parsing case by case, exact line and column for every problem."""

from __future__ import annotations

import csv
import os
import pathlib
import stat

import pytest

from litellm_usersync.errors import CsvError, InputError
from litellm_usersync.files.csvfile import parse_users_csv, read_users_csv
from litellm_usersync.files.reportfiles import write_csv_file
from litellm_usersync.models import DesiredState


def rows(state: DesiredState) -> list[tuple[str, str | None, tuple[str, ...] | None, int]]:
    return [(u.email, u.role, u.team_names, u.line) for u in state.users]


def problems(text: str, path: str = "f.csv") -> list[tuple[int, str | None, str]]:
    with pytest.raises(CsvError) as info:
        parse_users_csv(text, path)
    return [(p.line, p.column, p.message) for p in info.value.problems]


# --------------------------------------------------------------------------------------------------
# Happy paths


def test_seed_example_parses_with_line_numbers() -> None:
    text = "email,role,team_name\nuser1@example.com,proxy_admin,admin\nuser2@example.com,internal_user,development\n"
    state = parse_users_csv(text, "user_list.csv")
    assert state.source == "user_list.csv"
    assert rows(state) == [
        ("user1@example.com", "proxy_admin", ("admin",), 2),
        ("user2@example.com", "internal_user", ("development",), 3),
    ]


def test_email_only_header_gives_no_role_and_no_teams() -> None:
    state = parse_users_csv("email\na@x.com\n")
    assert rows(state) == [("a@x.com", None, None, 2)]


@pytest.mark.parametrize("bom", ["", "\ufeff"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_bom_and_crlf_do_not_matter(bom: str, newline: str) -> None:
    text = bom + newline.join(["email,role,team_name", "a@x.com,internal_user,dev", "b@x.com,proxy_admin,ops"])
    text += newline
    state = parse_users_csv(text)
    assert rows(state) == [("a@x.com", "internal_user", ("dev",), 2), ("b@x.com", "proxy_admin", ("ops",), 3)]
    # the BOM never leaks into the first header name or the first email
    assert all(not u.email.startswith("\ufeff") for u in state.users)


def test_bom_in_bytes_read_from_disk(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.csv"
    p.write_bytes("email,role\r\nA@X.com,internal_user\r\n".encode("utf-8-sig"))
    state = read_users_csv(p)
    assert rows(state) == [("A@X.com", "internal_user", None, 2)]
    assert state.users[0].email_key == "a@x.com"
    assert state.source == str(p)


def test_blank_lines_are_skipped_and_line_numbers_stay_physical() -> None:
    text = "email,role\n\na@x.com,internal_user\n   ,  \n\nb@x.com,\n\n"
    assert rows(parse_users_csv(text)) == [("a@x.com", "internal_user", None, 3), ("b@x.com", None, None, 6)]


def test_line_numbers_count_newlines_inside_quoted_cells() -> None:
    text = 'email,team_name\na@x.com,"one\ntwo"\nb@x.com,x\nbad,y\n'
    state_problems = problems(text)
    assert state_problems == [(5, "1 (email)", state_problems[0][2])]
    assert "invalid email 'bad'" in state_problems[0][2]


@pytest.mark.parametrize(
    ("header", "expected_role", "expected_teams"),
    [
        ("email,role,team_name", "internal_user", ("dev",)),
        ("EMAIL,ROLE,TEAM_NAME", "internal_user", ("dev",)),
        (" Email , Role , Team ", "internal_user", ("dev",)),
        ("user_email,user_role,teams", "internal_user", ("dev",)),
        ("e-mail,role,team_names", "internal_user", ("dev",)),
        ("mail,user_role,team", "internal_user", ("dev",)),
    ],
)
def test_header_aliases_and_case(header: str, expected_role: str, expected_teams: tuple[str, ...]) -> None:
    state = parse_users_csv(f"{header}\na@x.com,internal_user,dev\n")
    assert rows(state) == [("a@x.com", expected_role, expected_teams, 2)]


def test_columns_in_any_order_and_unknown_columns_ignored() -> None:
    state = parse_users_csv("team_name,comment,role,email\ndev,hello,internal_user_viewer,a@x.com\n")
    assert rows(state) == [("a@x.com", "internal_user_viewer", ("dev",), 2)]


def test_role_is_case_insensitive_and_stored_lowercase() -> None:
    state = parse_users_csv("email,role\na@x.com, Proxy_Admin_Viewer \n")
    assert state.users[0].role == "proxy_admin_viewer"


def test_empty_role_means_not_given() -> None:
    state = parse_users_csv("email,role,team_name\na@x.com,,dev\nb@x.com,   ,dev\n")
    assert [u.role for u in state.users] == [None, None]


def test_empty_team_cell_means_leave_teams_alone() -> None:
    state = parse_users_csv("email,role,team_name\na@x.com,internal_user,\nb@x.com,internal_user, ; ;\n")
    assert [u.team_names for u in state.users] == [None, None]


def test_short_row_missing_trailing_cells_is_fine() -> None:
    state = parse_users_csv("email,role,team_name\na@x.com\n")
    assert rows(state) == [("a@x.com", None, None, 2)]


def test_multi_team_cell_split_trimmed_deduplicated() -> None:
    state = parse_users_csv('email,team_name\na@x.com,"a; b;;a"\nb@x.com,"Dev ;dev; Ops"\n')
    assert [u.team_names for u in state.users] == [("a", "b"), ("Dev", "Ops")]


def test_quoted_comma_inside_a_cell_is_one_team_name() -> None:
    state = parse_users_csv('email,team_name\n"a@x.com","R&D, Europe; Ops"\n')
    assert state.users[0].team_names == ("R&D, Europe", "Ops")


def test_email_surrounding_spaces_are_trimmed_but_case_kept() -> None:
    state = parse_users_csv("email\n  Alice@Example.COM  \n")
    assert state.users[0].email == "Alice@Example.COM"
    assert state.users[0].email_key == "alice@example.com"


def test_trailing_empty_extra_cells_are_tolerated() -> None:
    state = parse_users_csv("email,team_name\na@x.com,dev,,\n")
    assert rows(state) == [("a@x.com", None, ("dev",), 2)]


def test_key_name_column_only_when_asked() -> None:
    text = "email,key_name\na@x.com,laptop\nb@x.com,\n"
    assert [u.key_name for u in parse_users_csv(text).users] == [None, None]
    assert [u.key_name for u in parse_users_csv(text, with_key_name=True).users] == ["laptop", None]


def test_header_only_gives_an_empty_desired_state() -> None:
    assert parse_users_csv("email,role,team_name\n").users == ()


def test_by_email_key_index() -> None:
    state = parse_users_csv("email\n Bob@X.com\nalice@x.com\n")
    assert set(state.by_email_key) == {"bob@x.com", "alice@x.com"}
    assert state.by_email_key["bob@x.com"].line == 2


# --------------------------------------------------------------------------------------------------
# Problems


def test_csv_error_is_an_input_error_with_location_in_its_message() -> None:
    with pytest.raises(InputError) as info:
        parse_users_csv("email\nnot-an-email\n", "users.csv")
    assert isinstance(info.value, CsvError)
    assert str(info.value).startswith("users.csv:2 (column 1 (email)): invalid email 'not-an-email'")


def test_empty_file_is_reported_on_line_1() -> None:
    [(line, column, message)] = problems("")
    assert (line, column) == (1, None)
    assert "empty" in message and "email" in message


@pytest.mark.parametrize("header", ["name,role,team_name", "role", "\ufeffuser,team"])
def test_missing_email_column_is_reported_on_line_1(header: str) -> None:
    [(line, column, message)] = problems(f"{header}\nfoo,bar\n")
    assert (line, column) == (1, None)
    assert "missing the 'email' column" in message


def test_invalid_email() -> None:
    [(line, column, message)] = problems("email,role\na@x.com,internal_user\nnot an email,internal_user\n")
    assert (line, column) == (3, "1 (email)")
    assert message.startswith("invalid email 'not an email'")


def test_empty_email_is_reported() -> None:
    [(line, column, message)] = problems("role,email\ninternal_user,\n")
    assert (line, column) == (2, "2 (email)")
    assert "email is empty" in message


def test_unknown_role_names_the_expected_roles() -> None:
    [(line, column, message)] = problems("email,role\na@x.com,superuser\n")
    assert (line, column) == (2, "2 (role)")
    assert "unknown role 'superuser'" in message
    for role in ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"):
        assert role in message


@pytest.mark.parametrize("role", ["org_admin", "team", "customer", "admin"])
def test_roles_the_proxy_refuses_are_unknown(role: str) -> None:
    [(_line, column, message)] = problems(f"email,role\na@x.com,{role}\n")
    assert column == "2 (role)"
    assert f"unknown role {role!r}" in message


@pytest.mark.parametrize("dup", ["a@x.com", "A@X.COM", "  a@x.com  ", "\ufeffa@x.com"])
def test_duplicate_email_case_and_space_insensitive_names_the_first_line(dup: str) -> None:
    text = f"email,role\na@x.com,internal_user\nb@x.com,\n{dup},proxy_admin\n"
    [(line, column, message)] = problems(text)
    assert (line, column) == (4, "1 (email)")
    assert "duplicate email" in message
    assert "first seen on line 2" in message


def test_every_problem_is_reported_at_once_with_line_and_column() -> None:
    text = (
        "team_name,email,role\n"  # 1
        "dev,ok@x.com,internal_user\n"  # 2
        "dev,broken,internal_user\n"  # 3
        "\n"  # 4
        "ops,c@x.com,wizard\n"  # 5
        "ops,OK@x.com ,\n"  # 6
        "ops,d@x.com,internal_user,extra\n"  # 7
        "ops,,internal_user\n"  # 8
    )
    got = problems(text, "users.csv")
    assert [(line, column) for line, column, _ in got] == [
        (3, "2 (email)"),
        (5, "3 (role)"),
        (6, "2 (email)"),
        (7, None),
        (8, "2 (email)"),
    ]
    with pytest.raises(CsvError) as info:
        parse_users_csv(text, "users.csv")
    rendered = info.value.render().splitlines()
    assert len(rendered) == 5
    assert rendered[0].startswith("users.csv:3 (column 2 (email)): invalid email 'broken'")
    assert rendered[1].startswith("users.csv:5 (column 3 (role)): unknown role 'wizard'")
    assert rendered[2] == "users.csv:6 (column 2 (email)): duplicate email 'OK@x.com' (first seen on line 2)"
    assert rendered[3] == "users.csv:7: 4 fields but the header has 3; quote cells that contain commas"
    assert "(and 4 more problem(s))" in str(info.value)


def test_too_many_fields_suggests_quoting() -> None:
    [(line, column, message)] = problems("email,team_name\na@x.com,R&D, Europe\n")
    assert (line, column) == (2, None)
    assert message == "3 fields but the header has 2; quote cells that contain commas"


def test_invalid_utf8_reports_the_line(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "latin1.csv"
    p.write_bytes("email,team_name\na@x.com,dev\nb@x.com,Entwicklung Mü\n".encode("latin-1"))
    with pytest.raises(CsvError) as info:
        read_users_csv(p)
    [problem] = info.value.problems
    assert (problem.path, problem.line, problem.column) == (str(p), 3, None)
    assert "not valid UTF-8" in problem.message and "0xfc" in problem.message


def test_missing_file_is_an_input_error_naming_it(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError) as info:
        read_users_csv(tmp_path / "nope.csv")
    assert not isinstance(info.value, CsvError)  # no "1 problem(s) in the CSV ... :0:" for a file that is not there
    assert str(info.value) == f"CSV file not found: {tmp_path / 'nope.csv'} (see --csv-file)"


def test_directory_is_a_csv_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CsvError) as info:
        read_users_csv(tmp_path)
    assert info.value.problems[0].message.startswith("cannot read file")


def test_read_users_csv_reads_key_name(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "k.csv"
    p.write_text("email,key_alias\na@x.com,ci\n", encoding="utf-8")
    assert read_users_csv(p, with_key_name=True).users[0].key_name == "ci"


# --------------------------------------------------------------------------------------------------
# Writing


def _mode(p: pathlib.Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_write_csv_file_secret_is_0600_and_roundtrips(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "result.csv"
    out = write_csv_file(target, ("a", "b"), [("sk-secret-1", None), ("x,y", 3)], secret=True)
    assert out == target
    assert _mode(target) == 0o600
    with target.open(newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["a", "b"], ["sk-secret-1", ""], ["x,y", "3"]]


def test_write_csv_file_secret_tightens_an_existing_world_readable_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "result.csv"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    write_csv_file(target, ("k",), [("sk-new",)], secret=True)
    assert _mode(target) == 0o600
    assert target.read_text().splitlines() == ["k", "sk-new"]


def test_write_csv_file_without_keys_is_0600_too(tmp_path: pathlib.Path) -> None:
    """Every CSV the tool writes holds emails (issue 9 §4): there is no 0644 file any more."""
    target = tmp_path / "plain.csv"
    write_csv_file(target, ("a",), [("1",)])
    assert _mode(target) == 0o600


def test_write_csv_file_is_atomic_on_failure(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "result.csv"
    target.write_text("previous,content\n")

    def broken_rows():  # type: ignore[no-untyped-def]
        yield ("first", "row")
        raise RuntimeError("boom while writing")

    with pytest.raises(RuntimeError, match="boom"):
        write_csv_file(target, ("a", "b"), broken_rows(), secret=True)
    # the old file is untouched and no temporary file is left behind
    assert target.read_text() == "previous,content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.csv"]


def test_write_csv_file_leaves_no_temporary_file(tmp_path: pathlib.Path) -> None:
    write_csv_file(tmp_path / "r.csv", ("a",), [("1",)], secret=True)
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_written_report_is_readable_as_users_csv(tmp_path: pathlib.Path) -> None:
    target = write_csv_file(tmp_path / "u.csv", ("email", "role", "team_name"), [("a@x.com", "internal_user", "a;b")])
    assert rows(read_users_csv(target)) == [("a@x.com", "internal_user", ("a", "b"), 2)]


def test_problem_list_is_capped() -> None:
    from litellm_usersync.files.csvfile import MAX_PROBLEMS

    with pytest.raises(CsvError) as info:
        parse_users_csv("email\n" + "not-an-email\n" * (MAX_PROBLEMS + 300))
    assert len(info.value.problems) <= MAX_PROBLEMS


def test_unterminated_quote_is_an_error_not_a_silent_swallow() -> None:
    text = 'email,team_name\na@x.com,"dev\nb@x.com,ops\nc@x.com,sales\n'
    [(line, _column, message)] = problems(text)
    assert line == 2
    assert "malformed CSV" in message
