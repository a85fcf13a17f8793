"""plans/brakes: the one deletion brake and the one protection check shared by every planner."""

from __future__ import annotations

import pytest

from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import (
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    PlanItem,
    PlanOptions,
    Snapshot,
)
from litellm_usersync.plans.brakes import (
    CSV_BRAKE,
    RESTORE_BRAKE,
    delete_limit,
    deletion_refusals,
    protection,
    protection_of,
)
from litellm_usersync.plans.delete import build_delete_plan
from litellm_usersync.plans.restore import build_restore_plan
from litellm_usersync.plans.sync import build_plan


def _user(n: int, role: str = "internal_user") -> LiveUser:
    return LiveUser(user_id=f"u{n}", email=f"u{n}@x.com", role=role)


def _deletion(n: int) -> PlanItem:
    return PlanItem(ItemKind.DELETE, f"u{n}@x.com", f"u{n}", "internal_user", (), (DeleteUser(f"u{n}", f"u{n}@x.com"),))


def test_protected_emails_are_keyed_by_the_options_themselves() -> None:
    options = PlanOptions(protected_emails=frozenset({"  Boss@X.com ", "boss@x.com"}))
    assert options.protected_emails == frozenset({"boss@x.com"})
    assert protection_of("u1", "boss@x.com", "internal_user", None, options) == "protected (--protect)"


@pytest.mark.parametrize(
    ("user_id", "role", "expected"),
    [
        (DEFAULT_USER_ID, "proxy_admin", "protected: the identity of the credentials in use"),
        ("me", "internal_user", "protected: the identity of the credentials in use"),
        ("u1", "proxy_admin_viewer", "protected (--protect-role proxy_admin_viewer)"),
        ("u1", "internal_user", None),
        ("u1", None, None),
    ],
)
def test_protection(user_id: str, role: str | None, expected: str | None) -> None:
    options = PlanOptions(protected_roles=frozenset({"proxy_admin_viewer"}))
    assert protection(LiveUser(user_id=user_id, email="a@x.com", role=role), "me", options) == expected


def test_the_limit_is_the_explicit_one_else_the_default_share() -> None:
    assert delete_limit(3, 1000) == 3
    assert delete_limit(None, 1000) == 200
    assert delete_limit(None, 5) == 10


def test_the_refusals_name_the_commands_source_and_scope() -> None:
    items = [_deletion(n) for n in range(3)]
    (csv,) = deletion_refusals(items, limit=2, in_scope=9, wording=CSV_BRAKE)
    assert csv == (
        "this run would delete 3 users, more than the limit of 2 (9 managed users); "
        "check the CSV, or raise the limit with --max-delete 3"
    )
    (restore,) = deletion_refusals(items, limit=2, in_scope=9, wording=RESTORE_BRAKE)
    assert restore.startswith("this restore would delete 3 users added since the snapshot, more than the limit of 2")
    assert "(9 users in scope); check the snapshot" in restore
    assert deletion_refusals(items, limit=3, in_scope=9) == ()
    (empty,) = deletion_refusals(items, limit=100, in_scope=9, source_empty=True)
    assert empty.startswith("the CSV has no users: refusing to delete all 3 managed users")


def test_team_keys_count_against_the_same_limit() -> None:
    move = PlanItem(ItemKind.UPDATE, "m@x.com", "m", "internal_user", (), team_keys_destroyed=2)
    (refusal,) = deletion_refusals([_deletion(1), move], limit=2, in_scope=9)
    assert "would delete 1 users and destroy 2 team key(s)" in refusal and "--max-delete 3" in refusal
    blocked = PlanItem(ItemKind.UPDATE, "m@x.com", "m", "internal_user", (), team_keys_destroyed=2, blocked="no")
    assert deletion_refusals([_deletion(1), blocked], limit=2, in_scope=9) == ()


def test_sync_delete_and_restore_refuse_the_same_deletions_with_the_same_limit() -> None:
    """Eleven of twelve managed users gone: every planner applies the one brake (default limit 10)."""
    users = tuple(_user(n) for n in range(12))
    live = Snapshot(users=users, teams=())
    keep = DesiredState((DesiredUser("u0@x.com", "internal_user"),))
    doomed = DesiredState(tuple(DesiredUser(f"u{n}@x.com") for n in range(1, 12)))
    backup = Snapshot(users=users[:1], teams=())
    sync = build_plan(keep, live)
    delete = build_delete_plan(doomed, live).plan
    restore = build_restore_plan(backup, live)
    assert sync.refusals == delete.refusals
    assert sync.refusals[0].startswith("this run would delete 11 users, more than the limit of 10 (12 managed")
    assert restore.refusals[0].startswith("this restore would delete 11 users added since the snapshot")
    for plan in (sync, delete, restore):
        assert sum(1 for i in plan.items if i.kind is ItemKind.DELETE) == 11
