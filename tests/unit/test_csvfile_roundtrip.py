"""Generated round trips: any users written by a CSV writer (any dialect detail a spreadsheet produces) read back
exactly, and problems are always reported on the physical line of the bad row."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litellm_usersync.errors import CsvError
from litellm_usersync.files.csvfile import parse_users_csv
from litellm_usersync.identity import PROXY_ROLES, normalize_team_name

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=12).filter(
    lambda s: s[0] not in ".-" and s[-1] != "." and ".." not in s
)
EMAIL = st.builds(lambda local, dom: f"{local}@{dom}.example.com", LOCAL, st.sampled_from(["a", "b-c", "d1"]))
TEAM = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters=";\ufeff\u200b\u00a0"),
    min_size=1,
    max_size=15,
).filter(lambda s: s.strip() != "" and s == " ".join(s.split()))


@st.composite
def user_rows(draw: st.DrawFn) -> list[tuple[str, str, list[str]]]:
    emails = draw(st.lists(EMAIL, min_size=0, max_size=15, unique_by=str.lower))
    rows = []
    for e in emails:
        role = draw(st.sampled_from(("", *PROXY_ROLES)))
        teams = draw(st.lists(TEAM, max_size=3, unique_by=normalize_team_name))
        rows.append((draw(st.sampled_from((e, e.upper(), f" {e} "))), role, teams))
    return rows


@settings(max_examples=300, deadline=None)
@given(rows=user_rows(), crlf=st.booleans(), bom=st.booleans(), quote_all=st.booleans(), blank_every=st.integers(0, 4))
def test_written_rows_read_back_exactly(
    rows: list[tuple[str, str, list[str]]], crlf: bool, bom: bool, quote_all: bool, blank_every: int
) -> None:
    buf = io.StringIO()
    writer = csv.writer(
        buf, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    writer.writerow(["email", "role", "team_name"])
    expected_lines = []
    line = 1
    for i, (email, role, teams) in enumerate(rows):
        if blank_every and i % blank_every == 0:
            buf.write("\r\n" if crlf else "\n")
            line += 1
        writer.writerow([email, role, "; ".join(teams)])
        line += 1
        expected_lines.append(line + sum(t.count("\n") for t in teams))
    text = ("\ufeff" if bom else "") + buf.getvalue()
    state = parse_users_csv(text)
    assert [u.email for u in state.users] == [e.strip() for e, _, _ in rows]
    assert [u.role for u in state.users] == [r or None for _, r, _ in rows]
    assert [u.team_names for u in state.users] == [tuple(t) or None for _, _, t in rows]
    assert [u.line for u in state.users] == expected_lines


@settings(max_examples=200, deadline=None)
@given(rows=user_rows(), bad_at=st.integers(0, 14))
def test_a_bad_row_is_reported_on_its_line(rows: list[tuple[str, str, list[str]]], bad_at: int) -> None:
    if not rows:
        rows = [("x@a.example.com", "", [])]
    bad_at %= len(rows) + 1
    lines = ["email,role,team_name"]
    for email, role, teams in rows:
        lines.append(f'"{email}",{role},"{"; ".join(t.replace(chr(34), chr(34) * 2) for t in teams)}"')
    lines.insert(bad_at + 1, "not-an-email,internal_user,")
    text = "\n".join(lines) + "\n"
    with pytest.raises(CsvError) as info:
        parse_users_csv(text)
    [problem] = info.value.problems
    assert problem.line == bad_at + 2
    assert problem.column == "1 (email)"
