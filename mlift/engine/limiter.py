"""Client-side rate limiting: requests/min and tokens/min per endpoint.

Providers enforce per-minute limits in sub-minute quanta, so a limiter that
lets a whole minute's budget out in the first second gets a 429 storm. Each
endpoint therefore has, for requests and for tokens alike, two constraints
that mirror what servers check:

* a leaky bucket refilled continuously at ``limit / 60`` per second whose
  capacity is only ``burst_s`` seconds of the limit (one second by default);
* a sliding 60-second log, so no 60 s window ever admits more than the limit
  (a full bucket plus a minute of refill would otherwise overshoot by the
  burst at the one-minute mark).

A request reserves its estimated tokens (prompt + ``max_tokens``) and is
refunded from its real usage afterwards. Response headers tighten the limits
while running (``update``), and a 429 puts the whole endpoint in a cooldown
for Retry-After (``cool_down``), not just the request that got it.

Waiters are served first-come first-served by one lock, so a large request
is not starved by small ones. Time is injected (``clock``/``sleep``) so tests
run on virtual time; cancellation while waiting takes nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mlift.types import RateLimitInfo

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

WINDOW_S = 60.0
# Float tolerance: refill arithmetic must not leave a 1e-17 wait that a
# coarse clock cannot advance past.
_EPS = 1e-6


class _Bucket:
    """One limit (requests or tokens): a leaky bucket plus a 60 s log."""

    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.per_minute = per_minute
        self.burst_s = burst_s
        self.level = self.capacity
        self.stamp = now
        self.log: deque[tuple[float, float]] = deque()  # (time, amount) admitted
        self.in_window = 0.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute / 60.0 * self.burst_s)

    def set_limit(self, per_minute: float, now: float) -> None:
        self._refill(now)
        self.per_minute = per_minute
        self.level = min(self.level, self.capacity)

    def _refill(self, now: float) -> None:
        rate = self.per_minute / 60.0
        self.level = min(self.capacity, self.level + (now - self.stamp) * rate)
        self.stamp = now
        while self.log and self.log[0][0] <= now - WINDOW_S:
            self.in_window -= self.log.popleft()[1]

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (0 = now)."""
        self._refill(now)
        # A request larger than the whole bucket may go once the bucket is full
        # (the level then goes negative: debt repaid by refill).
        need = min(amount, self.capacity)
        wait = 0.0 if self.level >= need - _EPS else (need - self.level) / (self.per_minute / 60.0)
        # The 60 s log: drop the oldest admissions until this one fits.
        excess = self.in_window + amount - max(self.per_minute, amount)
        if excess > _EPS:
            freed = 0.0
            for stamp, taken in self.log:
                freed += taken
                if freed >= excess - _EPS:
                    wait = max(wait, stamp + WINDOW_S - now)
                    break
        return max(0.0, wait)

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount
        self.log.append((now, amount))
        self.in_window += amount

    def give_back(self, amount: float, now: float) -> None:
        """Refund an over-reservation (the log keeps the charge: conservative)."""
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def remaining_now(self, now: float) -> float:
        self._refill(now)
        return self.level


@dataclass(slots=True)
class LimiterStats:
    waits: int = 0
    waited_s: float = 0.0
    cooldowns: int = 0
    tightened: int = 0


class RateLimiter:
    """The rpm/tpm limiter of one endpoint. ``None`` limits are unlimited."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 burst_s: float = 1.0, clock: Clock | None = None,
                 sleep: Sleep | None = None) -> None:
        self._clock: Clock = clock or _loop_time
        self._sleep: Sleep = sleep or asyncio.sleep
        self._burst_s = burst_s
        now = self._clock()
        self._requests = _Bucket(rpm, burst_s, now) if rpm else None
        self._tokens = _Bucket(tpm, burst_s, now) if tpm else None
        self._cool_until = 0.0
        self._lock = asyncio.Lock()
        self.stats = LimiterStats()

    @property
    def rpm(self) -> float | None:
        return self._requests.per_minute if self._requests else None

    @property
    def tpm(self) -> float | None:
        return self._tokens.per_minute if self._tokens else None

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of ``tokens`` estimated tokens may be sent."""
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._cool_until - now
                if self._requests:
                    wait = max(wait, self._requests.wait_for(1, now))
                if self._tokens:
                    wait = max(wait, self._tokens.wait_for(tokens, now))
                if wait <= _EPS:
                    break
                self.stats.waits += 1
                self.stats.waited_s += wait
                # Re-check after sleeping: a cooldown or tighter limit may
                # have arrived meanwhile.
                await self._sleep(wait)
            if self._requests:
                self._requests.take(1, now)
            if self._tokens:
                self._tokens.take(tokens, now)

    def refund(self, reserved: int, used: int) -> None:
        """Return the unused part of a reservation once real usage is known."""
        if self._tokens and reserved > used:
            self._tokens.give_back(reserved - used, self._clock())

    def cool_down(self, seconds: float) -> None:
        """Pause the whole endpoint (a 429 said Retry-After ``seconds``)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._cool_until:
            self._cool_until = until
            self.stats.cooldowns += 1

    def update(self, info: RateLimitInfo) -> None:
        """Tighten from the server's rate-limit headers; never loosen past config.

        A limit header lower than ours (or the first we hear of, when we were
        told nothing) becomes our limit. ``remaining == 0`` with a reset time
        means the server's window is spent: wait for the reset.
        """
        now = self._clock()
        if info.limit_requests:
            self._requests = self._tighten(self._requests, info.limit_requests, now)
        if info.limit_tokens:
            self._tokens = self._tighten(self._tokens, info.limit_tokens, now)
        # "remaining 0" is no reason to pause: at the limit it is on most
        # answers, and its reset is the time until the server's bucket is
        # *full*, not until the next request may pass. Our own buckets pace
        # the endpoint; a real refusal comes as a 429 with Retry-After.

    def _tighten(self, bucket: _Bucket | None, limit: float, now: float) -> _Bucket:
        if bucket is None:
            self.stats.tightened += 1
            fresh = _Bucket(limit, self._burst_s, now)
            # We do not know what was already spent in this window: start empty.
            fresh.level = 0.0
            return fresh
        if limit < bucket.per_minute - 1e-9:
            self.stats.tightened += 1
            bucket.set_limit(limit, now)
        return bucket


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
