"""The read cache on disk (issue 14): one file per proxy URL and identity in the state directory, mode 0600.

``<state_dir>/read-cache/<host>_<port>-<12 hex of URL + identity>.jsonl``: line 1 is the header (format,
version, watermark, teams, key marks, user count), then one JSON array per user (the :class:`LiveUser` fields in
order), so a cache of 100,000 users is written and read one line at a time. It is written atomically (temp file
and rename) and holds no secret. Anything unexpected in it (another format or version, a torn or edited file)
makes :func:`load_read_cache` answer ``None`` with the reason: the run then does the full read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litellm_usersync.models import LiveUser
from litellm_usersync.models.live import shared_strings
from litellm_usersync.models.readcache import READ_CACHE_VERSION, KeyMark, ReadCache

from .jsonfiles import ensure_private_dir, replace_file
from .runlock import lock_path, normalize_proxy_url

CACHE_FORMAT = "litellm-usersync/read-cache"
_USER_FIELDS = tuple(f.name for f in dataclasses.fields(LiveUser))
_TUPLE_FIELDS = frozenset({"team_ids", "models"})


def read_cache_path(state_dir: str | Path, base_url: str, caller_user_id: str) -> Path:
    """Where the cache of this proxy (normalised URL) and identity (the caller's user id) lives."""
    url = normalize_proxy_url(base_url)
    readable = lock_path(state_dir, base_url).name.rsplit("-", 1)[0]
    digest = hashlib.sha256(f"{url}\n{caller_user_id}".encode()).hexdigest()[:12]
    return Path(state_dir) / "read-cache" / f"{readable}-{digest}.jsonl"


def _user_row(u: LiveUser) -> list[Any]:
    row: list[Any] = []
    for name in _USER_FIELDS:
        v = getattr(u, name)
        row.append(list(v) if name in _TUPLE_FIELDS else dict(v) if isinstance(v, dict) else v)
    return row


def _user_from_row(row: object, shared: dict[str, Any]) -> LiveUser:
    """A user line back as a :class:`LiveUser`; repeated values (roles, team ids, the email that is the user id,
    equal metadata: ``shared``) are one object for all users, as ``proxy.snapshot.parse_live_user`` keeps them."""
    if not isinstance(row, list) or len(row) != len(_USER_FIELDS):
        raise ValueError("a user line of the wrong shape")
    values = dict(zip(_USER_FIELDS, row, strict=True))
    for name in _TUPLE_FIELDS:
        if not isinstance(values[name], list):
            raise ValueError(f"{name} is not a list")
        values[name] = shared_strings(values[name])
    uid = values["user_id"]
    if not isinstance(uid, str):
        raise ValueError("a user without a user_id")
    values["user_id"] = uid = sys.intern(uid)  # the team rosters, read fresh, hold the same strings (parse_team)
    if values["email"] == uid:
        values["email"] = uid
    elif isinstance(values["email"], str):
        values["email"] = sys.intern(values["email"])
    if isinstance(values["role"], str):
        values["role"] = sys.intern(values["role"])
    if values["updated_at"] == values["created_at"]:
        values["updated_at"] = values["created_at"]
    if isinstance(values["metadata"], dict):
        key = json.dumps(values["metadata"], sort_keys=True)
        values["metadata"] = shared.setdefault(key, values["metadata"]) if len(shared) < 1024 else values["metadata"]
    return LiveUser(**values)


def _lines(cache: ReadCache) -> Iterator[str]:
    header = {
        "format": CACHE_FORMAT,
        "version": cache.version,
        "base_url": normalize_proxy_url(cache.base_url),
        "caller_user_id": cache.caller_user_id,
        "proxy_version": cache.proxy_version,
        "batch_routes": dict(cache.batch_routes),
        "written_at": cache.written_at,
        "watermark": cache.watermark,
        "team_marks": dict(cache.team_marks),
        "key_total": cache.key_total,
        "key_marks": [[m.digest, m.user_id, m.counted, m.created_at] for m in cache.key_marks],
        "users": len(cache.users),
    }
    yield json.dumps(header, ensure_ascii=False, separators=(",", ":")) + "\n"
    for u in cache.users:
        yield json.dumps(_user_row(u), ensure_ascii=False, separators=(",", ":")) + "\n"


def save_read_cache(path: str | Path, cache: ReadCache) -> Path:
    """Write the cache atomically, mode 0600, in a 0700 folder."""
    target = Path(path)
    ensure_private_dir(target.parent)
    return replace_file(target, _lines(cache))


def load_read_cache(path: str | Path, *, base_url: str, caller_user_id: str) -> tuple[ReadCache | None, str]:
    """The cache at ``path`` for this proxy and identity, or ``(None, why not)``."""
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except FileNotFoundError:
        return None, "no cache of an earlier run"
    except OSError as exc:
        return None, f"the cache {p} cannot be read ({exc})"
    with fh:
        try:
            header = json.loads(fh.readline())
            if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
                return None, f"{p} is not a read cache"
            if header.get("version") != READ_CACHE_VERSION:
                return None, f"the cache is from another version (format {header.get('version')!r})"
            if (
                header.get("base_url") != normalize_proxy_url(base_url)
                or header.get("caller_user_id") != caller_user_id
            ):
                return None, "the cache is of another proxy or identity"
            shared: dict[str, Any] = {}
            users = tuple(_user_from_row(json.loads(line), shared) for line in fh)
            if len(users) != header["users"]:
                return None, f"the cache is incomplete ({len(users)} of {header['users']} users)"
            marks = tuple(
                KeyMark(str(d), None if o is None else str(o), bool(c), None if t is None else str(t))
                for d, o, c, t in header["key_marks"]
            )
            return (
                ReadCache(
                    base_url=base_url,
                    caller_user_id=caller_user_id,
                    proxy_version=header["proxy_version"],
                    batch_routes={str(k): bool(v) for k, v in header["batch_routes"].items()},
                    written_at=str(header["written_at"]),
                    watermark=str(header["watermark"]),
                    users=users,
                    team_marks={str(k): (None if v is None else str(v)) for k, v in header["team_marks"].items()},
                    key_total=int(header["key_total"]),
                    key_marks=marks,
                ),
                "",
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            return None, f"the cache {p} is damaged ({type(exc).__name__}: {exc})"
