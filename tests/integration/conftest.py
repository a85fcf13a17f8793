"""Integration tests against a real LiteLLM Proxy.

The proxy comes from LITELLM_BASE_URL / LITELLM_MASTER_KEY (``.ci/run`` starts ``../shared/litellm-proxy``
and exports them). Without them the tests skip with a reason, except in CI (``CI=true``), where a missing
proxy fails the run. ``reset`` (from ``LITELLM_PROXY_TOOL``, default ``../shared/litellm-proxy``) empties the
proxy before each test.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from litellm_usersync.cli import cli
from litellm_usersync.models import version_tuple
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings

T = TypeVar("T")
REPO = pathlib.Path(__file__).resolve().parents[2]
#: the LITELLM_* variables an admin exports for real use must never be enough to let the tests erase a proxy
ERASE_CONSENT = "USERSYNC_ERASE_TEST_PROXY"
TOOL = pathlib.Path(os.environ.get("LITELLM_PROXY_TOOL", REPO.parent / "shared" / "litellm-proxy"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


_CMP: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


def version_matches(version: str | None, spec: str) -> bool:
    """``spec`` like ``">=1.74.15"``, ``"<1.100"`` or ``"==1.74.0"``, compared on (major, minor, patch)."""
    op = next(o for o in (">=", "==", "<") if spec.startswith(o))
    have, want = version_tuple(version), version_tuple(spec[len(op) :])
    assert want is not None, spec
    return have is not None and _CMP[op](have[: len(want)], want)


@pytest.fixture(scope="session")
def litellm_version(proxy: Proxy) -> str:
    """The real proxy's LiteLLM version (the tests run on 1.110.2, 1.74.15.post2 and 1.74.0)."""

    async def go(c: ProxyClient) -> str | None:
        return await c.proxy_version()

    version = proxy.run(go)
    assert version, "the proxy did not say its version"
    return version


