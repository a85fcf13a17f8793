"""What every use case shares: the caller's hooks, the safety options, the run lock, the signal-aware runner.

The library prints nothing: notices reach the caller through :class:`Hooks` (``say``, ``warn``), progress
through ``progress``, the plan before the first change through ``planned`` / ``applying``, a signal
through ``signalled``. The defaults are silent, so a Python caller gets a quiet run and a typed result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from litellm_usersync.errors import ConfigError
from litellm_usersync.files.backups import DEFAULT_BACKUP_DIR
from litellm_usersync.files.runlock import acquire_run_lock
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings

T = TypeVar("T")
P = TypeVar("P")

#: ``callback(phase, done, total)``: what a progress bar is fed
ProgressFn = Callable[[str, int, int], None]

#: overrides the state directory (tests, or several isolated setups on one account)
STATE_DIR_ENV = "USERSYNC_STATE_DIR"


def _silent(_text: str = "") -> None:
    return None


def _ignore(*_args: Any) -> None:
    return None


@contextlib.contextmanager
def no_progress(_enabled: bool = True) -> Iterator[ProgressFn]:
    yield lambda phase, done, total: None


@dataclass(frozen=True)
class Hooks(Generic[P]):
    """How a use case reaches its caller (every field optional; the defaults are silent).

    ``P`` is the use case's plan (``Plan``, ``AddPlan``, ``DeletePlan``).
    """

    #: a notice for the person running the command (the CLI: stdout in text mode, else stderr)
    say: Callable[[str], None] = _silent
    #: a notice that always goes to the error stream (the backup written, a lock taken over)
    warn: Callable[[str], None] = _silent
    #: ``progress(enabled)`` → a context manager yielding a :data:`ProgressFn` (the CLI: a rich bar)
    progress: Callable[[bool], AbstractContextManager[ProgressFn]] = no_progress
    #: the run lock is held (on a dry run: none is needed); nothing was read from the proxy yet
    started: Callable[[], None] = _ignore
    #: the plan, as soon as it is made (dry runs too), before anything is written or changed
    planned: Callable[[P], None] = _ignore
    #: about to change the proxy: the plan passed its brakes; the backup when it is already written
    applying: Callable[[P, Path | None], None] = _ignore
    #: a SIGINT/SIGTERM arrived; ``second`` is True when it ends the run now (the first finishes what is in
    #: flight)
    signalled: Callable[[signal.Signals, bool], None] = _ignore
    #: tests: an ``httpx`` transport and a sleep function for the client (None: the real ones)
    transport: Any = None
    sleep: Callable[[float], Awaitable[None]] | None = None

    def client(self, settings: ClientSettings) -> ProxyClient:
        return ProxyClient(settings, transport=self.transport, sleep=self.sleep)


@dataclass(frozen=True)
class SafetyOptions:
    """Where the safety net of a changing run lives: the backup, the audit log, the run lock."""

    backup_dir: str | Path = DEFAULT_BACKUP_DIR
    #: do not write a snapshot before changing anything
    no_backup: bool = False
    #: the audit log [default: ``audit.jsonl`` in ``backup_dir``]
    audit_log: str | Path | None = None
    #: where the run lock lives [default: :func:`state_dir`]
    state_dir: str | Path | None = None


def state_dir() -> Path:
    """``$USERSYNC_STATE_DIR``, else ``$XDG_STATE_HOME/litellm-usersync``, else ``~/.local/state/litellm-usersync``.

    Never the working directory: two cron jobs started in different folders must still see each other. (The
    one place below the CLI that reads the environment: the XDG base-directory rules say where state lives.)
    """
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.path.expanduser(os.environ.get("XDG_STATE_HOME") or "")
    # the XDG spec: a relative path is invalid and must be ignored
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "litellm-usersync"


@contextlib.contextmanager
def run_lock(
    base_url: str, *, command: str, safety: SafetyOptions, hooks: Hooks[Any], enabled: bool = True
) -> Iterator[None]:
    """Hold the run lock for this proxy for the whole use case (or raise ``RunLockedError``: nothing read or
    changed); released after the report files are written. ``enabled=False`` (a dry run) takes none."""
    if not enabled:
        hooks.started()
        yield
        return
    folder = Path(safety.state_dir) if safety.state_dir is not None else state_dir()
    try:
        lock = acquire_run_lock(folder, base_url, command=command)
    except OSError as exc:  # not writable, not a folder, no locks on this file system
        raise ConfigError(
            f"cannot take the run lock in {folder} ({exc}); nothing was read or changed. "
            f"Set {STATE_DIR_ENV} to a writable local folder"
        ) from None
    try:
        notice = lock.takeover_notice()
        if notice:
            hooks.warn(f"Note: {notice}")
        hooks.started()
        yield
    finally:
        lock.release()


def run_stoppable(coro_fn: Callable[[asyncio.Event], Awaitable[T]], hooks: Hooks[Any]) -> T:
    """Run a coroutine in a new event loop; the first SIGINT/SIGTERM sets the stop event (finish in-flight
    work, then report), the second cancels it: its handlers write what they hold (the report with the keys
    received so far) and ``KeyboardInterrupt`` reaches the caller."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, _on_signal, stop, sig, task, hooks)
                installed.append(sig)
        try:
            return await coro_fn(stop)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def _on_signal(stop: asyncio.Event, sig: signal.Signals, task: asyncio.Task[Any], hooks: Hooks[Any]) -> None:
    second = stop.is_set()
    hooks.signalled(sig, second)
    if second:
        task.cancel()
        return
    stop.set()


def log_plan(plan: Any) -> None:
    """``--debug``: the difference detection, one line per user (why it is in the plan, or left alone)."""
    log = logging.getLogger("litellm_usersync.plan")
    if log.isEnabledFor(logging.DEBUG):
        from litellm_usersync.render.report import explain_plan

        for line in explain_plan(plan):
            log.debug("%s", line)
