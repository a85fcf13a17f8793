"""Scopes on disk and on screen (issue 17): plan files record the scope (version 2; version 1 still reads as
the default scope) and are refused under another one; scoped snapshots are version 2 and record theirs; the
plan, the result and the audit log show the scope and the adoptions."""

from __future__ import annotations

import json
import pathlib

import pytest

from litellm_usersync.errors import InputError, RefusedError
from litellm_usersync.files.audit import AuditLog, read_audit_log
from litellm_usersync.files.backups import (
    read_snapshot_file,
    snapshot_from_document,
    snapshot_scope,
    snapshot_to_document,
    write_backup,
)
from litellm_usersync.files.planfile import PLAN_FILE_VERSION, plan_from_document, plan_to_document
from litellm_usersync.models import (
    AdoptUser,
    DesiredState,
    DesiredUser,
    ItemResult,
    LiveUser,
    Outcome,
    OutcomeStatus,
    PlanOptions,
    RunReport,
    Scope,
    Snapshot,
    Team,
    TeamMember,
    parse_scope,
)
from litellm_usersync.plans.freshness import check_plan_scope
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.documents import plan_to_dict, report_to_dict
from litellm_usersync.render.markdown import render_plan_markdown
from litellm_usersync.render.report import render_plan, render_summary

SALES = Team("t-sales", "Sales", (TeamMember("u-sso", None, "user"), TeamMember("u-m", None, "user")), True)
SNAP = Snapshot(
    users=(
        LiveUser("u-m", "m@corp.example", "internal_user", managed_marker=True),
        LiveUser("u-gone", "gone@corp.example", "internal_user", managed_marker=True),
        LiveUser("u-sso", "sso@corp.example", "internal_user", metadata={"sso": "okta"}),
        LiveUser("u-sso2", "sso2@corp.example", "internal_user"),
    ),
    teams=(SALES,),
)
MANAGED = parse_scope(["managed"])


def scoped_plan(*, adopt: bool = True):  # type: ignore[no-untyped-def]
    desired = DesiredState((DesiredUser("m@corp.example", "internal_user"), DesiredUser("sso@corp.example", None)))
    return build_plan(desired, SNAP, PlanOptions(scope=MANAGED, adopt=adopt))


def test_a_plan_file_round_trips_its_scope_and_adoptions() -> None:
    plan = scoped_plan()
    doc = plan_to_document(plan, source="hr.csv")
    assert doc["version"] == PLAN_FILE_VERSION == 2
    assert doc["options"]["scope"] == ["managed"] and doc["options"]["adopt"] is True
    assert doc["out_of_scope"] == 1
    assert {"type": "adopt_user", "key": "adopt:u-sso", "user_id": "u-sso", "email": "sso@corp.example"} in [
        a for i in doc["items"] for a in i["actions"]
    ]
    assert plan_from_document(json.loads(json.dumps(doc))) == plan


def test_a_version_1_plan_file_still_reads_with_the_default_scope() -> None:
    plan = build_plan(DesiredState((DesiredUser("m@corp.example", "internal_user"),)), SNAP, PlanOptions())
    doc = plan_to_document(plan, source="old.csv")
    doc["version"] = 1
    del doc["options"]["scope"], doc["options"]["adopt"], doc["out_of_scope"]
    back = plan_from_document(doc)
    assert back.options.scope == Scope() and back.options.adopt is False and back.out_of_scope == 0
    assert back.items == plan.items


def test_a_bad_scope_in_a_plan_file_is_located() -> None:
    doc = plan_to_document(scoped_plan(), source="hr.csv")
    doc["options"]["scope"] = ["managed", "domian:x"]
    with pytest.raises(InputError, match=r"plan file: options.scope\[1\]: 'domian:x': unknown scope kind"):
        plan_from_document(doc)


def test_a_saved_plan_is_refused_under_another_scope() -> None:
    plan = scoped_plan()
    check_plan_scope(plan, None)  # none given: the plan's own scope applies
    check_plan_scope(plan, parse_scope(["MANAGED"]))  # the same scope, spelt otherwise
    with pytest.raises(RefusedError) as exc:
        check_plan_scope(plan, parse_scope(["domain:corp.example"]))
    assert str(exc.value).startswith(
        "the saved plan was made for the scope managed, this run's scope is domain:corp.example"
    )
    old = build_plan(DesiredState((DesiredUser("m@corp.example"),)), SNAP, PlanOptions())
    with pytest.raises(RefusedError, match="made for the scope every managed user"):
        check_plan_scope(old, MANAGED)


