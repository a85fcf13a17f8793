"""The pure part of ``add``: which rows are new, existing or blocked, and the rows of the two report files."""

from __future__ import annotations

from litellm_usersync.files.csvfile import parse_users_csv
from litellm_usersync.models import (
    CreateUser,
    ItemKind,
    ItemResult,
    LiveUser,
    RunReport,
    Snapshot,
    Team,
)
from litellm_usersync.plans.add import (
    ALREADY_EXISTS,
    AddOutcome,
    Registration,
    build_add_plan,
    error_rows,
    existing_rows,
    render_add_plan,
    result_rows,
)

CSV = """email,role,team_name,key_name
new@example.com,internal_user,development,00000001_chatbot
 OLD@example.com ,internal_user,support,
noteam@example.com,,nosuchteam,
plain@example.com,,,
"""


def snap() -> Snapshot:
    return Snapshot(
        users=(
            LiveUser("old@example.com", "Old@Example.com", "proxy_admin", ("t-dev",)),
            LiveUser("other@example.com", "other@example.com", "internal_user"),
        ),
        teams=(Team("t-dev", "development"), Team("t-sup", "support")),
    )


def test_existing_users_are_set_aside_case_insensitively_and_the_rest_planned_as_creates() -> None:
    add = build_add_plan(parse_users_csv(CSV, with_key_name=True), snap(), default_role="proxy_admin")
    assert [e.want.email for e in add.existing] == ["OLD@example.com"]
    assert add.existing[0].reason == ALREADY_EXISTS
    assert all(i.kind is ItemKind.ADD for i in add.plan.items)
    assert {i.email for i in add.creatable} == {"new@example.com", "plain@example.com"}
    assert [(i.email, i.blocked) for i in add.blocked] == [("noteam@example.com", "Team not found: nosuchteam")]
    assert not add.plan.skipped, "other live users are none of add's business"
    new = next(i for i in add.creatable if i.email == "new@example.com")
    assert new.actions == (
        CreateUser("new@example.com", "new@example.com", "internal_user", ("t-dev",), key_alias="00000001_chatbot"),
    )
    plain = next(i for i in add.creatable if i.email == "plain@example.com")
    assert plain.role == "proxy_admin", "--user-role applies to rows without a role"


def test_dry_run_text() -> None:
    add = build_add_plan(parse_users_csv(CSV, with_key_name=True), snap(), default_role="internal_user")
    assert render_add_plan(add, dry_run=True) == (
        "Registration Plan:\n"
        "  Users to add: 2\n"
        "  Users that already exist: 1\n"
        "  Rows that cannot be applied: 1\n"
        "\n"
        "DRY RUN - Users that would be created:\n"
        "  + new@example.com (Role: internal_user, Team: development, Key Name: 00000001_chatbot)\n"
        "  + plain@example.com (Role: internal_user (default: no role in the CSV), Team: -)\n"
        "\n"
        "  Skipped (already exist; use sync to change them):\n"
        "  ! OLD@example.com: User already exists\n"
        "\n"
        "  Cannot be applied:\n"
        "  ✗ noteam@example.com: Team not found: nosuchteam\n"
        "\n"
        "Registration plan: 2 to add, 1 already exist, 1 cannot be applied."
    )


def test_report_rows_mask_keys_on_screen_and_record_invitation_failures() -> None:
    add = build_add_plan(parse_users_csv(CSV, with_key_name=True), snap(), default_role="proxy_admin")
    new, plain = add.creatable
    results = (
        ItemResult(new, success=True, api_key="sk-abcdefghijklmnop"),
        ItemResult(plain, success=False, error="created, but joining team t-x failed: boom", partial=True),
        ItemResult(add.blocked[0], success=False, error=add.blocked[0].blocked),
    )
    outcome = AddOutcome(
        RunReport(results=results),
        {
            new.user_id: Registration(invitation_url="http://p/ui/?invitation_id=1&action=reset_password"),
            plain.user_id: Registration(invitation_error="no invitations here", models=("gpt-4", "gpt-5")),
        },
    )
    assert result_rows(add, outcome, show_keys=True) == [
        (
            "new@example.com",
            "internal_user",
            "new@example.com",
            "development",
            "All proxy models",
            "sk-abcdefghijklmnop",
            "http://p/ui/?invitation_id=1&action=reset_password",
        ),
        ("plain@example.com", "proxy_admin", "plain@example.com", "", "gpt-4;gpt-5", "", ""),
    ]
    assert result_rows(add, outcome, show_keys=False)[0][5] == "sk-ab…"
    assert error_rows(add, outcome) == [
        ("OLD@example.com", "internal_user", "User already exists"),
        ("plain@example.com", "proxy_admin", "created, but joining team t-x failed: boom"),
        ("noteam@example.com", "proxy_admin", "Team not found: nosuchteam"),
        ("plain@example.com", "proxy_admin", "user created, but no invitation link: no invitations here"),
    ]


def test_existing_rows_are_syncs_input_with_the_live_role_and_teams() -> None:
    add = build_add_plan(parse_users_csv(CSV, with_key_name=True), snap())
    assert existing_rows(add) == [("OLD@example.com", "proxy_admin", "development")]


def test_an_email_shared_by_two_live_users_is_reported_and_not_exported() -> None:
    twins = Snapshot(
        users=(LiveUser("a1", "twin@example.com", "internal_user"), LiveUser("a2", "Twin@example.com", None)),
        teams=(),
    )
    add = build_add_plan(parse_users_csv("email\ntwin@example.com\n"), twins)
    assert add.existing[0].reason == "User already exists (2 live users share this email: a1, a2)"
    assert existing_rows(add) == []
    assert error_rows(add, None) == [("twin@example.com", "proxy_admin", add.existing[0].reason)]


def test_the_plan_names_teams_for_messages() -> None:
    add = build_add_plan(parse_users_csv(CSV, with_key_name=True), snap())
    assert add.plan.team_label("t-sup") == "support"
