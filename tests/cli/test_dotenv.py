""".env is read from the current directory only (README, --master-key help), never from a parent directory."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from litellm_usersync.cli._common import load_dotenv_once

PROBE = "USERSYNC_TEST_DOTENV_PROBE"


@pytest.fixture
def probe() -> Iterator[None]:
    os.environ.pop(PROBE, None)
    yield
    os.environ.pop(PROBE, None)


def test_a_dotenv_in_a_parent_directory_is_not_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, probe: None
) -> None:
    """Issue 9 §4: python-dotenv's find_dotenv walked up, so ~/.env could point a run at another proxy."""
    (tmp_path / ".env").write_text(f"{PROBE}=from-the-parent\n")
    child = tmp_path / "project"
    child.mkdir()
    monkeypatch.chdir(child)
    load_dotenv_once()
    assert PROBE not in os.environ


def test_a_dotenv_in_the_current_directory_is_read_and_the_environment_wins(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, probe: None
) -> None:
    (tmp_path / ".env").write_text(f"{PROBE}=from-the-file\n")
    monkeypatch.chdir(tmp_path)
    load_dotenv_once()
    assert os.environ[PROBE] == "from-the-file"
    os.environ[PROBE] = "from-the-environment"
    load_dotenv_once()
    assert os.environ[PROBE] == "from-the-environment"


def test_a_dotenv_folder_is_not_a_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, probe: None) -> None:
    (tmp_path / ".env").mkdir()
    monkeypatch.chdir(tmp_path)
    load_dotenv_once()  # no error, nothing read
    assert PROBE not in os.environ
