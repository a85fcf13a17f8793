"""A rich progress bar on stderr when it is a terminal; silence otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ._common import stderr_is_tty

ProgressFn = Callable[[str, int, int], None]


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressFn]:
    """Yield a ``callback(phase, done, total)``; draws bars only on an interactive stderr."""
    if not enabled or not stderr_is_tty():
        yield lambda phase, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=max(total, 1))
        progress.update(tasks[phase], completed=min(done, total), total=max(total, 1))

    with progress:
        yield update
