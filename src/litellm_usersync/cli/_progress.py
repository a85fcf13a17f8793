"""A rich progress bar on stderr when it is a terminal; silence otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ._common import stderr_is_tty

ProgressFn = Callable[[str, int, int], None]

#: the bars on screen now; a signal freezes them (:func:`freeze_progress_bars`) so the messages that follow are
#: not overdrawn by a bar that keeps refreshing
_ACTIVE: list[Any] = []
#: set by a signal: no bar is drawn again in this process (the run is finishing what is in flight)
_FROZEN: list[bool] = []


def freeze_progress_bars() -> None:
    """Stop redrawing every bar on screen (after Ctrl-C: the bar stays as it was, the messages stay readable)."""
    _FROZEN.append(True)
    for progress in list(_ACTIVE):
        progress.stop()
        _ACTIVE.remove(progress)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressFn]:
    """Yield a ``callback(phase, done, total)``; draws bars only on an interactive stderr.

    ``done`` and ``total`` count users (or teams, memberships): what was done, not requests or pages. A bulk
    step advances by the rows each batch did. Each bar shows the elapsed time and an estimate of what is left.
    """
    if not enabled or _FROZEN or not stderr_is_tty():
        yield lambda phase, done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if progress not in _ACTIVE:
            return  # frozen by a signal: never drawn again
        # nothing to do (a proxy without teams) is a full bar, not "0/1" until the other reads finish
        shown_total, completed = (1, 1) if total <= 0 else (total, min(done, total))
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=shown_total)
        progress.update(tasks[phase], completed=completed, total=shown_total)

    with progress:
        _ACTIVE.append(progress)
        try:
            yield update
        finally:
            if progress in _ACTIVE:
                _ACTIVE.remove(progress)
