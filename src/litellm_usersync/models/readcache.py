"""What a run keeps of its read for the next one (issue 14): the cached snapshot and its watermark. No I/O.

The cache is written by ``files.readcache`` and used by ``proxy.incremental``: the next run reads only the users
updated since :attr:`ReadCache.watermark` and takes the rest from here. It holds no secret: user rows (with their
emails, hence a 0600 file), team ids, and digests of key hashes (never a key, never a hash the proxy accepts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .live import LiveUser

#: the one version of the cache this code reads; any other is ignored (the run does the full read)
READ_CACHE_VERSION = 1
#: a run without ``--full-read-after`` trusts a cache this old at most (a day: the nightly cron sync)
DEFAULT_FULL_READ_AFTER_S = 24 * 3600.0
#: how far before the proxy's clock at the start of a read the next run's watermark is put: a write whose
#: ``updated_at`` was taken before our read but that committed after it (a bulk create holds its transaction
#: while it writes the rosters), the coarse HTTP ``Date`` (whole seconds, seen lagging ~2 s) and a small skew
#: between the proxy's clock and the database's (raw ``NOW()`` writes) all fit in it
WATERMARK_OVERLAP_S = 10.0
#: the incremental read stops paging and does the full read when more pages than this changed (at least
#: :data:`MIN_INCREMENTAL_PAGES`): pages of changed users are read one after another, the full read in parallel
INCREMENTAL_PAGE_SHARE = 0.25
MIN_INCREMENTAL_PAGES = 4


def key_digest(token: str) -> str:
    """What the cache keeps of a key's hash: 16 hex of its sha256 (recognises the key, cannot address it)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class KeyMark:
    """A key seen updated inside the overlap window, so the next run can tell it from a new or moved one."""

    #: 16 hex of sha256 over the key's hash: enough to recognise it, useless to address it
    digest: str
    user_id: str | None
    #: counts in its owner's ``key_count`` (every key but the UI's ``litellm-dashboard`` session keys)
    counted: bool
    created_at: str | None = None


@dataclass(frozen=True)
class ReadCache:
    """The last read of one proxy by one identity, and what the next read needs to trust it."""

    base_url: str
    caller_user_id: str
    proxy_version: str | None
    #: the batch routes found on that version (the next run on the same version does not ask again)
    batch_routes: Mapping[str, bool]
    #: when the cache was written (UTC, ISO 8601, this machine's clock): ``--full-read-after`` compares it
    written_at: str
    #: on the proxy's clock: every write with ``updated_at`` before it is in :attr:`users`
    watermark: str
    users: tuple[LiveUser, ...]
    #: ``team_id -> created_at`` of every team read: a team gone, or recreated, means a full read (LiteLLM
    #: strips a deleted team from ``user.teams`` without touching ``updated_at``)
    team_marks: Mapping[str, str | None] = field(default_factory=dict)
    #: how many live keys ``/key/list`` counted
    key_total: int = 0
    #: the keys updated at or after :attr:`watermark` (or without ``updated_at``), as they were
    key_marks: tuple[KeyMark, ...] = ()
    version: int = READ_CACHE_VERSION


@dataclass(frozen=True)
class ReadOutcome:
    """How the run's snapshot was read: shown with ``--debug`` and in the bench."""

    #: "full" or "incremental"
    mode: str
    #: why a full read was done (empty for an incremental one)
    reason: str = ""
    #: users read again because they changed (or their keys did) since the cache
    users_reread: int = 0
    #: whether a cache was written for the next run
    cached: bool = False
