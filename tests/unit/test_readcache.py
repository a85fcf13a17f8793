"""The read cache on disk (issue 14): 0600, every LiveUser field round-trips, nothing secret, damage → None."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from litellm_usersync.files.readcache import load_read_cache, read_cache_path, save_read_cache
from litellm_usersync.models import LiveUser
from litellm_usersync.models.readcache import KeyMark, ReadCache, key_digest

URL = "http://127.0.0.1:4000"


def _cache(**kw: object) -> ReadCache:
    users = (
        LiveUser("a@x.com", "a@x.com", "internal_user", ("t1", "t2"), key_count=2, spend=1.5, user_alias="A",
                 max_budget=10.0, models=("gpt",), created_at="2026-12-01T00:00:00Z",
                 updated_at="2026-12-01T00:00:01.123000Z", managed_marker=True, key_pending=True, invite_pending=True,
                 budget_duration="30d", tpm_limit=5, rpm_limit=6, max_parallel_requests=7, sso_user_id="sso",
                 metadata={"managed_by": "litellm-usersync", "n": [1, 2]}, model_max_budget={"gpt": 1.0}),
        LiveUser("default_user_id", None, None),
    )  # fmt: skip
    base: dict[str, object] = dict(
        base_url=URL, caller_user_id="default_user_id", proxy_version="1.110.2", batch_routes={"create": True},
        written_at="2026-12-02T00:00:00Z", watermark="2026-12-01T23:59:50Z", users=users,
        team_marks={"t1": "2026-11-01T00:00:00Z", "t2": None}, key_total=3,
        key_marks=(KeyMark(key_digest("hash-1"), "a@x.com", True, "2026-12-01T23:59:55Z"),),
    )  # fmt: skip
    base.update(kw)
    return ReadCache(**base)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_and_is_private(tmp_path: Path) -> None:
    path = read_cache_path(tmp_path / "state", URL, "default_user_id")
    cache = _cache()
    save_read_cache(path, cache)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    loaded, why = load_read_cache(path, base_url=URL, caller_user_id="default_user_id")
    assert why == "" and loaded == cache
    assert load_read_cache(path, base_url=URL + "/", caller_user_id="default_user_id")[0] is not None
    assert "hash-1" not in path.read_text()  # only a digest of the key's hash


def test_the_path_depends_on_url_and_identity(tmp_path: Path) -> None:
    a = read_cache_path(tmp_path, URL, "default_user_id")
    assert a == read_cache_path(tmp_path, URL + "/", "default_user_id")
    assert a != read_cache_path(tmp_path, URL, "someone-else")
    assert a != read_cache_path(tmp_path, "http://127.0.0.1:4001", "default_user_id")
    assert a.name.startswith("127.0.0.1_4000-") and a.parent.name == "read-cache"


def test_another_identity_or_proxy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    save_read_cache(path, _cache())
    assert load_read_cache(path, base_url=URL, caller_user_id="other")[0] is None
    assert load_read_cache(path, base_url="http://127.0.0.1:9", caller_user_id="default_user_id")[0] is None


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda t: "", "damaged"),
        (lambda t: t[: len(t) // 2], "damaged"),
        (lambda t: t.rsplit("\n", 2)[0] + "\n", "incomplete"),
        (lambda t: t.replace('"version":1', '"version":99', 1), "another version"),
        (lambda t: t.replace("litellm-usersync/read-cache", "something-else", 1), "not a read cache"),
        (lambda t: t.replace('"a@x.com","a@x.com"', '7,"a@x.com"', 1), "damaged"),
    ],
)
def test_a_damaged_cache_is_ignored_with_a_reason(tmp_path: Path, damage: object, why: str) -> None:
    path = tmp_path / "c.jsonl"
    save_read_cache(path, _cache())
    path.write_text(damage(path.read_text()))  # type: ignore[operator]
    cache, reason = load_read_cache(path, base_url=URL, caller_user_id="default_user_id")
    assert cache is None and why in reason, reason


def test_missing_cache(tmp_path: Path) -> None:
    assert load_read_cache(tmp_path / "none", base_url=URL, caller_user_id="x") == (None, "no cache of an earlier run")


def test_one_line_per_user(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    save_read_cache(path, _cache())
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["users"] == 2
    assert os.path.getsize(path) < 2000
