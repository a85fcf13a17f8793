"""How blocks and reactivations read in plans and results (issue 13). Pure; ``render.report`` calls these."""

from __future__ import annotations

from litellm_usersync.models import BlockUser, ItemKind, PlanItem, ReactivateUser


def block_of(item: PlanItem) -> BlockUser | None:
    return next((a for a in item.actions if isinstance(a, BlockUser)), None)


def reactivation_of(item: PlanItem) -> ReactivateUser | None:
    return next((a for a in item.actions if isinstance(a, ReactivateUser)), None)


def _teams(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "-"


def stops_text(block: BlockUser) -> str:
    """``blocks 2 API key(s): alice-1, alice-eng (team team-eng)``: what the block stops."""
    if not block.keys_read:
        return "its API keys are read and blocked when the block is applied"
    n = len(block.tokens)
    names = f": {', '.join(block.stops)}" if block.stops else ""
    text = f"blocks {n} API key(s){names}"
    if block.resume:
        text += " (completes an interrupted block)"
    if block.already_blocked:
        text += f"; {block.already_blocked} key(s) blocked before stay blocked"
    return text


def describe_block(item: PlanItem) -> str:
    """The plan line of a BLOCK item (``⊘ email (...) — blocks N API key(s): ...``)."""
    block = block_of(item)
    budget = "; budget → 0" if block is not None and block.zero_budget else ""
    text = f"⊘ {item.email} (Role: {item.old_role} → {item.role}{budget}; Team: {_teams(item.team_names)} kept)"
    if block is not None:
        text += f" — {stops_text(block)}; spend ${item.spend:,.2f} kept"
    return text


def describe_reactivation(item: PlanItem) -> str:
    """The plan line of a REACTIVATE item (``↺ email (Role: viewer → internal_user, ...) — unblocks N key(s)``)."""
    again = reactivation_of(item)
    parts = [f"Role: {item.old_role} → {item.role}"]
    if again is not None and again.restore_budget:
        parts.append(f"budget → {'none' if again.max_budget is None else again.max_budget}")
    if tuple(item.team_names) != tuple(item.old_team_names):
        parts.append(f"Teams: {_teams(item.old_team_names)} → {_teams(item.team_names)}")
    text = f"↺ {item.email} ({', '.join(parts)})"
    if again is not None:
        text += f" — unblocks the {len(again.tokens)} API key(s) its block stopped"
    if item.team_keys_destroyed:
        text += f" — destroys {item.team_keys_destroyed} team key(s)"
    return text


def explain(item: PlanItem, where: str) -> str:
    """``--debug``'s reason for a block or a reactivation."""
    if item.kind is ItemKind.BLOCK:
        return f"{item.email} (user_id {item.user_id}, role {item.old_role}): not in the source → block (--deprovision)"
    return f"{item.email}: blocked by the tool, in {where} again → reactivate"


def markdown_note(item: PlanItem) -> str | None:
    block = block_of(item)
    if block is not None:
        return stops_text(block)
    again = reactivation_of(item)
    if again is not None:
        return f"unblocks the {len(again.tokens)} API key(s) its block stopped"
    return None
