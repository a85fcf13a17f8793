"""Applying a plan to the proxy: the executor, its phases and the invitations after add.

``executor`` keeps the phase order and the per-row results; ``scheduling`` (bounded workers, the stop flag,
roster rounds), ``applier`` (the one bulk-or-per-user applier), ``creates``, ``users``, ``memberships``,
``keys``, ``verify`` and ``fallback`` hold the work; ``invitations`` runs after ``add``.
"""

from __future__ import annotations

from .executor import Executor, KeyHook, ProgressCallback, apply_plan
from .invitations import apply_registrations

__all__ = ["Executor", "KeyHook", "ProgressCallback", "apply_plan", "apply_registrations"]
