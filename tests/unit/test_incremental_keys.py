"""How the incremental read explains key changes (issue 14): what re-reads an owner, what forces the full read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from litellm_usersync.models.readcache import KeyMark, ReadCache, key_digest
from litellm_usersync.proxy.incremental import _FullReadNeeded, _key_changes

SINCE = datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC)
OLD, NEW = "2026-12-01T00:00:00Z", "2026-12-02T00:00:05Z"


def _cache(marks: tuple[KeyMark, ...], total: int) -> ReadCache:
    return ReadCache("http://p", "default_user_id", "1.110.2", {}, NEW, "2026-12-02T00:00:00Z", (),
                     key_total=total, key_marks=marks)  # fmt: skip


def _row(token: str, owner: str | None, created: str = NEW, team: str | None = None) -> dict[str, object]:
    return {"token": token, "user_id": owner, "team_id": team, "created_at": created, "updated_at": NEW}


def test_nothing_changed() -> None:
    marks = (KeyMark(key_digest("k1"), "a", True, NEW),)
    assert _key_changes(_cache(marks, 5), [_row("k1", "a")], 5, SINCE) == ({}, set())


def test_a_new_key_counts_for_its_owner_and_a_ui_session_key_does_not() -> None:
    rows = [_row("k2", "a"), _row("k3", "b", team="litellm-dashboard")]
    assert _key_changes(_cache((), 5), rows, 7, SINCE) == ({"a": 1}, {"a", "b"})


def test_a_marked_key_moved_or_deleted_re_reads_both_owners() -> None:
    marks = (KeyMark(key_digest("k1"), "a", True, NEW), KeyMark(key_digest("k2"), "c", True, NEW))
    delta, check = _key_changes(_cache(marks, 5), [_row("k1", "b")], 4, SINCE)
    assert delta == {"a": -1, "b": 1, "c": -1} and check == {"a", "b", "c"}


def test_an_older_key_updated_checks_its_owner_without_a_change() -> None:
    delta, check = _key_changes(_cache((), 5), [_row("k9", "a", created=OLD)], 5, SINCE)
    assert delta.get("a", 0) == 0 and check == {"a"}


def test_an_unexplained_deletion_forces_the_full_read() -> None:
    with pytest.raises(_FullReadNeeded, match="keys were deleted"):
        _key_changes(_cache((), 5), [], 4, SINCE)


def test_a_changed_key_without_owner_forces_the_full_read() -> None:
    with pytest.raises(_FullReadNeeded, match="without an owner"):
        _key_changes(_cache((), 5), [_row("k9", None, created=OLD)], 5, SINCE)
