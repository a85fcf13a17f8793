"""The scope step of the planners: which live users a plan may touch (``PlanOptions.scope``). Pure.

One filter, applied by ``sync`` (and ``restore``) before they plan what to do to a live user:

* a live user the CSV lists but outside the scope is left alone (``Plan.skipped`` says why), unless
  ``options.adopt``: then it is adopted (:class:`~litellm_usersync.models.AdoptUser` writes the tool's marker)
  and planned like any other;
* a live user outside the scope is never a deletion candidate; how many there are is one number
  (``Plan.out_of_scope``), not one line each;
* the deletion brake's percentage counts only the managed users in the scope.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from litellm_usersync.models import AdoptUser, ItemKind, LiveUser, PlanItem, PlanOptions, Skipped, Snapshot


@dataclass(frozen=True)
class ScopeView:
    """The live users as one plan's scope sees them."""

    snapshot: Snapshot
    options: PlanOptions
    #: the email keys the source lists: such a user outside the scope has its own line (or is adopted)
    listed: frozenset[str] = frozenset()

    def contains(self, user: LiveUser) -> bool:
        return self.options.scope.contains(user, self.snapshot)

    @cached_property
    def managed(self) -> list[LiveUser]:
        """The users the plan may delete (a proxy role, an email, not ``default_user_id``) in the scope."""
        return [u for u in self.snapshot.users if u.is_managed and self.contains(u)]

    @cached_property
    def outside(self) -> int:
        """How many users the plan would manage without the scope and leaves alone because of it, without a
        line each: those the source lists are not counted (they have their own line, or are adopted)."""
        return sum(
            1 for u in self.snapshot.users if u.is_managed and u.email_key not in self.listed and not self.contains(u)
        )

    @property
    def refusals(self) -> list[str]:
        """A ``team:`` term that names no single team: the plan must not run (the scope would be empty)."""
        return self.options.scope.team_problems(self.snapshot)

    def listed_user(self, email: str, live: LiveUser) -> tuple[bool, AdoptUser | None, Skipped | None]:
        """A live user the CSV lists: ``(plan it, adopt it first, or why it is left alone)``."""
        adopt = AdoptUser(live.user_id, live.email or email) if self.options.adopt and not live.managed_marker else None
        if self.contains(live) or self.options.adopt:
            return True, adopt, None
        reason = f"outside the scope ({self.options.scope.describe()}); left alone (--adopt manages it)"
        return False, None, Skipped(live.email or email, live.user_id, reason)


def with_adoption(item: PlanItem | None, adopt: AdoptUser, fallback: PlanItem) -> PlanItem:
    """``item`` with the adoption first (an UNCHANGED item becomes an UPDATE); ``fallback`` (the user as it is)
    when there was no item (``--no-update``). A blocked item sends nothing, its adoption neither."""
    if item is None:
        return replace(fallback, actions=(adopt,))
    kind = ItemKind.UPDATE if item.kind is ItemKind.UNCHANGED else item.kind
    return replace(item, kind=kind, actions=(adopt, *item.actions))
