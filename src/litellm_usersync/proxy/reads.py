"""Reading the proxy: the pages of users and teams, checked for consistency, and reads by id or email.

Every listing is read page by page (concurrently, bounded) and then checked: the same total on every page
and as many distinct ids as that total, or the read is refused (nothing is planned on a partial state).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from litellm_usersync.errors import NotFoundError, ProxyError, RefusedError
from litellm_usersync.identity import normalize_email

from ._base import ClientBase
from .answers import Page

R = TypeVar("R")
#: a user id that cannot exist (the proxy strips ids and rejects NUL; spaces inside are kept but we never use them)
_NO_SUCH_USER_ID = "litellm-usersync no such user"


class Reads(ClientBase):
    async def list_users_page(
        self,
        page: int,
        *,
        user_ids: Sequence[str] | None = None,
        page_size: int | None = None,
        sort_by: str = "user_id",
        sort_order: str = "asc",
    ) -> Page:
        """One ``/user/list`` page; ``sort_by="updated_at", sort_order="desc"`` is the incremental read's order
        (LiteLLM 1.110: ties by ``user_id``; older proxies answer 400)."""
        params: dict[str, Any] = {
            "page": page,
            "page_size": page_size or self.settings.page_size,
            "sort_by": sort_by,
            "sort_order": sort_order,
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
