"""Helpers for the "no API key is ever lost" assertions: which keys the reports and journals hold, and what
the REAL proxy says of each (``/key/info``)."""

from __future__ import annotations

import csv
import hashlib
import json
import pathlib
from typing import Any

from litellm_usersync.errors import NotFoundError
from litellm_usersync.identity import normalize_email
from litellm_usersync.models import KEY_PENDING
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy


def recorded_keys(folder: pathlib.Path) -> dict[str, set[str]]:
    """``user_id -> keys`` held by every report (``api_keys`` column) and every journal in ``folder``."""
    out: dict[str, set[str]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if ".journal" in p.name:
            for line in p.read_text(encoding="utf-8").splitlines():
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if d.get("api_key"):
                    out.setdefault(d["user_id"], set()).add(d["api_key"])
        elif p.suffix == ".csv":
            with p.open(newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    if (r.get("api_keys") or "").startswith("sk-"):
                        out.setdefault(normalize_email(r["email"]), set()).add(r["api_keys"])
    return out


def key_info(proxy: Proxy, keys: set[str]) -> dict[str, tuple[str | None, str]]:
    """``key -> (owner user_id, status)`` from ``/key/info`` on the real proxy (status ``active``/``deleted``).

    1.110 keeps a revoked key's row (``status: deleted``); 1.74 removes it and answers 404: both are "deleted"."""

    async def go(c: ProxyClient) -> dict[str, tuple[str | None, str]]:
        out: dict[str, tuple[str | None, str]] = {}
        for k in sorted(keys):
            try:
                info = (await c.request_object("GET", "/key/info", params={"key": k})).get("info") or {}
            except NotFoundError:
                out[k] = (None, "deleted")
                continue
            out[k] = (info.get("user_id"), str(info.get("status") or "active"))
        return out

    return proxy.run(go)


def user_keys(proxy: Proxy, user_ids: list[str]) -> dict[str, set[str]]:
    """``user_id -> hashes of its live keys`` (UI session keys left out)."""

    async def go(c: ProxyClient) -> dict[str, set[str]]:
        return {
            u: {str(k["token"]) for k in await c.list_user_keys(u) if k.get("team_id") != "litellm-dashboard"}
            for u in user_ids
        }

    return proxy.run(go)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def pending_markers(users: list[dict[str, Any]]) -> set[str]:
    return {u["user_id"] for u in users if (u.get("metadata") or {}).get(KEY_PENDING)}


def key_problems(proxy: Proxy, folder: pathlib.Path, created: list[str], *, before: dict[str, set[str]]) -> list[str]:
    """Issue 16's "done when", for the users the tool created (``created``):

    * each holds a working key recorded in a report or journal of ``folder`` (``/key/info``: active, its own);
    * no key recorded before the rerun (``before``) was revoked;
    * a user whose key was recorded before the rerun still holds exactly that key (left alone).
    """
    now = recorded_keys(folder)
    every = {k for ks in now.values() for k in ks} | {k for ks in before.values() for k in ks}
    info = key_info(proxy, every)
    live = user_keys(proxy, created)
    problems: list[str] = []
    for uid in created:
        working = [k for k in now.get(uid, set()) if info[k] == (uid, "active")]
        if not working:
            problems.append(f"{uid}: no working API key recorded in any report ({len(live[uid])} live key(s))")
        for k in before.get(uid, set()):
            if info[k][1] != "active":
                problems.append(f"{uid}: a key recorded by the killed run was revoked")
            elif live[uid] != {key_hash(k)}:
                problems.append(f"{uid}: its key was recorded, yet it now holds {len(live[uid])} other key(s)")
    return problems
