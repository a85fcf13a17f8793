"""--delimiter, --encoding, --sheet and --column on every command that reads a user file (sync, add, delete)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest
from click.testing import Result
from openpyxl import Workbook

from ._scripted import user

Run = Callable[..., tuple[Result, list[str]]]
COMMANDS = ["sync", "add", "delete"]


def write(tmp: pathlib.Path, name: str, data: bytes | str) -> str:
    (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return name


def dry(run: Run, command: str, *args: str) -> Result:
    result, calls = run(command, *args, "--dry-run", users=[user("old@x.com", "internal_user", ("t-dev",))])
    assert all(c.startswith("GET ") for c in calls)
    return result


@pytest.mark.parametrize("command", COMMANDS)
def test_semicolon_file_is_detected(run: Run, tmp_path: pathlib.Path, command: str) -> None:
    f = write(tmp_path, "excel.csv", "email;role;team_name\nnew@x.com;internal_user;development\n")
    result = dry(run, command, "--csv-file", f)
    assert result.exit_code == 0, result.output
    assert "new@x.com" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_delimiter_option_forces_it(run: Run, tmp_path: pathlib.Path, command: str) -> None:
    f = write(tmp_path, "u.csv", "email|role\nnew@x.com|internal_user\n")
    result = dry(run, command, "--csv-file", f, "--delimiter", "|")
    assert result.exit_code == 0, result.output
    assert "new@x.com" in result.output
    tab = write(tmp_path, "t.csv", "email\trole\nnew@x.com\tinternal_user\n")
    assert dry(run, command, "--csv-file", tab, "--delimiter", "tab").exit_code == 0


def test_delimiter_option_rejects_a_word(run: Run, tmp_path: pathlib.Path) -> None:
    result, calls = run("sync", "--csv-file", "u.csv", "--delimiter", "colon", "--dry-run")
    assert result.exit_code == 2 and not calls
    assert "Invalid value for '--delimiter'" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_encoding_option(run: Run, tmp_path: pathlib.Path, command: str) -> None:
    f = write(tmp_path, "win.csv", "email,role\nrené@x.com,internal_user\n".encode("cp1252"))
    failed = dry(run, command, "--csv-file", f)
    assert failed.exit_code == 2
    assert "win.csv:2: not valid UTF-8 (byte 0xe9)" in failed.output and "--encoding cp1252" in failed.output
    result = dry(run, command, "--csv-file", f, "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert "rené@x.com" in result.output


def test_unknown_encoding_is_a_usage_error(run: Run) -> None:
    result, calls = run("add", "--csv-file", "u.csv", "--encoding", "utf-9", "--dry-run")
    assert result.exit_code == 2 and not calls
    assert "unknown encoding 'utf-9'" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_xlsx_and_sheet_option(run: Run, tmp_path: pathlib.Path, command: str) -> None:
    wb = Workbook()
    wb.active.title = "Summary"
    wb.active.append(["total", 1])
    ws = wb.create_sheet("Users")
    ws.append(["email", "role", "team_name"])
    ws.append(["new@x.com", "internal_user", "development"])
    wb.save(tmp_path / "hr.xlsx")
    first = dry(run, command, "--csv-file", "hr.xlsx")
    assert first.exit_code == 2
    assert "hr.xlsx, sheet Summary, row 1: missing the 'email' column" in first.output
    result = dry(run, command, "--csv-file", "hr.xlsx", "--sheet", "Users")
    assert result.exit_code == 0, result.output
    assert "new@x.com" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_column_option_and_its_hint(run: Run, tmp_path: pathlib.Path, command: str) -> None:
    f = write(tmp_path, "hr.csv", "Name,Email Address,Team\nNew,new@x.com,development\n")
    hinted = dry(run, command, "--csv-file", f)
    assert hinted.exit_code == 2
    assert """map it: --column email="Email Address\"""" in hinted.output
    result = dry(run, command, "--csv-file", f, "--column", "email=Email Address")
    assert result.exit_code == 0, result.output
    assert "new@x.com" in result.output


def test_column_option_rejects_unknown_fields(run: Run) -> None:
    result, calls = run("sync", "--csv-file", "u.csv", "--column", "mail_box=Mail", "--dry-run")
    assert result.exit_code == 2 and not calls
    assert "'mail_box' is not a field; fields: email, role, team_name, key_name" in result.output
    result, _ = run("sync", "--csv-file", "u.csv", "--column", "email", "--dry-run")
    assert "expected FIELD=HEADER" in result.output


def test_apply_plan_refuses_input_options(run: Run, tmp_path: pathlib.Path) -> None:
    result, calls = run("sync", "--apply-plan", "plan.json", "--delimiter", ";")
    assert result.exit_code == 2 and not calls
    assert "--delimiter cannot change it" in result.output
