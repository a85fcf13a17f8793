"""The read-back after uncertain writes: a create is never blindly sent twice.

A create whose answer was lost (a timeout, a reset, a 5xx after sending) may have landed. Before any resend
the user is read back by id (and email): found, the create is done (``recovered``, its key unknown); not
found, it is sent again, within the one retry policy. For a bulk create only the rows still missing are
resent, and a resent row refused as "already exists" is read back too: the earlier copy may have landed
after the read-back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litellm_usersync.errors import AuthError, ConflictError, ProxyError
from litellm_usersync.identity import normalize_email
from litellm_usersync.settings import BULK_ROW_TIMEOUT_S

from .answers import CreatedUser, RowErrorKind, RowResult, row_error_kind
from .features import BATCH_ROUTES
from .reads import Reads
from .retries import is_retryable_before_sending, is_uncertain

log = logging.getLogger("litellm_usersync.http")


def unknown_create(cause: ProxyError) -> str:
    return f"outcome unknown: the user may have been created (its answer was lost: {cause})"


def created_from_row(row: Mapping[str, Any], *, recovered: bool) -> CreatedUser:
    return CreatedUser(
        user_id=str(row.get("user_id")),
        email=row.get("user_email"),
        api_key=None,
        teams=tuple(row.get("teams") or ()),
        recovered=recovered,
    )


class Recovery(Reads):
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
                f"{unknown_create(cause)}; reading it back failed: {exc}",
                method=cause.method,
                path=cause.path,
                status=cause.status,
            ) from exc

    async def _create_reading_back(self, body: dict[str, Any]) -> CreatedUser:
        """``POST /user/new``: retried only when it certainly did not reach the proxy; read back after an
        uncertain outcome, and sent again only when the user is not there."""
        user_id = body.get("user_id")
        email = body.get("user_email")
        retries = self._t.retries
        last: ProxyError | None = None
        for attempt in range(1, retries.attempts + 1):
            try:
                data = await self.request_object("POST", "/user/new", body=body, retry=is_retryable_before_sending)
            except ConflictError:
                if last is not None and is_uncertain(last):
                    existing = await self._read_back_uncertain(str(user_id), email, last)
                    if existing is not None:
                        return created_from_row(existing, recovered=True)
                raise
            except ProxyError as exc:
                if not is_uncertain(exc):
                    raise
                last = exc
                log.info("create of %s uncertain (%s): reading back before any retry", self.mask(str(email)), exc)
                existing = await self._read_back_uncertain(str(user_id), email, exc)
                if existing is not None:
                    return created_from_row(existing, recovered=True)
                if attempt < retries.attempts:
                    await retries.pause(attempt, exc)
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

    def bulk_timeout_s(self, rows: int) -> float:
        """The timeout of one bulk create: ``--timeout`` plus the proxy's time per row (a chunk of 500 users
        with keys takes ~8 s on a quiet proxy), so a full chunk is not cut off under a per-request timeout
        meant for one user (an answer cut off is a chunk of users whose keys nobody holds)."""
        return self.settings.timeout_s + BULK_ROW_TIMEOUT_S * max(rows - 1, 0)

    async def _post_bulk_create(self, rows: list[dict[str, Any]]) -> list[RowResult]:
        """One ``POST /management/v1/users/bulk`` (retried only before sending): its rows, keys remembered."""
        data = await self.request_object(
            "POST",
            BATCH_ROUTES["create"],
            body={"users": rows},
            retry=is_retryable_before_sending,
            timeout_s=self.bulk_timeout_s(len(rows)),
        )
        out: list[RowResult] = []
        for row in data.get("data") or []:
            key = row.get("key") or None
            self.remember_secret(key)
            error = self.mask(str(row["error"])) if row.get("error") else None
            out.append(
                RowResult(
                    user_id=row.get("user_id"),
                    email=row.get("user_email"),
                    success=bool(row.get("success")),
                    error=error,
                    api_key=key,
                    teams=tuple(row.get("teams") or ()),
                    kind=None if row.get("success") else row_error_kind(error),
                )
            )
        return out

    async def _recover_bulk_create(self, chunk: list[dict[str, Any]], cause: ProxyError) -> list[RowResult]:
        """After an uncertain bulk create: read back, resend only the rows still missing, and repeat while the
        outcome stays uncertain (bounded by the retry policy). Never resends a row that exists."""
        done: list[RowResult] = []
        rest = chunk
        last: ProxyError = cause
        retries = self._t.retries
        for attempt in range(1, retries.attempts + 1):
            try:
                existing = await self.read_users_by_ids([str(b["user_id"]) for b in rest])
            except AuthError:
                raise
            except ProxyError as exc:
                why = f"{unknown_create(last)}; reading it back failed: {exc}"
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
                await retries.pause(attempt + 1)
            try:
                rows = await self._post_bulk_create(rest)
            except ProxyError as exc:
                if not is_uncertain(exc):
                    return done + [RowResult(str(b["user_id"]), b.get("user_email"), False, str(exc)) for b in rest]
                last = exc
                continue
            return done + await self._recovered_duplicates(rows, rest)
        return done + [RowResult(str(b["user_id"]), b.get("user_email"), False, str(last)) for b in rest]

    async def _recovered_duplicates(self, rows: list[RowResult], sent: list[dict[str, Any]]) -> list[RowResult]:
        """Rows of a resent bulk create that failed as "already exists": the earlier, uncertain copy may
        have landed after the read-back. A user found with the row's id and email was created by us."""
        emails = {str(b["user_id"]): normalize_email(str(b.get("user_email") or "")) for b in sent}
        dups = [
            r.user_id for r in rows if not r.success and r.user_id in emails and r.kind is RowErrorKind.ALREADY_EXISTS
        ]
        if not dups:
            return rows
        try:
            found = await self.read_users_by_ids([d for d in dups if d])
        except AuthError:
            raise
        except ProxyError as exc:
            why = f"the user may have been created by an earlier copy of this request; reading it back failed: {exc}"
            return [
                RowResult(r.user_id, r.email, False, f"{r.error}; {why}", kind=r.kind) if r.user_id in dups else r
                for r in rows
            ]
        out: list[RowResult] = []
        for r in rows:
            row = found.get(r.user_id or "") if r.user_id in dups else None
            if row is not None and normalize_email(str(row.get("user_email") or "")) == emails[str(r.user_id)]:
                log.info("bulk create of %s: the earlier copy landed; reporting it created", self.mask(str(r.email)))
                r = RowResult(r.user_id, r.email, True, None, None, tuple(row.get("teams") or ()))
            out.append(r)
        return out
