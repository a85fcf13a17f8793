"""Planning the managed fields and teams on demand (issue 12): pure, over hand-built snapshots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from litellm_usersync.apply.fields import update_body, with_changes
from litellm_usersync.errors import RefusedError
from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.models import (
    AddMembership,
    ChangeRole,
    CreateTeam,
    CreateUser,
    DesiredState,
    DesiredTeam,
    DesiredUser,
    FieldChange,
    LiveUser,
    PlanOptions,
    Snapshot,
    Team,
    UpdateTeam,
    UpdateUser,
)
from litellm_usersync.models.fields import ALL_MODELS, diff_fields, live_value, user_update_fields
from litellm_usersync.plans.freshness import check_plan_fresh
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.plans.teams import new_team_id
from litellm_usersync.render.documents import plan_to_dict
from litellm_usersync.render.markdown import render_plan_markdown
from litellm_usersync.render.report import describe_item, render_plan

TEAMS = (Team("t-dev", "development", roster_read=True), Team("t-sup", "support", roster_read=True))


def alice(**kw: object) -> LiveUser:
    base = LiveUser("alice@x.com", "alice@x.com", "proxy_admin", metadata={"managed_by": "litellm-usersync"})
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def snap(*users: LiveUser, teams: tuple[Team, ...] = TEAMS) -> Snapshot:
    return Snapshot(users=users, teams=teams, proxy_version="1.110.2")


def row(email: str = "alice@x.com", role: str | None = None, teams: tuple[str, ...] | None = None, **fields: object):  # type: ignore[no-untyped-def]
    named = tuple((k.replace("__", "."), v) for k, v in fields.items())
    return DesiredUser(email=email, role=role, team_names=teams, fields=named, line=2)


def plan_of(*rows: DesiredUser, snapshot: Snapshot, **options: object):  # type: ignore[no-untyped-def]
    return build_plan(DesiredState(users=rows), snapshot, PlanOptions(allow_delete=False, **options))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# field changes


def test_changed_fields_are_one_update_with_old_and_new_values() -> None:
    live = alice(max_budget=5.0, models=("gpt-4o",), user_alias="A")
    plan = plan_of(row(max_budget=10.0, models=(), user_alias="A"), snapshot=snap(live))
    (item,) = plan.items
    (action,) = item.actions
    assert isinstance(action, UpdateUser) and action.new_role is None
    assert action.changes == (FieldChange("max_budget", 5.0, 10.0), FieldChange("models", ("gpt-4o",), ()))
    assert describe_item(item) == "~ alice@x.com (Budget: 5 → 10, Models: gpt-4o → all)"


def test_a_role_alone_stays_the_seed_role_change_and_with_fields_rides_along() -> None:
    (only_role,) = plan_of(row(role="internal_user"), snapshot=snap(alice())).items
    assert [type(a) for a in only_role.actions] == [ChangeRole]
    (both,) = plan_of(row(role="internal_user", max_budget=1.0), snapshot=snap(alice())).items
    (a,) = both.actions
    assert isinstance(a, UpdateUser) and (a.old_role, a.new_role) == ("proxy_admin", "internal_user")
    assert describe_item(both) == "~ alice@x.com (Role: proxy_admin → internal_user, Budget: - → 1)"


@pytest.mark.parametrize(
    ("live", "fields"),
    [
        ({"models": ()}, {"models": None}),  # '-' = every model = []
        ({"models": (ALL_MODELS,)}, {"models": None}),  # what a cleared user's models read back as
        ({"models": ("b", "a")}, {"models": ("a", "b")}),  # order does not matter
        ({"user_alias": ""}, {"user_alias": None}),  # a cleared alias reads back as ""
        ({"max_budget": 10}, {"max_budget": 10.0}),
        ({"metadata": {"cost_center": "CC"}}, {"metadata__cost_center": "CC"}),
        ({"metadata": {"managed_by": "x"}}, {"metadata__cost_center": None}),
        ({}, {}),  # nothing managed
    ],
)
def test_values_that_already_match_plan_nothing(live: dict[str, object], fields: dict[str, object]) -> None:
    (item,) = plan_of(row(**fields), snapshot=snap(alice(**live))).items
    assert item.kind.name == "UNCHANGED" and item.actions == ()


def test_a_new_user_gets_its_fields_at_creation_but_never_a_clear() -> None:
    plan = plan_of(row("new@x.com", max_budget=3.0, tpm_limit=None, metadata__cc="X"), snapshot=snap())
    (create,) = plan.items[0].actions
    assert isinstance(create, CreateUser) and create.fields == (("max_budget", 3.0), ("metadata.cc", "X"))
    assert "Budget: 3, Metadata cc: X" in describe_item(plan.items[0])


def test_applying_the_plan_then_planning_again_gives_nothing() -> None:
    live = alice(max_budget=5.0, models=("gpt-4o",), metadata={"managed_by": "litellm-usersync", "k": "v"})
    want = row(user_alias="Al", max_budget=None, budget_duration="30d", models=None, tpm_limit=1, metadata__k=None)
    (item,) = plan_of(want, snapshot=snap(live)).items
    after = with_changes(live, item.field_changes)
    assert after is not None and after.metadata == {"managed_by": "litellm-usersync"}
    assert plan_of(want, snapshot=snap(after)).items[0].actions == ()


def test_the_update_body_clears_as_litellm_understands_it_and_merges_metadata() -> None:
    changes = (
        FieldChange("user_alias", "A", None),
        FieldChange("max_budget", 5.0, None),
        FieldChange("models", ("a",), ()),
        FieldChange("metadata.k", "v", None),
        FieldChange("metadata.n", None, "1"),
    )
    body = user_update_fields(changes, {"managed_by": "litellm-usersync", "k": "v", "other": 3})
    assert body == {
        "user_alias": "",
        "max_budget": None,
        "models": [ALL_MODELS],
        "metadata": {"managed_by": "litellm-usersync", "other": 3, "n": "1"},
    }
    # clearing the only key: an empty dict would be dropped by the proxy, so the key is sent as null
    assert user_update_fields((FieldChange("metadata.k", "v", None),), {"k": "v"}) == {"metadata": {"k": None}}


def test_a_role_becoming_internal_user_keeps_the_budget_the_row_does_not_change() -> None:
    """The proxy's max_internal_user_budget defaults must not overwrite a budget nobody asked to change."""
    before = alice(max_budget=50.0, budget_duration="30d")
    assert update_body(ChangeRole("alice@x.com", "a", "proxy_admin", "internal_user"), before=before) == {
        "user_id": "alice@x.com",
        "user_role": "internal_user",
        "max_budget": 50.0,
        "budget_duration": "30d",
    }
    changed = UpdateUser("alice@x.com", "a", "proxy_admin", "internal_user", (FieldChange("max_budget", 50.0, 7.0),))
    assert update_body(changed, before=before)["max_budget"] == 7.0
    assert update_body(ChangeRole("alice@x.com", "a", "internal_user", "proxy_admin"), before=before) == {
        "user_id": "alice@x.com",
        "user_role": "proxy_admin",
    }


