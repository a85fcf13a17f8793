"""What a proxy can do, decided from what it answered: the pure half of feature detection.

As kopf keeps detection pure and its side effects in one place, this module only reads answers: a version
string, a route probe's outcome. The asking is :mod:`.detection`'s job. The rules for what a version can do
live in ``models.ProxyFeatures.from_version``.
"""

from __future__ import annotations

from typing import Any

from litellm_usersync.errors import MethodNotAllowedError, ProxyError, RouteMissingError
from litellm_usersync.models import BATCH_KINDS, version_tuple

#: the route of each batch kind (``models.BATCH_KINDS``); whether it exists is asked of the route itself
BATCH_ROUTES = {
    "create": "/management/v1/users/bulk",
    "delete": "/management/v1/users/bulk_delete",
    "leave": "/management/v1/teams/{team_id}/members/bulk_delete",
    "update": "/user/bulk_update",
    "join": "/team/bulk_member_add",
}
#: from here /team/member_delete also deletes the user's keys bound to that team (API contract §2.12)
BULK_MIN_VERSION = (1, 100)
#: a team id for probing the per-team route (only its existence is asked; nothing is sent to a team)
PROBE_TEAM_ID = "litellm-usersync-route-probe"
#: where the version is asked, in order (the first is the richer answer; some proxies only have the second)
VERSION_PATHS = ("/health/readiness/details", "/health/readiness")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``(major, minor[, patch])`` of a version string, or None when it is not one (see ``models.version_tuple``)."""
    return version_tuple(text)


def probe_paths() -> dict[str, str]:
    """The path probed for each batch kind, in ``BATCH_KINDS`` order."""
    return {k: BATCH_ROUTES[k].format(team_id=PROBE_TEAM_ID) for k in BATCH_KINDS}


def version_of(health: Any) -> str | None:
    """The LiteLLM version in a health answer, or None when it does not say."""
    if isinstance(health, dict) and health.get("litellm_version"):
        return str(health["litellm_version"])
    return None


def route_exists(path: str, answer: ProxyError | None) -> tuple[bool, str | None]:
    """Whether a POST route exists, from the answer to a GET on it (``None``: it answered success).

    405 (Method Not Allowed): it exists; the framework's 404: it does not. Anything else counts as absent,
    with the reason to log: the per-user calls work on every proxy. Returns ``(exists, why_unsure)``."""
    if answer is None:
        return False, f"GET {path} answered success: not treating it as a batch route"
    if isinstance(answer, MethodNotAllowedError):
        return True, None
    if isinstance(answer, RouteMissingError):
        return False, None
    return False, f"could not tell whether {path} exists ({answer}): not using it"


def leave_destroys_team_keys(version: str | None) -> bool:
    """True when ``/team/member_delete`` also deletes the user's keys bound to that team (LiteLLM >= 1.100)."""
    v = parse_version(version)
    return v is not None and v >= BULK_MIN_VERSION
