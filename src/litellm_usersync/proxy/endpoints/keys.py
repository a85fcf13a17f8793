"""Virtual keys: list (a user's, a team's), generate, update, block, unblock, delete. Rows carry hashes, not keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litellm_usersync.errors import NotFoundError

from .._base import ClientBase
from ..answers import Page
from ..retries import is_retryable_before_sending


class KeyCalls(ClientBase):
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

    async def list_keys_page(self, page: int, *, size: int = 100) -> Page:
        """One ``/key/list`` page of every live key, the most recently updated first (``sort_by=updated_at``):
        ``token`` (the hash), ``user_id``, ``team_id``, ``created_at``, ``updated_at`` of each (issue 14)."""
        params = {
            "page": page,
            "size": size,
            "sort_by": "updated_at",
            "sort_order": "desc",
            "return_full_object": "true",
        }
        data = await self.request_object("GET", "/key/list", params=params)
        fields = ("token", "user_id", "team_id", "created_at", "updated_at")
        rows = [{f: k.get(f) for f in fields} for k in data.get("keys") or [] if isinstance(k, dict) and k.get("token")]
        return Page(rows, int(data.get("total_count") or 0), int(data.get("total_pages") or 0))

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

    async def block_key(self, token: str) -> bool:
        """``POST /key/block`` by hash: the key answers 401 from then on. Idempotent (blocking a blocked key is
        200). False when the key does not exist (deleted since it was read)."""
        try:
            await self.request_object("POST", "/key/block", body={"key": token})
        except NotFoundError:
            return False
        return True

    async def unblock_key(self, token: str) -> bool:
        """``POST /key/unblock`` by hash (idempotent). False when the key does not exist any more."""
        try:
            await self.request_object("POST", "/key/unblock", body={"key": token})
        except NotFoundError:
            return False
        return True

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
