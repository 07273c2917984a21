"""The limiter's two feedback loops: what the server charges, and how fast to go.

``ChargeModel`` learns, per endpoint and dimension, the server's charge per
unit of mlift's own estimate. Servers estimate too (OpenAI's limiter is
reported to count characters / 4 plus ``max_tokens``, not the tokenizer's
tokens), so a client that reserves its own count is 10 % off and collapses
against the limit. Samples come from wherever the server says what it
charged: the change in ``remaining`` between answers (``Telescope``), the
"Requested R" of a 429 body, or the usage of an answer where that is what is
charged (Anthropic's input tokens). Going up is quick and going down slow,
because under-reserving costs refusals while over-reserving costs a few
per cent of throughput.

``Aimd`` is the offered rate as a share of the limit: multiplicative decrease
on a refusal (at most once per round trip, so one burst of 429s counts once),
then an additive climb back. It remembers the share at which the last
refusal came and climbs fast only to just below it; past that it probes
slowly, more slowly each time a refusal confirms the ceiling, so the rate
settles instead of sawing up and down.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class ChargeModel:
    """Server charge ≈ ``multiplier`` × mlift's estimate.

    Each observation's ratio goes through the median of the last three (one
    odd window cannot move the estimate), then into a moving average.
    """

    def __init__(self, *, low: float = 0.25, high: float = 4.0) -> None:
        self.multiplier = 1.0
        self.samples = 0
        self._low, self._high = low, high
        self._recent: deque[float] = deque(maxlen=3)

    def sample(self, charged: float, estimated: float) -> None:
        """One observation: the server charged ``charged`` where mlift estimated ``estimated``."""
        if estimated <= 0 or charged <= 0:
            return
        self._recent.append(charged / estimated)
        ratio = statistics.median(self._recent)
        # Quicker to raise (refusals are expensive) than to lower (a few % of speed).
        gain = 0.6 if ratio > self.multiplier else 0.3
        value = self.multiplier + gain * (ratio - self.multiplier)
        self.multiplier = min(self._high, max(self._low, value))
        self.samples += 1


@dataclass(slots=True)
class _Anchor:
    at: float
    remaining: float
    reset_s: float | None
    estimated: float  # cumulative estimate of everything admitted up to and including it


class Telescope:
    """The server's charge per estimated unit, from ``remaining`` between two answers.

    Between the admissions of answers *a* and *b* the server charged
    ``remaining_a - remaining_b + rate × (t_b - t_a)`` — if its bucket never
    filled in between, which ``reset`` (the time until full) tells: the pair
    counts only when ``reset_a`` exceeds the gap — and only while ``remaining``
    is the bucket's level, which holds when ``remaining + rate × reset`` (the
    bucket's size) stays the same; a server that also caps a 60 s window
    reports less once the window binds. Summed over a window of pairs, the
    sum telescopes, so a request admitted a little out of order only moves
    its charge to the next pair.
    """

    def __init__(self, sample: Callable[[float, float], None], *, window: float = 20.0) -> None:
        self._sample = sample  # (what the server charged, what mlift estimated)
        self._anchor: _Anchor | None = None
        self._charged = 0.0
        self._estimated = 0.0
        self._pairs = 0
        self._window = window  # pairs per sample
        self._refused_after = float("-inf")

    def refusal(self, at: float) -> None:
        """A request admitted at ``at`` was refused: pairs spanning it are unreliable."""
        self._refused_after = max(self._refused_after, at)

    def observe(self, at: float, estimated_so_far: float, remaining: float,
                reset_s: float | None, rate_per_s: float) -> None:
        """An answer to the request admitted at ``at``; ``estimated_so_far`` is the
        cumulative estimate of everything admitted up to and including it."""
        anchor = self._anchor
        if anchor is not None and at <= anchor.at:
            return  # out of order: keep the later anchor
        self._anchor = _Anchor(at, remaining, reset_s, estimated_so_far)
        if anchor is None:
            return
        gap = at - anchor.at
        if anchor.reset_s is None or reset_s is None or self._refused_after > anchor.at:
            return
        if anchor.reset_s <= gap:
            return  # the bucket may have filled in between
        size_a = anchor.remaining + rate_per_s * anchor.reset_s
        size_b = remaining + rate_per_s * reset_s
        if abs(size_a - size_b) > max(2.0, 0.01 * max(size_a, size_b)):
            return  # not a plain bucket between these two (a window binds): no sample
        charged = anchor.remaining - remaining + rate_per_s * gap
        self._charged += charged
        self._estimated += estimated_so_far - anchor.estimated
        self._pairs += 1
        if self._pairs >= self._window:
            if self._estimated > 0 and self._charged > 0:
                self._sample(self._charged, self._estimated)
            self._charged = self._estimated = 0.0
            self._pairs = 0


class Aimd:
    """The share of a limit the client may use now (≤ ``ceiling_max``)."""

    def __init__(self, *, ceiling_max: float = 1.0, floor: float = 0.05,
                 decrease: float = 0.85, gentle_decrease: float = 0.97,
                 climb_per_s: float = 0.02, probe_per_s: float = 0.004) -> None:
        self.factor = 1.0
        self.ceiling = ceiling_max   # the share at which the last refusal came
        self.ceiling_max = ceiling_max
        self.decreases = 0
        self._floor = floor
        self._decrease, self._gentle = decrease, gentle_decrease
        self._climb, self._probe = climb_per_s, probe_per_s
        self._hold_until = float("-inf")
        self._stamp: float | None = None

    def advance(self, now: float) -> float:
        """Climb for the time since the last call; returns the factor."""
        if self._stamp is not None and now > self._stamp:
            dt = now - self._stamp
            target = 0.98 * self.ceiling
            if self.factor < target:
                climbing = min(dt, (target - self.factor) / self._climb)
                self.factor += self._climb * climbing
                dt -= climbing
            if dt > 0:
                self.factor = min(self.ceiling_max, self.factor + self._probe * dt)
                self.ceiling = max(self.ceiling, self.factor)
        self._stamp = now
        return self.factor

    def refused(self, now: float, hold_s: float) -> bool:
        """A refusal: decrease once per ``hold_s`` (a round trip). True if it decreased."""
        self.advance(now)
        if now < self._hold_until:
            return False
        near_ceiling = self.factor >= 0.97 * self.ceiling and self.decreases > 0
        self.ceiling = self.factor
        if near_ceiling:
            # The same ceiling again: it is real. Step down a little and probe
            # past it more slowly next time.
            self.factor *= self._gentle
            self._probe = max(self._probe / 2, 0.0005)
        else:
            self.factor *= self._decrease
        self.factor = max(self._floor, self.factor)
        self.decreases += 1
        self._hold_until = now + hold_s
        return True

    def rebase(self) -> None:
        """The limit itself was re-estimated at the rate that was refused: sit just below it."""
        self.factor = self._gentle
        self.ceiling = 1.0
        self._probe = max(self._probe / 2, 0.0005)
