"""Renderers: the plan in the seed's format, the result CSV rows, JSON dicts. Pure; no secret in full."""

from __future__ import annotations

import json

import pytest

from litellm_usersync.models import (
    CreateUser,
    ItemKind,
    ItemResult,
    Plan,
    PlanItem,
    PlanOptions,
    RunReport,
    Skipped,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.documents import plan_to_dict, report_to_dict
from litellm_usersync.render.report import (
    SYNC_REPORT_COLUMNS,
    describe_item,
    render_plan,
    render_result_counts,
    render_summary,
    result_rows,
)

from .test_planner import desired, live, snap, want

KEY_A = "sk-AAAAbbbbCCCCdddd1234"
KEY_B = "sk-zzzzYYYYxxxxWWWW9876"


def seed_plan(**options: object) -> Plan:
    s = snap(
        [
            live("old_user@example.com", "internal_user", ["t-sup"], keys=3, spend=4.5),
            live("existing@example.com", "internal_user", ["t-sup"]),
            live("r@example.com", "internal_user", ["t-dev"]),
            *[live(f"same{i}@example.com", "internal_user", ["t-dev"]) for i in range(5)],
        ]
    )
    d = desired(
        want("new_user@example.com", "internal_user", ["development"]),
        want("another@example.com", "proxy_admin", ["admin"]),
        want("existing@example.com", "proxy_admin", ["development"]),
        want("r@example.com", "proxy_admin"),
        *[want(f"same{i}@example.com") for i in range(5)],
    )
    return build_plan(d, s, PlanOptions(**options))  # type: ignore[arg-type]


def test_render_plan_matches_the_seed_format() -> None:
    assert render_plan(seed_plan(allow_recreate=False)) == "\n".join(
        [
            "Synchronization Plan:",
            "  Users to add: 2",
            "  Users to delete: 1",
            "  Users to update: 2",
            "  Users unchanged: 5",
            "",
            "DRY RUN - Changes that would be made:",
            "",
            "  Users to ADD:",
            "    + another@example.com (Role: proxy_admin, Team: admin)",
            "    + new_user@example.com (Role: internal_user, Team: development)",
            "",
            "  Users to DELETE:",
            "    - old_user@example.com (Role: internal_user, Team: support) — destroys 3 API key(s), spend $4.50",
            "",
            "  Users to UPDATE:",
            "    ~ existing@example.com (Role: internal_user → proxy_admin, Teams: support → development)",
            "    ~ r@example.com (Role: internal_user → proxy_admin)",
            "",
            "Synchronization plan: 2 to add, 1 to delete, 2 to update, 5 unchanged.",
        ]
    )


def test_render_plan_real_run_header_and_recreation_warning() -> None:
    text = render_plan(seed_plan(), dry_run=False)
    lines = text.splitlines()
    assert "DRY RUN - Changes that would be made:" not in lines
    assert "Changes to be made:" in lines
    assert (
        "    ~ existing@example.com (Role: internal_user → proxy_admin, Teams: support → development)"
        " [recreated if verification fails]"
    ) in lines
    # a pure role change is never recreated
    assert "    ~ r@example.com (Role: internal_user → proxy_admin)" in lines


def test_render_plan_nothing_to_change() -> None:
    s = snap([live("a@x.com", "internal_user")])
    text = render_plan(build_plan(desired(want("a@x.com")), s))
    assert text == "\n".join(
        [
            "Synchronization Plan:",
            "  Users to add: 0",
            "  Users to delete: 0",
            "  Users to update: 0",
            "  Users unchanged: 1",
            "",
            "DRY RUN - Changes that would be made:",
            "",
            "  Nothing to change.",
            "",
            "Synchronization plan: 0 to add, 0 to delete, 0 to update, 1 unchanged.",
        ]
    )


def test_render_plan_blocked_skipped_and_refused() -> None:
    s = snap([live("me@x.com", "proxy_admin", uid="u-me"), *[live(f"u{i}@x.com") for i in range(12)]], caller="u-me")
    plan = build_plan(desired(want("ghost@x.com", "internal_user", ["Nope"])), s)
    text = render_plan(plan)
    lines = text.splitlines()
    assert "  Users left alone: 1" in lines
    assert "  Rows that cannot be applied: 1" in lines
    assert (
        "    + ghost@x.com (Role: internal_user, Team: ✗ Nope (no such team))  ✗ will FAIL: Team not found: Nope"
    ) in lines
    assert "  Users left alone:" in lines
    assert "    ! me@x.com (not deleted: protected: the identity of the credentials in use)" in lines
    assert lines[-3] == (
        "Refused: this run would delete 12 users, more than the limit of 10 (13 managed users); "
        "check the CSV, or raise the limit with --max-delete 12"
    )
    assert lines[-1] == (
        "Synchronization plan: 1 to add, 12 to delete, 0 to update, 0 unchanged, 1 left alone, "
        "1 cannot be applied. REFUSED (see the reason on stderr); nothing was changed."
    )
    # the CLI prints the refusal on stderr: the plan on stdout can leave it out
    assert "Refused:" not in render_plan(plan, with_refusals=False)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            PlanItem(ItemKind.ADD, "a@x", "a@x", "r", ("t",)),
            "+ a@x (Role: r, Team: t)",
        ),
        (
            PlanItem(ItemKind.ADD, "a@x", "a@x", "r", ()),
            "+ a@x (Role: r, Team: -)",
        ),
        (
            PlanItem(ItemKind.UPDATE, "e@x", "e", "b", ("y",), old_role="a", old_team_names=("x",)),
            "~ e@x (Role: a → b, Teams: x → y)",
        ),
        (
            PlanItem(ItemKind.UPDATE, "e@x", "e", "a", ("x", "y"), old_role="a", old_team_names=()),
            "~ e@x (Teams: - → x, y)",
        ),
        (
            PlanItem(ItemKind.DELETE, "d@x", "d", "r", ("t", "u"), key_count=0, spend=1234.5),
            "- d@x (Role: r, Team: t, u) — destroys 0 API key(s), spend $1,234.50",
        ),
        (
            PlanItem(ItemKind.UNCHANGED, "s@x", "s", "r", ("t",)),
            "= s@x (Role: r, Team: t)",
        ),
        (
            PlanItem(ItemKind.UPDATE, "c@x", "u-1, u-2", None, (), blocked="conflict"),
            "~ c@x (no change)  ✗ will FAIL: conflict",
        ),
    ],
)
def test_describe_item(item: PlanItem, expected: str) -> None:
    assert describe_item(item) == expected


