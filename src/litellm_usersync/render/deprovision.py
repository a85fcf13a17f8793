"""How blocks and reactivations read in plans and results (issue 13). Pure; ``render.report`` calls these."""

from __future__ import annotations

from litellm_usersync.models import ItemKind, PlanItem, ReactivateUser
from litellm_usersync.models.fields import describe_changes
from litellm_usersync.plans.deprovision import block_of, describe_block, stops_text, team_list

__all__ = [
    "block_of",
    "describe_block",
    "describe_reactivation",
    "explain",
    "markdown_note",
    "stops_text",
]


def reactivation_of(item: PlanItem) -> ReactivateUser | None:
    return next((a for a in item.actions if isinstance(a, ReactivateUser)), None)


def describe_reactivation(item: PlanItem) -> str:
    """The plan line of a REACTIVATE item (``↺ email (Role: viewer → internal_user, ...) — unblocks N key(s)``)."""
    again = reactivation_of(item)
    parts = [f"Role: {item.old_role} → {item.role}"]
    if again is not None and again.restore_budget:
        parts.append(f"budget → {'none' if again.max_budget is None else again.max_budget}")
    if tuple(item.team_names) != tuple(item.old_team_names):
        parts.append(f"Teams: {team_list(item.old_team_names)} → {team_list(item.team_names)}")
    parts.extend(describe_changes(item.field_changes))  # the row's other managed fields (issue 12)
    text = f"↺ {item.email} ({', '.join(parts)})"
    if again is not None:
        text += f" — unblocks the {len(again.tokens)} API key(s) its block stopped"
    if item.team_keys_destroyed:
        text += f" — destroys {item.team_keys_destroyed} team key(s)"
    return text


def explain(item: PlanItem, where: str) -> str:
    """``--debug``'s reason for a block or a reactivation."""
    if item.kind is ItemKind.BLOCK:
        return f"{item.email} (user_id {item.user_id}, role {item.old_role}): not in the source → block"
    return f"{item.email}: blocked by the tool, in {where} again → reactivate"


def markdown_note(item: PlanItem) -> str | None:
    block = block_of(item)
    if block is not None:
        return stops_text(block)
    again = reactivation_of(item)
    if again is not None:
        return f"unblocks the {len(again.tokens)} API key(s) its block stopped"
    return None
