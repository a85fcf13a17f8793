"""Plans that read at 2,000 users (issue 11): truncation, counts at the end, wording, mistyped teams."""

from __future__ import annotations

from litellm_usersync.models import ItemKind, ItemResult, Plan, PlanItem, PlanOptions, RunReport, Skipped
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.report import describe_item, render_plan, render_plan_counts, result_rows
from litellm_usersync.wording import count_of

from .test_planner import desired, live, snap, want


def _big_plan(n: int = 2000) -> Plan:
    users = [live(f"u{i:04d}@x.com", "internal_user") for i in range(n)]
    return build_plan(desired(*[want(f"new{i:04d}@x.com", "internal_user") for i in range(n)]), snap(users))


def test_a_limit_lists_the_first_n_of_each_kind_then_says_how_many_more() -> None:
    plan = _big_plan()
    lines = render_plan(plan, limit=20).splitlines()
    adds = [x for x in lines if x.startswith("    + ")]
    deletes = [x for x in lines if x.startswith("    - ")]
    assert len(adds) == 20 and len(deletes) == 20
    assert "    … and 1,980 more — `--show-all`" in lines
    assert lines.count("    … and 1,980 more — `--show-all`") == 2
    # the counts come last, so `| tail -1` shows them
    assert (
        lines[-1] == "Synchronization plan: 2,000 to add, 2,000 to delete, 0 to update, 0 unchanged. REFUSED "
        "(see the reason on stderr); nothing was changed."
    )


def test_without_a_limit_every_item_is_listed() -> None:
    plan = _big_plan(30)
    text = render_plan(plan)
    assert sum(1 for x in text.splitlines() if x.startswith("    + ")) == 30
    assert "more — `--show-all`" not in text


def test_no_delete_leaves_1999_users_alone_in_one_line() -> None:
    users = [live(f"u{i:04d}@x.com", "internal_user") for i in range(2000)]
    plan = build_plan(desired(want("u0000@x.com", "internal_user")), snap(users), PlanOptions(allow_delete=False))
    lines = render_plan(plan, limit=20).splitlines()
    alone = [x for x in lines if x.startswith("    ! ")]
    assert alone == ["    ! 1,999 users (not deleted: --no-delete; e.g. u0001@x.com, u0002@x.com, u0003@x.com, …)"]
    assert lines[-1] == "Synchronization plan: 0 to add, 0 to delete, 0 to update, 1 unchanged, 1,999 left alone."


def test_one_user_is_singular() -> None:
    assert count_of(1, "user") == "1 user"
    assert count_of(2000, "user") == "2,000 users"


def test_a_mistyped_team_is_marked_with_a_suggestion_and_the_failed_row_keeps_the_old_teams() -> None:
    s = snap([live("a@x.com", "internal_user", ["t-sup"])])
    plan = build_plan(desired(want("a@x.com", "internal_user", ["suport"])), s)
    [item] = plan.items
    assert describe_item(item) == (
        "~ a@x.com (Teams: support → ✗ suport (no such team; did you mean support?))"
        "  ✗ will FAIL: Team not found: suport (did you mean support?)"
    )
    report = RunReport(results=(ItemResult(item, success=False, error=item.blocked),))
    [row] = result_rows(report, show_keys=False)
    assert row[3:5] == ("internal_user", "support")  # what the user still has, not "-"


def test_a_mistyped_team_beside_a_good_one() -> None:
    s = snap([live("a@x.com", "internal_user", ["t-sup"])])
    plan = build_plan(desired(want("a@x.com", "internal_user", ["support", "devlopment"])), s)
    assert "Teams: support → support, ✗ devlopment (no such team; did you mean development?)" in describe_item(
        plan.items[0]
    )


def test_a_restore_plan_is_headed_as_a_restore() -> None:
    plan = Plan(items=(PlanItem(ItemKind.ADD, "a@x", "a@x", "internal_user", (), actions=()),))
    text = render_plan(plan, title="restore")
    assert text.startswith("Restore Plan:\n")
    assert "DRY RUN - Changes the restore would make:" in text
    assert "Synchronization" not in text
    assert render_plan_counts(plan, title="restore").startswith("Restore plan: 1 to add")
    assert "Changes the restore will make:" in render_plan(plan, title="restore", dry_run=False)


def test_skipped_singular_when_grouped() -> None:
    many = tuple(Skipped(f"u{i}@x", f"u{i}", "r") for i in range(11))
    assert "! 11 users (r; e.g." in render_plan(Plan(items=(), skipped=many))
