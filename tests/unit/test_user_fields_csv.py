"""The managed user columns of the CSV (issue 12): every cell rule, its located error, absent vs empty vs ``-``."""

from __future__ import annotations

import pytest

from litellm_usersync.errors import CsvError
from litellm_usersync.files.cells import parse_field_cell
from litellm_usersync.files.csvfile import parse_users_csv
from litellm_usersync.files.teamsfile import parse_teams_csv

HEADER = "email,role,team_name,user_alias,max_budget,budget_duration,models,tpm_limit,rpm_limit,metadata.cost_center"


def one(header: str, row: str) -> dict[str, object]:
    (user,) = parse_users_csv(f"{header}\n{row}\n", "u.csv").users
    return dict(user.fields)


def test_every_column_is_read_into_its_field() -> None:
    fields = one(HEADER, "a@x.com,internal_user,dev,Alice,10.5,30d,gpt-4o;gpt-4;gpt-4o,100,7,CC-1")
    assert fields == {
        "user_alias": "Alice",
        "max_budget": 10.5,
        "budget_duration": "30d",
        "models": ("gpt-4", "gpt-4o"),  # sorted, repeats dropped: order does not matter
        "tpm_limit": 100,
        "rpm_limit": 7,
        "metadata.cost_center": "CC-1",
    }


def test_an_absent_column_is_not_managed_and_an_empty_cell_leaves_the_value_alone() -> None:
    (user,) = parse_users_csv("email,role\na@x.com,internal_user\n").users
    assert user.fields == ()
    assert one(HEADER, "a@x.com,internal_user,dev,,,,,,,") == {}


def test_the_clear_token_clears_every_kind_of_field() -> None:
    fields = one(HEADER, "a@x.com,,,-,-,-,-,-,-,-")
    assert fields == dict.fromkeys(
        [
            "user_alias",
            "max_budget",
            "budget_duration",
            "models",
            "tpm_limit",
            "rpm_limit",
            "metadata.cost_center",
        ]
    )


@pytest.mark.parametrize(
    ("name", "cell", "value"),
    [
        ("max_budget", "0", 0.0),
        ("max_budget", "2.50", 2.5),
        ("max_budget", ".5", 0.5),
        ("budget_duration", "30s", "30s"),
        ("budget_duration", "30m", "30m"),
        ("budget_duration", "30h", "30h"),
        ("budget_duration", "30d", "30d"),
        ("budget_duration", "2w", "2w"),
        ("budget_duration", "1mo", "1mo"),
        ("budget_duration", "30D", "30d"),
        ("models", " gpt-4o ; ;gpt-4 ", ("gpt-4", "gpt-4o")),
        ("models", "all-proxy-models", ()),
        ("tpm_limit", "0", 0),
        ("rpm_limit", "60", 60),
        ("user_alias", "Alice A.", "Alice A."),
        ("metadata.dept", "R&D; Berlin", "R&D; Berlin"),
    ],
)
def test_valid_cells(name: str, cell: str, value: object) -> None:
    assert parse_field_cell(name, cell) == value


@pytest.mark.parametrize(
    ("column", "cell", "expected"),
    [
        ("max_budget", "ten", "expected a number >= 0 in USD"),
        ("max_budget", "-5", "expected a number >= 0 in USD"),
        ("max_budget", "1e400", "expected a number >= 0 in USD"),
        ("max_budget", "$10", "expected a number >= 0 in USD"),
        ("budget_duration", "30", "expected a LiteLLM duration"),
        ("budget_duration", "0d", "expected a LiteLLM duration"),
        ("budget_duration", "1y", "expected a LiteLLM duration"),
        ("budget_duration", "1.5d", "expected a LiteLLM duration"),
        ("budget_duration", "2mo", "every 1mo only"),
        ("models", ";", "expected model names separated by ';'"),
        ("models", "gpt-4o;-", "write it alone"),
        ("tpm_limit", "1.5", "expected a whole number >= 0"),
        ("rpm_limit", "-1", "expected a whole number >= 0"),
        ("rpm_limit", "99999999999", "at most 2147483647"),
    ],
)
def test_an_invalid_cell_is_a_located_error(column: str, cell: str, expected: str) -> None:
    header = f"email,role,{column}"
    with pytest.raises(CsvError) as info:
        parse_users_csv(f'{header}\nok@x.com,,\nbad@x.com,,"{cell}"\n', "users.csv")
    (problem,) = info.value.problems
    assert (problem.path, problem.line, problem.column) == ("users.csv", 3, f"3 ({column})")
    assert expected in problem.message
    assert "- to clear it" in problem.message or "write it alone" in problem.message


