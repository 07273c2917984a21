"""Per-key limits: a refilling bucket plus a sliding 60-second log, per dimension.

A key has up to four limits, each a :class:`Limit`: requests/min, tokens/min
(OpenAI's one token limit: prompt + ``max_tokens`` charged at admission and
kept), and Anthropic's input-tokens/min and output-tokens/min (output charged
``max_tokens`` at admission and adjusted to what was written once the answer
is done). Each limit is enforced two ways at once:

* a bucket holding ``burst_s`` seconds of the limit, refilled continuously at
  ``limit / 60`` per second; a request needs ``min(cost, capacity)`` in the
  bucket and then takes its full cost out (so a request bigger than the bucket
  waits for a full bucket and leaves it in debt, instead of never passing);
* a log of what was charged in the last 60 seconds, so no 60-second window
  ever admits more than the limit, whatever the burst.

What a request costs is the server's business (:mod:`mlift.sim.server`); this
module only keeps the books. A refused request is charged too when the key
counts refusals, as OpenAI says its limits do. All arithmetic uses the clock
passed in, so tests can run on virtual time. ``wait`` is honest: a refused
request that waits that long, with nobody else admitted meanwhile, passes
(both the bucket and the log only improve with time).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0
_EPS = 1e-9
DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit as the rate-limit headers describe it."""

    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


class Entry:
    """One charge in a limit's 60 s log (mutable: output charges are settled later)."""

    __slots__ = ("amount", "at")

    def __init__(self, at: float, amount: float) -> None:
        self.at, self.amount = at, amount


@dataclass(frozen=True, slots=True)
class Charges:
    """What one request costs in each token dimension (a request always costs 1 request)."""

    tokens: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of offering one request to a key's limits."""

    admitted: bool
    wait_s: float               # 0 when admitted; math.inf when the request can never pass
    refused_by: str | None      # the dimension that refused (one of DIMENSIONS)
    used: int                   # what the refusing limit counts as used (for the 429 message)
    states: dict[str, LimitState]
    output_entry: Entry | None = None  # to settle once the answer's length is known

    @property
    def requests(self) -> LimitState | None:
        return self.states.get("requests")

    @property
    def tokens(self) -> LimitState | None:
        return self.states.get("tokens")


class Limit:
    """One per-minute limit for one key."""

    __slots__ = ("_level", "_log", "_log_sum", "_updated", "capacity", "limit", "rate")

    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / WINDOW_S
        self.capacity = self.rate * burst_s
        self._level = self.capacity
        self._updated = now
        self._log: deque[Entry] = deque()
        self._log_sum = 0.0

    def _advance(self, now: float) -> None:
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
            self._updated = now
        log = self._log
        while log and now - log[0].at >= WINDOW_S:
            self._log_sum -= log.popleft().amount
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
            for entry in self._log:  # the oldest entries expire first
                excess -= entry.amount
                if excess <= _EPS:
                    log_wait = entry.at + WINDOW_S - now
                    break
        return max(bucket_wait, log_wait)

    def take(self, cost: float, now: float) -> Entry:
        self._advance(now)
        self._level -= cost
        entry = Entry(now, cost)
        self._log.append(entry)
        self._log_sum += cost
        return entry

    def settle(self, entry: Entry, amount: float, now: float) -> None:
        """Change a charge to ``amount`` (Anthropic's output tokens, once they are known)."""
        self._advance(now)
        delta = entry.amount - amount
        self._level = min(self.capacity, self._level + delta)
        if now - entry.at < WINDOW_S:  # still in the log
            self._log_sum -= delta
        entry.amount = amount

    def used(self) -> int:
        return math.ceil(self._log_sum - _EPS)

    def state(self, now: float) -> LimitState:
        self._advance(now)
        remaining = max(0.0, min(self._level, self.limit - self._log_sum))
        reset = max(0.0, (self.capacity - self._level) / self.rate)
        return LimitState(int(self.limit), math.floor(remaining + _EPS), reset)


class KeyLimits:
    """The limits of one API key (any of them may be absent: unlimited)."""

    __slots__ = ("limits",)

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float, now: float, *,
                 itpm: float | None = None, otpm: float | None = None) -> None:
        per_minute = dict(zip(DIMENSIONS, (rpm, tpm, itpm, otpm), strict=True))
        self.limits = {name: Limit(value, burst_s, now)
                       for name, value in per_minute.items() if value}

    @property
    def requests(self) -> Limit | None:
        return self.limits.get("requests")

    @property
    def tokens(self) -> Limit | None:
        return self.limits.get("tokens")

    def _costs(self, charges: Charges) -> dict[str, float]:
        every = {"requests": 1.0, "tokens": charges.tokens,
                 "input_tokens": charges.input_tokens, "output_tokens": charges.output_tokens}
        return {name: every[name] for name in self.limits}

    def offer(self, charges: Charges | int, now: float, *,
              count_refused: bool = False) -> Decision:
        """Admit (and charge) one request, or say how long to wait.

        ``charges`` may be a plain token count (the ``tokens`` dimension only).
        With ``count_refused`` a refused request is charged as if admitted and
        the wait is for another request of the same size after it.
        """
        if not isinstance(charges, Charges):
            charges = Charges(tokens=float(charges))
        costs = self._costs(charges)
        waits = {name: self.limits[name].wait(cost, now) for name, cost in costs.items()}
        wait = max(waits.values(), default=0.0)
        refused_by: str | None = None
        used = 0
        entries: dict[str, Entry] = {}
        if wait > 0:
            # The limit that needs the longest wait refused it; among equals, a token limit.
            refused_by = max(waits, key=lambda n: (waits[n], n != "requests"))
            used = self.limits[refused_by].used()
            if count_refused and not math.isinf(wait):
                for name, cost in costs.items():
                    self.limits[name].take(cost, now)
                wait = max(self.limits[n].wait(c, now) for n, c in costs.items())
        else:
            entries = {name: self.limits[name].take(cost, now) for name, cost in costs.items()}
        return Decision(
            admitted=wait <= 0, wait_s=wait, refused_by=refused_by, used=used,
            states={name: limit.state(now) for name, limit in self.limits.items()},
            output_entry=entries.get("output_tokens"))

    def settle_output(self, decision: Decision, written: int, now: float) -> None:
        """Adjust an admitted request's output charge from ``max_tokens`` to what was written."""
        limit = self.limits.get("output_tokens")
        if limit is not None and decision.output_entry is not None:
            limit.settle(decision.output_entry, float(written), now)
