"""Reading the live state through the last run's cache (issue 14): only what changed since its watermark.

LiteLLM 1.110 writes ``LiteLLM_UserTable.updated_at`` on every write through its ORM (a Prisma ``@updatedAt``
column: ``/user/new|update|bulk_update``, team joins and leaves, bulk creates) and ``/user/list`` sorts by it
(ties by ``user_id``) and counts ``total``. So a run reads the users updated since the watermark (newest first,
ties included), the teams (all of them: one request per 100), the keys updated since the watermark (one
request), and takes every other user from the cache. What escapes ``updated_at`` was measured on the real proxy
(docs/performance.md) and each such case is detected here and answered with the full read:

- a user deleted by someone else: ``total`` no longer equals cached + new users;
- a team deleted (LiteLLM strips it from ``user.teams`` with raw SQL, no ``updated_at``): a cached team is gone
  or was recreated (another ``created_at``);
- ``key_count`` (keys are not user rows): keys updated since the watermark are compared with the cache's key
  marks; a new key, a moved one or a deleted marked one re-reads its owner(s); a deletion the marks do not
  explain (the live key total does not add up), a key moved in a way its new owner's count does not show, or a
  changed key without an owner: the full read;
- a cache missing, damaged, older than ``--full-read-after``, of another proxy version or of an old proxy
  without ``sort_by=updated_at`` (the per-user path keeps the full read), or ``--full-read``.

Nothing destructive rests on the cache alone: ``proxy.reread.reread_for_plan`` re-reads (one batched read) the users a
plan deletes, recreates, demotes or moves, right before the writes; the caller re-plans on a mismatch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from litellm_usersync.models import (
    LiveUser,
    ProxyFeatures,
    Snapshot,
    Team,
    version_tuple,
)
from litellm_usersync.models.readcache import (
    DEFAULT_FULL_READ_AFTER_S,
    INCREMENTAL_PAGE_SHARE,
    MIN_INCREMENTAL_PAGES,
    WATERMARK_OVERLAP_S,
    KeyMark,
    ReadCache,
    ReadOutcome,
    key_digest,
)

from .client import ProxyClient
from .snapshot import parse_live_user, parse_team

log = logging.getLogger("litellm_usersync.read")

#: the first page of the incremental read holds this many more users than the last run saw inside the
#: overlap: a night with this few changes costs one small page
PROBE_PAGE_SIZE = 10
#: ``/user/list?sort_by=updated_at`` and ``/key/list?sort_by=updated_at`` exist from here (older proxies: 400)
INCREMENTAL_MIN_VERSION = (1, 110)
#: keys of the UI's login sessions: ``key_count`` leaves them out (API contract §1.6)
UI_SESSION_TEAM_ID = "litellm-dashboard"

#: ``caller_user_id -> (cache, why there is none)``: the cache is found by identity, known only after /key/info
CacheLoader = Callable[[str], tuple[ReadCache | None, str]]
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class ReadPolicy:
    """How a run may use the cache: ``--full-read``, ``--full-read-after``."""

    full_read: bool = False
    full_read_after_s: float = DEFAULT_FULL_READ_AFTER_S
    #: write a cache for the next run (a command that only lists may still prime it)
    keep_cache: bool = True


class _FullReadNeeded(Exception):
    """Raised inside the incremental read: its message says why the full read is done instead."""


def parse_time(value: Any) -> datetime | None:
    """A proxy timestamp (``2026-12-02T00:34:06.953000Z``) as an aware UTC datetime; None when absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _proxy_now(date_header: str | None) -> datetime | None:
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _counted(team_id: Any) -> bool:
    return bool(team_id != UI_SESSION_TEAM_ID)


def _mark(row: Mapping[str, Any]) -> KeyMark:
    owner = row.get("user_id")
    return KeyMark(
        key_digest(str(row["token"])),
        None if owner is None else str(owner),
        _counted(row.get("team_id")),
        row.get("created_at"),
    )


# --------------------------------------------------------------------------------------------------
# The entry point


