"""One real run per proxy at a time, with real processes against the real proxy (issue 9 §4).

The first run is a real ``sync_user.py`` process whose first request (``/key/info``) the loopback fault proxy
holds for a few seconds, so it is inside its run (lock taken, proxy not read yet) while the second starts.
Both talk to the proxy through the same URL: the lock is keyed by the proxy URL, in the state directory
(``USERSYNC_STATE_DIR``, set per test by the conftest), not in either working directory.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from click.testing import Result

from ..faultproxy import Decision, FaultConfig, FaultProxy
from .conftest import REPO, Proxy, live_users, write

HOLD_S = 4.0
CSV = "email,role,team_name\nkeep@example.com,internal_user,\nnew@example.com,internal_user,\n"


def hold_first_identity_check(method: str, target: str, n: int) -> Decision | None:
    if target.split("?")[0] == "/key/info" and n == 0:
        return Decision("latency", HOLD_S, after=False)
    return None


def start_sync(proxy: Proxy, url: str, csv_path: pathlib.Path, cwd: pathlib.Path) -> subprocess.Popen[str]:
    env = {**os.environ, **proxy.env(), "LITELLM_BASE_URL": url}
    return subprocess.Popen(
        [sys.executable, str(REPO / "sync_user.py"), "--csv-file", str(csv_path), "--no-backup"],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_first_request(fp: FaultProxy, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not fp.log:
        assert time.monotonic() < deadline, "the first run never reached the proxy"
        time.sleep(0.05)


def test_a_second_real_run_is_refused_at_once_and_a_dry_run_is_not(
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    seed_users([("keep@example.com", "internal_user", [])])
    csv_path = write(workdir / "users.csv", CSV)
    other_folder = workdir / "cron-job-1"
    other_folder.mkdir()
    with FaultProxy(clean_proxy.base_url, FaultConfig(script=hold_first_identity_check)) as fp:
        first = start_sync(clean_proxy, fp.url, csv_path, cwd=other_folder)
        try:
            wait_for_first_request(fp)
            began = time.monotonic()
            second = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_BASE_URL": fp.url + "/"})
            assert time.monotonic() - began < HOLD_S, "refused at once, not after waiting"
            assert second.exit_code == 2, second.output
            assert f"pid {first.pid} on host {socket.gethostname()}, started " in second.stderr
            assert "another litellm-usersync run against" in second.stderr and "'sync'" in second.stderr
            assert not (workdir / "user_sync_result.csv").exists() and not (workdir / "usersync-backups").exists()
            dry = cli_run("sync", "--csv-file", "users.csv", "--dry-run", env={"LITELLM_BASE_URL": fp.url})
            assert dry.exit_code == 0, dry.output  # a dry run needs no lock
            assert "Users to add: 1" in dry.output
        finally:
            out, errs = first.communicate(timeout=120)
    assert first.returncode == 0, out + errs
    assert set(live_users(clean_proxy)) == {"keep@example.com", "new@example.com"}
    again = cli_run("sync", "--csv-file", "users.csv")  # released at the end of the first run
    assert again.exit_code == 0, again.output
    assert "Users to add: 0" in again.output and "took over" not in again.stderr


def test_a_killed_runs_lock_is_taken_over_and_said_so(
    seed_users: Callable[..., None],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    seed_users([("keep@example.com", "internal_user", [])])
    csv_path = write(workdir / "users.csv", CSV)
    with FaultProxy(clean_proxy.base_url, FaultConfig(script=hold_first_identity_check)) as fp:
        first = start_sync(clean_proxy, fp.url, csv_path, cwd=workdir)
        wait_for_first_request(fp)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        r = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert r.exit_code == 0, r.output + r.stderr
    who = f"'sync', pid {first.pid} on host {socket.gethostname()}"
    assert f"Note: took over a stale run lock left by {who}" in r.stderr
    assert "that pid is no longer running" in r.stderr
    assert set(live_users(clean_proxy)) == {"keep@example.com", "new@example.com"}
