"""The one HTTP client for the LiteLLM Proxy, composed of parts of one job each.

Nothing else in the package imports httpx or knows a path. :class:`ProxyClient` is the only object the
rest of the tool holds; its parts are:

- :mod:`.transport`: sending (auth, the base URL, timeouts, pooling), logging with secrets masked, and the
  one mapping of transport failures and statuses to our exceptions; :mod:`.retries`: the one retry policy
- :mod:`.answers`: what the proxy's words mean, as exception classes and :class:`RowErrorKind` values
- :mod:`.features` (pure) and :mod:`.detection` (asking): the version, the batch routes, the caller
- :mod:`.reads`: pages with their consistency checks, reads by id and email, rosters
- :mod:`.recovery`: the read-back after uncertain writes
- :mod:`.endpoints`: users, teams and memberships, keys, invitations
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from litellm_usersync.masking import mask_text
from litellm_usersync.models import ProxyFeatures
from litellm_usersync.settings import ClientSettings

from .answers import CreatedUser, Page, RowErrorKind, RowResult
from .detection import Detector
from .endpoints.invitations import InvitationCalls
from .endpoints.keys import KeyCalls
from .endpoints.teams import TeamCalls
from .endpoints.users import UserCalls
from .features import BATCH_ROUTES, BULK_MIN_VERSION, parse_version
from .retries import Sleep, is_retryable, is_retryable_before_sending, is_uncertain
from .transport import USER_AGENT, Transport, error_for_response

__all__ = [
    "BATCH_ROUTES",
    "BULK_MIN_VERSION",
    "USER_AGENT",
    "CreatedUser",
    "Page",
    "ProxyClient",
    "RowErrorKind",
    "RowResult",
    "error_for_response",
    "is_retryable",
    "is_retryable_before_sending",
    "is_uncertain",
    "mask_text",
    "parse_version",
]


class ProxyClient(UserCalls, TeamCalls, KeyCalls, InvitationCalls):
    """Async client for the LiteLLM Proxy management API. Use as ``async with ProxyClient(settings) as c``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._t = Transport(settings, transport=transport, sleep=sleep, on_request=on_request)
        self._detector = Detector(self._t)

    async def __aenter__(self) -> ProxyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    # What the proxy is (asked once per client, see ``detection``)

    async def proxy_version(self) -> str | None:
        """The proxy's LiteLLM version, detected once per client (None when it does not say)."""
        return await self._detector.proxy_version()

    async def check_auth(self) -> str:
        """Check the credentials and return the caller's user id (``default_user_id`` for the master key)."""
        return await self._detector.check_auth()

    async def detect_features(self, known_routes: Mapping[str, bool] | None = None) -> ProxyFeatures:
        """What this proxy can do, detected once per client (``read_snapshot`` asks with its read); the batch
        routes are not asked again when ``known_routes`` says what an earlier run found on this version."""
        return await self._detector.detect_features(known_routes)

    async def supports_bulk(self, kind: str = "") -> bool:
        """True when the proxy has the batch route for ``kind`` and bulk mode is allowed (not ``--no-bulk``)."""
        return await self._detector.supports_bulk(kind)

    async def user_delete_cascades(self) -> bool:
        """True when ``/user/delete`` also removes the users from their teams' rosters (LiteLLM >= 1.74.15)."""
        return await self._detector.user_delete_cascades()

    async def leave_destroys_team_keys(self) -> bool:
        """True when leaving a team also deletes the user's keys bound to it (LiteLLM >= 1.100)."""
        return await self._detector.leave_destroys_team_keys()
