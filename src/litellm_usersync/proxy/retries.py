"""The one retry policy: which failures are repeated, how often, and how long to wait in between.

As in stamina, the predicates are explicit functions (never "any exception"), the attempts and the total
time are bounded by ``settings.RetryPolicy``, and the sleep is injectable (tests pass one that does not
sleep). Everything that repeats a request goes through :class:`Retries`: the transport's automatic
retries and the read-back loops of :mod:`.recovery`, so the backoff is computed in one place.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from litellm_usersync.errors import RateLimitedError, ServerError, UnavailableError
from litellm_usersync.settings import RetryPolicy

#: one line per retry ("retrying (2/5) in 1.0 s: ..."): the CLI shows these even without --debug, so a dead
#: proxy is not 9 s of silence
retry_log = logging.getLogger("litellm_usersync.retry")

Sleep = Callable[[float], Awaitable[None]]
#: a retry predicate: True when this failure may be repeated
Predicate = Callable[[BaseException], bool]

_TRANSIENT_5XX = (500, 502, 503, 504)


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate for requests that are safe to repeat: transport errors, 429, 5xx."""
    if isinstance(exc, (UnavailableError, RateLimitedError)):
        return True
    return isinstance(exc, ServerError) and exc.status in _TRANSIENT_5XX


def is_retryable_before_sending(exc: BaseException) -> bool:
    """For creates: retry only what certainly did not reach the application (no connection, 429)."""
    if isinstance(exc, UnavailableError):
        return not exc.maybe_sent
    return isinstance(exc, RateLimitedError)


def is_uncertain(exc: BaseException) -> bool:
    """A write whose outcome is unknown: it may have been applied although we got no success answer."""
    if isinstance(exc, UnavailableError):
        return exc.maybe_sent
    return isinstance(exc, ServerError) and exc.status in _TRANSIENT_5XX


class Retries:
    """The retry policy object: bounded attempts and total time, exponential backoff with jitter, Retry-After."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        self.policy = policy
        self.sleep = sleep

    @property
    def attempts(self) -> int:
        return self.policy.attempts

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), without jitter: doubling, capped."""
        return float(min(self.policy.max_wait_s, self.policy.initial_s * (2 ** (attempt - 1))))

    def retrying(self, predicate: Predicate) -> AsyncRetrying:
        """A tenacity loop that repeats what ``predicate`` allows (``async for attempt in ...: with attempt:``)."""
        policy = self.policy

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
                return float(exc.retry_after_s)
            return self.backoff_s(state.attempt_number) + random.uniform(0, policy.jitter_s)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            retry_log.info("retrying (%d/%d) in %.1f s: %s", state.attempt_number + 1, policy.attempts, delay, exc)

        return AsyncRetrying(
            retry=retry_if_exception(predicate),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_s),
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def pause(self, attempt: int, cause: BaseException | None = None) -> None:
        """Wait before attempt ``attempt + 1`` of a hand-written loop (a read-back between two sends); with a
        ``cause`` the wait is logged as a retry, like the automatic ones."""
        delay = self.backoff_s(attempt)
        if cause is not None:
            retry_log.info("retrying (%d/%d) in %.1f s: %s", attempt + 1, self.policy.attempts, delay, cause)
        await self.sleep(delay)
