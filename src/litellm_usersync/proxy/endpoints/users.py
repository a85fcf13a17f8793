"""Users: create (never blindly repeated), update, delete, one by one or in batches."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from litellm_usersync.errors import NotFoundError, ProxyError
from litellm_usersync.settings import BULK_CHUNK

from ..answers import CreatedUser, RowErrorKind, RowResult, missing_user_id, row_error_kind
from ..features import BATCH_ROUTES
from ..recovery import Recovery
from ..retries import is_retryable, is_uncertain

log = logging.getLogger("litellm_usersync.http")


class UserCalls(Recovery):
    async def create_user(self, body: dict[str, Any]) -> CreatedUser:
        """``POST /user/new``, never blindly repeated.

        Retried only when the request certainly did not reach the proxy. After an uncertain outcome (a
        timeout, a reset, a 5xx) the user is read back by id and email; if it exists the create is treated
        as done (``recovered``, key unknown), otherwise it is sent again, within the retry policy.
        """
        return await self._create_reading_back(body)

    async def bulk_create_users(self, bodies: Sequence[dict[str, Any]]) -> list[RowResult] | None:
        """``POST /management/v1/users/bulk`` in chunks of 500. None when the proxy has no such route.

        An uncertain chunk is read back: rows whose user exists are reported created (key unknown), the
        others are sent again once as a smaller batch.
        """
        results: list[RowResult] = []
        for i in range(0, len(bodies), BULK_CHUNK):
            chunk = list(bodies[i : i + BULK_CHUNK])
            try:
                rows = await self._post_bulk_create(chunk)
            except ProxyError as exc:
                if self._detector.bulk_route_missing("create", exc):
                    return None
                if not is_uncertain(exc):
                    raise
                results.extend(await self._recover_bulk_create(chunk, exc))
                continue
            results.extend(rows)
        return results

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
                if self._detector.bulk_route_missing("update", exc):
                    return None
                raise
            for r in data.get("results") or []:
                error = self.mask(str(r["error"])) if r.get("error") else None
                ok = bool(r.get("success"))
                rows.append(
                    RowResult(
                        r.get("user_id"), r.get("user_email"), ok, error, kind=None if ok else row_error_kind(error)
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
                missing = missing_user_id(exc)
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
        """``POST /management/v1/users/bulk_delete`` in chunks of 500; None when the route is missing.

        A row whose user is not found counts as deleted (already absent is the desired end state)."""
        rows: list[RowResult] = []
        for i in range(0, len(user_ids), BULK_CHUNK):
            chunk = list(user_ids[i : i + BULK_CHUNK])
            try:
                data = await self.request_object("POST", BATCH_ROUTES["delete"], body={"user_ids": chunk})
            except ProxyError as exc:
                if self._detector.bulk_route_missing("delete", exc):
                    return None
                raise
            for r in data.get("data") or []:
                err = str(r["error"]) if r.get("error") else None
                kind = row_error_kind(err)
                ok = bool(r.get("success")) or kind in (RowErrorKind.NOT_FOUND, RowErrorKind.NOT_A_MEMBER)
                rows.append(
                    RowResult(
                        r.get("user_id"), r.get("user_email"), ok, None if ok else str(err), kind=None if ok else kind
                    )
                )
        return rows
