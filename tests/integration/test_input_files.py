"""The files admins really have, on the real proxy: a ';'-separated CSV (Excel in many locales), an .xlsx HR
export with its own header names, a cp1252 file: each syncs exactly as the comma-separated UTF-8 CSV would.

Arrange through the library, act through the CLI (and the seed script), assert through the library.
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Callable

from click.testing import Result
from openpyxl import Workbook

from .conftest import Proxy, live_users, teams_of, write

TEAMS = ("development", "admin", "support")
ROWS = [
    ("user@example.com", "internal_user", "development"),
    ("admin@company.com", "proxy_admin", "admin"),
    ("viewer@company.com", "internal_user_viewer", "support"),
    ("multi@example.com", "internal_user", "development;support"),
]
EXPECTED = {
    "user@example.com": ("internal_user", frozenset({"development"})),
    "admin@company.com": ("proxy_admin", frozenset({"admin"})),
    "viewer@company.com": ("internal_user_viewer", frozenset({"support"})),
    "multi@example.com": ("internal_user", frozenset({"development", "support"})),
}
COMMA_CSV = "email,role,team_name\n" + "".join(f'{e},{r},"{t}"\n' for e, r, t in ROWS)
NO_CHANGES = "  Users to add: 0\n  Users to delete: 0\n  Users to update: 0\n  Users unchanged: 4\n"


def state(proxy: Proxy) -> dict[str, tuple[str, frozenset[str]]]:
    return {e: (u["user_role"], frozenset(teams_of(proxy, u))) for e, u in live_users(proxy).items()}


def assert_same_as_the_comma_csv(proxy: Proxy, cli_run: Callable[..., Result], workdir: pathlib.Path) -> None:
    assert state(proxy) == EXPECTED
    write(workdir / "user_list.csv", COMMA_CSV)
    again = cli_run("sync", "--csv-file", "user_list.csv", "--dry-run")
    assert again.exit_code == 0, again.output
    assert NO_CHANGES in again.output, again.output


def test_a_semicolon_csv_syncs_as_the_comma_one(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams(*TEAMS)
    write(workdir / "excel.csv", "email;role;team_name\r\n" + "".join(f'{e};{r};"{t}"\r\n' for e, r, t in ROWS))
    run = cli_run("sync", "--csv-file", "excel.csv")
    assert run.exit_code == 0, run.output
    assert_same_as_the_comma_csv(clean_proxy, cli_run, workdir)


def test_an_xlsx_export_with_its_own_headers_syncs_as_the_csv(
    make_teams: Callable[..., dict[str, str]], cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    make_teams(*TEAMS)
    wb = Workbook()
    wb.active.title = "Summary"
    wb.active.append(["exported", "2026-12-01"])
    ws = wb.create_sheet("Users")
    ws.append(["Name", "Email Address", "Access", "Team"])
    for e, r, t in ROWS:
        ws.append([e.split("@")[0], e, r, t])
    wb.save(workdir / "hr.xlsx")
    refused = cli_run("sync", "--csv-file", "hr.xlsx", "--sheet", "Users")
    assert refused.exit_code == 2
    assert """map it: --column email="Email Address\"""" in refused.output
    mapping = ("--column", "email=Email Address", "--column", "role=Access")
    run = cli_run("sync", "--csv-file", "hr.xlsx", "--sheet", "Users", *mapping)
    assert run.exit_code == 0, run.output
    assert_same_as_the_comma_csv(clean_proxy, cli_run, workdir)


def test_a_cp1252_file_through_the_seed_script(
    make_teams: Callable[..., dict[str, str]],
    script_run: Callable[..., subprocess.CompletedProcess[str]],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    make_teams("Équipe")
    text = "email;role;team_name\r\nrené@example.com;internal_user;Équipe\r\n"
    (workdir / "win.csv").write_bytes(text.encode("cp1252"))
    failed = script_run("sync_user.py", "--csv-file", "win.csv")
    assert failed.returncode == 2
    assert "--encoding cp1252" in failed.stderr
    assert state(clean_proxy) == {}
    done = script_run("sync_user.py", "--csv-file", "win.csv", "--encoding", "cp1252")
    assert done.returncode == 0, done.stdout + done.stderr
    assert state(clean_proxy) == {"rené@example.com": ("internal_user", frozenset({"Équipe"}))}