async def read_live_state(
    client: ProxyClient,
    load_cache: CacheLoader,
    policy: ReadPolicy = ReadPolicy(),
    *,
    on_progress: Progress | None = None,
    now: datetime | None = None,
) -> tuple[Snapshot, ReadCache | None, ReadOutcome]:
    """The live state (as :func:`proxy.snapshot.read_snapshot` reads it), the cache for the next run (None where
    none can be kept) and how it was read. Incremental where the cache allows it, else the full read."""
    version, caller = await asyncio.gather(client.proxy_version(), client.check_auth())
    # the proxy's clock before any page is asked for: every write committed before it is in what follows
    proxy_now = _proxy_now(client.last_date)
    v = version_tuple(version)
    if v is None or v < INCREMENTAL_MIN_VERSION:
        snapshot = (await _full_read(client, caller, on_progress))[0]
        why = f"LiteLLM {version or '(version unknown)'} cannot list users by updated_at"
        return snapshot, None, ReadOutcome("full", why)
    cache, reason = (None, "--full-read") if policy.full_read else load_cache(caller)
    if cache is not None:
        reason = _stale(cache, version, policy, now or datetime.now(UTC))
        if reason:
            cache = None
    watermark = proxy_now - timedelta(seconds=WATERMARK_OVERLAP_S) if proxy_now else None
    if cache is not None:
        features = await client.detect_features(known_routes=cache.batch_routes)
        try:
            snapshot, next_cache, reread = await _incremental(client, cache, features, caller, watermark, on_progress)
        except _FullReadNeeded as exc:
            reason = str(exc)
            log.info("full read: %s", reason)
        else:
            next_cache = next_cache if policy.keep_cache else None
            return snapshot, next_cache, ReadOutcome("incremental", "", reread, next_cache is not None)
    snapshot, marks, key_total, team_marks = await _full_read(client, caller, on_progress, watermark)
    kept = None
    if policy.keep_cache and watermark is not None and marks is not None:
        kept = _cache_of(client, snapshot, caller, snapshot.features, watermark, team_marks, key_total, marks)
    return snapshot, kept, ReadOutcome("full", reason or "no cache", 0, kept is not None)


def _stale(cache: ReadCache, version: str | None, policy: ReadPolicy, now: datetime) -> str:
    written = parse_time(cache.written_at)
    if written is None:
        return "the cache has no time"
    age = (now - written).total_seconds()
    if age > policy.full_read_after_s or age < -60:
        hours = age / 3600
        return f"the cache is {hours:.1f} h old (--full-read-after {policy.full_read_after_s / 3600:g} h)"
    if cache.proxy_version != version:
        return f"the cache is of LiteLLM {cache.proxy_version}, the proxy now runs {version}"
    if parse_time(cache.watermark) is None:
        return "the cache has no watermark"
    return ""


def _cache_of(
    client: ProxyClient,
    snapshot: Snapshot,
    caller: str,
    features: ProxyFeatures,
    watermark: datetime,
    team_marks: Mapping[str, str | None],
    key_total: int,
    marks: Iterable[KeyMark],
) -> ReadCache:
    return ReadCache(
        base_url=client.settings.base_url,
        caller_user_id=caller,
        proxy_version=features.version,
        batch_routes=dict(features.batch_routes),
        written_at=_iso(datetime.now(UTC)),
        watermark=_iso(watermark),
        users=snapshot.users,
        team_marks=dict(team_marks),
        key_total=key_total,
        key_marks=tuple(marks),
    )


# --------------------------------------------------------------------------------------------------
# The full read (as read_snapshot, plus what the next run's cache needs)


def _team_and_created(row: dict[str, Any]) -> tuple[Team, str | None]:
    return parse_team(row), row.get("created_at")


async def _keys_since(client: ProxyClient, since: datetime | None) -> tuple[list[dict[str, Any]], int]:
    """The live keys updated at or after ``since`` (and those without ``updated_at``: listed first), newest first,
    and the live key total. One request unless many keys changed."""
    rows: list[dict[str, Any]] = []
    page, total = 1, None
    while True:
        got = await client.list_keys_page(page)
        if total is not None and got.total != total:
            raise _FullReadNeeded("keys changed while they were read")
        total = got.total
        for r in got.items:
            t = parse_time(r.get("updated_at"))
            if since is not None and t is not None and t < since:
                return rows, total
            rows.append(r)
        if page >= got.total_pages or not got.items:
            return rows, total
        page += 1


