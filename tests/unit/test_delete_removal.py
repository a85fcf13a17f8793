"""The pure part of ``delete``: resolving emails from one snapshot, protected accounts, the brake, the text."""

from __future__ import annotations

import pytest

from litellm_usersync.files.csvfile import parse_users_csv
from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import DeleteUser, ItemKind, ItemResult, LiveUser, RunReport, Snapshot, Team
from litellm_usersync.plans.delete import NOT_FOUND, build_delete_plan, error_rows, render_delete_plan, result_rows


def snap(extra: tuple[LiveUser, ...] = (), caller: str = DEFAULT_USER_ID) -> Snapshot:
    users = (
        LiveUser("u1", "One@Example.com", "internal_user", ("t-dev",), key_count=3, spend=12.5),
        LiveUser("u2", "two@example.com", "proxy_admin"),
        LiveUser(DEFAULT_USER_ID, "root@example.com", "proxy_admin"),
        LiveUser("me", "me@example.com", "proxy_admin"),
        LiveUser("twin-a", "twin@example.com", "internal_user"),
        LiveUser("twin-b", "TWIN@example.com", "internal_user"),
        LiveUser("nr", "norole@example.com", None),
        *extra,
    )
    return Snapshot(users=users, teams=(Team("t-dev", "development"),), caller_user_id=caller)


def emails(*e: str) -> str:
    return "email\n" + "\n".join(e) + "\n"


def test_resolution_not_found_conflicts_and_protected_accounts() -> None:
    desired = parse_users_csv(
        emails(
            " one@EXAMPLE.com",
            "nobody@example.com",
            "twin@example.com",
            "root@example.com",
            "me@example.com",
            "norole@example.com",
        )
    )
    dp = build_delete_plan(desired, snap(caller="me"))
    assert [(i.kind, i.email, i.user_id) for i in dp.plan.items] == [
        (ItemKind.DELETE, "norole@example.com", "nr"),
        (ItemKind.DELETE, "One@Example.com", "u1"),
    ]
    assert dp.plan.items[1].actions == (DeleteUser("u1", "One@Example.com", ("t-dev",)),)
    assert dp.plan.items[1].key_count == 3 and dp.plan.items[1].spend == 12.5
    assert [(e.email, e.user_id, e.reason) for e in dp.errors] == [
        ("me@example.com", "me", "protected: the identity of the credentials in use; never deleted"),
        ("nobody@example.com", "", NOT_FOUND),
        ("root@example.com", DEFAULT_USER_ID, "protected: the identity of the credentials in use; never deleted"),
        ("twin@example.com", "twin-a, twin-b", "conflict: 2 live users share this email; none was deleted"),
    ]
    assert not dp.plan.refusals


def many(n: int) -> tuple[LiveUser, ...]:
    return tuple(LiveUser(f"x{i:02d}", f"x{i:02d}@example.com", "internal_user") for i in range(n))


@pytest.mark.parametrize(("n_delete", "max_delete", "refused"), [(10, None, False), (11, None, True), (3, 2, True)])
def test_the_mass_deletion_brake(n_delete: int, max_delete: int | None, refused: bool) -> None:
    s = snap(many(20))  # 25 managed users: the default limit is max(10, 20% of 25) = 10
    desired = parse_users_csv(emails(*(f"x{i:02d}@example.com" for i in range(n_delete))))
    dp = build_delete_plan(desired, s, max_delete=max_delete)
    assert dp.managed == 25
    assert bool(dp.plan.refusals) is refused
    if refused:
        assert f"this run would delete {n_delete} users, more than the limit of {dp.limit}" in dp.plan.refusals[0]
        assert f"--max-delete {n_delete}" in dp.plan.refusals[0]


def test_plan_text_shows_what_each_deletion_destroys() -> None:
    dp = build_delete_plan(parse_users_csv(emails("one@example.com", "gone@example.com")), snap())
    assert render_delete_plan(dp, dry_run=True) == (
        "Deletion Plan:\n"
        "  Users to delete: 1 (limit 10, 5 managed users)\n"
        "  API keys destroyed with them: 3\n"
        "  Spend recorded on them: $12.50\n"
        "  Rows that cannot be deleted: 1\n"
        "\n"
        "DRY RUN - Users that would be deleted:\n"
        "  - One@Example.com (user_id: u1, Role: internal_user, Team: development)"
        " — destroys 3 API key(s), spend $12.50\n"
        "\n"
        "  Not deleted:\n"
        "  ✗ gone@example.com: User not found in the system\n"
        "\n"
        "Deletion plan: 1 to delete, 1 cannot be deleted."
    )


def test_report_rows() -> None:
    dp = build_delete_plan(parse_users_csv(emails("one@example.com", "two@example.com", "gone@example.com")), snap())
    one, two = sorted(dp.plan.items, key=lambda i: i.user_id)
    report = RunReport(results=(ItemResult(one, True), ItemResult(two, False, error="boom")))
    assert result_rows(report) == [("One@Example.com", "u1", "Deleted")]
    assert error_rows(dp, report) == [
        ("gone@example.com", "", NOT_FOUND),
        ("two@example.com", "u2", "boom"),
    ]


def test_the_plan_names_teams_for_messages() -> None:
    dp = build_delete_plan(parse_users_csv(emails("one@example.com")), snap())
    assert dp.plan.team_label("t-dev") == "development"
