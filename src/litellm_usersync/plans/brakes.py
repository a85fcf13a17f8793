"""The brakes and the protection check every planner shares (sync, add, delete, restore). Pure.

* :func:`protection` — why a live user must not be deleted or demoted (the identity of the credentials in
  use, ``--protect``, ``--protect-role``), or None. The executor's fallback asks the same question before it
  recreates a user: :func:`protection_of` answers it from the user's id, email key and role alone.
* :func:`delete_limit` and :func:`deletion_refusals` — the mass-deletion brake (``--max-delete``): the
  limit in force, and the refusals of a plan that would delete (users, and the team keys its team moves
  destroy) more than it, or that would delete everyone because its source is empty.

Protected emails need no normalising here: :class:`~litellm_usersync.models.PlanOptions` keys them itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import ItemKind, LiveUser, PlanItem, PlanOptions
from litellm_usersync.settings import default_max_delete

CALLER_PROTECTED = "protected: the identity of the credentials in use"


def protection_of(
    user_id: str, email_key: str, role: str | None, caller_user_id: str | None, options: PlanOptions
) -> str | None:
    """Why this user is protected, or None: ``default_user_id`` and the caller, ``--protect`` emails (keyed
    as :func:`~litellm_usersync.identity.normalize_email` keys them), ``--protect-role`` roles."""
    if user_id in (DEFAULT_USER_ID, caller_user_id):
        return CALLER_PROTECTED
    if email_key in options.protected_emails:
        return "protected (--protect)"
    if role is not None and role in options.protected_roles:
        return f"protected (--protect-role {role})"
    return None


def protection(user: LiveUser, caller_user_id: str | None, options: PlanOptions) -> str | None:
    """Why the live ``user`` must not be deleted or have its role changed, or None (see :func:`protection_of`)."""
    return protection_of(user.user_id, user.email_key, user.role, caller_user_id, options)


def delete_limit(max_delete: int | None, in_scope: int) -> int:
    """The ``--max-delete`` brake in force: ``max_delete`` when given, else the default for ``in_scope`` users
    (the larger of 10 and 20% of them, ``settings.default_max_delete``)."""
    return max_delete if max_delete is not None else default_max_delete(in_scope)


@dataclass(frozen=True)
class BrakeWording:
    """How one command names what its brake counts (the refusals name the command's own source and scope)."""

    #: "run" / "restore": ``this run would delete ...``
    what: str = "run"
    #: what is deleted: ``users`` / ``users added since the snapshot``
    deleted: str = "users"
    #: the users the default limit is a share of: ``managed users`` / ``users in scope``
    scope: str = "managed users"
    #: what to check: ``the CSV`` / ``the snapshot``
    source: str = "the CSV"
    #: the refusal of an empty source (``{n}``: the deletions)
    empty: str = (
        "the CSV has no users: refusing to delete all {n} managed users (an empty source never means 'delete everyone')"
    )


#: sync's and delete's wording (the user file is the source)
CSV_BRAKE = BrakeWording()
#: sync's wording under a ``--scope``: the default limit is a share of the managed users in it
SCOPED_BRAKE = BrakeWording(scope="managed users in the scope")
#: restore's wording (the snapshot is the source)
RESTORE_BRAKE = BrakeWording(
    what="restore",
    deleted="users added since the snapshot",
    scope="users in scope",
    source="the snapshot",
    empty=(
        "the snapshot has no users: refusing to delete all {n} users added since "
        "(an empty snapshot never means 'delete everyone')"
    ),
)


def deletion_refusals(
    items: Sequence[PlanItem],
    *,
    limit: int,
    in_scope: int,
    source_empty: bool = False,
    wording: BrakeWording = CSV_BRAKE,
) -> tuple[str, ...]:
    """The brake on destruction, for every planner: the refusals of a plan of ``items`` (empty: it may run).

    The DELETE items count, and so do the team keys the unblocked items' moves destroy (a team leave deletes
    the user's keys bound to that team: destroyed as surely as a deleted user's). ``source_empty`` (the CSV or
    the snapshot holds no user) refuses any deletion at all.
    """
    deletes = sum(1 for i in items if i.kind is ItemKind.DELETE)
    # a block (``--deprovision block``) is counted as a deletion: the same brake stops a mass block
    blocks = sum(1 for i in items if i.kind is ItemKind.BLOCK)
    deletions = deletes + blocks
    if deletions and source_empty:
        if blocks:
            return (
                f"{wording.source} has no users: refusing to "
                f"{_destroys(deletes, blocks, wording)} (an empty source never means 'delete everyone')",
            )
        return (wording.empty.format(n=deletions),)
    if deletions > limit:
        return (
            f"this {wording.what} would {_destroys(deletes, blocks, wording)}, more than the limit of {limit} "
            f"({in_scope} {wording.scope}); check {wording.source}, or raise the limit with --max-delete {deletions}",
        )
    refusal = team_keys_refusal(items, deletions, limit, what=wording.what)
    return (refusal,) if refusal else ()


def _destroys(deletes: int, blocks: int, wording: BrakeWording) -> str:
    """``delete 12 users`` / ``block 12 users`` / ``delete 2 users and block 10 users``: what the brake counts."""
    if not blocks:
        return f"delete {deletes} {wording.deleted}"
    if not deletes:
        return f"block {blocks} users"
    return f"delete {deletes} {wording.deleted} and block {blocks} users"


def team_keys_refusal(items: Sequence[PlanItem], deletions: int, limit: int, *, what: str = "run") -> str | None:
    """The brake on ``deletions`` users plus the team keys the unblocked ``items`` destroy, or None."""
    doomed_keys = sum(i.team_keys_destroyed for i in items if not i.blocked)
    if not doomed_keys or deletions + doomed_keys <= limit:
        return None
    return (
        f"this {what} would delete {deletions} users and destroy {doomed_keys} team key(s) (a team leave "
        f"deletes the user's keys bound to that team), more than the limit of {limit}; keep the keys with "
        f"--keep-team-keys, or raise the limit with --max-delete {deletions + doomed_keys}"
    )
