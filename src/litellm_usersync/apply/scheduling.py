"""Scheduling one run's writes: bounded workers, the stop flag, the run-ending error, progress, and the rounds
of roster writes (one team's writes never in parallel, one user's never in parallel either).

Only this module decides *when* something runs; the appliers decide *what* is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from litellm_usersync.errors import AuthError
from litellm_usersync.models import AddMembership, Outcome, RemoveMembership
from litellm_usersync.settings import DEFAULT_CONCURRENCY

#: ``on_progress(phase, done, total)``
ProgressCallback = Callable[[str, int, int], None]
T = TypeVar("T")
M = TypeVar("M", AddMembership, RemoveMembership)


@dataclass
class _Phase:
    name: str = ""
    done: int = 0
    total: int = 0


class Progress:
    """The current phase's progress, sent to the callback as it advances.

    "Current" is per asyncio task (a context variable): two phases that overlap (``Executor.apply_plan`` runs
    the role changes beside the creates and deletes) each advance their own phase, never the other's.
    """

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self._current: ContextVar[_Phase | None] = ContextVar(f"usersync-progress-{id(self)}", default=None)

    def _phase(self) -> _Phase:
        phase = self._current.get()
        if phase is None:
            phase = _Phase()
            self._current.set(phase)
        return phase

    @property
    def phase(self) -> str:
        return self._phase().name

    def start(self, phase: str, total: int) -> None:
        self._current.set(_Phase(phase, 0, total))
        if self.callback:
            self.callback(phase, 0, total)

    def advance(self, n: int = 1) -> None:
        phase = self._phase()
        phase.done += n
        if self.callback:
            self.callback(phase.name, phase.done, phase.total)


async def run_bounded(items: Sequence[T], fn: Callable[[T], Awaitable[None]], limit: int) -> None:
    """Call ``fn`` for every item, at most ``limit`` at once.

    ``limit`` workers take the next item from one shared iterator, so a phase of 100,000 users holds
    ``limit`` coroutines, not 100,000 tasks created up front. An exception ends its worker and propagates
    (as with :func:`asyncio.gather`).
    """
    pending = iter(items)

    async def worker() -> None:
        for item in pending:  # shared: each item is taken by exactly one worker
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(min(max(1, limit), len(items)))))


class Run:
    """What every applier of one run shares: the concurrency bound, the stop flag, the error that ends the
    run (bad credentials), the progress of the current phase, and the plan's team names for messages."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        stop: asyncio.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.stop = stop or asyncio.Event()
        self.progress = Progress(on_progress)
        #: credentials refused mid-run: nothing new starts, the report says so
        self.fatal: AuthError | None = None
        #: a team id as the messages name it (the plan's ``team_label`` once a plan is applied)
        self.label: Callable[[str], str] = str
        self._sem = asyncio.Semaphore(self.concurrency)
        #: this task holds one of the bound's slots (a batch request sent from inside a worker takes no second)
        self._holding: ContextVar[bool] = ContextVar(f"usersync-slot-{id(self)}", default=False)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.fatal is not None

    def abort(self, exc: AuthError) -> None:
        """Remember the first run-ending error; the run stops starting new work."""
        self.fatal = self.fatal or exc

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One request's place within the bound: every write of a run, batch or per user, is sent holding one,
        so two phases that overlap never have more than ``concurrency`` requests in flight between them. A
        task that already holds a slot (a worker of :meth:`each`) uses its own."""
        if self._holding.get():
            yield
            return
        async with self._sem:
            token = self._holding.set(True)
            try:
                yield
            finally:
                self._holding.reset(token)

    def background(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task of its own, beside what follows, holding no slot of its caller's: whatever
        it sends takes its own place within the bound."""
        context = contextvars.copy_context()
        context.run(self._holding.set, False)
        return asyncio.get_running_loop().create_task(coro, context=context)

    async def each(
        self, items: Sequence[T], fn: Callable[[T], Awaitable[list[Outcome]]], *, advance: bool = True
    ) -> list[Outcome]:
        """``fn`` for every item within the bound; nothing new starts once the run is stopping. Bad credentials
        end the run (:meth:`abort`) instead of propagating. ``advance``: the progress counts the outcomes."""
        out: list[Outcome] = []

        async def one(item: T) -> None:
            if self.stopping:
                return
            async with self.slot():
                if self.stopping:
                    return
                try:
                    res = await fn(item)
                except AuthError as exc:
                    self.abort(exc)
                    return
            out.extend(res)
            if advance:
                self.progress.advance(len(res))

        await run_bounded(items, one, self.concurrency)
        return out

    async def bounded(self, items: Sequence[T], fn: Callable[[T], Awaitable[None]]) -> None:
        """``fn`` for every item within the bound, even when stopping (bookkeeping of work already done)."""

        async def one(item: T) -> None:
            async with self.slot():
                await fn(item)

        await run_bounded(items, one, self.concurrency)


def rounds(actions: Sequence[M]) -> list[dict[str, list[M]]]:
    """Split roster writes into rounds of ``team_id -> actions`` where no user appears twice in a round.

    Writes to one team are one batch (never parallel); batches of one round run in parallel, and since
    a user is in at most one batch per round, no two concurrent writes touch the same user's ``teams``
    (the proxy rewrites that list without a per-user lock: parallel leaves of one user lose updates).
    """
    per_user: dict[str, int] = defaultdict(int)
    out: list[dict[str, list[M]]] = []
    for a in sorted(actions, key=lambda x: (x.team_id, x.user_id)):
        n = per_user[a.user_id]
        per_user[a.user_id] += 1
        if n == len(out):
            out.append(defaultdict(list))
        out[n][a.team_id].append(a)
    return out


def who(emails: Iterable[str], shown: int = 10) -> str:
    """``3 user(s): a, b, c`` for a debug line (the first ``shown`` named)."""
    names = list(emails)
    more = f", … ({len(names) - shown} more)" if len(names) > shown else ""
    return f"{len(names)} user(s): {', '.join(names[:shown])}{more}"
