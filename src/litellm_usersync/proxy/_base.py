"""What every part of :class:`ProxyClient` stands on: the settings, the transport and the detector.

The client is composed of parts of one job each (``reads``, ``recovery``, the ``endpoints``); each is a class
over this base, and :class:`~litellm_usersync.proxy.client.ProxyClient` inherits them all. The base holds no
logic of its own: it hands requests to the :class:`.transport.Transport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from litellm_usersync.settings import ClientSettings

from .detection import Detector
from .retries import Predicate, is_retryable
from .transport import Transport


class ClientBase:
    settings: ClientSettings
    _t: Transport
    _detector: Detector

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool (tests put a scripted transport under it)."""
        return self._t.http

    @property
    def request_counts(self) -> dict[str, int]:
        """Number of requests sent, by "METHOD path" (for the benchmark and --debug summaries)."""
        return self._t.request_counts

    @property
    def last_date(self) -> str | None:
        """The HTTP ``Date`` of the latest answer: the proxy's clock (the incremental read's watermark)."""
        return self._t.last_date

    def remember_secret(self, secret: str | None) -> None:
        """Mask this value too in anything logged or raised (e.g. a freshly created user's key)."""
        self._t.remember_secret(secret)

    def mask(self, text: str) -> str:
        """``text`` with every key and every secret this client knows masked (``sk-ab…``)."""
        return self._t.mask(text)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: Predicate = is_retryable,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request with retries (``Transport.request``): the decoded JSON, or a ``ProxyError``."""
        return await self._t.request(method, path, params=params, body=body, retry=retry, timeout_s=timeout_s)

    async def request_object(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: Predicate = is_retryable,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Like :meth:`request`, for endpoints that answer a JSON object (``Transport.request_object``)."""
        return await self._t.request_object(method, path, params=params, body=body, retry=retry, timeout_s=timeout_s)
