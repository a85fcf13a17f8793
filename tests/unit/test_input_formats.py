"""The files admins really have: ';' and tab CSVs, .xlsx workbooks, other header names, other encodings."""

from __future__ import annotations

import pathlib
from datetime import datetime

import pytest
from openpyxl import Workbook

from litellm_usersync.errors import CsvError, InputError
from litellm_usersync.files.csvfile import InputFormat, detect_delimiter, parse_users_csv, read_users_csv

SEED = (
    "email,role,team_name\n"
    "user@example.com,internal_user,development\n"
    "admin@company.com,proxy_admin,admin\n"
    'multi@example.com,internal_user,"development;support"\n'
)


def users(state: object) -> list[tuple[str, str | None, tuple[str, ...] | None, int]]:
    return [(u.email, u.role, u.team_names, u.line) for u in state.users]  # type: ignore[attr-defined]


# -- delimiter ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("email,role,team_name", ","),
        ("email;role;team_name", ";"),
        ("email\trole\tteam_name", "\t"),
        ("email", ","),  # one column: any delimiter reads it; comma
        ("Email Address;Team", ";"),  # 'team' is ours: ';' splits into more known names
        ('"email";"role"', ";"),
        ("email,team_name;x", ","),  # a ';' inside a comma header: comma finds the known names
    ],
)
def test_detect_delimiter(header: str, expected: str) -> None:
    assert detect_delimiter(header + "\na@x.com\n") == expected


def test_detect_delimiter_counts_mapped_headers() -> None:
    assert detect_delimiter("Mail Address;Dept\n", [("email", "Mail Address")]) == ";"


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_semicolon_or_tab_file_reads_as_the_comma_one(delimiter: str) -> None:
    text = SEED.replace(",", delimiter)
    assert users(parse_users_csv(text, "x.csv")) == users(parse_users_csv(SEED, "x.csv"))


def test_a_forced_delimiter_wins() -> None:
    text = "email|role\na@x.com|internal_user\n"
    assert users(parse_users_csv(text, delimiter="|")) == [("a@x.com", "internal_user", None, 2)]
    with pytest.raises(CsvError, match="missing the 'email' column"):
        parse_users_csv("email;role\na@x.com;internal_user\n", delimiter=",")


def test_extra_fields_name_the_delimiter_to_quote() -> None:
    with pytest.raises(CsvError) as info:
        parse_users_csv("email;team_name\na@x.com;R;D\n")
    assert info.value.problems[0].message == "3 fields but the header has 2; quote cells that contain semicolons"


# -- encoding -----------------------------------------------------------------------------------------


