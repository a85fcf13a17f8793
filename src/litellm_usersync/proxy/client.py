"""The one HTTP client for the LiteLLM Proxy.

It owns everything that touches the wire: the base URL and every path, auth, timeouts, connection pooling,
retries (tenacity, with an explicit predicate), pagination, mapping statuses to our exceptions, version
detection and masking secrets in anything it logs or raises. No other module imports httpx or knows a path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from litellm_usersync.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProxyError,
    RateLimitedError,
    RefusedError,
    RejectedError,
    ServerError,
    UnavailableError,
)
from litellm_usersync.identity import DEFAULT_USER_ID, normalize_email
from litellm_usersync.masking import mask_text
from litellm_usersync.models import BATCH_KINDS, ProxyFeatures, version_tuple
from litellm_usersync.settings import BULK_CHUNK, BULK_ROW_TIMEOUT_S, MAX_RETRY_AFTER_S, ClientSettings, RetryPolicy

log = logging.getLogger("litellm_usersync.http")
#: answers that look like errors in --debug but are how the proxy says something normal
_EXPECTED_ERRORS = {
    ("GET", "/key/info", 404): "the master key is not a stored key, so the tool runs as default_user_id "
    "(a virtual key would be found and its owner protected)",
}
#: one line per retry ("retrying (2/5) in 1.0 s: ..."): the CLI shows these even without --debug, so a dead
#: proxy is not 9 s of silence
retry_log = logging.getLogger("litellm_usersync.retry")

USER_AGENT = "litellm-usersync"
_MAX_MESSAGE = 300
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
_PROBE_TEAM_ID = "litellm-usersync-route-probe"
#: a user id that cannot exist (the proxy strips ids and rejects NUL; spaces inside are kept but we never use them)
_NO_SUCH_USER_ID = "litellm-usersync no such user"

Sleep = Callable[[float], Awaitable[None]]
#: endpoints whose successful answer is itself a secret and is never logged
_SECRET_ANSWERS = frozenset({"/invitation/new"})
R = TypeVar("R")


# --------------------------------------------------------------------------------------------------
# Masking and error mapping


def _proxy_message(body: Any, fallback: str) -> tuple[str, str | None]:
    """Extract the human message and error type from any of the proxy's four error shapes."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # shape A
            return str(err.get("message") or fallback), (str(err["type"]) if err.get("type") else None)
        if isinstance(err, str):
            return err, None
        if "detail" in body:
            detail = body["detail"]
            if isinstance(detail, dict):  # shape B with {"error": ...}
                return str(detail.get("error") or detail), None
            if isinstance(detail, list):  # shape C (422)
                parts = []
                for d in detail:
                    if isinstance(d, dict):
                        loc = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
                        parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
                return "; ".join(parts) or fallback, "validation_error"
            if "title" in body:  # shape D (problem+json)
                return f"{body.get('title')}: {detail}", str(body.get("type") or "") or None
            return str(detail), None
        if "title" in body:
            return str(body["title"]), None
    if isinstance(body, str) and body.strip():
        return body.strip(), None
    return fallback, None


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        from datetime import datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def error_for_response(response: httpx.Response, method: str, path: str, secrets: Iterable[str] = ()) -> ProxyError:
    """Map one error response to our exception class (the single status table)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message, etype = _proxy_message(body, response.reason_phrase or f"HTTP {response.status_code}")
    message = mask_text(message, secrets)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    status = response.status_code
    kw: dict[str, Any] = {"method": method, "path": path, "status": status, "error_type": etype}
    if status == 401:
        return AuthError(message, **kw)
    if status == 403:  # about this request, not the credentials (check_auth turns its own 403 into AuthError)
        return ForbiddenError(message, **kw)
    if status == 404:
        return NotFoundError(message, **kw)
    if status == 409 or ("already exists" in message.lower() and status == 400 and "user" in message.lower()):
        return ConflictError(message, **kw)
    if status == 429:
        return RateLimitedError(message, retry_after_s=_retry_after_s(response), **kw)
    if status >= 500:
        return ServerError(message, **kw)
    return RejectedError(message, **kw)


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate for requests that are safe to repeat: transport errors, 429, 5xx."""
    if isinstance(exc, (UnavailableError, RateLimitedError)):
        return True
    return isinstance(exc, ServerError) and exc.status in (500, 502, 503, 504)


def is_retryable_before_sending(exc: BaseException) -> bool:
    """For creates: retry only what certainly did not reach the application (no connection, 429)."""
    if isinstance(exc, UnavailableError):
        return not exc.maybe_sent
    return isinstance(exc, RateLimitedError)


