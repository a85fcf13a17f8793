"""The executor's scheduling and its one applier, without a proxy: bounded workers, the stop flag,
per-chunk fallback, a missing batch route."""

from __future__ import annotations

import asyncio

import pytest

from litellm_usersync.apply.applier import apply_batched, done
from litellm_usersync.apply.scheduling import Run, run_bounded
from litellm_usersync.errors import AuthError, RejectedError
from litellm_usersync.models import ChangeRole, Outcome


def roles(n: int) -> list[ChangeRole]:
    return [ChangeRole(f"u{i}", f"u{i}@x.com", "internal_user", "proxy_admin") for i in range(n)]


@pytest.mark.parametrize("limit", [1, 3, 16])
async def test_run_bounded_calls_each_item_once_with_at_most_limit_coroutines(limit: int) -> None:
    seen: list[int] = []
    running = peak = 0
    tasks = 0

    async def fn(i: int) -> None:
        nonlocal running, peak, tasks
        running += 1
        peak = max(peak, running)
        tasks = max(tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        seen.append(i)
        running -= 1

    await run_bounded(list(range(10_000)), fn, limit)
    assert sorted(seen) == list(range(10_000))
    assert peak == limit
    assert tasks <= limit + 1  # the workers and the test itself: never a task per item


async def test_each_starts_nothing_once_stopping_and_turns_bad_credentials_into_an_abort() -> None:
    run = Run(concurrency=2)
    calls: list[str] = []

    async def fn(a: ChangeRole) -> list[Outcome]:
        calls.append(a.user_id)
        if a.user_id == "u3":
            raise AuthError("expired", method="POST", path="/user/update", status=401)
        return [done(a)]

    out = await run.each(roles(50), fn)
    assert run.fatal is not None and run.stopping
    assert "u3" in calls and len(calls) <= 5  # what was in flight, nothing new after the 401
    assert len(out) == len(calls) - 1


async def test_apply_batched_falls_back_per_chunk_and_sends_the_rest_per_user_when_the_route_is_missing() -> None:
    sent: list[list[str]] = []
    per_user: list[str] = []

    async def batch(chunk: list[ChangeRole]) -> list[Outcome] | None:
        sent.append([a.user_id for a in chunk])
        if len(sent) == 2:
            raise RejectedError("bad chunk", method="POST", path="/management/v1/users/bulk_update", status=422)
        if len(sent) == 4:
            return None  # the route is gone (404): everything left goes per user
        return [done(a) for a in chunk]

    async def one_by_one(rest: list[ChangeRole]) -> list[Outcome]:
        per_user.extend(a.user_id for a in rest)
        return [done(a) for a in rest]

    actions = roles(10)
    ticks: list[int] = []
    run = Run(on_progress=lambda _phase, n, _total: ticks.append(n))
    out = await apply_batched(run, actions, batch=batch, per_user=one_by_one, what="test", chunk=2)
    assert sorted(o.action.key for o in out) == sorted(a.key for a in actions)
    assert sent == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"], ["u6", "u7"]]
    assert per_user == ["u2", "u3", "u6", "u7", "u8", "u9"]  # the failed chunk, then all that was left
    assert ticks == [2, 4]  # the chunks sent in bulk advance the progress; per_user counts its own


async def test_apply_batched_sends_nothing_new_once_stopping() -> None:
    stop = asyncio.Event()
    sent: list[int] = []

    async def batch(chunk: list[ChangeRole]) -> list[Outcome] | None:
        sent.append(len(chunk))
        stop.set()
        return [done(a) for a in chunk]

    async def per_user(rest: list[ChangeRole]) -> list[Outcome]:
        raise AssertionError("nothing falls back per user: the chunks left are not attempted")

    run = Run(stop=stop)
    out = await apply_batched(run, roles(6), batch=batch, per_user=per_user, what="test", chunk=2)
    assert sent == [2] and len(out) == 2
