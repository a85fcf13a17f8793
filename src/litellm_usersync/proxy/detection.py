"""Asking the proxy what it is, once per client: its version, its batch routes, who the credentials are.

The I/O half of feature detection (the pure half, reading the answers, is :mod:`.features`): each answer
is asked once and kept, under a lock, so concurrent callers share one probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from litellm_usersync.errors import AuthError, ForbiddenError, NotFoundError, ProxyError, RejectedError
from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.models import ProxyFeatures

from .answers import is_route_missing
from .features import VERSION_PATHS, leave_destroys_team_keys, probe_paths, route_exists, version_of
from .transport import Transport

log = logging.getLogger("litellm_usersync.http")


class Detector:
    """What this proxy can do, asked through ``transport`` and remembered."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._version: str | None = None
        self._version_known = False
        self._features: ProxyFeatures | None = None
        self._lock = asyncio.Lock()
        self._bulk_disabled: set[str] = set()

    async def proxy_version(self) -> str | None:
        """The proxy's LiteLLM version, detected once per client (None when it does not say)."""
        if not self._version_known:
            version: str | None = None
            for path in VERSION_PATHS:
                try:
                    data = await self._t.request_object("GET", path)
                except (NotFoundError, RejectedError):
                    continue
                except AuthError:
                    if path == VERSION_PATHS[0]:
                        raise
                    continue
                except ForbiddenError:  # the identity check (run alongside) judges the credentials
                    continue
                version = version_of(data)
                if version:
                    break
            self._version, self._version_known = version, True
            log.debug("proxy version: %s", version or "unknown")
        return self._version

    async def check_auth(self) -> str:
        """Check the credentials and return the caller's user id (``default_user_id`` for the master key).

        ``/key/info`` without a key describes the caller's own key: 401 for bad credentials, 404 for the
        master key (it is not a stored key), the key's owner for a virtual key.

        A 5xx (after the retries) raises: guessing ``default_user_id`` would leave a virtual key's owner
        unprotected, so a sync could delete or demote the account it runs as. A 403 here is about the
        credentials (they may not even describe themselves): :class:`AuthError`, the run stops.
        """
        try:
            info = await self._t.request_object("GET", "/key/info")
        except ForbiddenError as exc:
            raise AuthError(
                exc.message, method=exc.method, path=exc.path, status=exc.status, error_type=exc.error_type
            ) from exc
        except NotFoundError:
            return DEFAULT_USER_ID  # the master key is not a stored key
        except RejectedError:
            return DEFAULT_USER_ID
        data = info.get("info", {}) if isinstance(info, dict) else {}
        return str(data.get("user_id") or DEFAULT_USER_ID)

    async def _route_exists(self, path: str) -> bool:
        """Whether the proxy has a POST route, asked without side effects (a GET on it, see ``features``)."""
        try:
            await self._t.request("GET", path)
        except ProxyError as exc:
            exists, unsure = route_exists(path, exc)
        else:
            exists, unsure = route_exists(path, None)
        if unsure:
            log.info("%s", unsure)
        return exists

    async def detect_features(self, known_routes: Mapping[str, bool] | None = None) -> ProxyFeatures:
        """What this proxy can do, detected once per client (``read_snapshot`` asks with its read).

        Batch routes: each route is asked whether it exists (a 404 on the route, not the version number).
        ``/user/delete`` cascade and the duplicate-email check: from the version by the rules in
        ``models.ProxyFeatures.from_version``; an unknown or unparsable version takes the safest path.
        """
        async with self._lock:
            if self._features is None and known_routes is not None:
                # the routes an earlier run found on this same version (the incremental read's cache, issue 14)
                self._features = ProxyFeatures.from_version(
                    await self.proxy_version(), known_routes, bulk_allowed=self._t.settings.bulk != "never"
                )
                log.debug(
                    "proxy features: %s (routes as the last run on this version found them)", self._features.describe()
                )
            if self._features is None:
                version = await self.proxy_version()
                paths = probe_paths()
                sem = asyncio.Semaphore(max(self._t.settings.concurrency, 1))

                async def probe(path: str) -> bool:
                    async with sem:
                        return await self._route_exists(path)

                found = await asyncio.gather(*(probe(p) for p in paths.values()))
                self._features = ProxyFeatures.from_version(
                    version,
                    dict(zip(paths, found, strict=True)),
                    bulk_allowed=self._t.settings.bulk != "never",
                )
                log.debug("proxy features: %s", self._features.describe())
            return self._features

    async def supports_bulk(self, kind: str = "") -> bool:
        """True when the proxy has the batch route for ``kind`` and bulk mode is allowed (not ``--no-bulk``)."""
        if self._t.settings.bulk == "never" or kind in self._bulk_disabled:
            return False
        return (await self.detect_features()).uses_batch(kind)

    async def user_delete_cascades(self) -> bool:
        """True when ``/user/delete`` also removes the users from the rosters of the teams in ``user.teams``
        (detected: LiteLLM >= 1.74.15). Older or unknown proxies leave rosters behind: leave the teams first."""
        return (await self.detect_features()).delete_cascades

    async def leave_destroys_team_keys(self) -> bool:
        """True when ``/team/member_delete`` (and the bulk members delete) also deletes the user's keys bound to
        that team (LiteLLM >= 1.100, API contract §2.12). Older proxies keep them."""
        return leave_destroys_team_keys(await self.proxy_version())

    def bulk_route_missing(self, kind: str, exc: ProxyError) -> bool:
        """True (and bulk off for ``kind`` from now on) when ``exc`` says the batch route is not there."""
        if is_route_missing(exc):
            log.info("bulk endpoint for %s missing on this proxy; falling back to per-user calls", kind)
            self._bulk_disabled.add(kind)
            return True
        return False