async def _full_read(
    client: ProxyClient,
    caller: str,
    on_progress: Progress | None,
    watermark: datetime | None = None,
) -> tuple[Snapshot, list[KeyMark] | None, int, dict[str, str | None]]:
    """Every page, with what the proxy can do detected beside them (the route probes are a round trip the
    pages need not wait for; an earlier detection of this client is reused). The key marks are None when
    the keys could not be counted (then no cache may be kept of this read)."""

    async def pages() -> tuple[list[KeyMark] | None, int, list[LiveUser], list[tuple[Team, str | None]]]:
        marks: list[KeyMark] | None = []
        key_total = 0
        if watermark is not None:
            # the keys first: a key created or deleted while the users are read then makes the next run's
            # counts disagree (a full read), never agree with a stale count
            try:
                rows, key_total = await _keys_since(client, watermark)
            except _FullReadNeeded:  # the keys could not be counted: no cache is kept of this read
                rows, key_total, marks = [], 0, None
            if marks is not None:
                marks = [_mark(r) for r in rows]
        users, teams = await asyncio.gather(
            client.read_all_users(on_page=_progress(on_progress, "reading users"), parse=parse_live_user),
            client.read_all_teams(on_page=_progress(on_progress, "reading teams"), parse=_team_and_created),
        )
        return marks, key_total, users, teams

    features, (marks, key_total, users, teams) = await asyncio.gather(client.detect_features(), pages())
    snapshot = Snapshot(
        users=tuple(users),
        teams=tuple(t for t, _ in teams),
        proxy_version=features.version,
        caller_user_id=caller,
        features=features,
    )
    return snapshot, marks, key_total, {t.team_id: created for t, created in teams}


def _progress(on_progress: Progress | None, what: str) -> Callable[[int, int], None] | None:
    if on_progress is None:
        return None
    cb = on_progress
    return lambda done, total: cb(what, done, total)


# --------------------------------------------------------------------------------------------------
# The incremental read


def _probe_size(cache: ReadCache, page_size: int) -> int:
    """The first page's size: :data:`PROBE_PAGE_SIZE` more than the cached users updated inside the overlap
    (they are read again for sure), at most a page. Compared by the timestamps' second (an estimate: a
    size, never what is trusted)."""
    second = cache.watermark[:19]
    recent = sum(1 for u in cache.users if u.updated_at is not None and u.updated_at[:19] >= second)
    return min(page_size, recent + PROBE_PAGE_SIZE)


async def _changed_users(
    client: ProxyClient, since: datetime, cached: int, probe_size: int = PROBE_PAGE_SIZE
) -> tuple[dict[str, LiveUser], int]:
    """The users updated at or after ``since`` (ties included), newest first, and the proxy's user total."""
    fresh: dict[str, LiveUser] = {}
    size = client.settings.page_size
    most = max(MIN_INCREMENTAL_PAGES, int(cached / size * INCREMENTAL_PAGE_SHARE))
    # the nightly case first: a small page (the proxy counts each listed user's keys, one query each: a page
    # of 100 costs ~4x one of 10); when it ends in users older than the watermark, it was all there is
    probe = await client.list_users_page(1, page_size=probe_size, sort_by="updated_at", sort_order="desc")
    if _take_changed(probe.items, since, fresh) or len(probe.items) < probe_size:
        return fresh, probe.total
    page, first = 1, None
    while True:
        got = await client.list_users_page(page, sort_by="updated_at", sort_order="desc")
        first = first or got
        if got.total != probe.total:
            raise _FullReadNeeded("users were added or deleted while they were read")
        older = _take_changed(got.items, since, fresh)
        if older or page >= got.total_pages or not got.items:
            break
        page += 1
        if page > most:
            raise _FullReadNeeded(f"more than {most} pages of users changed: the full read is faster")
    if page > 1:
        # a write while the pages were read moves its user to the front, which was read already: look again
        again = await client.list_users_page(1, sort_by="updated_at", sort_order="desc")
        head = [(u.get("user_id"), u.get("updated_at")) for u in again.items[:1]]
        if again.total != first.total or head != [(u.get("user_id"), u.get("updated_at")) for u in first.items[:1]]:
            raise _FullReadNeeded("users changed while they were read")
    return fresh, first.total


def _take_changed(rows: Sequence[Mapping[str, Any]], since: datetime, fresh: dict[str, LiveUser]) -> bool:
    """Put the rows updated at or after ``since`` into ``fresh``, in order; True once a row older than it is met
    (the pages are newest first: nothing after it changed)."""
    for row in rows:
        t = parse_time(row.get("updated_at"))
        if t is None:
            raise _FullReadNeeded(f"user {row.get('user_id')!r} has no updated_at")
        if t < since:
            return True
        fresh[str(row.get("user_id"))] = parse_live_user(row)
    return False


