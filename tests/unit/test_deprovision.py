"""Deprovision by block, reactivation and purge in the planner, the plan file and the renderers (issue 13). Pure."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.models import (
    BLOCK_RECORD,
    AddMembership,
    BlockRecord,
    BlockUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    PlanOptions,
    ProxyFeatures,
    ReactivateUser,
    Snapshot,
    Team,
    UpdateUser,
    UserKey,
    parse_duration,
    purge_due,
)
from litellm_usersync.plans.delete import build_delete_plan
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.documents import plan_to_dict
from litellm_usersync.render.report import describe_item, render_plan

NOW = "2026-12-02T00:00:00Z"
TEAMS = (Team("t-dev", "development"), Team("t-sup", "support"))
BLOCK = PlanOptions(deprovision="block", now=NOW)


def user(email: str, role: str = "internal_user", *, teams: tuple[str, ...] = ("t-dev",), **kw: Any) -> LiveUser:
    return LiveUser(user_id=email, email=email, role=role, team_ids=teams, **kw)


def blocked(
    email: str, *, state: str = "blocked", at: str = "2026-11-01T00:00:00Z", tokens: tuple[str, ...] = ("h1",)
) -> LiveUser:
    record = BlockRecord(at=at, state=state, tokens=tokens, role="internal_user", max_budget=None)
    return user(email, "internal_user_viewer", max_budget=0.0, metadata={"x": 1, BLOCK_RECORD: record.to_json()})


def snap(
    *users: LiveUser, keys: tuple[UserKey, ...] = (), read: tuple[str, ...] = (), version: str = "1.110.2"
) -> Snapshot:
    return Snapshot(
        users=users,
        teams=TEAMS,
        features=ProxyFeatures.from_version(version, {}),
        proxy_version=version,
        user_keys=keys,
        user_keys_read=frozenset(read),
    )


def csv(*emails: str, role: str | None = None) -> DesiredState:
    return DesiredState(tuple(DesiredUser(e, role, ("development",)) for e in emails))


GONE_KEYS = (
    UserKey("h-personal", "gone@x.com", None, "gone-1"),
    UserKey("h-team", "gone@x.com", "t-dev", "gone-dev"),
    UserKey("h-admin", "gone@x.com", None, "gone-old", blocked=True),
)


def test_block_plans_every_unblocked_key_the_role_and_budget() -> None:
    s = snap(user("stay@x.com"), user("gone@x.com", max_budget=None, spend=2.0), keys=GONE_KEYS, read=("gone@x.com",))
    plan = build_plan(csv("stay@x.com"), s, BLOCK)
    (item,) = plan.of_kind(ItemKind.BLOCK)
    (a,) = item.actions
    assert isinstance(a, BlockUser)
    assert a.tokens == ("h-personal", "h-team") and a.already_blocked == 1
    assert a.old_role == "internal_user" and a.old_max_budget is None and a.zero_budget and not a.resume
    assert a.blocked_at == NOW and a.stops == ("gone-1", "gone-dev (team t-dev)")
    assert item.role == "internal_user_viewer" and item.team_names == ("development",) and item.key_count == 2
    assert not plan.of_kind(ItemKind.DELETE) and not plan.refusals
    assert describe_item(item) == (
        "⊘ gone@x.com (Role: internal_user → internal_user_viewer; budget → 0; Team: development kept) — blocks 2 API "
        "key(s): gone-1, gone-dev (team t-dev); 1 key(s) blocked before stay blocked; spend $2.00 kept"
    )
    text = render_plan(plan)
    assert "  Users to block: 1" in text and "  Users to BLOCK:" in text
    assert text.endswith("Synchronization plan: 0 to add, 0 to delete, 1 to block, 0 to update, 1 unchanged.")
    assert plan_to_dict(plan)["summary"]["block"] == 1


def test_the_default_still_deletes() -> None:
    plan = build_plan(csv("stay@x.com"), snap(user("stay@x.com"), user("gone@x.com")), PlanOptions())
    (item,) = plan.of_kind(ItemKind.DELETE)
    assert isinstance(item.actions[0], DeleteUser) and not plan.of_kind(ItemKind.BLOCK)
    assert "Users to block" not in render_plan(plan)


def test_keys_not_read_yet_are_said_so() -> None:
    plan = build_plan(csv("stay@x.com"), snap(user("stay@x.com"), user("gone@x.com", key_count=3)), BLOCK)
    (item,) = plan.of_kind(ItemKind.BLOCK)
    assert item.actions[0].keys_read is False and item.key_count == 3  # type: ignore[union-attr]
    assert "its API keys are read and blocked when the block is applied" in describe_item(item)


def test_a_user_blocked_already_is_left_alone_and_the_rerun_plans_nothing() -> None:
    plan = build_plan(csv("stay@x.com"), snap(user("stay@x.com"), blocked("gone@x.com")), BLOCK)
    assert not plan.has_changes and not plan.skipped and not plan.refusals


@pytest.mark.parametrize("state", ["blocking", "unblocking"])
def test_an_interrupted_block_or_reactivation_of_a_user_not_in_the_csv_is_completed(state: str) -> None:
    s = snap(
        user("stay@x.com"),
        blocked("gone@x.com", state=state, tokens=("h-personal",)),
        keys=(UserKey("h-personal", "gone@x.com", None, blocked=True), UserKey("h-team", "gone@x.com", "t-dev")),
        read=("gone@x.com",),
    )
    (item,) = build_plan(csv("stay@x.com"), s, BLOCK).of_kind(ItemKind.BLOCK)
    a = item.actions[0]
    assert isinstance(a, BlockUser)
    assert a.resume and a.tokens == ("h-personal", "h-team") and a.already_blocked == 0
    assert a.old_role == "internal_user" and a.blocked_at == "2026-11-01T00:00:00Z"  # the record's, not now


def test_a_blocked_user_back_in_the_csv_is_reactivated_with_the_role_it_had() -> None:
    s = snap(blocked("gone@x.com", tokens=("h1", "h2")))
    plan = build_plan(DesiredState((DesiredUser("gone@x.com", None, ("support",)),)), s, PlanOptions())
    (item,) = plan.of_kind(ItemKind.REACTIVATE)
    again, join, leave = item.actions
    assert again == ReactivateUser("gone@x.com", "gone@x.com", "internal_user", ("h1", "h2"), None, True)
    assert isinstance(join, AddMembership) and join.team_id == "t-sup"
    assert leave.key == "leave:gone@x.com:t-dev"
    assert (item.old_role, item.role) == ("internal_user_viewer", "internal_user")
    assert describe_item(item) == (
        "↺ gone@x.com (Role: internal_user_viewer → internal_user, budget → none, Teams: development → support) "
        "— unblocks the 2 API key(s) its block stopped"
    )
    # the CSV's role wins
    plan = build_plan(csv("gone@x.com", role="proxy_admin"), s, PlanOptions())
    assert plan.of_kind(ItemKind.REACTIVATE)[0].actions == (
        ReactivateUser("gone@x.com", "gone@x.com", "proxy_admin", ("h1", "h2"), None, True),
    )


def test_no_update_leaves_a_blocked_user_blocked() -> None:
    plan = build_plan(csv("gone@x.com"), snap(blocked("gone@x.com")), dataclasses.replace(BLOCK, allow_update=False))
    assert not plan.has_changes
    assert [s.reason for s in plan.skipped] == ["blocked; not reactivated: --no-update"]


def test_purge_deletes_only_users_blocked_longer_ago_than_the_grace_period() -> None:
    s = snap(
        user("stay@x.com"),
        blocked("old@x.com", at="2026-10-01T00:00:00Z"),
        blocked("new@x.com", at="2026-11-30T00:00:00Z"),
        blocked("cut@x.com", at="2026-01-01T00:00:00Z", state="blocking"),
    )
    options = dataclasses.replace(BLOCK, purge_blocked_after_s=30 * 86400)
    plan = build_plan(csv("stay@x.com"), s, options)
    assert [i.email for i in plan.of_kind(ItemKind.DELETE)] == ["old@x.com"]
    assert [i.email for i in plan.of_kind(ItemKind.BLOCK)] == ["cut@x.com"]  # an unfinished block is completed first
    assert build_plan(csv("stay@x.com"), s, BLOCK).of_kind(ItemKind.DELETE) == ()  # no purge without the option


def test_blocks_and_deletions_count_against_max_delete_together() -> None:
    s = snap(user("a@x.com"), user("b@x.com"), user("c@x.com"), blocked("old@x.com", at="2020-01-01T00:00:00Z"))
    options = dataclasses.replace(BLOCK, max_delete=2, purge_blocked_after_s=86400)
    plan = build_plan(csv("a@x.com"), s, options)
    assert plan.refusals == (
        "this run would delete 1 users and block 2 users, more than the limit of 2 (4 managed users); check the "
        "CSV, or raise the limit with --max-delete 3",
    )
    assert not build_plan(csv("a@x.com"), s, dataclasses.replace(options, max_delete=3)).refusals


def test_protected_users_and_no_delete_are_not_blocked() -> None:
    s = snap(user("stay@x.com"), user("boss@x.com"), user("gone@x.com"))
    options = dataclasses.replace(BLOCK, protected_emails=frozenset({"boss@x.com"}))
    plan = build_plan(csv("stay@x.com"), s, options)
    assert [i.email for i in plan.of_kind(ItemKind.BLOCK)] == ["gone@x.com"]
    assert [(x.email, x.reason) for x in plan.skipped] == [("boss@x.com", "not blocked: protected (--protect)")]
    plan = build_plan(csv("stay@x.com"), s, dataclasses.replace(BLOCK, allow_delete=False))
    assert not plan.has_changes
    assert {x.reason for x in plan.skipped} == {"not blocked: --no-delete"}


def test_a_block_without_the_time_of_the_run_cannot_be_applied() -> None:
    plan = build_plan(csv("stay@x.com"), snap(user("stay@x.com"), user("gone@x.com")), PlanOptions(deprovision="block"))
    (item,) = plan.of_kind(ItemKind.BLOCK)
    assert item.blocked and "PlanOptions.now" in item.blocked and not plan.has_changes


@pytest.mark.parametrize(
    ("version", "budget", "zero"),
    [("1.110.2", None, True), ("1.74.15.post2", None, False), ("1.74.15.post2", 5.0, True), (None, None, False)],
)
def test_the_budget_is_zeroed_only_where_it_can_be_given_back(
    version: str | None, budget: float | None, zero: bool
) -> None:
    s = snap(user("stay@x.com"), user("gone@x.com", max_budget=budget), version=version)  # type: ignore[arg-type]
    (item,) = build_plan(csv("stay@x.com"), s, BLOCK).of_kind(ItemKind.BLOCK)
    assert item.actions[0].zero_budget is zero  # type: ignore[union-attr]


def test_a_block_plan_survives_the_plan_file() -> None:
    s = snap(user("stay@x.com"), user("gone@x.com"), blocked("back@x.com"), keys=GONE_KEYS, read=("gone@x.com",))
    options = dataclasses.replace(BLOCK, purge_blocked_after_s=3600)
    plan = build_plan(csv("stay@x.com", "back@x.com"), s, options)
    assert plan.of_kind(ItemKind.BLOCK) and plan.of_kind(ItemKind.REACTIVATE)
    assert plan_from_document(plan_to_document(plan, source="x")) == plan


def test_delete_block_plans_blocks_and_refuses_a_second_one() -> None:
    s = snap(user("gone@x.com"), blocked("old@x.com"), keys=GONE_KEYS, read=("gone@x.com",))
    dp = build_delete_plan(csv("gone@x.com", "old@x.com"), s, block=True, now=NOW)
    (item,) = dp.plan.items
    assert item.kind is ItemKind.BLOCK and isinstance(item.actions[0], BlockUser)
    assert [(e.email, e.reason) for e in dp.errors] == [("old@x.com", "already blocked (since 2026-11-01T00:00:00Z)")]
    dp = build_delete_plan(csv("gone@x.com"), s, block=True, now=NOW, max_delete=0)
    assert dp.plan.refusals and dp.plan.refusals[0].startswith("this run would block 1 users")


def test_durations_and_the_purge_clock() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12) and parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("7") == timedelta(days=7)
    for bad in ("", "abc", "0d", "-1d", "nand"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    record = BlockRecord(at="2026-11-01T00:00:00Z", state="blocked")
    assert purge_due(record, "2026-12-02T00:00:01Z", 31 * 86400)
    assert not purge_due(record, "2026-12-01T00:00:00Z", 31 * 86400)
    assert not purge_due(dataclasses.replace(record, state="blocking"), NOW, 1)
    assert not purge_due(record, None, 1) and not purge_due(record, NOW, None)


def test_a_record_the_tool_did_not_write_is_not_a_block() -> None:
    for value in (None, "yes", {"at": 1, "state": "blocked"}, {"at": NOW, "state": "frozen"}):
        assert user("a@x.com", metadata={BLOCK_RECORD: value}).block_record is None
    record = BlockRecord(
        at=NOW, state="blocked", tokens=("h",), role="proxy_admin", max_budget=3.0, budget_zeroed=False
    )
    assert BlockRecord.from_json(record.to_json()) == record


def test_delete_block_reads_as_a_block() -> None:
    from litellm_usersync.models import ItemResult, RunReport
    from litellm_usersync.plans.delete import (
        render_delete_plan,
        render_delete_result_counts,
        render_delete_summary,
        result_rows,
    )

    s = snap(user("gone@x.com"), blocked("old@x.com"), keys=GONE_KEYS, read=("gone@x.com",))
    dp = build_delete_plan(csv("gone@x.com", "old@x.com"), s, block=True, now=NOW)
    text = render_delete_plan(dp, dry_run=True)
    assert text.startswith("Block Plan:\n  Users to block: 1 (limit 10, 2 managed users)\n")
    assert "  API keys blocked with them: 2 (kept: a reactivation unblocks them)" in text
    assert "DRY RUN - Users that would be blocked:" in text and "  Not blocked:" in text
    assert text.endswith("Block plan: 1 to block, 1 cannot be blocked.")
    report = RunReport(results=(ItemResult(dp.plan.items[0], success=True),))
    assert result_rows(report) == [("gone@x.com", "gone@x.com", "Blocked")]
    summary = render_delete_summary(dp, report)
    assert "  Blocked: 1 user" in summary and "  Not blocked (not found, protected, ambiguous): 1 row" in summary
    assert render_delete_result_counts(dp, report) == "Block result: 1 blocked, 1 not blocked, 0 failed."


def test_deprovision_delete_deletes_a_blocked_user_not_in_the_csv() -> None:
    plan = build_plan(csv("stay@x.com"), snap(user("stay@x.com"), blocked("gone@x.com")), PlanOptions(now=NOW))
    assert [(i.kind, i.email) for i in plan.items if i.actions] == [(ItemKind.DELETE, "gone@x.com")]


def test_the_sync_use_case_stamps_the_time_only_a_block_needs() -> None:
    from litellm_usersync.models.blocking import parse_time
    from litellm_usersync.usecases.sync import stamped

    assert stamped(PlanOptions()).now is None  # a plan without blocks stays as it was (plan files compare)
    assert parse_time(stamped(PlanOptions(deprovision="block")).now) is not None
    assert stamped(BLOCK).now == NOW  # a time given is kept


def test_a_reactivated_user_takes_the_csvs_managed_role_and_budget_each_written_once_and_a_rerun_plans_nothing() -> (
    None
):
    """Issue 13 x 12: "restores role and budget from the record, or from the CSV where it says otherwise"."""
    record = BlockRecord(
        at="2026-11-01T00:00:00Z", state="blocked", tokens=("h1",), role="internal_user", max_budget=25.0
    )
    live = user("back@x.com", "internal_user_viewer", max_budget=0.0, metadata={BLOCK_RECORD: record.to_json()})
    s = snap(live)
    # the CSV manages the role, the budget and a limit: the reactivation restores the CSV's role and budget, the
    # field update carries only the limit (no second write of the role or of max_budget)
    want = DesiredUser("back@x.com", "proxy_admin", ("development",), fields=(("max_budget", 10.0), ("tpm_limit", 5)))
    plan = build_plan(DesiredState((want,)), s, PlanOptions())
    (item,) = plan.of_kind(ItemKind.REACTIVATE)
    again, update = item.actions
    assert again == ReactivateUser("back@x.com", "back@x.com", "proxy_admin", ("h1",), 10.0, True)
    assert isinstance(update, UpdateUser) and update.new_role is None
    assert [(c.name, c.old, c.new) for c in update.changes] == [("tpm_limit", None, 5)]
    assert describe_item(item) == (
        "↺ back@x.com (Role: internal_user_viewer → proxy_admin, budget → 10.0, TPM: - → 5) "
        "— unblocks the 1 API key(s) its block stopped"
    )
    # the plan file (version 2) keeps both actions as they are
    assert plan_from_document(plan_to_document(plan, source="x")) == plan
    # once applied: role and budget from the CSV, the record gone; the rerun plans nothing
    done = dataclasses.replace(live, role="proxy_admin", max_budget=10.0, tpm_limit=5, metadata=None)
    assert not build_plan(DesiredState((want,)), snap(done), PlanOptions()).has_changes

    # without a max_budget column (or role) the record's budget and role come back, nothing else is written
    plain = DesiredUser("back@x.com", None, ("development",), fields=(("tpm_limit", None),))
    plan = build_plan(DesiredState((plain,)), s, PlanOptions())
    assert plan.of_kind(ItemKind.REACTIVATE)[0].actions == (
        ReactivateUser("back@x.com", "back@x.com", "internal_user", ("h1",), 25.0, True),
    )
    done = dataclasses.replace(live, role="internal_user", max_budget=25.0, metadata=None)
    assert not build_plan(DesiredState((plain,)), snap(done), PlanOptions()).has_changes

    # an empty max_budget cell (the CSV says: no budget) wins over the record's 25
    cleared = DesiredUser("back@x.com", None, ("development",), fields=(("max_budget", None),))
    (item,) = build_plan(DesiredState((cleared,)), s, PlanOptions()).of_kind(ItemKind.REACTIVATE)
    assert item.actions == (ReactivateUser("back@x.com", "back@x.com", "internal_user", ("h1",), None, True),)
