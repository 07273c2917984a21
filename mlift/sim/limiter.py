"""Per-key request and token limits: a refilling bucket plus a sliding 60-second log.

Each limit (requests/min, tokens/min) is enforced two ways at once:

* a bucket holding ``burst_s`` seconds of the limit, refilled continuously at
  ``limit / 60`` per second; a request needs ``min(cost, capacity)`` in the
  bucket and then takes its full cost out (so a request bigger than the bucket
  waits for a full bucket and leaves it in debt, instead of never passing);
* a log of what was admitted in the last 60 seconds, so no 60-second window
  ever admits more than the limit, whatever the burst.

The token cost of a request is charged at admission as prompt tokens plus
``max_tokens`` (what OpenAI reserves) and never refunded. All arithmetic uses
the clock passed in, so tests can run on virtual time. ``wait`` is honest: a
refused request that waits that long, with nobody else admitted meanwhile,
passes (both the bucket and the log only improve with time).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit as the rate-limit headers describe it."""

    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of offering one request to a key's limits."""

    admitted: bool
    wait_s: float               # 0 when admitted; math.inf when the request can never pass
    refused_by: str | None       # "requests" or "tokens"
    used: int                   # what the refusing limit counts as used (for the 429 message)
    requests: LimitState | None
    tokens: LimitState | None


class Limit:
    """One per-minute limit (requests or tokens) for one key."""

    __slots__ = ("_level", "_log", "_log_sum", "_updated", "capacity", "limit", "rate")

    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / WINDOW_S
        self.capacity = self.rate * burst_s
        self._level = self.capacity
        self._updated = now
        self._log: deque[tuple[float, float]] = deque()
        self._log_sum = 0.0

    def _advance(self, now: float) -> None:
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
            self._updated = now
        log = self._log
        while log and now - log[0][0] >= WINDOW_S:
            self._log_sum -= log.popleft()[1]
        if not log:
            self._log_sum = 0.0  # no float drift once the window empties

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` could be admitted if nothing else is; inf if never."""
        self._advance(now)
        if cost > self.limit + _EPS:
            return math.inf
        need = min(cost, self.capacity)
        bucket_wait = max(0.0, (need - self._level) / self.rate) if self._level + _EPS < need \
            else 0.0
        log_wait = 0.0
        excess = self._log_sum + cost - self.limit
        if excess > _EPS:
            for t, c in self._log:  # the oldest entries expire first
                excess -= c
                if excess <= _EPS:
                    log_wait = t + WINDOW_S - now
                    break
        return max(bucket_wait, log_wait)

    def take(self, cost: float, now: float) -> None:
        self._advance(now)
        self._level -= cost
        self._log.append((now, cost))
        self._log_sum += cost

    def used(self) -> int:
        return math.ceil(self._log_sum - _EPS)

    def state(self, now: float) -> LimitState:
        self._advance(now)
        remaining = max(0.0, min(self._level, self.limit - self._log_sum))
        reset = max(0.0, (self.capacity - self._level) / self.rate)
        return LimitState(int(self.limit), math.floor(remaining + _EPS), reset)


class KeyLimits:
    """The request and token limits of one API key."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float, now: float) -> None:
        self.requests = Limit(rpm, burst_s, now) if rpm else None
        self.tokens = Limit(tpm, burst_s, now) if tpm else None

    def offer(self, token_cost: int, now: float) -> Decision:
        """Admit (and charge) one request of ``token_cost`` tokens, or say how long to wait."""
        req_wait = self.requests.wait(1, now) if self.requests else 0.0
        tok_wait = self.tokens.wait(token_cost, now) if self.tokens else 0.0
        wait = max(req_wait, tok_wait)
        refused_by: str | None = None
        used = 0
        if wait > 0:
            if tok_wait >= req_wait and self.tokens is not None:
                refused_by, used = "tokens", self.tokens.used()
            elif self.requests is not None:
                refused_by, used = "requests", self.requests.used()
        else:
            if self.requests:
                self.requests.take(1, now)
            if self.tokens:
                self.tokens.take(token_cost, now)
        return Decision(
            admitted=wait <= 0, wait_s=wait, refused_by=refused_by, used=used,
            requests=self.requests.state(now) if self.requests else None,
            tokens=self.tokens.state(now) if self.tokens else None)
