"""The transport: one ``httpx.AsyncClient``, and every request sent through it.

As httpx's ``_transports`` sit under its client, this is the floor every call of :class:`ProxyClient`
stands on: it sends one request (auth, the base URL, timeouts, connection limits), logs it with secrets
masked, maps transport failures and every status >= 400 to our exception classes ONCE (the table is
:func:`.answers.error_class`), and repeats what the one retry policy (:mod:`.retries`) allows. It knows
no endpoint: the paths are the callers'.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from litellm_usersync.errors import ProxyError, RateLimitedError, ServerError, UnavailableError
from litellm_usersync.masking import SecretSet, mask_text
from litellm_usersync.settings import MAX_RETRY_AFTER_S, ClientSettings

from .answers import error_class, proxy_message
from .retries import Predicate, Retries, Sleep, is_retryable

log = logging.getLogger("litellm_usersync.http")
#: answers that look like errors in --debug but are how the proxy says something normal
_EXPECTED_ERRORS = {
    ("GET", "/key/info", 404): "the master key is not a stored key, so the tool runs as default_user_id "
    "(a virtual key would be found and its owner protected)",
}
#: endpoints whose successful answer is itself a secret and is never logged
_SECRET_ANSWERS = frozenset({"/invitation/new"})

USER_AGENT = "litellm-usersync"
_MAX_MESSAGE = 300


def retry_after_s(response: httpx.Response) -> float | None:
    """The server's Retry-After (seconds or an HTTP date), capped at ``MAX_RETRY_AFTER_S``; None without one."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def error_for_response(response: httpx.Response, method: str, path: str, secrets: Iterable[str] = ()) -> ProxyError:
    """Map one error response to our exception class: the proxy's message, masked and truncated."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message, etype = proxy_message(body, response.reason_phrase or f"HTTP {response.status_code}")
    message = mask_text(message, secrets)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    status = response.status_code
    cls = error_class(status, message, etype, path)
    kw: dict[str, Any] = {"method": method, "path": path, "status": status, "error_type": etype}
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after_s=retry_after_s(response), **kw)
    return cls(message, **kw)


class Transport:
    """Sends requests to the proxy: one connection pool, masking, error mapping, retries."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = SecretSet([settings.master_key] if settings.master_key else [])
        #: the proxy's clock (the HTTP ``Date``, whole seconds) as of the latest answer: the incremental read's
        #: watermark is taken on the proxy's clock, the one ``updated_at`` is written with (issue 14)
        self.last_date: str | None = None
        self.retries = Retries(settings.retry, sleep or asyncio.sleep)
        self._on_request = on_request
        limits = httpx.Limits(
            max_connections=max(settings.concurrency, 1) + 2,
            max_keepalive_connections=max(settings.concurrency, 1) + 2,
        )
        self.http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.master_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=limits,
            transport=transport,
        )
        #: number of requests sent, by "METHOD path" (for the benchmark and --debug summaries)
        self.request_counts: dict[str, int] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    def remember_secret(self, secret: str | None) -> None:
        """Mask this value too in anything logged or raised (e.g. a freshly created user's key): a set, so
        remembering is O(1) and masking one pass over the text however many keys a run created."""
        self.secrets.add(secret)

    def mask(self, text: str) -> str:
        return mask_text(text, self.secrets)

    async def send_once(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Any, timeout_s: float | None = None
    ) -> Any:
        """Send one request, once: the decoded JSON (None for an empty body), or a :class:`ProxyError`."""
        key = f"{method} {path}"
        self.request_counts[key] = self.request_counts.get(key, 0) + 1
        if self._on_request:
            self._on_request(method, path)
        if log.isEnabledFor(logging.DEBUG):
            shown = f" params={dict(params)}" if params else ""
            shown += f" body={self.mask(json.dumps(body))[:2000]}" if body is not None else ""
            log.debug("→ %s %s%s", method, path, shown)
        try:
            if timeout_s is None:
                response = await self.http.request(method, path, params=params, json=body)
            else:
                timeout = httpx.Timeout(timeout_s, connect=self.settings.connect_timeout_s)
                response = await self.http.request(method, path, params=params, json=body, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UnavailableError(
                f"cannot connect to {self.settings.base_url}: {self.mask(str(exc)) or type(exc).__name__}",
                maybe_sent=False,
                method=method,
                path=path,
            ) from exc
        except httpx.TimeoutException as exc:
            raise UnavailableError(
                f"timed out after {timeout_s or self.settings.timeout_s:g} s waiting for the proxy",
                maybe_sent=True,
                method=method,
                path=path,
            ) from exc
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"connection failed: {self.mask(str(exc)) or type(exc).__name__}",
                maybe_sent=True,
                method=method,
                path=path,
            ) from exc
        if log.isEnabledFor(logging.DEBUG):
            expected = _EXPECTED_ERRORS.get((method, path, response.status_code))
            shown = (
                "(body withheld: an invitation id lets its holder set the user's password)"
                if path in _SECRET_ANSWERS and response.status_code < 400
                else f"— expected, not an error: {expected}"
                if expected
                else self.mask(response.text[:2000])
            )
            log.debug("← %s %s %s %s", response.status_code, method, path, shown)
        self.last_date = response.headers.get("date")
        if response.status_code >= 400:
            raise error_for_response(response, method, path, self.secrets)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(
                f"expected JSON, got {response.headers.get('content-type', '?')}: {self.mask(response.text[:120])}",
                method=method,
                path=path,
                status=response.status_code,
            ) from exc

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
        """Send one request with retries; return the decoded JSON or raise a :class:`ProxyError`.

        ``timeout_s`` overrides the per-response timeout for this request (a bulk call of 500 rows)."""
        async for attempt in self.retries.retrying(retry):
            with attempt:
                return await self.send_once(method, path, params, body, timeout_s)
        raise RuntimeError("unreachable")  # pragma: no cover

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
        """Like :meth:`request`, for endpoints that answer a JSON object: any other 2xx answer (an array, a
        string, an empty body: a wrong ``--base-url`` or a misbehaving gateway) is a :class:`ServerError`."""
        data = await self.request(method, path, params=params, body=body, retry=retry, timeout_s=timeout_s)
        if not isinstance(data, dict):
            shown = "an empty body" if data is None else f"a JSON {type(data).__name__}"
            raise ServerError(
                f"expected a JSON object, got {shown}; is --base-url the LiteLLM Proxy?", method=method, path=path
            )
        return data
