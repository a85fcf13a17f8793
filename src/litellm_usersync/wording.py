"""Wording shared by every renderer: a count with its noun, a list cut at a limit. Pure, imports nothing."""

from __future__ import annotations

from collections.abc import Sequence


def count_users(n: int) -> str:
    """``1 user``, ``2,000 users``."""
    return f"{n:,} user" if n == 1 else f"{n:,} users"


def listed(lines: Sequence[str], limit: int | None, indent: str = "", *, more: str = "`--show-all`") -> list[str]:
    """``lines`` indented; past ``limit`` (None: no limit) one line says how many more and where to see them."""
    if limit is None or len(lines) <= limit:
        return [indent + x for x in lines]
    return [indent + x for x in lines[:limit]] + [f"{indent}… and {len(lines) - limit:,} more — {more}"]
