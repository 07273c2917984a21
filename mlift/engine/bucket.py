"""One client-side limit: a leaky bucket with a sub-minute burst plus a 60 s log.

Providers enforce per-minute limits in sub-minute quanta, so a limiter that
lets a whole minute's budget out in the first second gets a 429 storm. A
bucket therefore mirrors what servers check:

* a level refilled continuously at ``factor × limit / 60`` per second, whose
  capacity is only ``burst_s`` seconds of the limit (``factor`` ≤ 1 is the
  AIMD controller's share of the limit it may use right now);
* a sliding 60-second log, so no 60 s window ever admits more than the limit
  (a full bucket plus a minute of refill would otherwise overshoot by the
  burst at the one-minute mark).

What was taken can later be *settled* to what the server really charged
(Anthropic adjusts output tokens to the answer's length) or *forgotten* by
the log (a refused request never used the server's window; its charge stays
in the level, so a burst of refusals slows the client down instead of
sending the retries at once). The level may also be *lowered* to what the
server says is left: the server's count wins over ours.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0
# A request reaches the server a little after it leaves here, so the server's
# copy of an entry leaves its window a little later: ours is kept that much
# longer, or a client running exactly at the limit meets a full window.
SLACK_S = 0.25
# Float tolerance: refill arithmetic must not leave a 1e-17 wait that a
# coarse clock cannot advance past.
EPS = 1e-6


class Entry:
    """One charge in the 60 s log."""

    __slots__ = ("amount", "at")

    def __init__(self, at: float, amount: float) -> None:
        self.at, self.amount = at, amount


class Bucket:
    """Requests or tokens per minute, as a refilling level plus a 60 s log."""

    def __init__(self, per_minute: float, burst_s: float, now: float, *,
                 level: float | None = None) -> None:
        self.per_minute = per_minute
        self.burst_s = burst_s
        self.factor = 1.0
        self.stamp = now
        self.level = self.capacity if level is None else min(level, self.capacity)
        self._log: deque[Entry] = deque()
        self.in_window = 0.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute / WINDOW_S * self.burst_s)

    @property
    def rate(self) -> float:
        """Refill per second at the current factor."""
        return self.factor * self.per_minute / WINDOW_S

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
        while self._log and self._log[0].at <= now - WINDOW_S - SLACK_S:
            self.in_window -= self._log.popleft().amount
        if not self._log:
            self.in_window = 0.0

    def set_limit(self, per_minute: float, now: float) -> None:
        self.refill(now)
        self.per_minute = per_minute
        self.level = min(self.level, self.capacity)

    def set_factor(self, factor: float, now: float) -> None:
        self.refill(now)  # what accrued so far accrued at the old rate
        self.factor = factor

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (0 = now)."""
        self.refill(now)
        # A request larger than the whole bucket may go once the bucket is full
        # (the level then goes negative: debt repaid by refill).
        need = min(amount, self.capacity)
        wait = 0.0
        if self.level < need - EPS:
            wait = (need - self.level) / max(self.rate, 1e-9)
        # The 60 s log: drop the oldest admissions until this one fits. (A factor
        # above 1 only happens on a limit that is a guess: then it may grow too.)
        window_limit = self.per_minute * max(1.0, self.factor)
        excess = self.in_window + amount - max(window_limit, amount)
        if excess > EPS:
            freed = 0.0
            for entry in self._log:
                freed += entry.amount
                if freed >= excess - EPS:
                    wait = max(wait, entry.at + WINDOW_S + SLACK_S - now)
                    break
        return max(0.0, wait)

    def take(self, amount: float, now: float) -> Entry:
        self.refill(now)
        self.level -= amount
        entry = Entry(now, amount)
        self._log.append(entry)
        self.in_window += amount
        return entry

    def record(self, at: float, amount: float) -> None:
        """Put a past admission into the 60 s log (in time order, before any new ``take``)."""
        self._log.append(Entry(at, amount))
        self.in_window += amount

    def rescale(self, ratio: float) -> None:
        """Charges in the log were counted ``ratio`` times too low (the estimate was corrected)."""
        for entry in self._log:
            entry.amount *= ratio
        self.in_window *= ratio

    def settle(self, entry: Entry, amount: float, now: float) -> None:
        """The server charged ``amount`` for what was taken as ``entry``: match it."""
        self.refill(now)
        delta = entry.amount - amount
        self.level = min(self.capacity, self.level + delta)
        if entry.at > now - WINDOW_S - SLACK_S:
            self.in_window -= delta
        entry.amount = amount

    def forget(self, entry: Entry, now: float) -> None:
        """Drop ``entry`` from the 60 s log only (the level keeps the charge)."""
        self.refill(now)
        if entry.at > now - WINDOW_S - SLACK_S:
            self.in_window -= entry.amount
        entry.amount = 0.0

    def lower_to(self, level: float, now: float) -> bool:
        """Lower the level to ``level`` if it is below ours; True when it was."""
        self.refill(now)
        if level < self.level - EPS:
            self.level = level
            return True
        return False