@pytest.fixture(autouse=True)
def _litellm_marker(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.litellm(">=1.74.15", reason=...)``: the test is about behaviour of those versions only."""
    marker = request.node.get_closest_marker("litellm")
    if marker is None:
        return
    version = request.getfixturevalue("litellm_version")
    for spec in marker.args:
        if not version_matches(version, spec):
            why = marker.kwargs.get("reason", "version-specific behaviour")
            pytest.skip(f"LiteLLM {spec} only ({why}); this proxy is {version}")


@dataclass(frozen=True)
class Proxy:
    base_url: str
    master_key: str = field(repr=False)  # a failing assert shows the fixture: never the key

    def settings(self, **kw: Any) -> ClientSettings:
        return ClientSettings(base_url=self.base_url, master_key=self.master_key, **kw)

    def run(self, fn: Callable[[ProxyClient], Awaitable[T]], **kw: Any) -> T:
        """Run ``fn(client)`` with a fresh library client (arrange and assert through the library)."""

        async def go() -> T:
            async with ProxyClient(self.settings(**kw)) as c:
                return await fn(c)

        return asyncio.run(go())

    def env(self) -> dict[str, str]:
        return {"LITELLM_BASE_URL": self.base_url, "LITELLM_MASTER_KEY": self.master_key}


@pytest.fixture(scope="session")
def proxy() -> Proxy:
    url, key = os.environ.get("LITELLM_BASE_URL"), os.environ.get("LITELLM_MASTER_KEY")
    if not (url and key):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no proxy: LITELLM_BASE_URL / LITELLM_MASTER_KEY are not set (.ci/run starts it)")
        pytest.skip(
            "no LiteLLM Proxy configured: set LITELLM_BASE_URL and LITELLM_MASTER_KEY "
            '(e.g. eval "$(../shared/litellm-proxy/start)") to run the integration tests'
        )
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        pytest.fail(f"integration tests only run against a loopback proxy, not {url}")
    if os.environ.get(ERASE_CONSENT) != "1":
        reason = (
            f"the integration tests EMPTY the proxy at {url} (every user, team and key): set {ERASE_CONSENT}=1 "
            "to confirm it is a disposable test proxy (e.g. ../shared/litellm-proxy)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Proxy(url, key)


async def create_users(c: ProxyClient, bodies: list[dict[str, Any]]) -> None:
    """Arrange users (``/user/new`` bodies, ``teams`` optional): one batch per 500 where the proxy has
    ``/management/v1/users/bulk`` (1.110), else (1.74) one ``/user/new`` each without teams, then one
    ``/team/member_add`` list per team: 1.74 writes rosters without a lock, so concurrent creates joining one
    team would lose roster entries. Asserts that every user was created."""
    rows = await c.bulk_create_users(bodies)
    if rows is not None:
        assert all(r.success for r in rows), [r for r in rows if not r.success]
        return
    sem = asyncio.Semaphore(8)

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            await c.create_user({k: v for k, v in body.items() if k != "teams"})

    await asyncio.gather(*(one(b) for b in bodies))
    per_team: dict[str, list[tuple[str, str | None]]] = {}
    for b in bodies:
        for t in b.get("teams") or ():
            per_team.setdefault(t, []).append((b["user_id"], b.get("user_email")))
    for team_id, members in per_team.items():
        for i in range(0, len(members), 100):
            added = await c.add_team_members(team_id, members[i : i + 100])
            assert added == {uid for uid, _ in members[i : i + 100]}


def reset_proxy() -> None:
    if not (TOOL / "reset").exists():
        pytest.fail(f"cannot reset the proxy: {TOOL / 'reset'} not found (set LITELLM_PROXY_TOOL)")
    subprocess.run([str(TOOL / "reset")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def clean_proxy(proxy: Proxy) -> Proxy:
    """The proxy, emptied."""
    reset_proxy()
    return proxy


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli_run(proxy: Proxy, workdir: pathlib.Path) -> Callable[..., Result]:
    """Invoke ``litellm-usersync ARGS`` in-process with the proxy's env; returns click's Result."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), env={**proxy.env(), **(env or {})}, catch_exceptions=False)

    return run


@pytest.fixture
def script_run(proxy: Proxy, workdir: pathlib.Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a seed script (``python sync_user.py ...``) as a real process."""

    def run(
        script: str, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **proxy.env(), **(env or {})}
        for name in unset:
            full_env.pop(name, None)
        return subprocess.run(
            [sys.executable, str(REPO / script), *args],
            cwd=workdir,
            env=full_env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    return run


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def make_teams(clean_proxy: Proxy) -> Callable[..., dict[str, str]]:
    """Create teams by alias on the (clean) proxy; returns alias -> team_id."""

    def make(*aliases: str) -> dict[str, str]:
        async def go(c: ProxyClient) -> dict[str, str]:
            out = {}
            for a in aliases:
                out[a] = (await c.create_team(a))["team_id"]
            return out

        return clean_proxy.run(go)

    return make


def live_users(proxy: Proxy) -> dict[str, dict[str, Any]]:
    """email (lower) -> user row, for users with an email."""

    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_users()

    return {str(u["user_email"]).lower(): u for u in proxy.run(go) if u.get("user_email")}


def live_team_names(proxy: Proxy) -> dict[str, str]:
    """team_id -> alias."""

    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_teams()

    return {t["team_id"]: t.get("team_alias") or t["team_id"] for t in proxy.run(go)}


def teams_of(proxy: Proxy, row: dict[str, Any]) -> set[str]:
    names = live_team_names(proxy)
    return {names.get(t, t) for t in row.get("teams") or []}


@pytest.fixture
def seed_users(clean_proxy: Proxy) -> Callable[..., None]:
    """Create users directly through the library (email, role, [team ids]) without keys."""

    def seed(rows: list[tuple[str, str, list[str]]]) -> None:
        async def go(c: ProxyClient) -> None:
            for email, role, teams in rows:
                await c.create_user(
                    {
                        "user_id": email.strip().lower(),
                        "user_email": email,
                        "user_role": role,
                        "teams": teams,
                        "auto_create_key": False,
                    }
                )

        clean_proxy.run(go)

    return seed


def pytest_report_header() -> list[str]:
    url = os.environ.get("LITELLM_BASE_URL")
    return [f"litellm proxy: {url or 'not configured (integration tests skip)'}"]


@pytest.fixture(autouse=True)
def _no_proxy_env_leak(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # a developer's HTTP(S)_PROXY must not reroute loopback test traffic
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # the run lock lives in the user's state directory: tests get their own, never ~/.local/state
    monkeypatch.setenv("USERSYNC_STATE_DIR", str(tmp_path_factory.mktemp("state")))