# --------------------------------------------------------------------------------------------------
# Results


def _report(*, interrupted: bool = False) -> RunReport:
    add_a = PlanItem(ItemKind.ADD, "a@x.com", "a@x.com", "internal_user", ("dev", "ops"))
    add_b = PlanItem(ItemKind.ADD, "b@x.com", "b@x.com", "proxy_admin", ())
    gone = PlanItem(ItemKind.DELETE, "g@x.com", "u-g", "internal_user", ())
    moved = PlanItem(ItemKind.UPDATE, "m@x.com", "u-m", "internal_user", ("ops",), old_role="internal_user")
    same = PlanItem(ItemKind.UNCHANGED, "s@x.com", "u-s", "internal_user_viewer", ())
    return RunReport(
        results=(
            ItemResult(add_a, True, api_key=KEY_A),
            ItemResult(add_b, False, error="Team not found: x", api_key=None),
            ItemResult(gone, True),
            ItemResult(moved, True, api_key=KEY_B, note="recreated by the fallback", recreated=True),
            ItemResult(same, True),
        ),
        interrupted=interrupted,
    )


def test_result_columns_are_the_seeds() -> None:
    assert SYNC_REPORT_COLUMNS == (
        "action",
        "email",
        "user_id",
        "role",
        "team_name",
        "api_keys",
        "status",
        "error_reason",
    )


