"""A run's read through the cache (issue 14), as a use case calls it: find the cache, read, keep the next one.

``read_for_run`` loads the cache of this proxy and identity from the state directory (the one the run lock
uses), reads incrementally where it may (``proxy.incremental``) and writes the cache for the next run at once
(a run that fails later still leaves a true cache: it is what was read). ``remember_run`` then takes out of
that cache what the run itself deleted (users, and the team keys its moves destroyed), so the next run's
arithmetic adds up instead of falling back to the full read after every run that deletes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from litellm_usersync.files.readcache import load_read_cache, read_cache_path, save_read_cache
from litellm_usersync.models import DeleteUser, ReadCache, ReadOutcome, RemoveMembership, RunReport, Snapshot
from litellm_usersync.models.readcache import key_digest
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.incremental import Progress, ReadPolicy, read_live_state

log = logging.getLogger("litellm_usersync.read")


@dataclasses.dataclass
class CachedRead:
    """What :func:`read_for_run` read, and where its cache went (for :func:`remember_run`)."""

    snapshot: Snapshot
    outcome: ReadOutcome
    cache: ReadCache | None = None
    path: Path | None = None


async def read_for_run(
    client: ProxyClient,
    state_dir: str | Path | None,
    policy: ReadPolicy | None = None,
    *,
    on_progress: Progress | None = None,
) -> CachedRead:
    """The live state for a run; without a state directory, the full read as before (no cache)."""
    policy = policy or ReadPolicy()
    if state_dir is None:
        policy = dataclasses.replace(policy, full_read=True, keep_cache=False)
    base_url = client.settings.base_url
    paths: list[Path] = []

    def load(caller: str) -> tuple[ReadCache | None, str]:
        assert state_dir is not None
        path = read_cache_path(state_dir, base_url, caller)
        paths.append(path)
        return load_read_cache(path, base_url=base_url, caller_user_id=caller)

    snapshot, cache, outcome = await read_live_state(client, load, policy, on_progress=on_progress)
    log.info("read: %s%s", outcome.mode, f" ({outcome.reason})" if outcome.reason else "")
    path = None
    if cache is not None and state_dir is not None:
        path = paths[0] if paths else read_cache_path(state_dir, base_url, cache.caller_user_id)
        if not _save(path, cache):
            cache, path = None, None
    return CachedRead(snapshot, dataclasses.replace(outcome, cached=path is not None), cache, path)


def _save(path: Path, cache: ReadCache) -> bool:
    try:
        save_read_cache(path, cache)
    except OSError as exc:  # the cache only saves time: a run never fails for it
        log.warning("could not write the read cache %s (%s): the next run reads everything", path, exc)
        return False
    return True


def remember_run(read: CachedRead, report: RunReport | None) -> None:
    """Take the users this run deleted, and the team keys its leaves destroyed, out of the cache."""
    if read.cache is None or read.path is None or report is None:
        return
    gone: set[str] = set()
    destroyed: set[str] = set()
    for o in report.outcomes:
        if o.ok and isinstance(o.action, DeleteUser):
            gone.add(o.action.user_id)
        elif o.ok and isinstance(o.action, RemoveMembership) and o.action.destroys_keys:
            a = o.action
            destroyed.update(key_digest(k.token) for k in read.snapshot.team_keys_of(a.user_id, a.team_id))
    if not gone and not destroyed:
        return
    cache = read.cache
    # the keys a leave deleted (LiteLLM 1.110 deletes the user's keys bound to the team it leaves)
    key_total = cache.key_total - len(destroyed)
    marks = [m for m in cache.key_marks if m.digest not in destroyed]
    users = []
    for u in cache.users:
        if u.user_id in gone:
            # /user/delete deletes every key of the user: the counted ones and its marked UI session keys
            key_total -= u.key_count + sum(1 for m in marks if m.user_id == u.user_id and not m.counted)
            continue
        users.append(u)
    marks = [m for m in marks if m.user_id not in gone]
    _save(read.path, dataclasses.replace(cache, users=tuple(users), key_marks=tuple(marks), key_total=key_total))
