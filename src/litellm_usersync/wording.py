"""Wording shared by every renderer: a count with its noun, money, a list cut at a limit. Pure, imports nothing."""

from __future__ import annotations

from collections.abc import Sequence


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``1 user``, ``2,000 users``: a count with its noun, singular when it is one."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def count_users(n: int) -> str:
    """``1 user``, ``2,000 users``."""
    return count_of(n, "user")


def money(x: float) -> str:
    """``$1,234.50``: a spend as every renderer shows it."""
    return f"${x:,.2f}"


def listed(lines: Sequence[str], limit: int | None, indent: str = "", *, more: str = "`--show-all`") -> list[str]:
    """``lines`` indented; past ``limit`` (None: no limit) one line says how many more and where to see them."""
    if limit is None or len(lines) <= limit:
        return [indent + x for x in lines]
    return [indent + x for x in lines[:limit]] + [f"{indent}… and {len(lines) - limit:,} more — {more}"]
