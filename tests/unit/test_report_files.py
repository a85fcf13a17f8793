"""Report files: never into a folder that does not exist, checked before any change, and a report that
still holds keys from an earlier run is kept, not overwritten (its keys exist nowhere else)."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from litellm_usersync.errors import InputError
from litellm_usersync.files.reportfiles import check_output_path, keep_previous_secrets, write_csv_file


def test_a_missing_folder_is_an_error_not_created(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_csv_file(tmp_path / "nope" / "r.csv", ("a",), [])
    assert not (tmp_path / "nope").exists()
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "r.csv")


def test_unwritable_targets_are_refused_before_anything_runs(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        check_output_path(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores the mode
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(InputError, match="permission denied"):
            check_output_path(locked / "r.csv")
    finally:
        locked.chmod(0o700)
    check_output_path(tmp_path / "r.csv")  # fine


def test_a_report_holding_keys_is_kept_aside(tmp_path: pathlib.Path) -> None:
    report = tmp_path / "user_sync_result.csv"
    write_csv_file(report, ("action", "api_keys"), [("ADDED", "sk-abcdef0123")], secret=True)
    kept = keep_previous_secrets(report)
    assert kept is not None and kept.parent == tmp_path and kept.name.startswith("user_sync_result.")
    assert kept.suffix == ".csv" and "sk-abcdef0123" in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert not report.exists()
    # a second report from the same second does not overwrite the first kept one
    write_csv_file(report, ("action", "api_keys"), [("ADDED", "sk-zzzzzz0123")], secret=True)
    os.utime(report, (kept.stat().st_mtime, kept.stat().st_mtime))
    again = keep_previous_secrets(report)
    assert again is not None and again != kept and "sk-zzzzzz0123" in again.read_text()


@pytest.mark.parametrize(
    "rows",
    [[], [("UNCHANGED", "")]],
    ids=["empty", "no-keys"],
)
def test_a_report_without_secrets_is_simply_replaced(tmp_path: pathlib.Path, rows: list[tuple[str, str]]) -> None:
    report = tmp_path / "r.csv"
    write_csv_file(report, ("action", "api_keys"), rows, secret=True)
    assert keep_previous_secrets(report) is None
    assert report.exists()
    assert keep_previous_secrets(tmp_path / "absent.csv") is None


@pytest.mark.parametrize("secret", [False, True])
def test_every_csv_the_tool_writes_is_0600_even_over_a_0644_file(tmp_path: pathlib.Path, secret: bool) -> None:
    """Issue 9 §4: delete's result and error files, add's error file and --update-existing output hold emails."""
    target = tmp_path / "user_del_result.csv"
    target.write_text("old\n")
    target.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        write_csv_file(target, ("email",), [("a@x.com",)], secret=secret)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().splitlines() == ["email", "a@x.com"]