def is_uncertain(exc: BaseException) -> bool:
    """A write whose outcome is unknown: it may have been applied although we got no success answer."""
    if isinstance(exc, UnavailableError):
        return exc.maybe_sent
    return isinstance(exc, ServerError) and exc.status in (500, 502, 503, 504)


def _unknown_create(cause: ProxyError) -> str:
    return f"outcome unknown: the user may have been created (its answer was lost: {cause})"


def _is_route_missing(exc: ProxyError) -> bool:
    return exc.status in (404, 405) and exc.message in ("Not Found", "Method Not Allowed")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``(major, minor[, patch])`` of a version string, or None when it is not one (see ``models.version_tuple``)."""
    return version_tuple(text)


# --------------------------------------------------------------------------------------------------
# Results the client returns


@dataclass(frozen=True)
class CreatedUser:
    user_id: str
    email: str | None
    api_key: str | None
    teams: tuple[str, ...]
    #: True when the create's answer was lost and the user was found by reading back (key unknown)
    recovered: bool = False


@dataclass(frozen=True)
class RowResult:
    """One row of a bulk endpoint's answer."""

    user_id: str | None
    email: str | None
    success: bool
    error: str | None = None
    api_key: str | None = None
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    total_pages: int


# --------------------------------------------------------------------------------------------------