def test_cp1252_file_fails_naming_the_option(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.csv"
    p.write_bytes("email,team_name\nj@x.com,Équipe\n".encode("cp1252"))
    with pytest.raises(CsvError) as info:
        read_users_csv(p)
    (problem,) = info.value.problems
    assert problem.line == 2
    assert "not valid UTF-8 (byte 0xc9)" in problem.message and "--encoding cp1252" in problem.message


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_encoding_option_reads_the_file(tmp_path: pathlib.Path, encoding: str) -> None:
    p = tmp_path / "u.csv"
    p.write_bytes("email,team_name\nj@x.com,Équipe\n".encode(encoding))
    state = read_users_csv(p, fmt=InputFormat(encoding=encoding))
    assert users(state) == [("j@x.com", None, ("Équipe",), 2)]


def test_a_wrong_encoding_names_it(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.csv"
    p.write_bytes(b"email\na@x.com\n\x81@x.com\n")  # 0x81 is undefined in cp1252
    with pytest.raises(CsvError) as info:
        read_users_csv(p, fmt=InputFormat(encoding="cp1252"))
    assert info.value.problems[0].line == 3
    assert "not valid cp1252 (byte 0x81), as read with --encoding cp1252" in info.value.problems[0].message


def test_utf8_given_explicitly_still_drops_the_bom(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.csv"
    p.write_bytes("email\na@x.com\n".encode("utf-8-sig"))
    assert users(read_users_csv(p, fmt=InputFormat(encoding="UTF-8"))) == [("a@x.com", None, None, 2)]


def test_utf16_with_bom_and_tabs_is_read(tmp_path: pathlib.Path) -> None:
    """Excel's "Unicode text" export."""
    p = tmp_path / "u.txt"
    p.write_bytes("email\trole\r\nb@x.com\tinternal_user\r\n".encode("utf-16"))
    assert users(read_users_csv(p)) == [("b@x.com", "internal_user", None, 2)]


def test_unknown_encoding_is_an_input_error(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.csv"
    p.write_text("email\na@x.com\n")
    with pytest.raises(InputError, match="unknown encoding 'klingon' \\(--encoding\\)"):
        read_users_csv(p, fmt=InputFormat(encoding="klingon"))


# -- column mapping -----------------------------------------------------------------------------------


def test_column_mapping_reads_other_header_names() -> None:
    text = "Name,Email Address,Department,Access\nJo,JO@x.com,Support,internal_user\n"
    state = parse_users_csv(text, columns=[("email", "email address"), ("team_name", "Department"), ("role", "Access")])
    assert users(state) == [("JO@x.com", "internal_user", ("Support",), 2)]


def test_missing_email_with_a_lookalike_names_the_option() -> None:
    with pytest.raises(CsvError) as info:
        parse_users_csv("Name,Email Address,Team\nJo,jo@x.com,dev\n", "hr.csv")
    (problem,) = info.value.problems
    assert problem.line == 1
    assert problem.message.endswith("""map it: --column email="Email Address\"""")


def test_missing_email_without_a_lookalike_has_no_hint() -> None:
    with pytest.raises(CsvError) as info:
        parse_users_csv("name,team\nJo,dev\n")
    assert "--column" not in info.value.problems[0].message


def test_a_mapped_column_that_is_not_there_is_located() -> None:
    with pytest.raises(CsvError) as info:
        parse_users_csv("email,dept\na@x.com,dev\n", "u.csv", columns=[("team_name", "Department")])
    (problem,) = info.value.problems
    assert str(problem) == (
        """u.csv:1: --column team_name="Department": no such column in the header (found 'email', 'dept')"""
    )


def test_a_mapping_wins_over_an_alias() -> None:
    text = "email,Work Email\nold@x.com,new@x.com\n"
    assert users(parse_users_csv(text, columns=[("email", "Work Email")])) == [("new@x.com", None, None, 2)]


# -- xlsx ---------------------------------------------------------------------------------------------


def workbook(path: pathlib.Path, rows: list[list[object]], *, title: str = "Users", first: str | None = None) -> None:
    wb = Workbook()
    ws = wb.active
    if first is not None:  # another sheet before ours
        ws.title = first
        ws.append(["nothing", "here"])
        ws = wb.create_sheet(title)
    else:
        ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)


def test_xlsx_first_sheet_reads_as_the_csv(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "users.xlsx"
    workbook(
        p,
        [
            ["email", "role", "team_name"],
            ["user@example.com", "internal_user", "development"],
            ["admin@company.com", "proxy_admin", "admin"],
            ["multi@example.com", "internal_user", "development;support"],
        ],
    )
    state = read_users_csv(p)
    assert users(state) == users(parse_users_csv(SEED))
    assert state.source == f"{p}, sheet Users"


def test_xlsx_errors_are_located_by_sheet_row_and_column_letter(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "file.xlsx"
    rows: list[list[object]] = [["name", "email", "role"]]
    rows += [[f"n{i}", f"u{i}@x.com", "internal_user"] for i in range(2, 12)]
    rows.append(["bad", "not-an-email", "internal_user"])  # row 12
    rows.append(["bad", "ok@x.com", "wizard"])  # row 13
    workbook(p, rows)
    with pytest.raises(CsvError) as info:
        read_users_csv(p)
    rendered = [str(x) for x in info.value.problems]
    assert rendered[0].startswith(f"{p}, sheet Users, row 12, column B (email): invalid email 'not-an-email'")
    assert rendered[1].startswith(f"{p}, sheet Users, row 13, column C (role): unknown role 'wizard'")


def test_xlsx_named_sheet_and_a_missing_one(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "hr.xlsx"
    workbook(p, [["email"], ["a@x.com"]], title="Staff", first="Summary")
    with pytest.raises(CsvError, match="sheet Summary"):  # the first sheet has no email column
        read_users_csv(p)
    assert users(read_users_csv(p, fmt=InputFormat(sheet="Staff"))) == [("a@x.com", None, None, 2)]
    with pytest.raises(InputError, match="no sheet named 'Staf' \\(--sheet\\); the workbook has 'Summary', 'Staff'"):
        read_users_csv(p, fmt=InputFormat(sheet="Staf"))


def test_xlsx_cells_become_text_and_blank_rows_keep_numbers(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "u.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "S"
    ws["B3"], ws["C3"], ws["D3"] = "Email Address", "team", "hired"  # header in row 3, from column B
    ws["B4"], ws["C4"], ws["D4"] = "a@x.com", 42, datetime(2026, 1, 2)
    ws["B7"], ws["C7"] = "b@x.com", 7.0
    wb.save(p)
    state = read_users_csv(p, fmt=InputFormat(columns=(("email", "Email Address"),)))
    assert users(state) == [("a@x.com", None, ("42",), 4), ("b@x.com", None, ("7",), 7)]
    with pytest.raises(CsvError) as info:
        read_users_csv(p)
    assert str(info.value.problems[0]).startswith(f"{p}, sheet S, row 3: missing the 'email' column")


def test_xlsx_refuses_csv_options_and_csv_refuses_sheet(tmp_path: pathlib.Path) -> None:
    x = tmp_path / "u.xlsx"
    workbook(x, [["email"], ["a@x.com"]])
    with pytest.raises(InputError, match="--delimiter applies to CSV files"):
        read_users_csv(x, fmt=InputFormat(delimiter=";"))
    with pytest.raises(InputError, match="--encoding applies to CSV files"):
        read_users_csv(x, fmt=InputFormat(encoding="cp1252"))
    c = tmp_path / "u.csv"
    c.write_text("email\na@x.com\n")
    with pytest.raises(InputError, match=r"--sheet applies to \.xlsx workbooks"):
        read_users_csv(c, fmt=InputFormat(sheet="Users"))


def test_a_workbook_under_a_csv_name_is_read_as_one(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "export.csv"
    workbook(p.with_suffix(".xlsx"), [["email"], ["a@x.com"]])
    p.write_bytes(p.with_suffix(".xlsx").read_bytes())
    assert users(read_users_csv(p)) == [("a@x.com", None, None, 2)]


def test_old_xls_and_damaged_xlsx_are_clear_errors(tmp_path: pathlib.Path) -> None:
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(InputError, match=r"old Excel \.xls workbook: save it as \.xlsx"):
        read_users_csv(xls)
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CsvError, match="cannot read the workbook"):
        read_users_csv(bad)


def test_xlsx_with_key_name_for_add(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "add.xlsx"
    workbook(p, [["email", "key_name"], ["a@x.com", "00000001_chatbot"]])
    (user,) = read_users_csv(p, with_key_name=True).users
    assert user.key_name == "00000001_chatbot"