def test_result_rows_with_keys_for_the_file() -> None:
    assert list(result_rows(_report(), show_keys=True)) == [
        ("ADDED", "a@x.com", "a@x.com", "internal_user", "dev;ops", KEY_A, "SUCCESS", ""),
        ("ADDED", "b@x.com", "b@x.com", "proxy_admin", "", "", "FAILED", "Team not found: x"),
        ("DELETED", "g@x.com", "u-g", "internal_user", "", "", "SUCCESS", ""),
        ("UPDATED", "m@x.com", "u-m", "internal_user", "ops", KEY_B, "SUCCESS", "recreated by the fallback"),
        ("UNCHANGED", "s@x.com", "u-s", "internal_user_viewer", "", "", "SUCCESS", ""),
    ]


def test_result_rows_masked_for_the_screen() -> None:
    rows = list(result_rows(_report(), show_keys=False))
    assert [r[5] for r in rows] == ["sk-AA…", "", "", "sk-zz…", ""]
    flat = "\n".join(",".join(r) for r in rows)
    assert KEY_A not in flat and KEY_B not in flat
    for row in rows:
        assert len(row) == len(SYNC_REPORT_COLUMNS)


def test_result_row_failed_with_note_joins_error_and_note() -> None:
    item = PlanItem(ItemKind.ADD, "a@x.com", "a@x.com", "internal_user", ())
    report = RunReport(results=(ItemResult(item, False, error="boom", note="created; key unknown"),))
    [row] = result_rows(report, show_keys=True)
    assert row[6:] == ("FAILED", "boom; created; key unknown")


def test_render_summary() -> None:
    text = render_summary(_report(interrupted=True))
    assert text.splitlines() == [
        "Synchronization Result:",
        "  ADDED     1 succeeded, 1 FAILED",
        "  DELETED   1 succeeded",
        "  UPDATED   1 succeeded",
        "  UNCHANGED 1 succeeded",
        "  Recreated by the fallback: 1 (each row names what could not be carried over)",
        "  Interrupted after every change had been sent; run again to check.",
        "",
        "Failed:",
        "  ✗ ADDED b@x.com: Team not found: x",
    ]
    assert KEY_A not in text and KEY_B not in text


def test_render_summary_groups_rows_an_interruption_left_unstarted() -> None:
    """Regression (new-user trial): 300 'not attempted' rows buried the summary under 'Failed:'."""
    items = [PlanItem(ItemKind.ADD, f"n{i}@x.com", f"n{i}@x.com", "internal_user", ()) for i in range(8)]
    results = tuple(
        ItemResult(it, success=False, error="create: not attempted (run interrupted)", not_attempted=True)
        for it in items
    )
    text = render_summary(RunReport(results=results, interrupted=True))
    assert "  Interrupted: 8 row(s) not started; run again to finish." in text
    assert "Failed:" not in text
    assert "Not started (8; see the report): n0@x.com, n1@x.com, n2@x.com, n3@x.com, n4@x.com, …" in text


def test_plan_to_dict() -> None:
    plan = seed_plan()
    d = plan_to_dict(plan)
    assert d["schema"] == "litellm-usersync/plan"
    assert d["summary"] == {
        "add": 2,
        "delete": 1,
        "update": 2,
        "unchanged": 5,
        "block": 0,
        "reactivate": 0,
        "skipped": 0,
        "blocked": 0,
        "reissue_keys": 0,
        "team_keys_destroyed": 0,
        "adopt": 0,
        "out_of_scope": 0,
    }
    assert d["scope"] == []
    assert d["fingerprint"] == plan.fingerprint
    assert d["refusals"] == []
    first = d["items"][0]
    assert first["action"] == "ADDED"
    assert first["email"] == "another@example.com"
    assert first["operations"] == ["create:another@example.com"]
    assert first["line"] is None
    delete = next(i for i in d["items"] if i["action"] == "DELETED")
    assert (delete["key_count"], delete["spend"]) == (3, 4.5)
    json.dumps(d)  # JSON-ready