def test_metadata_values_that_are_not_text_compare_as_text() -> None:
    assert live_value(alice(metadata={"n": 5, "b": True}), "metadata.n") == "5"
    assert diff_fields((("metadata.b", "true"),), alice(metadata={"b": True})) == ()


# --------------------------------------------------------------------------------------------------
# teams on demand


def test_without_create_teams_a_missing_team_fails_the_row_as_today() -> None:
    (item,) = plan_of(row("new@x.com", teams=("Eng",)), snapshot=snap()).items
    assert item.blocked == "Team not found: Eng" and plan_of(row(), snapshot=snap()).teams == ()


def test_create_teams_plans_the_team_before_the_joins() -> None:
    plan = plan_of(
        row("new@x.com", teams=("Eng", "development")),
        row(teams=("eng",)),
        snapshot=snap(alice()),
        create_teams=True,
    )
    (create,) = plan.teams
    assert create == CreateTeam("team-eng", "Eng")
    assert not any(i.blocked for i in plan.items)
    new = next(i for i in plan.items if i.email == "new@x.com")
    assert new.actions[0] == CreateUser("new@x.com", "new@x.com", "proxy_admin", ("team-eng", "t-dev"))
    assert AddMembership("alice@x.com", "alice@x.com", "team-eng") in plan.items[1].actions
    text = render_plan(plan)
    assert "Teams to CREATE: Eng" in text and "Teams to create: 1" in text and "1 team to create" in text
    assert plan_to_dict(plan)["teams"] == [{"action": "CREATE", "team_id": "team-eng", "name": "Eng", "fields": {}}]
    assert "- team + Eng" in render_plan_markdown(plan)


def test_the_create_teams_brake_refuses_the_whole_run() -> None:
    rows = [row(f"u{n}@x.com", teams=(f"team {n}",)) for n in range(3)]
    plan = plan_of(*rows, snapshot=snap(), create_teams=True, max_create_teams=2)
    assert plan.refusals == (
        "this run would create 3 teams, more than the limit of 2; check the team names in the CSV, or raise the "
        "limit with --max-create-teams 3",
    )
    assert plan_of(*rows, snapshot=snap(), create_teams=True, max_create_teams=3).refusals == ()


