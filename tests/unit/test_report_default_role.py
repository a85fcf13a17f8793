"""The plan says when a new user's role is the default (--user-role), not the CSV's: it is proxy_admin."""

from __future__ import annotations

from litellm_usersync.models import DesiredState, DesiredUser, PlanOptions, Snapshot
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.render.report import describe_item, render_plan


def test_default_role_is_marked_in_the_plan() -> None:
    desired = DesiredState((DesiredUser("given@x.com", "internal_user"), DesiredUser("empty@x.com", None)))
    plan = build_plan(desired, Snapshot((), ()), PlanOptions(default_role="proxy_admin"))
    lines = {i.email: describe_item(i) for i in plan.items}
    assert lines["given@x.com"] == "+ given@x.com (Role: internal_user, Team: -)"
    assert lines["empty@x.com"] == "+ empty@x.com (Role: proxy_admin (default: no role in the CSV), Team: -)"
    assert "(default: no role in the CSV)" in render_plan(plan)
