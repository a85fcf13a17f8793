"""Saved plans: the document round-trips every item and action, malformed documents are refused with a clear
message, and a plan whose users changed since it was made is refused as stale. Pure: no I/O.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest

from litellm_usersync.errors import InputError, RefusedError
from litellm_usersync.files.planfile import (
    PLAN_FILE_SCHEMA,
    PLAN_FILE_VERSION,
    action_from_dict,
    plan_from_document,
    plan_to_document,
)
from litellm_usersync.models import (
    AddMembership,
    BlockUser,
    ChangeRole,
    CreateUser,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    ReactivateUser,
    RebindKeys,
    RecreateUser,
    RemoveMembership,
    Skipped,
    Snapshot,
    Team,
)
from litellm_usersync.models.documents import action_to_dict
from litellm_usersync.plans.freshness import check_plan_fresh, touched_user_ids
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.documents import plan_to_dict

TEAMS = (Team("t-dev", "development"), Team("t-sup", "support"), Team("t-adm", "admin"))


def live(email: str, role: str = "internal_user", teams: Sequence[str] = (), *, keys: int = 0) -> LiveUser:
    return LiveUser(user_id=email.lower(), email=email, role=role, team_ids=tuple(teams), key_count=keys)


def snap(*users: LiveUser, teams: tuple[Team, ...] = TEAMS) -> Snapshot:
    return Snapshot(users=tuple(users), teams=teams)


def desired(*rows: tuple[str, str | None, tuple[str, ...] | None]) -> DesiredState:
    return DesiredState(tuple(DesiredUser(e, r, t, line=n + 2) for n, (e, r, t) in enumerate(rows)))


def sample_plan() -> tuple[Plan, Snapshot]:
    """A plan with an add, a delete, a role change, a team move (join + leave) and an unchanged user."""
    current = snap(
        live("stay@x.com", "internal_user", ["t-dev"]),
        live("promote@x.com", "internal_user", ["t-dev"]),
        live("move@x.com", "internal_user", ["t-dev"]),
        live("gone@x.com", "internal_user", ["t-sup"], keys=2),
    )
    plan = build_plan(
        desired(
            ("stay@x.com", "internal_user", ("development",)),
            ("promote@x.com", "proxy_admin", ("development",)),
            ("move@x.com", "internal_user", ("support",)),
            ("new@x.com", "internal_user_viewer", ("admin",)),
        ),
        current,
        PlanOptions(
            max_delete=5, protected_emails=frozenset({"boss@x.com"}), protected_roles=frozenset({"proxy_admin"})
        ),
    )
    return plan, current


def test_round_trip_of_a_real_plan_is_exact() -> None:
    plan, _ = sample_plan()
    kinds = {type(a) for a in plan.actions}
    assert kinds == {CreateUser, DeleteUser, ChangeRole, AddMembership, RemoveMembership}
    doc = plan_to_document(plan, source="user_list.csv")
    assert (
        doc["schema"] == PLAN_FILE_SCHEMA
        and doc["version"] == PLAN_FILE_VERSION == 2
        and doc["source"] == "user_list.csv"
    )
    # through real JSON text, as it would go through a file
    again = plan_from_document(json.loads(json.dumps(doc)))
    assert again == plan
    assert again.fingerprint == plan.fingerprint and again.options == plan.options


def test_round_trip_keeps_every_field_of_every_action_kind() -> None:
    actions = (
        CreateUser("u1", "U1@x.com", "proxy_admin", ("t1", "t2"), key_alias="laptop", create_key=False),
        DeleteUser("u2", "u2@x.com", ("t3",)),
        ChangeRole("u3", "u3@x.com", None, "internal_user_viewer"),
        AddMembership("u4", "u4@x.com", "t4"),
        RebindKeys("u4", "u4@x.com", "t5", "t4", ("ab" * 32,), requires=("join:u4:t4",)),
        RemoveMembership("u4", "u4@x.com", "t5", requires=("join:u4:t4", "rebind:u4:t5"), destroys_keys=2),
        RecreateUser("u5", "u5@x.com", "internal_user", ("t6",)),
    )
    for a in actions:
        assert action_from_dict(json.loads(json.dumps(action_to_dict(a)))) == a
    item = PlanItem(
        kind=ItemKind.UPDATE,
        email="u4@x.com",
        user_id="u4",
        role="internal_user",
        team_names=("four",),
        actions=actions,
        old_role="proxy_admin",
        old_team_names=("five",),
        blocked=None,
        key_count=3,
        spend=1.25,
        may_recreate=True,
        line=7,
        team_ids=("t4",),
        old_team_ids=("t5",),
        team_keys_destroyed=2,
        team_keys_rebound=1,
    )
    blocked = dataclasses.replace(item, kind=ItemKind.ADD, user_id="u9", actions=(), blocked="Team not found: x")
    plan = Plan(
        items=(item, blocked),
        skipped=(Skipped("p@x.com", "p", "protected (--protect)"),),
        refusals=("too many deletions",),
        fingerprint="abc123",
        options=PlanOptions(
            allow_add=False,
            allow_delete=False,
            allow_update=False,
            allow_recreate=False,
            default_role="internal_user",
            create_keys=False,
            max_delete=0,
            protected_emails=frozenset({"a@x.com", "b@x.com"}),
            protected_roles=frozenset({"proxy_admin"}),
            recreate_with_keys=True,
            keep_team_keys=True,
        ),
        delete_limit=7,
    )
    assert plan_from_document(json.loads(json.dumps(plan_to_document(plan, source="s")))) == plan


def test_document_lists_the_touched_users_and_no_secret() -> None:
    plan, _ = sample_plan()
    doc = plan_to_document(plan, source="user_list.csv")
    assert sorted(doc["touched_user_ids"]) == sorted(touched_user_ids(plan))
    assert "sk-" not in json.dumps(doc)


def _doc() -> dict[str, Any]:
    plan, _ = sample_plan()
    return copy.deepcopy(plan_to_document(plan, source="user_list.csv"))


def _mutate(path: Sequence[str | int], value: object) -> dict[str, Any]:
    doc = _doc()
    target: Any = doc
    for p in path[:-1]:
        target = target[p]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param([], "plan file: expected a JSON object, got a list", id="not-an-object"),
        pytest.param(
            _mutate(["schema"], "litellm-usersync/plan"), "not a litellm-usersync/plan-file document", id="schema"
        ),
        pytest.param(_mutate(["version"], 3), "unsupported litellm-usersync/plan-file version 3", id="version"),
        pytest.param(_mutate(["fingerprint"], KeyError), "missing field 'fingerprint'", id="no-fingerprint"),
        pytest.param(_mutate(["items"], {}), "plan.items: expected a list, got an object", id="items-not-list"),
        pytest.param(_mutate(["items", 0, "kind"], "ADD"), "items[0].kind: unknown kind 'ADD'", id="bad-kind"),
        pytest.param(
            _mutate(["items", 0, "actions", 0, "type"], "explode"),
            "items[0].actions[0].type: unknown action type 'explode'",
            id="bad-action",
        ),
        pytest.param(
            _mutate(["items", 0, "actions", 0, "role"], "god"),
            "items[0].actions[0].role: unknown role 'god'",
            id="bad-role",
        ),
        pytest.param(
            _mutate(["items", 0, "actions", 0, "team_ids"], "t-adm"),
            "items[0].actions[0].team_ids: expected a list of strings, got a string",
            id="team-ids-string",
        ),
        pytest.param(
            _mutate(["items", 0, "actions", 0, "user_id"], "someone-else"),
            "items[0].actions[0].key: 'create:new@x.com' does not match the action",
            id="key-mismatch",
        ),
        pytest.param(_mutate(["items", 0, "spend"], "lots"), "items[0].spend: expected a number", id="spend"),
        pytest.param(_mutate(["options", "max_delete"], -1), "options.max_delete: must not be negative", id="max"),
        pytest.param(_mutate(["options", "allow_add"], "yes"), "options.allow_add: expected true or false", id="bool"),
    ],
)
def test_malformed_documents_are_refused_with_a_located_message(doc: object, message: str) -> None:
    with pytest.raises(InputError) as exc:
        plan_from_document(doc)
    assert message in str(exc.value)


def test_a_leave_that_requires_an_unknown_join_is_refused() -> None:
    doc = _doc()
    for item in doc["items"]:
        for a in item["actions"]:
            if a["type"] == "remove_membership":
                a["requires"] = ["join:nobody:t-x"]
    with pytest.raises(InputError, match=r"requires join:nobody:t-x, which is not in the plan"):
        plan_from_document(doc)


def test_a_duplicated_action_is_refused() -> None:
    doc = _doc()
    doc["items"][0]["actions"].append(dict(doc["items"][0]["actions"][0]))
    with pytest.raises(InputError, match="appears twice"):
        plan_from_document(doc)


# --------------------------------------------------------------------------------------------------
# stale plans


def test_an_unchanged_proxy_makes_a_fresh_plan() -> None:
    plan, current = sample_plan()
    check_plan_fresh(plan, current)
    check_plan_fresh(plan_from_document(plan_to_document(plan, source="x")), current)


def test_changes_to_users_the_plan_does_not_touch_do_not_make_it_stale() -> None:
    plan, current = sample_plan()
    stay = current.users_by_id["stay@x.com"]
    changed = snap(
        *(u for u in current.users if u.user_id != "stay@x.com"),
        dataclasses.replace(stay, role="proxy_admin"),
        live("other@x.com"),
    )
    check_plan_fresh(plan, changed)


def _replace_user(current: Snapshot, uid: str, **kw: Any) -> Snapshot:
    users = [dataclasses.replace(u, **kw) if u.user_id == uid else u for u in current.users]
    return snap(*users)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda s: _replace_user(s, "promote@x.com", role="proxy_admin_viewer"),
            "promote@x.com: role internal_user -> proxy_admin_viewer",
            id="role-changed",
        ),
        pytest.param(
            lambda s: _replace_user(s, "move@x.com", team_ids=("t-dev", "t-adm")),
            "move@x.com: teams t-dev -> t-adm, t-dev",
            id="team-added",
        ),
        pytest.param(
            lambda s: snap(*(u for u in s.users if u.user_id != "gone@x.com")),
            "gone@x.com (user id gone@x.com) no longer exists",
            id="deleted-meanwhile",
        ),
        pytest.param(
            lambda s: snap(*s.users, live("new@x.com")),
            "new@x.com (user id new@x.com) now exists",
            id="created-meanwhile",
        ),
        pytest.param(
            lambda s: snap(*s.users, dataclasses.replace(live("NEW@x.com"), user_id="uuid-1")),
            "new@x.com now exists as user id uuid-1",
            id="created-under-another-id",
        ),
    ],
)
def test_a_change_to_a_touched_user_makes_the_plan_stale(change: Any, expected: str) -> None:
    plan, current = sample_plan()
    with pytest.raises(RefusedError) as exc:
        check_plan_fresh(plan, change(current))
    text = str(exc.value)
    assert text.startswith("stale plan: ")
    assert expected in text
    assert "Nothing was changed" in text


def test_a_fingerprint_mismatch_alone_is_stale() -> None:
    plan, current = sample_plan()
    tampered = dataclasses.replace(plan, fingerprint="0" * 64)
    with pytest.raises(RefusedError, match=r"stale plan: .*fingerprint differs"):
        check_plan_fresh(tampered, current)


def test_the_document_has_a_place_for_every_model_field() -> None:
    """A field added to Plan, PlanItem, PlanOptions or an action must be added to the plan file too."""
    plan, _ = sample_plan()
    doc = plan_to_document(plan, source="x")
    assert {f.name for f in dataclasses.fields(Plan)} <= set(doc)
    assert {f.name for f in dataclasses.fields(PlanItem)} <= set(doc["items"][0])
    assert {f.name for f in dataclasses.fields(PlanOptions)} == set(doc["options"])
    for cls in (
        CreateUser,
        DeleteUser,
        ChangeRole,
        AddMembership,
        RemoveMembership,
        RecreateUser,
        BlockUser,
        ReactivateUser,
    ):
        sample = {
            BlockUser: BlockUser("u", "e", "2026-01-01T00:00:00Z", ("t1",)),
            ReactivateUser: ReactivateUser("u", "e", "internal_user", ("t1",)),
            CreateUser: CreateUser("u", "e", "proxy_admin"),
            DeleteUser: DeleteUser("u", "e"),
            ChangeRole: ChangeRole("u", "e", None, "proxy_admin"),
            AddMembership: AddMembership("u", "e", "t"),
            RemoveMembership: RemoveMembership("u", "e", "t"),
            RecreateUser: RecreateUser("u", "e", "proxy_admin"),
        }[cls]
        assert {f.name for f in dataclasses.fields(cls)} <= set(action_to_dict(sample)), cls.__name__


# --------------------------------------------------------------------------------------------------
# one JSON shape of a plan item (issue 10)


def test_a_saved_plan_item_is_the_json_output_item_plus_the_codec_fields() -> None:
    """The plan file and ``--output json`` write the same item shape (models.documents.item_to_dict); the plan
    file adds only the full actions and its version-1 names, which say the same as the shared fields."""
    plan, _ = sample_plan()
    saved = plan_to_document(plan, source="x")["items"]
    shown = plan_to_dict(plan)["items"]
    assert len(saved) == len(shown) == len(plan.items)
    for s, j in zip(saved, shown, strict=True):
        assert {k: s[k] for k in j} == j
        assert set(s) - set(j) == {"kind", "team_names", "old_team_names", "actions"}
        assert (s["kind"], s["team_names"], s["old_team_names"]) == (j["action"], j["teams"], j["old_teams"])
        assert [a["key"] for a in s["actions"]] == j["operations"]


def test_an_item_whose_action_contradicts_its_kind_is_refused() -> None:
    doc = _mutate(["items", 0, "action"], "DELETED")
    assert doc["items"][0]["kind"] == "ADDED"
    with pytest.raises(InputError, match=r"items\[0\]\.action: 'DELETED' does not match kind 'ADDED'"):
        plan_from_document(doc)


def test_a_plan_file_item_with_an_integer_line_still_reads() -> None:
    """Plan files written before the shared shape have ``"line": 0`` (now null) and no ``action``."""
    doc = _doc()
    for item in doc["items"]:
        item["line"] = item["line"] or 0
        del item["action"], item["teams"], item["old_teams"], item["operations"]
    plan, _ = sample_plan()
    assert plan_from_document(doc) == plan