def test_a_scoped_snapshot_is_version_2_and_records_its_scope(tmp_path: pathlib.Path) -> None:
    only = MANAGED.restrict(SNAP)
    doc = snapshot_to_document(only, command="snapshot", created_at="2026-12-02T00:00:00Z", scope=MANAGED)
    assert (doc["version"], doc["scope"]) == (2, ["managed"])
    assert [u["user_id"] for u in doc["users"]] == ["u-m", "u-gone"]
    assert [m["user_id"] for m in doc["teams"][0]["members"]] == ["u-m"]
    assert snapshot_scope(doc) == MANAGED
    assert snapshot_from_document(doc).users == only.users
    # the streamed backup writes the same document
    path = write_backup(only, tmp_path, command="snapshot", scope=MANAGED)
    back, raw = read_snapshot_file(path)
    assert raw["version"] == 2 and snapshot_scope(raw) == MANAGED and back.users == only.users
    # a whole-proxy snapshot stays version 1, without a scope
    whole = snapshot_to_document(SNAP, command="sync", created_at="2026-12-02T00:00:00Z")
    assert whole["version"] == 1 and "scope" not in whole and snapshot_scope(whole) == Scope()


def test_a_version_2_snapshot_without_its_scope_is_refused() -> None:
    doc = snapshot_to_document(SNAP, command="snapshot", created_at="x", scope=MANAGED)
    del doc["scope"]
    with pytest.raises(InputError, match="snapshot file: scope: expected a non-empty list"):
        snapshot_scope(doc)


def test_the_plan_shows_the_scope_the_adoptions_and_the_users_outside() -> None:
    text = render_plan(scoped_plan())
    assert "  Users to adopt (marked as managed, --adopt): 1" in text
    assert "  Scope: managed (1 user outside the scope, left alone)" in text
    assert "    ~ sso@corp.example (adopt: mark as managed by litellm-usersync)" in text
    assert "    ! 1 user outside the scope (managed), left alone" in text
    assert text.splitlines()[-1] == (
        "Synchronization plan: 0 to add, 1 to delete, 1 to update, 1 unchanged, 1 outside the scope."
    )
    md = render_plan_markdown(scoped_plan())
    assert "Scope: managed (1 user outside the scope, left alone)" in md and "1 outside the scope" in md
    d = plan_to_dict(scoped_plan())
    assert d["scope"] == ["managed"] and (d["summary"]["adopt"], d["summary"]["out_of_scope"]) == (1, 1)
    # without --adopt the listed SSO user has its own line
    assert "    ! sso@corp.example (outside the scope (managed); left alone (--adopt manages it))" in render_plan(
        scoped_plan(adopt=False)
    )


def test_the_result_and_the_audit_log_record_the_scope(tmp_path: pathlib.Path) -> None:
    plan = scoped_plan()
    (item,) = [i for i in plan.items if i.user_id == "u-sso"]
    outcome = Outcome(AdoptUser("u-sso", "sso@corp.example"), OutcomeStatus.DONE)
    report = RunReport(results=(ItemResult(item, success=True),), outcomes=(outcome,), scope=("managed",))
    text = render_summary(report)
    assert "  Adopted (marked as managed): 1" in text and "  Scope: managed" in text
    assert report_to_dict(report)["scope"] == ["managed"]
    audit = AuditLog(tmp_path / "audit.jsonl", run_id="r", command="sync")
    audit.for_plan(plan)(outcome)
    (line,) = read_audit_log(tmp_path / "audit.jsonl")
    assert (line["kind"], line["before"], line["after"], line["scope"]) == (
        "adopt_user",
        {"managed_by": None},
        {"managed_by": "litellm-usersync"},
        ["managed"],
    )


def test_a_restores_scope_is_the_snapshots_own_or_the_one_given_for_a_whole_proxy_snapshot() -> None:
    from litellm_usersync.usecases.restore import restore_scope

    domain = parse_scope(["domain:corp.example"])
    assert restore_scope(Scope(), None) == Scope()
    assert restore_scope(Scope(), domain) == domain  # a whole-proxy snapshot, restored for some users only
    assert restore_scope(MANAGED, None) == MANAGED  # a scoped snapshot: its own
    assert restore_scope(MANAGED, parse_scope(["Managed"])) == MANAGED
    with pytest.raises(RefusedError, match="the snapshot holds only the users of the scope managed"):
        restore_scope(MANAGED, domain)
    with pytest.raises(RefusedError):
        restore_scope(MANAGED, Scope())  # an empty scope given (USERSYNC_SCOPE=",") cannot widen it
