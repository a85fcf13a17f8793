"""One real run per proxy at a time: a lock file per proxy URL in the user's state directory.

Two runs against the same proxy (two cron jobs, a cron job and an admin at a terminal) would each plan from
their own read and undo or double each other's changes. A real run (sync, add, delete, restore; never a dry
run) takes the lock before it reads the proxy and holds it to the end; a second one is refused at once with
the holder's pid, host and start time.

The lock is an ``flock`` on ``<state dir>/locks/<host>_<port>-<hash>.lock``, held on an open file for the
whole run, so the kernel releases it when the process dies however it dies (SIGKILL, a crash). The file
also records who holds it (JSON: pid, host, start time, command, URL) for the refusal message; it is emptied
on release and never deleted (deleting a locked file lets a third run lock a new file beside it). A file
still naming a holder while nobody holds the lock was left by a run that died: it is taken over, and said
so. A holder on another host (a state directory shared over NFS, where ``flock`` may not reach the other
host) cannot be checked from here, so it is refused, naming the file to delete if that run is gone.

The state directory is chosen by the CLI (``USERSYNC_STATE_DIR``, else ``$XDG_STATE_HOME/litellm-usersync``,
else ``~/.local/state/litellm-usersync``): never the working directory, so two cron jobs started in
different folders still collide.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from litellm_usersync.errors import UsersyncError


class RunLockedError(UsersyncError):
    """Another real run against the same proxy holds the lock. Nothing was read or changed (exit 2)."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: str
    command: str
    base_url: str

    def describe(self) -> str:
        return f"'{self.command}', pid {self.pid} on host {self.host}, started {self.started_at}"


def normalize_proxy_url(base_url: str) -> str:
    """The lock key: scheme and host lower-cased, default ports dropped, trailing slashes removed."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default = port is None or (scheme, port) in (("http", 80), ("https", 443))
    netloc = host if default else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def lock_path(state_dir: str | Path, base_url: str) -> Path:
    """``<state_dir>/locks/<host>_<port>-<12 hex of the normalised URL>.lock``."""
    url = normalize_proxy_url(base_url)
    parts = urlsplit(url)
    name = f"{parts.hostname or 'proxy'}_{parts.port or ''}"
    readable = "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(state_dir) / "locks" / f"{readable.rstrip('_')}-{digest}.lock"


def _read_holder(fd: int) -> LockHolder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        doc = json.loads(raw.decode("utf-8"))
        return LockHolder(
            pid=int(doc["pid"]),
            host=str(doc["host"]),
            started_at=str(doc["started_at"]),
            command=str(doc.get("command") or "?"),
            base_url=str(doc.get("base_url") or ""),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None  # empty (released cleanly) or not ours


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class RunLock:
    """A held run lock; :meth:`release` (or leaving the ``with`` block) lets the next run in."""

    def __init__(self, path: Path, fd: int, holder: LockHolder, taken_over: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        #: the dead run whose lock this one took over, if any
        self.taken_over = taken_over
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a released lock names nobody, so it is never mistaken for a dead run
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def takeover_notice(self) -> str | None:
        """What to tell the admin when this run took over a lock left by a run that died (None otherwise)."""
        old = self.taken_over
        if old is None:
            return None
        why = (
            "that pid is no longer running"
            if not _pid_alive(old.pid)
            else "that pid no longer holds the lock (its number now belongs to another process)"
        )
        return f"took over a stale run lock left by {old.describe()}: {why} ({self.path})"

    def close(self) -> None:
        self.release()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run_lock(state_dir: str | Path, base_url: str, *, command: str, now: datetime | None = None) -> RunLock:
    """Take the run lock for ``base_url`` or raise :class:`RunLockedError` at once (never waits).

    The folders are created mode 0700 and the lock file 0600 (it names a host and a URL).
    """
    path = lock_path(state_dir, base_url)
    for folder in (path.parent.parent, path.parent):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _read_holder(fd)
            who = holder.describe() if holder else "a run that has not yet said who it is"
            raise RunLockedError(
                f"another litellm-usersync run against {normalize_proxy_url(base_url)} is in progress ({who}); "
                f"nothing was read or changed. Run again when it has finished (lock: {path})"
            ) from None
        me = socket.gethostname()
        previous = _read_holder(fd)
        if previous is not None and previous.host != me:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise RunLockedError(
                f"the run lock for {normalize_proxy_url(base_url)} names a run on another host "
                f"({previous.describe()}), which cannot be checked from here; nothing was read or changed. "
                f"If that run is no longer going, delete {path} and run again"
            )
        holder = LockHolder(
            pid=os.getpid(),
            host=me,
            started_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            command=command,
            base_url=normalize_proxy_url(base_url),
        )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(holder.__dict__) + "\n").encode("utf-8"))
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    taken_over = previous if previous is not None and previous.pid != os.getpid() else None
    return RunLock(path, fd, holder, taken_over)