def test_plan_to_dict_lists_skipped() -> None:
    plan = Plan(items=(), skipped=(Skipped("a@x.com", "u-a", "not deleted: --no-delete"),))
    assert plan_to_dict(plan)["skipped"] == [
        {"email": "a@x.com", "user_id": "u-a", "reason": "not deleted: --no-delete"}
    ]


def test_report_to_dict_masks_every_key() -> None:
    d = report_to_dict(_report())
    text = json.dumps(d)
    assert KEY_A not in text and KEY_B not in text
    assert [r["api_key"] for r in d["results"]] == ["sk-AA…", None, None, "sk-zz…", None]
    assert d["ok"] is False
    assert d["summary"] == {"succeeded": 4, "failed": 1, "keys_unknown": 0}
    assert d["results"][3]["recreated"] is True
    assert d["results"][1]["status"] == "FAILED"


def test_plan_to_dict_contains_no_key_of_a_create() -> None:
    item = PlanItem(
        ItemKind.ADD,
        "a@x.com",
        "a@x.com",
        "internal_user",
        (),
        actions=(CreateUser("a@x.com", "a@x.com", "internal_user", key_alias="laptop"),),
    )
    text = json.dumps(plan_to_dict(Plan(items=(item,))))
    assert "sk-" not in text


def test_many_users_left_alone_for_one_reason_are_one_line() -> None:
    """Regression (new-user trial): --no-delete listed 617 lines of 'Users left alone'."""
    from litellm_usersync.models import Plan, Skipped
    from litellm_usersync.render.report import render_plan_changes

    many = tuple(Skipped(f"u{i:02d}@x.com", f"u{i:02d}", "not deleted: --no-delete") for i in range(15))
    few = (Skipped("boss@x.com", "boss", "not deleted: protected (--protect)"),)
    text = render_plan_changes(Plan(items=(), skipped=many + few))
    assert "    ! 15 users (not deleted: --no-delete; e.g. u00@x.com, u01@x.com, u02@x.com, …)" in text
    assert "    ! boss@x.com (not deleted: protected (--protect))" in text
    assert "u03@x.com" not in text


def test_summary_counts_rows_an_interruption_left_unstarted_as_not_started_not_failed() -> None:
    """Trial on the real proxy: Ctrl-C during a 2,000-user add printed 'ADDED 500 succeeded, 1500 FAILED' and
    '1,503 FAILED; interrupted', though nothing had failed: 1,503 rows were simply not started."""
    done = PlanItem(ItemKind.ADD, "a@x.com", "a@x.com", "internal_user", ())
    bad = PlanItem(ItemKind.ADD, "b@x.com", "b@x.com", "internal_user", ())
    later = [PlanItem(ItemKind.ADD, f"n{i}@x.com", f"n{i}@x.com", "internal_user", ()) for i in range(1500)]
    report = RunReport(
        results=(
            ItemResult(done, True, api_key="sk-" + "a" * 30),
            ItemResult(bad, False, error="Team not found: x"),
            *(
                ItemResult(it, False, error="create: not attempted (run interrupted)", not_attempted=True)
                for it in later
            ),
        ),
        interrupted=True,
    )
    assert render_summary(report).splitlines()[1] == "  ADDED     1 succeeded, 1 FAILED, 1,500 not started"
    assert render_result_counts(report) == (
        "Synchronization result: 1 added, 0 deleted, 0 updated, 0 unchanged, 1 FAILED, 1,500 not started; interrupted."
    )


def test_plan_summary_numbers_are_grouped_as_in_its_counts_line() -> None:
    """Trial: a 2,000-row dry run was headed 'Users to add: 2000' and ended '2,000 to add'."""
    items = tuple(PlanItem(ItemKind.ADD, f"n{i}@x.com", f"n{i}@x.com", "internal_user", ()) for i in range(2000))
    text = render_plan(Plan(items=items))
    assert "  Users to add: 2,000" in text.splitlines()
    assert text.splitlines()[-1] == "Synchronization plan: 2,000 to add, 0 to delete, 0 to update, 0 unchanged."
