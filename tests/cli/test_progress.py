"""The progress bar (issue 11): counts what was done, shows an ETA, and is never redrawn after Ctrl-C."""

from __future__ import annotations

import pytest

from litellm_usersync.cli import _progress


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "stderr_is_tty", lambda: True)
    monkeypatch.setattr(_progress, "_FROZEN", [])
    monkeypatch.setattr(_progress, "_ACTIVE", [])


def test_the_bar_counts_rows_and_shows_an_eta(capsys: pytest.CaptureFixture[str]) -> None:
    with _progress.progress_bar() as update:
        update("reading users", 1200, 2000)
    text = capsys.readouterr().err
    assert "reading users" in text and "1200/2000" in text and "ETA" in text


def test_after_a_signal_no_bar_is_drawn_again(capsys: pytest.CaptureFixture[str]) -> None:
    with _progress.progress_bar() as update:
        update("deleting users", 500, 2000)
        _progress.freeze_progress_bars()
        assert "500/2000" in capsys.readouterr().err  # frozen as it was
        update("deleting users", 1500, 2000)  # the run finishes what is in flight: the bar is not redrawn
    with _progress.progress_bar() as update:  # a later phase draws nothing either
        update("verifying", 1, 10)
    assert capsys.readouterr().err.strip() == ""


def test_nothing_to_read_is_a_full_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """Found on a real terminal: a proxy without teams showed 'reading teams 0/1' until the users were read."""
    with _progress.progress_bar() as update:
        update("reading teams", 0, 0)
    text = capsys.readouterr().err
    assert "1/1" in text and "0/1" not in text
