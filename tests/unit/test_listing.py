"""The pure part of ``list``: which users, which columns, how each format renders. No network."""

from __future__ import annotations

import ast
import csv
import io
import json
import pathlib

import pytest

from litellm_usersync.files.csvfile import parse_users_csv
from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import LiveUser, PlanOptions, Snapshot, Team, TeamMember
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.listing import (
    DEFAULT_COLUMNS,
    LIST_COLUMNS,
    SENSITIVE_FIELDS,
    SYNC_INPUT_COLUMNS,
    ListFilter,
    build_rows,
    build_sync_rows,
    parse_columns,
    render_cell,
    render_csv,
    render_json,
    render_tsv,
    select_users,
)

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "litellm_usersync"


def snapshot() -> Snapshot:
    users = (
        LiveUser("u-b", "Bob@Example.com", "internal_user", ("t-dev",), key_count=2, spend=1.25, models=("gpt-4",)),
        LiveUser("u-a", "alice@example.com", "proxy_admin", ("t-dev", "t-ops"), created_at="2025-01-01T00:00:00Z"),
        LiveUser("u-c", "carol@corp.example.net", "internal_user_viewer"),
        LiveUser("u-org", "org@corp.example.net", "org_admin"),
        LiveUser("u-null", "norole@corp.example.net", None),
        LiveUser("u-noemail", None, "internal_user", ("t-ops",)),
        LiveUser(DEFAULT_USER_ID, None, "internal_user", ("t-dev", "t-ops")),
        LiveUser("u-stale", "stale@corp.example.net", "internal_user", ("t-gone",)),
    )
    teams = (
        Team("t-dev", "development", (TeamMember("u-b", "Bob@Example.com", "user"),)),
        Team("t-ops", None, (TeamMember("u-c", "carol@corp.example.net", "user"),)),
    )
    return Snapshot(users=users, teams=teams)


def ids(users: list[LiveUser]) -> list[str]:
    return [u.user_id for u in users]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (ListFilter(), ["u-a", "u-b", "u-c", "u-stale"]),
        (ListFilter(role="internal_user"), ["u-b", "u-stale"]),
        (ListFilter(role="org_admin"), ["u-org"]),
        (ListFilter(email_like="@EXAMPLE.COM"), ["u-a", "u-b"]),
        (ListFilter(email_like="@corp", role="internal_user_viewer"), ["u-c"]),
        (
            ListFilter(show_all=True),
            ["u-a", "u-b", "u-c", "u-null", "u-org", "u-stale", DEFAULT_USER_ID, "u-noemail"],
        ),
        (ListFilter(show_all=True, role="internal_user"), ["u-b", "u-stale", DEFAULT_USER_ID, "u-noemail"]),
        (ListFilter(show_all=True, email_like="corp"), ["u-c", "u-null", "u-org", "u-stale"]),
    ],
)
def test_filters_and_order(flt: ListFilter, expected: list[str]) -> None:
    assert ids(select_users(snapshot(), flt)) == expected


def test_default_user_id_is_hidden_unless_show_all_even_with_an_email() -> None:
    snap = Snapshot(users=(LiveUser(DEFAULT_USER_ID, "root@x.com", "proxy_admin"),), teams=())
    assert select_users(snap, ListFilter()) == []
    assert ids(select_users(snap, ListFilter(show_all=True))) == [DEFAULT_USER_ID]


def test_rows_have_team_ids_with_their_aliases_and_drop_deleted_teams() -> None:
    snap = snapshot()
    rows = build_rows(select_users(snap, ListFilter(show_all=True)), snap, LIST_COLUMNS)
    by_id = {r["user_id"]: r for r in rows}
    assert by_id["u-a"]["teams"] == ["t-dev", "t-ops"]
    assert by_id["u-a"]["team_names"] == ["development", "t-ops"], "a team without alias is named by its id"
    assert by_id["u-c"]["teams"] == ["t-ops"], "roster membership counts like sync counts it"
    assert by_id["u-stale"]["teams"] == [], "a team that no longer exists is left out"
    assert by_id["u-b"]["models"] == ["gpt-4"] and by_id["u-b"]["key_count"] == 2 and by_id["u-b"]["spend"] == 1.25
    assert list(rows[0]) == list(LIST_COLUMNS)


def test_default_columns_are_the_seeds_with_team_names_beside_teams() -> None:
    assert DEFAULT_COLUMNS == (
        "user_id",
        "user_email",
        "user_role",
        "teams",
        "team_names",
        "created_at",
        "updated_at",
    )


def test_tsv_has_header_first_json_arrays_and_no_tabs_inside_cells() -> None:
    rows = [
        {"user_id": "a\tb", "teams": ["t1", "t2"], "max_budget": None, "spend": 0.0},
        {"user_id": "c\nd", "teams": [], "max_budget": 10.5, "spend": 2},
    ]
    cols = ("user_id", "teams", "max_budget", "spend")
    assert render_tsv(rows, cols) == ('user_id\tteams\tmax_budget\tspend\na b\t["t1","t2"]\t\t0.0\nc d\t[]\t10.5\t2\n')


def test_render_cell() -> None:
    assert render_cell(None) == ""
    assert render_cell(["é", "x"]) == '["é","x"]'
    assert render_cell(True) == "true"
    assert render_cell(3) == "3"


def test_json_keeps_lists_and_numbers() -> None:
    doc = json.loads(render_json([{"teams": ["t1"], "spend": 1.5, "user_alias": None}]))
    assert doc == [{"teams": ["t1"], "spend": 1.5, "user_alias": None}]