def test_an_ambiguous_team_is_never_created_and_unused_creates_are_dropped() -> None:
    twins = (*TEAMS, Team("t-a", "Twins"), Team("t-b", "twins"))
    (item,) = plan_of(row("new@x.com", teams=("twins",)), snapshot=snap(teams=twins), create_teams=True).items
    assert item.blocked and "ambiguous" in item.blocked
    # --no-update: the row joins nothing, so its missing team is not created for nothing
    plan = plan_of(row(teams=("Eng",)), snapshot=snap(alice()), create_teams=True, allow_update=False)
    assert plan.teams == ()


def test_new_team_ids_are_stable_and_never_taken() -> None:
    assert new_team_id("Data Science!", ()) == "team-data-science"
    assert new_team_id("Eng", ("team-eng",)) == "team-eng-2"
    assert new_team_id("Dashboard", ()) == "team-dashboard"
    assert new_team_id("日本", ()).startswith("team-") and new_team_id("日本", ()) == new_team_id("日本", ())


def test_the_teams_file_creates_missing_teams_and_updates_settings() -> None:
    teams = (Team("t-dev", "development", roster_read=True, max_budget=5.0, models=("a",)), TEAMS[1])
    state = DesiredState(
        users=(),
        teams=(
            DesiredTeam("development", (("max_budget", 10.0), ("models", None)), 2),
            DesiredTeam("support", (("tpm_limit", None),), 3),
            DesiredTeam("Research", (("max_budget", 1.0), ("rpm_limit", None)), 4),
        ),
    )
    plan = build_plan(state, snap(teams=teams), PlanOptions(allow_delete=False))
    assert plan.teams == (
        CreateTeam("team-research", "Research", (("max_budget", 1.0),), 4),
        UpdateTeam(
            "t-dev", "development", (FieldChange("max_budget", 5.0, 10.0), FieldChange("models", ("a",), ())), 2
        ),
    )
    assert "~ development (Budget: 5 → 10, Models: a → all)" in render_plan(plan)
    assert plan.has_changes


def test_an_ambiguous_teams_file_row_is_refused() -> None:
    twins = (Team("t-a", "Twins"), Team("t-b", "twins"))
    state = DesiredState(users=(), teams=(DesiredTeam("twins", (("max_budget", 1.0),), 5),), teams_source="t.csv")
    plan = build_plan(state, snap(teams=twins), PlanOptions(allow_delete=False))
    assert plan.refusals and plan.refusals[0].startswith("t.csv, line 5: team 'twins' is ambiguous")


# --------------------------------------------------------------------------------------------------
# saved plans and freshness


def test_a_plan_with_fields_and_teams_survives_the_plan_file() -> None:
    live = alice(max_budget=5.0, metadata={"k": "v"})
    plan = plan_of(
        row(role="internal_user", max_budget=None, models=("m",), metadata__k="w", teams=("Eng",)),
        row("new@x.com", budget_duration="1mo", teams=("Eng",)),
        snapshot=snap(live),
        create_teams=True,
    )
    again = plan_from_document(json.loads(json.dumps(plan_to_document(plan, source="u.csv"))))
    assert again == plan


def test_a_version_1_plan_file_is_still_read() -> None:
    plan = plan_of(row(role="internal_user"), snapshot=snap(alice()))
    doc = plan_to_document(plan, source="u.csv")
    doc["version"] = 1
    del doc["teams"]
    for item in doc["items"]:
        for a in item["actions"]:
            a.pop("fields", None)
    assert plan_from_document(doc) == plan


def test_the_fingerprint_of_a_plan_without_fields_is_unchanged() -> None:
    snapshot = snap(alice())
    plan = plan_of(row(role="internal_user"), snapshot=snapshot)
    assert plan.fingerprint == snapshot.fingerprint_of(["alice@x.com"])


def test_a_field_changed_since_the_plan_makes_it_stale() -> None:
    plan = plan_of(row(max_budget=10.0), snapshot=snap(alice(max_budget=5.0)))
    check_plan_fresh(plan, snap(alice(max_budget=5.0)))
    with pytest.raises(RefusedError, match="Budget 5 -> 7"):
        check_plan_fresh(plan, snap(alice(max_budget=7.0)))


def test_a_team_created_by_someone_else_since_the_plan_makes_it_stale() -> None:
    plan = plan_of(row(teams=("Eng",)), snapshot=snap(alice()), create_teams=True)
    check_plan_fresh(plan, snap(alice()))
    with pytest.raises(RefusedError, match="team Eng now exists"):
        check_plan_fresh(plan, snap(alice(), teams=(*TEAMS, Team("other", "Eng"))))


