"""List: one full read of the proxy for the ``list`` command to select and render (nothing changes, no lock)."""

from __future__ import annotations

from typing import Any

from litellm_usersync.errors import InputError
from litellm_usersync.models import Scope, Snapshot
from litellm_usersync.settings import ClientSettings

from ._base import Hooks
from .snapshot import read_live

__all__ = ["list_users"]


def list_users(settings: ClientSettings, hooks: Hooks[Any] | None = None, *, scope: Scope | None = None) -> Snapshot:
    """The proxy's users and teams; ``render.listing`` selects the users (``select_users``, with the same
    ``scope`` in its ``ListFilter``) and renders them. A ``team:`` term of ``scope`` naming no single team is an
    :class:`InputError` (exit 2)."""
    snapshot = read_live(settings, hooks)
    if scope is not None and (problems := scope.team_problems(snapshot)):
        raise InputError("; ".join(problems))
    return snapshot
