"""The plan shows the repairs of keys an interrupted run never recorded: an action, counted, in JSON and in
saved plans (issue 16)."""

from __future__ import annotations

from litellm_usersync.files.planfile import plan_from_document, plan_to_document
from litellm_usersync.models import DesiredState, DesiredUser, ItemKind, LiveUser, PlanOptions, ReissueKey, Snapshot
from litellm_usersync.plans.add import build_add_plan, render_add_plan
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.documents import plan_to_dict
from litellm_usersync.render.report import render_plan

SNAP = Snapshot(
    users=(
        LiveUser("lost@x.com", "lost@x.com", "internal_user", key_pending=True),
        LiveUser("link@x.com", "link@x.com", "internal_user", invite_pending=True),
        LiveUser("ok@x.com", "ok@x.com", "internal_user"),
    ),
    teams=(),
)
CSV = DesiredState(tuple(DesiredUser(e, "internal_user") for e in ("lost@x.com", "link@x.com", "ok@x.com")))


def test_sync_plans_a_reissue_for_a_marked_user_only() -> None:
    plan = build_plan(CSV, SNAP, PlanOptions())
    by_id = {i.user_id: i for i in plan.items}
    assert by_id["lost@x.com"].kind is ItemKind.UPDATE
    assert by_id["lost@x.com"].actions == (ReissueKey("lost@x.com", "lost@x.com"),)
    assert by_id["ok@x.com"].kind is ItemKind.UNCHANGED and by_id["link@x.com"].kind is ItemKind.UNCHANGED
    text = render_plan(plan, dry_run=True)
    assert "API keys to reissue (lost by an interrupted run): 1" in text
    assert "~ lost@x.com (API key lost by an interrupted run: revoke it, issue a new one)" in text
    d = plan_to_dict(plan)
    assert d["summary"]["reissue_keys"] == 1 and d["summary"]["update"] == 1
    assert "reissue:lost@x.com" in next(i for i in d["items"] if i["user_id"] == "lost@x.com")["operations"]


def test_a_saved_plan_keeps_the_reissue() -> None:
    plan = build_plan(CSV, SNAP, PlanOptions())
    again = plan_from_document(plan_to_document(plan, source="users.csv"))
    assert again.actions == plan.actions and any(isinstance(a, ReissueKey) for a in again.actions)


def test_no_update_still_repairs_the_key() -> None:
    csv = DesiredState((DesiredUser("lost@x.com", "proxy_admin"),))
    plan = build_plan(csv, SNAP, PlanOptions(allow_update=False, allow_delete=False))
    (item,) = [i for i in plan.items if i.user_id == "lost@x.com"]
    assert item.actions == (ReissueKey("lost@x.com", "lost@x.com"),) and item.role == "internal_user"


def test_add_repairs_instead_of_already_exists() -> None:
    add = build_add_plan(CSV, SNAP, default_role="internal_user")
    assert [e.want.email for e in add.existing] == ["ok@x.com"]
    assert [i.user_id for i in add.repairs] == ["link@x.com", "lost@x.com"]
    assert add.invite_repairs == ("link@x.com",)
    assert add.has_changes
    text = render_add_plan(add, dry_run=True)
    assert "↻ lost@x.com: API key lost: revoke it, issue a new one" in text
    assert "↻ link@x.com: invitation link lost: create a new one" in text
    no_invite = build_add_plan(CSV, SNAP, default_role="internal_user", invite=False)
    assert [i.user_id for i in no_invite.repairs] == ["lost@x.com"]
