"""The run lock: one real run per proxy URL, refused at once with the holder; a dead holder's lock taken over.

Real files and real processes (a holder in another process is the case that matters), no proxy.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from litellm_usersync.files.runlock import RunLockedError, acquire_run_lock, lock_path, normalize_proxy_url

URL = "http://127.0.0.1:4000"

HOLDER = """
import sys, time
from litellm_usersync.files.runlock import acquire_run_lock
lock = acquire_run_lock(sys.argv[1], sys.argv[2], command="sync")
print("held", flush=True)
time.sleep(60)
"""


def dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def start_holder(state: pathlib.Path, url: str = URL, cwd: pathlib.Path | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state), url], stdout=subprocess.PIPE, text=True, cwd=cwd)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000/"),
        ("http://127.0.0.1:4000", "HTTP://127.0.0.1:4000//"),
        ("https://Proxy.Example.com", "https://proxy.example.com:443/"),
        ("http://proxy.example.com:80", "http://proxy.example.com"),
    ],
)
def test_the_lock_is_keyed_by_the_normalised_proxy_url(tmp_path: pathlib.Path, one: str, other: str) -> None:
    assert normalize_proxy_url(one) == normalize_proxy_url(other)
    assert lock_path(tmp_path, one) == lock_path(tmp_path, other)


def test_other_proxies_have_other_locks(tmp_path: pathlib.Path) -> None:
    paths = {lock_path(tmp_path, u) for u in (URL, "http://127.0.0.1:4001", "http://localhost:4000", URL + "/x")}
    assert len(paths) == 4
    assert lock_path(tmp_path, URL).name.startswith("127.0.0.1_4000-")


def test_a_second_run_is_refused_at_once_naming_the_holder(tmp_path: pathlib.Path) -> None:
    start = datetime(2026, 12, 1, 21, 0, 0, tzinfo=UTC)
    with acquire_run_lock(tmp_path, URL, command="sync", now=start) as lock:
        with pytest.raises(RunLockedError) as info:
            acquire_run_lock(tmp_path, URL + "/", command="delete")
        text = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}, started 2026-12-01T21:00:00Z" in text
        assert "'sync'" in text and str(lock.path) in text and "nothing was read or changed" in text
        acquire_run_lock(tmp_path, "http://127.0.0.1:4001", command="sync").release()  # another proxy: fine
    again = acquire_run_lock(tmp_path, URL, command="sync")  # released: the next run gets it
    assert again.taken_over is None and again.takeover_notice() is None
    again.release()
    assert lock.path.read_text() == "", "a released lock names nobody"


def test_files_are_private(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    with acquire_run_lock(state, URL, command="sync") as lock:
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE(lock.path.parent.stat().st_mode) == 0o700
        doc = json.loads(lock.path.read_text())
        assert doc["pid"] == os.getpid() and doc["base_url"] == URL and doc["command"] == "sync"


def test_a_holder_in_another_process_and_its_stale_lock_after_a_kill(tmp_path: pathlib.Path) -> None:
    holder = start_holder(tmp_path, cwd=tmp_path)  # another working directory: still the same lock
    try:
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on host"):
            acquire_run_lock(tmp_path, URL, command="sync")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = acquire_run_lock(tmp_path, URL, command="sync")  # the kernel released the dead run's lock
    try:
        assert lock.taken_over is not None and lock.taken_over.pid == holder.pid
        notice = lock.takeover_notice()
        assert notice is not None and f"pid {holder.pid}" in notice and "no longer running" in notice
    finally:
        lock.release()


def test_a_file_left_by_a_dead_pid_is_taken_over(tmp_path: pathlib.Path) -> None:
    path = lock_path(tmp_path, URL)
    path.parent.mkdir(parents=True)
    pid = dead_pid()
    old = {"pid": pid, "host": socket.gethostname(), "started_at": "2026-12-01T03:00:00Z", "command": "add"}
    path.write_text(json.dumps({**old, "base_url": URL}))
    with acquire_run_lock(tmp_path, URL, command="sync") as lock:
        notice = lock.takeover_notice()
        assert notice is not None
        assert f"'add', pid {pid} on host {socket.gethostname()}, started 2026-12-01T03:00:00Z" in notice


def test_a_lock_naming_another_host_is_refused_not_taken_over(tmp_path: pathlib.Path) -> None:
    path = lock_path(tmp_path, URL)
    path.parent.mkdir(parents=True)
    doc = {"pid": 4242, "host": "cron-box-2", "started_at": "2026-12-01T03:00:00Z", "command": "sync", "base_url": URL}
    path.write_text(json.dumps(doc))
    with pytest.raises(RunLockedError) as info:
        acquire_run_lock(tmp_path, URL, command="sync")
    assert "pid 4242 on host cron-box-2" in str(info.value) and f"delete {path}" in str(info.value)
    assert json.loads(path.read_text()) == doc, "the other host's record is kept"
