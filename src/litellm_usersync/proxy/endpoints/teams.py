"""Teams and memberships: create a team, join, leave (one by one or in a batch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from litellm_usersync.errors import (
    AlreadyMemberError,
    ConflictError,
    NotFoundError,
    NotMemberError,
    ProxyError,
    RejectedError,
)
from litellm_usersync.settings import BULK_CHUNK

from ..answers import RowErrorKind, RowResult, row_error_kind, team_id_taken
from ..features import BATCH_ROUTES
from ..reads import Reads
from ..retries import is_retryable_before_sending


class TeamCalls(Reads):
    async def create_team(self, alias: str, *, team_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """``POST /team/new``; a ``team_id`` that exists is a :class:`ConflictError` (the proxy's 400)."""
        body: dict[str, Any] = {"team_alias": alias, **fields}
        if team_id:
            body["team_id"] = team_id
        try:
            data = await self.request_object("POST", "/team/new", body=body, retry=is_retryable_before_sending)
        except RejectedError as exc:
            if team_id and team_id_taken(exc):  # typed here: nothing above proxy/ reads the proxy's words
                raise ConflictError(
                    exc.message, method=exc.method, path=exc.path, status=exc.status, error_type=exc.error_type
                ) from exc
            raise
        return data if isinstance(data, dict) else {}

    async def update_team(self, team_id: str, **fields: Any) -> dict[str, Any]:
        """``POST /team/update``: the team's settings (a merge-patch: fields not sent keep their value)."""
        data = await self.request_object("POST", "/team/update", body={"team_id": team_id, **fields})
        return data if isinstance(data, dict) else {}

    async def read_team(self, team_id: str) -> dict[str, Any] | None:
        """``GET /team/info``: the team's row, or None when there is no team with this id."""
        try:
            data = await self.request_object("GET", "/team/info", params={"team_id": team_id})
        except NotFoundError:
            return None
        info = data.get("team_info")
        return info if isinstance(info, dict) else None

    async def add_team_members(
        self, team_id: str, members: Sequence[tuple[str, str | None]], *, role: str = "user"
    ) -> set[str]:
        """``POST /team/member_add`` with a list of ``(user_id, email)`` as ``role`` (``user``; ``admin`` needs an
        Enterprise licence, else 400).

        Returns the user ids that are members afterwards. "Already in team" (:class:`AlreadyMemberError`)
        counts as done.
        """
        body = {
            "team_id": team_id,
            "member": [{"user_id": uid, "role": role} for uid, _email in members],
        }
        try:
            data = await self.request_object("POST", "/team/member_add", body=body)
        except AlreadyMemberError:
            return {uid for uid, _ in members}
        roster = {m.get("user_id") for m in (data.get("members_with_roles") or []) if isinstance(m, dict)}
        return {uid for uid, _ in members if uid in roster} if roster else {uid for uid, _ in members}

    async def remove_team_member(self, team_id: str, user_id: str) -> None:
        """``POST /team/member_delete``. "User not found in team" (:class:`NotMemberError`) counts as done."""
        try:
            await self.request("POST", "/team/member_delete", body={"team_id": team_id, "user_id": user_id})
        except NotMemberError:
            return

    async def bulk_remove_team_members(self, team_id: str, user_ids: Sequence[str]) -> list[RowResult] | None:
        """``POST /management/v1/teams/{id}/members/bulk_delete`` in chunks; None when the route is missing.

        A member not on the roster counts as removed."""
        rows: list[RowResult] = []
        path = BATCH_ROUTES["leave"].format(team_id=quote(team_id, safe=""))
        for i in range(0, len(user_ids), BULK_CHUNK):
            chunk = list(user_ids[i : i + BULK_CHUNK])
            try:
                data = await self.request_object("POST", path, body={"members": [{"user_id": u} for u in chunk]})
            except ProxyError as exc:
                if self._detector.bulk_route_missing("leave", exc):
                    return None
                raise
            for r in data.get("data") or []:
                err = str(r["error"]) if r.get("error") else None
                kind = row_error_kind(err)
                ok = bool(r.get("success")) or kind is RowErrorKind.NOT_A_MEMBER
                rows.append(
                    RowResult(
                        r.get("user_id"), r.get("user_email"), ok, None if ok else str(err), kind=None if ok else kind
                    )
                )
        return rows
