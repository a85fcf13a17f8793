"""The key journal: 0600, one fsync'd line per secret, torn lines ignored, leftovers moved aside and read back."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from litellm_usersync.files.journal import KeyJournal, journal_path, journal_rows, leftover_journals, read_journal
from litellm_usersync.render.report import SYNC_REPORT_COLUMNS


def test_each_key_is_on_disk_0600_the_moment_it_is_recorded(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    j = KeyJournal.open(tmp_path / "report.csv", run_id="r1", command="sync")
    j.record("a@x.com", "a@x.com", api_key="sk-aaaaaaaa")
    assert len(synced) == 1
    # readable by another process right away, before close: what a SIGKILL leaves
    assert [e.api_key for e in read_journal(journal_path(tmp_path / "report.csv"))] == ["sk-aaaaaaaa"]
    assert stat.S_IMODE(journal_path(tmp_path / "report.csv").stat().st_mode) == 0o600
    j.finish()
    assert not journal_path(tmp_path / "report.csv").exists()


def test_an_interrupted_runs_journal_is_moved_aside_and_its_keys_are_recorded(tmp_path: pathlib.Path) -> None:
    first = KeyJournal.open(tmp_path / "report.csv")
    first.record("a@x.com", "a@x.com", api_key="sk-first-a")
    first.record("b@x.com", "b@x.com", invitation_url="http://p/ui/?invitation_id=1")
    # killed here: no finish(); a torn last line as a kill during a write would leave
    with journal_path(tmp_path / "report.csv").open("a") as fh:
        fh.write('{"schema": "litellm-usersync/journal", "user_id": "c@x')
    other = KeyJournal.open(tmp_path / "other.csv")  # another report name in the same folder
    other.record("d@x.com", "d@x.com", api_key="sk-other-d")
    other.close()

    second = KeyJournal.open(tmp_path / "report.csv")
    assert second.recorded == {"a@x.com": "sk-first-a", "d@x.com": "sk-other-d"}
    assert second.kept is not None and second.kept.name.startswith("report.csv.journal.")
    assert [e.api_key for e in read_journal(second.kept)] == ["sk-first-a", None]  # never overwritten
    assert read_journal(second.path) == []
    assert set(leftover_journals(tmp_path / "report.csv")) >= {second.kept, journal_path(tmp_path / "other.csv")}


def test_journal_rows_merge_key_and_link_per_user() -> None:
    j = KeyJournal(path=pathlib.Path("/nonexistent"))
    from litellm_usersync.files.journal import Entry

    j.entries = [
        Entry("a@x.com", "a@x.com", "internal_user", ("dev",), api_key="sk-a"),
        Entry("a@x.com", "", invitation_url="http://p/ui/?invitation_id=9"),
    ]
    rows = journal_rows(j.entries, SYNC_REPORT_COLUMNS, status="SUCCESS", reason="ended early")
    assert rows == [("ADDED", "a@x.com", "a@x.com", "internal_user", "dev", "sk-a", "SUCCESS", "ended early")]
    add_rows = journal_rows(
        j.entries,
        ("email", "role", "user_id", "team_name", "models", "api_keys", "invitation_url"),
        status="",
        reason="",
    )
    assert add_rows == [("a@x.com", "internal_user", "a@x.com", "dev", "", "sk-a", "http://p/ui/?invitation_id=9")]
