"""List: one full read of the proxy for the ``list`` command to select and render (nothing changes, no lock)."""

from __future__ import annotations

from typing import Any

from litellm_usersync.models import Snapshot
from litellm_usersync.settings import ClientSettings

from ._base import Hooks
from .snapshot import read_live

__all__ = ["list_users"]


def list_users(settings: ClientSettings, hooks: Hooks[Any] | None = None) -> Snapshot:
    """The proxy's users and teams; ``render.listing`` selects the users (``select_users``) and renders them."""
    return read_live(settings, hooks)