def _key_changes(
    cache: ReadCache, rows: Sequence[Mapping[str, Any]], total: int, since: datetime
) -> tuple[dict[str, int], set[str]]:
    """What the keys updated since the cache did to ``key_count``: ``(explained change per user, users whose new
    count must show exactly that)``. Raises :class:`_FullReadNeeded` for what the keys cannot explain."""
    known = {m.digest: m for m in cache.key_marks}
    delta: dict[str, int] = {}
    check: set[str] = set()
    seen: set[str] = set()
    new = 0

    def add(owner: str | None, counted: bool, n: int) -> None:
        if owner is not None:
            check.add(owner)
            if counted:
                delta[owner] = delta.get(owner, 0) + n

    for r in rows:
        m = _mark(r)
        seen.add(m.digest)
        before = known.get(m.digest)
        if before is not None:
            if (before.user_id, before.counted) != (m.user_id, m.counted):  # moved or rebound since the cache
                add(before.user_id, before.counted, -1)
                add(m.user_id, m.counted, +1)
            continue
        created = parse_time(r.get("created_at"))
        if created is not None and created >= since:
            new += 1
            add(m.user_id, m.counted, +1)
        elif m.user_id is None:
            raise _FullReadNeeded("a key without an owner changed since the last run (it may have left a user)")
        else:  # an older key updated since: its owner's count shows whether it came from someone else
            add(m.user_id, m.counted, 0)
    deleted = [m for d, m in known.items() if d not in seen]
    for m in deleted:
        add(m.user_id, m.counted, -1)
    if total != cache.key_total + new - len(deleted):
        raise _FullReadNeeded(
            f"keys were deleted since the last run that it did not see ({cache.key_total} + {new} new"
            f" - {len(deleted)} ≠ {total})"
        )
    return delta, check


async def _incremental(
    client: ProxyClient,
    cache: ReadCache,
    features: ProxyFeatures,
    caller: str,
    watermark: datetime | None,
    on_progress: Progress | None,
) -> tuple[Snapshot, ReadCache | None, int]:
    since = parse_time(cache.watermark)
    assert since is not None  # checked by _stale
    listed_since = min(since, watermark) if watermark else since
    key_rows, key_total = await _keys_since(client, listed_since)
    (fresh, user_total), teams = await asyncio.gather(
        _changed_users(client, since, len(cache.users), _probe_size(cache, client.settings.page_size)),
        client.read_all_teams(on_page=_progress(on_progress, "reading teams"), parse=_team_and_created),
    )
    team_marks = {t.team_id: created for t, created in teams}
    for tid, created in cache.team_marks.items():
        if tid not in team_marks:
            raise _FullReadNeeded(
                f"team {tid} was deleted since the last run (its members' teams lists change without updated_at)"
            )
        if team_marks[tid] != created:
            raise _FullReadNeeded(f"team {tid} was deleted and created again since the last run")
    delta, check = _key_changes(cache, [r for r in key_rows if _updated_since(r, since)], key_total, since)
    cached = {u.user_id: u for u in cache.users}
    missing = sorted(uid for uid in check if uid not in fresh and uid in cached)
    if missing:
        for uid, row in (await client.read_users_by_ids(missing)).items():
            fresh[uid] = parse_live_user(row)
    for uid in check:
        now_user = fresh.get(uid)
        if now_user is None:
            if uid in cached:
                raise _FullReadNeeded(f"user {uid} (a key owner) was deleted since the last run")
            continue  # a key of an id that is no user: it counts for nobody
        before = cached[uid].key_count if uid in cached else 0
        if now_user.key_count != before + delta.get(uid, 0):
            raise _FullReadNeeded(
                f"the key count of {uid} changed in a way its keys do not explain (a key moved between users?)"
            )
    merged = cached
    merged.update(fresh)
    if len(merged) != user_total:
        raise _FullReadNeeded(
            f"users were deleted since the last run ({len(cache.users)} cached + "
            f"{len(merged) - len(cache.users)} new ≠ {user_total} on the proxy)"
        )
    if on_progress:
        on_progress("reading users", user_total, user_total)
    users = tuple(merged[uid] for uid in sorted(merged))
    snapshot = Snapshot(
        users=users,
        teams=tuple(t for t, _ in teams),
        proxy_version=features.version,
        caller_user_id=caller,
        features=features,
    )
    log.info(
        "incremental read: %d user(s) changed since %s, %d from the cache",
        len(fresh),
        cache.watermark,
        len(users) - len(fresh),
    )
    next_cache = None
    if watermark is not None:
        marks = [_mark(r) for r in key_rows if _updated_since(r, watermark)]
        next_cache = _cache_of(client, snapshot, caller, features, watermark, team_marks, key_total, marks)
    return snapshot, next_cache, len(fresh)


def _updated_since(row: Mapping[str, Any], since: datetime) -> bool:
    t = parse_time(row.get("updated_at"))
    return t is None or t >= since