@pytest.mark.parametrize("bad", ["password", "user_id,hashed_password", "salt", "token", "nope", " , "])
def test_parse_columns_refuses_secrets_unknown_and_empty(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_columns(bad)


def test_parse_columns_trims_lowercases_and_deduplicates() -> None:
    assert parse_columns(" User_Email ,user_role,user_email") == ("user_email", "user_role")


def test_no_sensitive_field_can_ever_be_a_column() -> None:
    assert not SENSITIVE_FIELDS & set(LIST_COLUMNS)


def test_sync_rows_leave_out_users_without_email_and_blank_foreign_roles() -> None:
    snap = snapshot()
    rows, left_out = build_sync_rows(select_users(snap, ListFilter(show_all=True)), snap)
    assert left_out == 2
    by_email = {r[0]: r for r in rows}
    assert by_email["norole@corp.example.net"] == ("norole@corp.example.net", "", "")
    # org_admin is not a role sync's CSV accepts: written empty (sync then keeps the role)
    assert by_email["org@corp.example.net"] == ("org@corp.example.net", "", "")
    assert by_email["alice@example.com"] == ("alice@example.com", "proxy_admin", "development;t-ops")


def test_csv_round_trip_is_a_no_op_plan() -> None:
    """list --format csv, read back by sync's own parser, plans nothing against the same snapshot."""
    snap = snapshot()
    rows, _ = build_sync_rows(select_users(snap, ListFilter()), snap)
    text = render_csv(SYNC_INPUT_COLUMNS, rows)
    desired = parse_users_csv(text)
    plan = build_plan(desired, snap, PlanOptions())
    assert not plan.has_changes and not plan.has_blocked
    assert len(desired.users) == 4


def test_csv_is_rfc4180() -> None:
    text = render_csv(("email", "team_name"), [("a@x.com", "team, with comma")])
    assert list(csv.reader(io.StringIO(text))) == [["email", "team_name"], ["a@x.com", "team, with comma"]]


@pytest.mark.parametrize("module", ["render/listing.py", "plans/add.py", "plans/delete.py"])
def test_pure_modules_import_no_io(module: str) -> None:
    """registration, removal and listing are pure like the planner (no client, no clock, no randomness)."""
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    forbidden = {"os", "time", "random", "asyncio", "httpx", "click", "rich"}
    assert not names & forbidden, names & forbidden
    layers_above = ("litellm_usersync.proxy", "litellm_usersync.apply", "litellm_usersync.files")
    assert not [n for n in names if n.startswith(layers_above)], names


def test_role_filter_ignores_case() -> None:
    """Regression (new-user trial): --role Proxy_Admin listed nobody, silently."""
    from litellm_usersync.models import LiveUser
    from litellm_usersync.render.listing import ListFilter

    admin = LiveUser("a", "a@x.com", "proxy_admin")
    assert ListFilter(role="Proxy_Admin").accepts(admin)
    assert not ListFilter(role="internal_user").accepts(admin)


def test_table_cells_are_short_and_on_one_line() -> None:
    from litellm_usersync.render.listing import short_timestamp, table_cell

    assert short_timestamp("2026-11-27T03:07:38.123456+00:00") == "2026-11-27 03:07"
    assert short_timestamp("2026-11-27 03:07:38") == "2026-11-27 03:07"
    assert short_timestamp(None) == ""
    assert table_cell("team_names", ["dev", "support"]) == "dev, support"
    assert table_cell("spend", 1234.5) == "1,234.50"


def test_fit_columns_leaves_out_the_lowest_priority_columns_that_do_not_fit() -> None:
    from litellm_usersync.render.listing import fit_columns

    rows = [{"user_email": "a" * 30, "user_role": "internal_user", "team_names": "t" * 40, "user_id": "u" * 36}]
    cols = ("user_email", "user_role", "team_names", "user_id")
    assert fit_columns(rows, cols, 200) == cols
    # team_names folds down to 16 characters before anything is left out: 1 + 33 + 16 + 19 = 69
    assert fit_columns(rows, cols, 70) == ("user_email", "user_role", "team_names")
    assert fit_columns(rows, cols, 60) == ("user_email", "user_role")
    assert fit_columns(rows, cols, 10) == ("user_email",)  # the first column always stays


def test_the_user_file_columns_round_trip_through_csv() -> None:
    """``list --format csv --columns email,role,...,metadata.KEY`` writes the cells the CSV reader reads back."""
    from litellm_usersync.files.csvfile import parse_users_csv
    from litellm_usersync.render.listing import csv_value, parse_columns, render_csv

    cols = parse_columns("email,role,team_name,user_alias,max_budget,budget_duration,models,tpm_limit,Metadata.CC")
    assert cols[-1] == "metadata.CC"
    user = LiveUser(
        "u",
        "A@x.com",
        "org_admin",
        ("t-dev",),
        user_alias="Al",
        max_budget=5.0,
        models=("b", "a"),
        budget_duration="1mo",
        tpm_limit=3,
        metadata={"CC": "X", "other": 1},
    )
    snap = Snapshot(users=(user,), teams=(Team("t-dev", "development"),))
    (row,) = build_rows([user], snap, cols)
    text = render_csv(cols, [[csv_value(c, row[c]) for c in cols]])
    assert text.splitlines()[1] == "A@x.com,,development,Al,5,1mo,a;b,3,X"
    (back,) = parse_users_csv(text).users
    assert dict(back.fields) == {
        "user_alias": "Al",
        "max_budget": 5.0,
        "budget_duration": "1mo",
        "models": ("a", "b"),
        "tpm_limit": 3,
        "metadata.CC": "X",
    }
    with pytest.raises(ValueError, match="unknown column"):
        parse_columns("email,metadata.")
