"""Retry and timeout policy: the engine is the one owner of retries.

SDK clients are built with ``max_retries=0``; every retry happens here, with
tenacity's small strategies composed. What is retried is decided by the
error's class in ``mlift.errors`` (which providers derive from the HTTP
status): transient errors (408/409/429/5xx/529, timeouts, dropped
connections, malformed bodies) are retried with jittered exponential backoff
that never waits less than the server's Retry-After; permanent ones
(400/401/403/404/422) fail at once.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_random_exponential,
)

from mlift.errors import ProviderError, RateLimited


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one request.

    429s have their own, larger allowance: a rate-limit storm should slow a
    run down (the limiter holds the endpoint for Retry-After), not fail its
    items. ``max_attempts`` counts every other transient failure.
    """

    max_attempts: int = 8
    max_rate_limited: int = 50
    backoff_s: float = 0.5       # first backoff scale; doubles per attempt, full jitter
    max_backoff_s: float = 30.0

    def retrying(self, sleep: Callable[[float], Awaitable[None]],
                 before_sleep: Callable[[RetryCallState], None] | None = None
                 ) -> AsyncRetrying:
        jitter = wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimited):
                # The limiter already holds the whole endpoint for Retry-After;
                # only a little jitter here so the retries don't arrive at once.
                return min(jitter(state), self.backoff_s)
            after = exc.retry_after if isinstance(exc, ProviderError) else None
            return max(jitter(state), after or 0.0)

        failures = {"rate_limited": 0, "other": 0}

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            kind = "rate_limited" if isinstance(exc, RateLimited) else "other"
            failures[kind] += 1
            limit = self.max_rate_limited if kind == "rate_limited" else self.max_attempts - 1
            return failures[kind] > limit

        return AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(is_retryable),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


class TimeoutPolicy:
    """A per-endpoint request timeout that fits the work.

    Until ``min_samples`` answers have been seen the timeout is
    ``initial_s``; after that it is ``factor`` × the 95th percentile of the
    latest answers' latencies, never below ``floor_s`` nor above
    ``ceiling_s``. The engine re-applies it to requests already in flight
    whenever it changes, so a connection that hung before the first
    latencies were known is abandoned as soon as they are.
    """

    def __init__(self, *, initial_s: float = 120.0, floor_s: float = 10.0,
                 ceiling_s: float = 600.0, factor: float = 5.0,
                 min_samples: int = 20, window: int = 256) -> None:
        self.initial_s, self.floor_s, self.ceiling_s = initial_s, floor_s, ceiling_s
        self.factor, self.min_samples = factor, min_samples
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self.current_s = min(initial_s, ceiling_s)

    def observe(self, latency_s: float) -> bool:
        """Record a successful answer's latency; True when the timeout changed."""
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(latency_s)
        bisect.insort(self._sorted, latency_s)
        if len(self._sorted) < self.min_samples:
            return False
        p95 = self._sorted[min(len(self._sorted) - 1, int(0.95 * len(self._sorted)))]
        new = min(self.ceiling_s, max(self.floor_s, self.factor * p95))
        changed = abs(new - self.current_s) > 0.05 * self.current_s
        if changed:
            self.current_s = new
        return changed
