"""The ``run`` fixture: invoke the CLI against a scripted proxy injected through the click context."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from litellm_usersync.cli import cli
from litellm_usersync.cli._common import Context

from ._scripted import KEY, TEAMS, fake_proxy


@pytest.fixture
def run(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Result, list[str]]]:
    monkeypatch.chdir(tmp_path)

    def go(
        *args: str,
        users: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        keys: list[dict[str, Any]] | None = None,
    ) -> tuple[Result, list[str]]:
        calls: list[str] = []
        transport = httpx.MockTransport(fake_proxy(users or [], TEAMS, calls, keys))
        result = CliRunner().invoke(
            cli,
            list(args),
            obj=Context(transport=transport),
            env={"LITELLM_MASTER_KEY": KEY, "LITELLM_BASE_URL": "http://proxy.test", **(env or {})},
        )
        return result, calls

    return go


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # the run lock lives in the user's state directory: tests get their own, never ~/.local/state
    monkeypatch.setenv("USERSYNC_STATE_DIR", str(tmp_path_factory.mktemp("state")))
