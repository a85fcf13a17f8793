"""The run lock as the commands take it: the state directory from the environment, the lock held to the end."""

from __future__ import annotations

import os
from pathlib import Path

import click

from litellm_usersync.errors import ConfigError
from litellm_usersync.files.runlock import RunLock, acquire_run_lock

from ._common import err

#: overrides the state directory (tests, or several isolated setups on one account)
STATE_DIR_ENV = "USERSYNC_STATE_DIR"


def state_dir() -> Path:
    """``$USERSYNC_STATE_DIR``, else ``$XDG_STATE_HOME/litellm-usersync``, else ``~/.local/state/litellm-usersync``.

    Never the working directory: two cron jobs started in different folders must still see each other.
    """
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.path.expanduser(os.environ.get("XDG_STATE_HOME") or "")
    # the XDG spec: a relative path is invalid and must be ignored
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "litellm-usersync"


def hold_run_lock(base_url: str, *, command: str) -> RunLock:
    """Take the run lock for this proxy (or raise ``RunLockedError``: exit 2, nothing read or changed) and keep
    it until the command's click context closes, i.e. after the report is written and the exit code chosen."""
    folder = state_dir()
    try:
        lock = acquire_run_lock(folder, base_url, command=command)
    except OSError as exc:  # not writable, not a folder, no locks on this file system
        raise ConfigError(
            f"cannot take the run lock in {folder} ({exc}); nothing was read or changed. "
            f"Set {STATE_DIR_ENV} to a writable local folder"
        ) from None
    notice = lock.takeover_notice()
    if notice:
        err(f"Note: {notice}")
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(lock.release)
    return lock
