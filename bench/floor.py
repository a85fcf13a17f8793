"""The floor: the minimal reads a sync needs (every user page, every team page), bare with httpx.

Same requests as the tool's snapshot read: ``GET /user/list`` and ``GET /v2/team/list`` at page_size 100,
sorted by id, page 1 first and then the other pages concurrently (``--concurrency``, the tool's default),
users and teams at the same time, every body decoded as JSON. No retries, no models, no planning.
``bench/run.py`` runs it as a subprocess, like the tool, so both walls include starting Python.

Usage: ``LITELLM_BASE_URL=... LITELLM_MASTER_KEY=... python bench/floor.py [--concurrency 8]``
Prints one JSON line: users, teams, user_pages, team_pages, read_s (the reads alone, in-process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from typing import Any

import httpx

PAGE_SIZE = 100


async def read_all(http: httpx.AsyncClient, path: str, field: str, sort_by: str, concurrency: int) -> tuple[int, int]:
    """Read every page of ``path``; return (items, pages)."""

    async def page(n: int) -> dict[str, Any]:
        params = {"page": n, "page_size": PAGE_SIZE, "sort_by": sort_by, "sort_order": "asc"}
        r = await http.get(path, params=params)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    first = await page(1)
    total = int(first.get("total") or 0)
    pages = max(int(first.get("total_pages") or 0), math.ceil(total / PAGE_SIZE) if total else 1)
    sem = asyncio.Semaphore(concurrency)

    async def bounded(n: int) -> dict[str, Any]:
        async with sem:
            return await page(n)

    rest = await asyncio.gather(*(bounded(n) for n in range(2, pages + 1)))
    items = len(first.get(field) or []) + sum(len(p.get(field) or []) for p in rest)
    return items, pages


async def run(base_url: str, key: str, concurrency: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
    ) as http:
        t0 = time.perf_counter()
        (users, user_pages), (teams, team_pages) = await asyncio.gather(
            read_all(http, "/user/list", "users", "user_id", concurrency),
            read_all(http, "/v2/team/list", "teams", "team_id", concurrency),
        )
        read_s = time.perf_counter() - t0
    return {"users": users, "teams": teams, "user_pages": user_pages, "team_pages": team_pages, "read_s": read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(run(os.environ["LITELLM_BASE_URL"], os.environ["LITELLM_MASTER_KEY"], args.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