def test_every_bad_cell_of_the_file_is_reported_and_no_user_is_returned() -> None:
    with pytest.raises(CsvError) as info:
        parse_users_csv("email,max_budget,tpm_limit\na@x.com,x,1\nb@x.com,1,y\nc@x.com,1,1\n", "u.csv")
    assert [(p.line, p.column) for p in info.value.problems] == [(2, "2 (max_budget)"), (3, "3 (tpm_limit)")]


@pytest.mark.parametrize(("header", "suggestion"), [("email,max_budjet", "max_budget"), ("email,model", "models")])
def test_a_misspelt_field_column_is_an_error(header: str, suggestion: str) -> None:
    with pytest.raises(CsvError, match=f"did you mean {suggestion!r}"):
        parse_users_csv(f"{header}\na@x.com,1\n")


def test_metadata_columns_keep_the_key_as_written_and_header_names_are_case_insensitive() -> None:
    fields = one("Email,MAX_BUDGET,Metadata.Cost_Center", "a@x.com,3,X")
    assert fields == {"max_budget": 3.0, "metadata.Cost_Center": "X"}


def test_a_workbook_cell_number_is_read_like_the_csv_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import Workbook

    from litellm_usersync.files.csvfile import read_users_csv

    book = Workbook()
    ws = book.active
    ws.append(["email", "max_budget", "tpm_limit"])
    ws.append(["a@x.com", 10, 100])
    path = tmp_path / "u.xlsx"
    book.save(path)
    (user,) = read_users_csv(path).users
    assert dict(user.fields) == {"max_budget": 10.0, "tpm_limit": 100}


# --------------------------------------------------------------------------------------------------
# the teams file


def test_the_teams_file_reads_settings_with_the_same_cell_rules() -> None:
    teams = parse_teams_csv(
        "team_name,max_budget,budget_duration,models,tpm_limit,rpm_limit\nEng,100,1mo,b;a,,-\nOps,,,,,\n", "t.csv"
    )
    assert [(t.name, dict(t.fields), t.line) for t in teams] == [
        ("Eng", {"max_budget": 100.0, "budget_duration": "1mo", "models": ("a", "b"), "rpm_limit": None}, 2),
        ("Ops", {}, 3),
    ]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("max_budget\n5\n", (1, None), "missing the 'team_name' column"),
        ("team_name,max_budjet\nEng,5\n", (1, "2 (max_budjet)"), "did you mean 'max_budget'?"),
        ("team_name,user_alias\nEng,x\n", (1, "2 (user_alias)"), "expected team_name or max_budget"),
        ("team_name,max_budget\nEng,x\n", (2, "2 (max_budget)"), "invalid max_budget 'x'"),
        ("team_name\nEng\neng\n", (3, "1 (team_name)"), "duplicate team 'eng' (first seen on line 2)"),
        ("team_name,max_budget\n,5\n", (2, "1 (team_name)"), "team_name is empty"),
    ],
)
def test_teams_file_errors_are_located(text: str, where: tuple[int, str | None], message: str) -> None:
    with pytest.raises(CsvError) as info:
        parse_teams_csv(text, "t.csv")
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == where and message in problem.message