class ProxyClient:
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
        self._secrets = [settings.master_key] if settings.master_key else []
        self._sleep: Sleep = sleep or asyncio.sleep
        self._on_request = on_request
        limits = httpx.Limits(
            max_connections=max(settings.concurrency, 1) + 2,
            max_keepalive_connections=max(settings.concurrency, 1) + 2,
        )
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.master_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=limits,
            transport=transport,
        )
        self._version: str | None = None
        self._version_known = False
        self._features: ProxyFeatures | None = None
        self._features_lock = asyncio.Lock()
        self._bulk_disabled: set[str] = set()
        #: number of requests sent, by "METHOD path" (for the benchmark and --debug summaries)
        self.request_counts: dict[str, int] = {}

    async def __aenter__(self) -> ProxyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def remember_secret(self, secret: str | None) -> None:
        """Mask this value too in anything logged or raised (e.g. a freshly created user's key)."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def mask(self, text: str) -> str:
        return mask_text(text, self._secrets)

    # ---------------------------------------------------------------------------------------------
    # The transport layer

    async def _send_once(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Any, timeout_s: float | None = None
    ) -> Any:
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
                response = await self._http.request(method, path, params=params, json=body)
            else:
                timeout = httpx.Timeout(timeout_s, connect=self.settings.connect_timeout_s)
                response = await self._http.request(method, path, params=params, json=body, timeout=timeout)
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
        if response.status_code >= 400:
            raise error_for_response(response, method, path, self._secrets)
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

    def _retrying(self, predicate: Callable[[BaseException], bool]) -> AsyncRetrying:
        policy: RetryPolicy = self.settings.retry

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
                return float(exc.retry_after_s)
            backoff: float = min(policy.max_wait_s, policy.initial_s * (2 ** (state.attempt_number - 1)))
            return backoff + random.uniform(0, policy.jitter_s)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            retry_log.info("retrying (%d/%d) in %.1f s: %s", state.attempt_number + 1, policy.attempts, delay, exc)

        return AsyncRetrying(
            retry=retry_if_exception(predicate),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_s),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: Callable[[BaseException], bool] = is_retryable,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request with retries; return the decoded JSON or raise a :class:`ProxyError`.

        ``timeout_s`` overrides the per-response timeout for this request (a bulk call of 500 rows)."""
        async for attempt in self._retrying(retry):
            with attempt:
                return await self._send_once(method, path, params, body, timeout_s)
        raise RuntimeError("unreachable")  # pragma: no cover

    async def request_object(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: Callable[[BaseException], bool] = is_retryable,
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

    # ---------------------------------------------------------------------------------------------
    # Version and identity

    async def proxy_version(self) -> str | None:
        """The proxy's LiteLLM version, detected once per client (None when it does not say)."""
        if not self._version_known:
            version: str | None = None
            for path in ("/health/readiness/details", "/health/readiness"):
                try:
                    data = await self.request_object("GET", path)
                except (NotFoundError, RejectedError):
                    continue
                except AuthError:
                    if path == "/health/readiness/details":
                        raise
                    continue
                except ForbiddenError:  # the identity check (run alongside) judges the credentials
                    continue
                if isinstance(data, dict) and data.get("litellm_version"):
                    version = str(data["litellm_version"])
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
            info = await self.request_object("GET", "/key/info")
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
        """Whether the proxy has a POST route, asked without side effects: a GET on it answers 405 (Method Not
        Allowed) when the route exists and 404 (Not Found) when it does not. Anything else, or no answer,
        counts as absent: the per-user calls work on every proxy."""
        try:
            await self.request("GET", path)
        except ProxyError as exc:
            if exc.status == 405:
                return True
            if not _is_route_missing(exc):
                log.info("could not tell whether %s exists (%s): not using it", path, exc)
            return False
        log.info("GET %s answered success: not treating it as a batch route", path)
        return False

    async def detect_features(self) -> ProxyFeatures:
        """What this proxy can do, detected once per client (``read_snapshot`` asks with its read).

        Batch routes: each route is asked whether it exists (a 404 on the route, not the version number).
        ``/user/delete`` cascade and the duplicate-email check: from the version by the rules in
        ``models.ProxyFeatures.from_version``; an unknown or unparsable version takes the safest path.
        """
        async with self._features_lock:
            if self._features is None:
                version = await self.proxy_version()
                paths = [BATCH_ROUTES[k].format(team_id=_PROBE_TEAM_ID) for k in BATCH_KINDS]
                sem = asyncio.Semaphore(max(self.settings.concurrency, 1))

                async def probe(path: str) -> bool:
                    async with sem:
                        return await self._route_exists(path)

                found = await asyncio.gather(*(probe(p) for p in paths))
                self._features = ProxyFeatures.from_version(
                    version, dict(zip(BATCH_KINDS, found, strict=True)), bulk_allowed=self.settings.bulk != "never"
                )
                log.debug("proxy features: %s", self._features.describe())
            return self._features

    async def supports_bulk(self, kind: str = "") -> bool:
        """True when the proxy has the batch route for ``kind`` and bulk mode is allowed (not ``--no-bulk``)."""
        if self.settings.bulk == "never" or kind in self._bulk_disabled:
            return False
        return (await self.detect_features()).uses_batch(kind)

    async def user_delete_cascades(self) -> bool:
        """True when ``/user/delete`` also removes the users from the rosters of the teams in ``user.teams``
        (detected: LiteLLM >= 1.74.15). Older or unknown proxies leave rosters behind: leave the teams first."""
        return (await self.detect_features()).delete_cascades

    async def leave_destroys_team_keys(self) -> bool:
        """True when ``/team/member_delete`` (and the bulk members delete) also deletes the user's keys bound to
        that team (LiteLLM >= 1.100, API contract §2.12). Older proxies keep them."""
        v = parse_version(await self.proxy_version())
        return v is not None and v >= BULK_MIN_VERSION

    def _bulk_route_missing(self, kind: str, exc: ProxyError) -> bool:
        if _is_route_missing(exc):
            log.info("bulk endpoint for %s missing on this proxy; falling back to per-user calls", kind)
            self._bulk_disabled.add(kind)
            return True
        return False

    # ---------------------------------------------------------------------------------------------
    # Reading

    async def list_users_page(
        self, page: int, *, user_ids: Sequence[str] | None = None, page_size: int | None = None
    ) -> Page:
        params: dict[str, Any] = {
            "page": page,
            "page_size": page_size or self.settings.page_size,
            "sort_by": "user_id",
            "sort_order": "asc",
        }
        if user_ids:
            params["user_ids"] = ",".join(user_ids)
        data = await self.request_object("GET", "/user/list", params=params)
        return Page(list(data.get("users") or []), int(data.get("total") or 0), int(data.get("total_pages") or 0))

    async def list_teams_page(self, page: int) -> Page:
        params = {"page": page, "page_size": self.settings.page_size, "sort_by": "team_id", "sort_order": "asc"}
        data = await self.request_object("GET", "/v2/team/list", params=params)
        return Page(list(data.get("teams") or []), int(data.get("total") or 0), int(data.get("total_pages") or 0))

    async def _read_all(
        self,
        what: str,
        fetch: Callable[[int], Awaitable[Page]],
        id_field: str,
        on_page: Callable[[int, int], None] | None,
        parse: Callable[[dict[str, Any]], R],
    ) -> list[R]:
        """Every page of a listing, parsed as each page arrives (the raw rows of a page are dropped at once),
        then checked: the same total on every page, as many distinct ids as the total.

        ``on_page(rows_read, total)`` is called after each page, in rows (not pages)."""
        parsed: dict[int, tuple[int, list[str], list[R]]] = {}

        async def load(n: int) -> Page:
            page = await fetch(n)
            parsed[n] = (page.total, [str(i.get(id_field)) for i in page.items], [parse(i) for i in page.items])
            return page

        first = await load(1)
        total = first.total
        pages = max(first.total_pages, math.ceil(total / self.settings.page_size) if total else 1)
        rows_read = len(first.items)
        del first
        # progress counts rows (users, teams), not pages: "1,200/2,000 users" says how far a read is
        if on_page:
            on_page(min(rows_read, total), total)
        sem = asyncio.Semaphore(max(self.settings.concurrency, 1))

        async def one(n: int) -> None:
            nonlocal rows_read
            async with sem:
                await load(n)
            rows_read += len(parsed[n][1])
            if on_page:
                on_page(min(rows_read, total), total)

        await asyncio.gather(*(one(n) for n in range(2, pages + 1)))
        items: list[R] = []
        ids: set[str] = set()
        for n in range(1, pages + 1):
            page_total, page_ids, page_items = parsed.pop(n)
            if page_total != total:
                raise RefusedError(
                    f"the proxy's {what} changed while they were read (total {total} → {page_total}); "
                    "nothing was changed: run again"
                )
            items.extend(page_items)
            ids.update(page_ids)
        if len(items) != total or len(ids) != len(items):
            raise RefusedError(
                f"incomplete read of {what}: the proxy reported {total} but {len(ids)} distinct were "
                "returned; refusing to plan on a partial state (nothing was changed): run again"
            )
        return items

    async def read_all_users(
        self,
        on_page: Callable[[int, int], None] | None = None,
        parse: Callable[[dict[str, Any]], Any] = dict,
    ) -> list[Any]:
        """Every user, all pages (stable sort by user_id), checked against the reported total.

        ``parse`` turns each row into what the caller keeps, page by page (default: the row itself).
        """
        return await self._read_all("users", self.list_users_page, "user_id", on_page, parse)

    async def read_all_teams(
        self,
        on_page: Callable[[int, int], None] | None = None,
        parse: Callable[[dict[str, Any]], Any] = dict,
    ) -> list[Any]:
        """Every team with its roster (``members_with_roles``), all pages, checked against the total."""
        return await self._read_all("teams", self.list_teams_page, "team_id", on_page, parse)

    async def read_users_by_ids(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Read back the given users (exact ids) in as few requests as the proxy allows."""
        wanted = sorted(set(user_ids))
        found: dict[str, dict[str, Any]] = {}
        chunk = self.settings.page_size
        sem = asyncio.Semaphore(max(self.settings.concurrency, 1))

        async def one(ids: list[str]) -> None:
            # one id alone is a case-insensitive *substring* match on 1.110 (it could fill the page with other
            # users); two or more are an exact `in`, so a single id travels with a placeholder that matches nothing
            query = ids if len(ids) > 1 else [*ids, _NO_SUCH_USER_ID]
            async with sem:
                page = await self.list_users_page(1, user_ids=query, page_size=self.settings.page_size)
            for u in page.items:
                if u.get("user_id") in ids:
                    found[str(u["user_id"])] = u

        await asyncio.gather(*(one(wanted[i : i + chunk]) for i in range(0, len(wanted), chunk)))
        return found

    async def find_users_by_email(self, email: str) -> list[dict[str, Any]]:
        """Users whose email equals ``email`` (trimmed, case-insensitive; the proxy's filter is a substring)."""
        key = normalize_email(email)
        data = await self.request_object(
            "GET", "/user/list", params={"user_email": email.strip(), "page_size": self.settings.page_size, "page": 1}
        )
        return [u for u in data.get("users") or [] if normalize_email(str(u.get("user_email") or "")) == key]

    # ---------------------------------------------------------------------------------------------
    # Users

    async def _read_back_user(self, user_id: str, email: str | None) -> dict[str, Any] | None:
        got = await self.read_users_by_ids([user_id])
        if user_id in got:
            return got[user_id]
        if email:
            matches = await self.find_users_by_email(email)
            if matches:
                return matches[0]
        return None

    async def _read_back_uncertain(self, user_id: str, email: str | None, cause: ProxyError) -> dict[str, Any] | None:
        """Read back after an uncertain create; when that read fails too, say that the outcome is unknown."""
        try:
            return await self._read_back_user(user_id, email)
        except AuthError:
            raise
        except ProxyError as exc:
            raise ProxyError(
                f"{_unknown_create(cause)}; reading it back failed: {exc}",
                method=cause.method,
                path=cause.path,
                status=cause.status,
            ) from exc

    async def create_user(self, body: dict[str, Any]) -> CreatedUser:
        """``POST /user/new``, never blindly repeated.

        Retried only when the request certainly did not reach the proxy. After an uncertain outcome (a
        timeout, a reset, a 5xx) the user is read back by id and email; if it exists the create is treated
        as done (``recovered``, key unknown), otherwise it is sent again, within the retry policy.
        """
        user_id = body.get("user_id")
        email = body.get("user_email")
        policy = self.settings.retry
        last: ProxyError | None = None
        for attempt in range(1, policy.attempts + 1):
            try:
                data = await self.request_object("POST", "/user/new", body=body, retry=is_retryable_before_sending)
            except ConflictError:
                if last is not None and is_uncertain(last):
                    existing = await self._read_back_uncertain(str(user_id), email, last)
                    if existing is not None:
                        return self._created_from_row(existing, recovered=True)
                raise
            except ProxyError as exc:
                if not is_uncertain(exc):
                    raise
                last = exc
                log.info("create of %s uncertain (%s): reading back before any retry", self.mask(str(email)), exc)
                existing = await self._read_back_uncertain(str(user_id), email, exc)
                if existing is not None:
                    return self._created_from_row(existing, recovered=True)
                if attempt < policy.attempts:
                    delay = min(policy.max_wait_s, policy.initial_s * 2 ** (attempt - 1))
                    retry_log.info("retrying (%d/%d) in %.1f s: %s", attempt + 1, policy.attempts, delay, exc)
                    await self._sleep(delay)
                continue
            key = data.get("key") or None
            self.remember_secret(key)
            return CreatedUser(
                user_id=str(data.get("user_id")),
                email=data.get("user_email"),
                api_key=key,
                teams=tuple(data.get("teams") or ()),
            )
        assert last is not None
        raise last

    @staticmethod
    def _created_from_row(row: Mapping[str, Any], *, recovered: bool) -> CreatedUser:
        return CreatedUser(
            user_id=str(row.get("user_id")),
            email=row.get("user_email"),
            api_key=None,
            teams=tuple(row.get("teams") or ()),
            recovered=recovered,
        )

    async def bulk_create_users(self, bodies: Sequence[dict[str, Any]]) -> list[RowResult] | None:
        """``POST /management/v1/users/bulk`` in chunks of 500. None when the proxy has no such route.

        An uncertain chunk is read back: rows whose user exists are reported created (key unknown), the
        others are sent again once as a smaller batch.
        """
        results: list[RowResult] = []
        for i in range(0, len(bodies), BULK_CHUNK):
            chunk = list(bodies[i : i + BULK_CHUNK])
            try:
                data = await self.request_object(
                    "POST",
                    BATCH_ROUTES["create"],
                    body={"users": chunk},
                    retry=is_retryable_before_sending,
                    timeout_s=self.bulk_timeout_s(len(chunk)),
                )
            except ProxyError as exc:
                if self._bulk_route_missing("create", exc):
                    return None
                if not is_uncertain(exc):
                    raise
                results.extend(await self._recover_bulk_create(chunk, exc))
                continue
            results.extend(self._bulk_create_rows(data))
        return results

    def bulk_timeout_s(self, rows: int) -> float:
        """The timeout of one bulk create: ``--timeout`` plus the proxy's time per row (a chunk of 500 users
        with keys takes ~8 s on a quiet proxy), so a full chunk is not cut off under a per-request timeout
        meant for one user (an answer cut off is a chunk of users whose keys nobody holds)."""
        return self.settings.timeout_s + BULK_ROW_TIMEOUT_S * max(rows - 1, 0)

    def _bulk_create_rows(self, data: Any) -> list[RowResult]:
        rows: list[RowResult] = []
        for row in data.get("data") or []:
            key = row.get("key") or None
            self.remember_secret(key)
            rows.append(
                RowResult(
                    user_id=row.get("user_id"),
                    email=row.get("user_email"),
                    success=bool(row.get("success")),
                    error=self.mask(str(row["error"])) if row.get("error") else None,
                    api_key=key,
                    teams=tuple(row.get("teams") or ()),
                )
            )
        return rows

    async def _recover_bulk_create(self, chunk: list[dict[str, Any]], cause: ProxyError) -> list[RowResult]:
        """After an uncertain bulk create: read back, resend only the rows still missing, and repeat while the
        outcome stays uncertain (bounded by the retry policy). Never resends a row that exists."""
        done: list[RowResult] = []
        rest = chunk
        last: ProxyError = cause
        for attempt in range(1, self.settings.retry.attempts + 1):
            try:
                existing = await self.read_users_by_ids([str(b["user_id"]) for b in rest])
            except AuthError:
                raise
            except ProxyError as exc:
                why = f"{_unknown_create(last)}; reading it back failed: {exc}"
                return done + [RowResult(str(b["user_id"]), b.get("user_email"), False, why) for b in rest]
            done += [
                RowResult(
                    str(b["user_id"]),
                    b.get("user_email"),
                    True,
                    None,
                    None,
                    tuple(existing[str(b["user_id"])].get("teams") or ()),
                )
                for b in rest
                if str(b["user_id"]) in existing
            ]
            rest = [b for b in rest if str(b["user_id"]) not in existing]
            if not rest:
                return done
            if attempt > 1:
                await self._sleep(min(self.settings.retry.max_wait_s, self.settings.retry.initial_s * 2**attempt))
            try:
                data = await self.request_object(
                    "POST",
                    BATCH_ROUTES["create"],
                    body={"users": rest},
                    retry=is_retryable_before_sending,
                    timeout_s=self.bulk_timeout_s(len(rest)),
                )
            except ProxyError as exc:
                if not is_uncertain(exc):
                    return done + [RowResult(str(b["user_id"]), b.get("user_email"), False, str(exc)) for b in rest]
                last = exc
                continue
            return done + await self._recovered_duplicates(self._bulk_create_rows(data), rest)
        return done + [RowResult(str(b["user_id"]), b.get("user_email"), False, str(last)) for b in rest]

    async def _recovered_duplicates(self, rows: list[RowResult], sent: list[dict[str, Any]]) -> list[RowResult]:
        """Rows of a resent bulk create that failed as "already exists": the earlier, uncertain copy may
        have landed after the read-back. A user found with the row's id and email was created by us."""
        emails = {str(b["user_id"]): normalize_email(str(b.get("user_email") or "")) for b in sent}
        dups = [
            r.user_id
            for r in rows
            if not r.success and r.user_id in emails and "already exists" in (r.error or "").lower()
        ]
        if not dups:
            return rows
        try:
            found = await self.read_users_by_ids([d for d in dups if d])
        except AuthError:
            raise
        except ProxyError as exc:
            why = f"the user may have been created by an earlier copy of this request; reading it back failed: {exc}"
            return [RowResult(r.user_id, r.email, False, f"{r.error}; {why}") if r.user_id in dups else r for r in rows]
        out: list[RowResult] = []
        for r in rows:
            row = found.get(r.user_id or "") if r.user_id in dups else None
            if row is not None and normalize_email(str(row.get("user_email") or "")) == emails[str(r.user_id)]:
                log.info("bulk create of %s: the earlier copy landed; reporting it created", self.mask(str(r.email)))
                r = RowResult(r.user_id, r.email, True, None, None, tuple(row.get("teams") or ()))
            out.append(r)
        return out

    async def update_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """``POST /user/update`` by user_id (never by email: that path rewrites ids on older proxies)."""
        data = await self.request_object("POST", "/user/update", body={"user_id": user_id, **fields})
        return data if isinstance(data, dict) else {}

    async def bulk_update_users(self, updates: Sequence[dict[str, Any]]) -> list[RowResult] | None:
        """``POST /user/bulk_update`` in chunks of 500; None when the route is missing."""
        rows: list[RowResult] = []
        for i in range(0, len(updates), BULK_CHUNK):
            try:
                data = await self.request_object(
                    "POST", BATCH_ROUTES["update"], body={"users": list(updates[i : i + BULK_CHUNK])}
                )
            except ProxyError as exc:
                if self._bulk_route_missing("update", exc):
                    return None
                raise
            for r in data.get("results") or []:
                rows.append(
                    RowResult(
                        r.get("user_id"),
                        r.get("user_email"),
                        bool(r.get("success")),
                        self.mask(str(r["error"])) if r.get("error") else None,
                    )
                )
        return rows

    async def delete_users(self, user_ids: Sequence[str]) -> set[str]:
        """``POST /user/delete``. Returns the ids that are gone (deleted now, or already absent).

        One unknown id fails the whole request with 404, so such ids are dropped and the rest retried.
        When the 404 answers a retry of an attempt that may have been applied (a timeout, a reset, a 5xx
        after sending), every id may be gone: the ids that still exist are read back and only they are
        sent again, instead of dropping one id per request (a round trip per user, each of which can
        fail again).
        """
        remaining = list(dict.fromkeys(user_ids))
        gone: set[str] = set()
        while remaining:
            maybe_applied = False

            def retry(exc: BaseException) -> bool:
                nonlocal maybe_applied
                if is_retryable(exc) and is_uncertain(exc):
                    maybe_applied = True
                return is_retryable(exc)

            try:
                await self.request("POST", "/user/delete", body={"user_ids": remaining}, retry=retry)
            except NotFoundError as exc:
                m = re.search(r"passed user_id=([^'\"}]+)", exc.message)
                missing = m.group(1).strip() if m else None
                if missing is None or missing not in remaining:
                    raise
                still = await self.read_users_by_ids(remaining) if maybe_applied else None
                # already absent is the desired end state; ``missing`` is dropped even if a read-back
                # disagrees, so the loop always makes progress
                drop = {u for u in remaining if u == missing or (still is not None and u not in still)}
                gone.update(drop)
                remaining = [u for u in remaining if u not in drop]
                continue
            gone.update(remaining)
            break
        return gone

    async def bulk_delete_users(self, user_ids: Sequence[str]) -> list[RowResult] | None:
        """``POST /management/v1/users/bulk_delete`` in chunks of 500; None when the route is missing."""
        rows: list[RowResult] = []
        for i in range(0, len(user_ids), BULK_CHUNK):
            chunk = list(user_ids[i : i + BULK_CHUNK])
            try:
                data = await self.request_object("POST", BATCH_ROUTES["delete"], body={"user_ids": chunk})
            except ProxyError as exc:
                if self._bulk_route_missing("delete", exc):
                    return None
                raise
            for r in data.get("data") or []:
                err = r.get("error")
                ok = bool(r.get("success")) or bool(err and "not found" in str(err).lower())
                rows.append(RowResult(r.get("user_id"), r.get("user_email"), ok, None if ok else str(err)))
        return rows

    # ---------------------------------------------------------------------------------------------
    # Teams and memberships

    async def create_team(self, alias: str, *, team_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"team_alias": alias, **fields}
        if team_id:
            body["team_id"] = team_id
        data = await self.request_object("POST", "/team/new", body=body, retry=is_retryable_before_sending)
        return data if isinstance(data, dict) else {}

    async def add_team_members(
        self, team_id: str, members: Sequence[tuple[str, str | None]], *, role: str = "user"
    ) -> set[str]:
        """``POST /team/member_add`` with a list of ``(user_id, email)`` as ``role`` (``user``; ``admin`` needs an
        Enterprise licence, else 400).

        Returns the user ids that are members afterwards. "Already in team" counts as done.
        """
        body = {
            "team_id": team_id,
            "member": [{"user_id": uid, "role": role} for uid, _email in members],
        }
        try:
            data = await self.request_object("POST", "/team/member_add", body=body)
        except RejectedError as exc:
            if exc.error_type == "team_member_already_in_team" or "already in team" in exc.message.lower():
                return {uid for uid, _ in members}
            raise
        roster = {m.get("user_id") for m in (data.get("members_with_roles") or []) if isinstance(m, dict)}
        return {uid for uid, _ in members if uid in roster} if roster else {uid for uid, _ in members}

    async def _read_rosters(self) -> list[tuple[str, frozenset[str]]]:
        def roster(t: dict[str, Any]) -> tuple[str, frozenset[str]]:
            members = t.get("members_with_roles") or []
            return str(t.get("team_id")), frozenset(
                str(m["user_id"]) for m in members if isinstance(m, dict) and m.get("user_id")
            )

        return await self.read_all_teams(parse=roster)

    async def read_team_rosters(self, team_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """The user ids on each team's roster (``members_with_roles``), read now: one team with ``/team/info``,
        several with the team pages (``/v2/team/list``, 100 teams a request: not one request per team).

        The roster is the truth for membership (``user.teams`` can repeat or keep a team on 1.74). A team that
        does not exist is absent from the answer; any other failure raises.
        """
        wanted = sorted(set(team_ids))
        if len(wanted) > 1:
            try:
                rows = await self._read_rosters()
            except RefusedError as exc:  # teams changed while read: the rosters are not known (a read failure)
                raise ProxyError(str(exc), method="GET", path="/v2/team/list") from exc
            return {tid: members for tid, members in rows if tid in wanted}
        found: dict[str, frozenset[str]] = {}
        sem = asyncio.Semaphore(max(self.settings.concurrency, 1))

        async def one(team_id: str) -> None:
            async with sem:
                try:
                    data = await self.request_object("GET", "/team/info", params={"team_id": team_id})
                except NotFoundError:
                    return
            info = data.get("team_info") if isinstance(data.get("team_info"), dict) else data
            members = info.get("members_with_roles") if isinstance(info, dict) else None
            found[team_id] = frozenset(
                str(m["user_id"]) for m in (members or []) if isinstance(m, dict) and m.get("user_id")
            )

        await asyncio.gather(*(one(t) for t in wanted))
        return found

    async def remove_team_member(self, team_id: str, user_id: str) -> None:
        """``POST /team/member_delete``. "User not found in team" counts as done."""
        try:
            await self.request("POST", "/team/member_delete", body={"team_id": team_id, "user_id": user_id})
        except RejectedError as exc:
            if "not found in team" in exc.message.lower() or "doesn't exist in team" in exc.message.lower():
                return
            raise

    async def bulk_remove_team_members(self, team_id: str, user_ids: Sequence[str]) -> list[RowResult] | None:
        """``POST /management/v1/teams/{id}/members/bulk_delete`` in chunks; None when the route is missing."""
        rows: list[RowResult] = []
        path = BATCH_ROUTES["leave"].format(team_id=quote(team_id, safe=""))
        for i in range(0, len(user_ids), BULK_CHUNK):
            chunk = list(user_ids[i : i + BULK_CHUNK])
            try:
                data = await self.request_object("POST", path, body={"members": [{"user_id": u} for u in chunk]})
            except ProxyError as exc:
                if self._bulk_route_missing("leave", exc):
                    return None
                raise
            for r in data.get("data") or []:
                err = r.get("error")
                ok = bool(r.get("success")) or bool(err and "not found in team" in str(err).lower())
                rows.append(RowResult(r.get("user_id"), r.get("user_email"), ok, None if ok else str(err)))
        return rows

    # ---------------------------------------------------------------------------------------------
    # Keys and invitations

    async def list_team_keys(self, team_id: str) -> list[dict[str, Any]]:
        """Every key bound to ``team_id`` (``GET /key/list?team_id=...``, all pages): hashes, owners, aliases.

        The rows carry the key's hash (``token``), never the key itself."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"team_id": team_id, "return_full_object": "true", "page": page, "size": 100}
            data = await self.request_object("GET", "/key/list", params=params)
            for k in data.get("keys") or []:
                if isinstance(k, dict) and k.get("token"):
                    rows.append({f: k.get(f) for f in ("token", "user_id", "team_id", "key_alias")})
            if page >= int(data.get("total_pages") or 1):
                return rows
            page += 1

    async def update_key(self, token: str, **fields: Any) -> dict[str, Any]:
        """``POST /key/update`` for the key with this hash (merge-patch: only ``fields`` change)."""
        return await self.request_object("POST", "/key/update", body={"key": token, **fields})

    async def generate_key(self, user_id: str, *, key_alias: str | None = None, team_id: str | None = None) -> str:
        body: dict[str, Any] = {"user_id": user_id}
        if key_alias:
            body["key_alias"] = key_alias
        if team_id:
            body["team_id"] = team_id
        data = await self.request_object("POST", "/key/generate", body=body, retry=is_retryable_before_sending)
        key = str(data.get("key") or "")
        self.remember_secret(key)
        return key

    async def list_user_keys(self, user_id: str) -> list[dict[str, Any]]:
        """The virtual keys of one user (``GET /key/list``, full rows: ``token`` is the key's hash)."""
        keys: list[dict[str, Any]] = []
        page = 1
        while True:
            data = await self.request_object(
                "GET",
                "/key/list",
                params={"user_id": user_id, "return_full_object": "true", "page": page, "size": 100},
            )
            rows = [k for k in data.get("keys") or [] if isinstance(k, dict)]
            keys += [k for k in rows if k.get("user_id") in (None, user_id)]
            if page >= int(data.get("total_pages") or 1) or not rows:
                return keys
            page += 1

    async def delete_keys(self, tokens: Sequence[str]) -> None:
        """``POST /key/delete`` by hash. Already gone (a retry after a lost answer) counts as done."""
        if not tokens:
            return
        try:
            await self.request("POST", "/key/delete", body={"keys": list(tokens)})
        except NotFoundError:
            if len(tokens) == 1:
                return
            for t in tokens:  # one of them is gone already: the others one by one
                await self.delete_keys([t])

    async def create_invitation(self, user_id: str) -> str:
        """``POST /invitation/new``; returns the invitation id."""
        data = await self.request_object(
            "POST", "/invitation/new", body={"user_id": user_id}, retry=is_retryable_before_sending
        )
        invitation_id = str(data.get("id"))
        self.remember_secret(invitation_id)
        return invitation_id

    def invitation_url(self, invitation_id: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/ui/?invitation_id={invitation_id}&action=reset_password"