def test_no_update_leaves_the_fields_of_existing_users_alone() -> None:
    plan = plan_of(row(max_budget=1.0), snapshot=snap(alice(max_budget=5.0)), allow_update=False)
    assert plan.items == () and [s.reason for s in plan.skipped] == ["differs but not updated: --no-update"]


# --------------------------------------------------------------------------------------------------
# what LiteLLM 1.74's /user/update cannot do (it answers success and changes nothing): the row fails, said why

OLD = "1.74.15.post2"


def on(version: str | None, *users: LiveUser) -> Snapshot:
    return Snapshot(users=users, teams=TEAMS, proxy_version=version)


def test_on_1_74_an_alias_change_fails_the_row_and_nothing_is_sent() -> None:
    live = alice(user_alias="A", max_budget=5.0)
    plan = plan_of(row(user_alias="B", max_budget=10.0, teams=("development",)), snapshot=on(OLD, live))
    (item,) = plan.items
    assert item.blocked == (
        "user_alias: LiteLLM 1.74.15.post2's /user/update cannot change a user's alias (needs LiteLLM >= 1.100); "
        "nothing was sent for this row"
    )
    # the plan still shows every change of the row (nothing of it is lost), and the row as it would have been
    assert [c.name for c in item.field_changes] == ["user_alias", "max_budget"]
    assert item.team_names == ("development",) and item.unresolved_teams == ()
    assert "✗ will FAIL: user_alias: LiteLLM 1.74.15.post2" in render_plan(plan)
    assert plan_to_dict(plan)["items"][0]["blocked"] == item.blocked


@pytest.mark.parametrize("field", ["max_budget", "budget_duration", "tpm_limit", "rpm_limit"])
def test_on_1_74_a_clear_that_needs_a_null_fails_the_row(field: str) -> None:
    live = alice(max_budget=5.0, budget_duration="30d", tpm_limit=100, rpm_limit=10)
    (item,) = plan_of(row(**{field: None}), snapshot=on(OLD, live)).items
    assert item.blocked == (
        f"{field}: LiteLLM 1.74.15.post2's /user/update cannot clear it (it ignores an explicit null; "
        "needs LiteLLM >= 1.110); nothing was sent for this row"
    )


def test_on_1_74_what_it_can_do_is_planned_as_before() -> None:
    """Setting budgets, limits, models; clearing the models (all-proxy-models) and a metadata key: all applied."""
    live = alice(max_budget=5.0, models=("gpt-4o",), user_alias="A", metadata={"cost_center": "CC-1"})
    wanted = row(max_budget=7.0, tpm_limit=3, models=(), user_alias="A", metadata__cost_center=None)
    (item,) = plan_of(wanted, snapshot=on(OLD, live)).items
    assert item.blocked is None and len(item.field_changes) == 4


def test_on_1_74_a_new_user_with_an_alias_is_created() -> None:
    (item,) = plan_of(row("new@x.com", user_alias="New", max_budget=2.0), snapshot=on(OLD)).items
    assert item.blocked is None and isinstance(item.actions[0], CreateUser)
    assert dict(item.new_fields) == {"user_alias": "New", "max_budget": 2.0}


@pytest.mark.parametrize("version", ["1.110.2", None, "nightly"])
def test_on_1_110_or_an_unknown_version_alias_and_clears_are_planned_as_before(version: str | None) -> None:
    live = alice(user_alias="A", max_budget=5.0)
    (item,) = plan_of(row(user_alias="B", max_budget=None), snapshot=on(version, live)).items
    assert item.blocked is None
    (action,) = item.actions
    assert isinstance(action, UpdateUser) and [c.name for c in action.changes] == ["user_alias", "max_budget"]


def test_the_detected_features_version_counts_too() -> None:
    from litellm_usersync.models import ProxyFeatures

    snapshot = dataclasses.replace(on(None, alice(user_alias="A")), features=ProxyFeatures.from_version(OLD, {}))
    (item,) = plan_of(row(user_alias="B"), snapshot=snapshot).items
    assert item.blocked and item.blocked.startswith("user_alias: LiteLLM 1.74.15.post2's")


def test_on_1_74_no_update_still_skips_the_row() -> None:
    plan = plan_of(row(user_alias="B"), snapshot=on(OLD, alice(user_alias="A")), allow_update=False)
    assert not plan.items and len(plan.skipped) == 1


def test_on_1_74_a_team_error_and_the_alias_are_both_said() -> None:
    (item,) = plan_of(row(user_alias="B", teams=("nope",)), snapshot=on(OLD, alice(user_alias="A"))).items
    assert item.blocked and "nope" in item.blocked and "cannot change a user's alias" in item.blocked
    assert item.unresolved_teams and item.unresolved_teams[0][0] == "nope"
