"""Accounting: what a run sent, got back, waited for and paid — and the budget guard.

``Accounting`` keeps counters per (stage, provider spec) in constant memory:
tokens by kind (fresh input, cache reads, cache writes, output — each is
priced at its own rate by ``Price.cost``), calls made through a provider's
Batch API (priced at batch rates) apart from online ones, and latencies.
Latencies go into a fixed, log-spaced histogram rather than a list, so a run
of millions of requests uses the same few kilobytes as a run of ten.
``snapshot()`` is the one JSON shape for ``run.json`` and the live display;
``format_progress`` turns it into the one-line live status.

``Budget`` is how ``--max-cost`` is a guarantee rather than a hope: before a
request is sent the engine reserves its worst case (``Price.max_cost``: prompt
tokens at the dearer of input and cache-write price + max_tokens at the output
price); the request is started only if spent +
reserved + that amount stays within the cap, and the reservation is settled
with the real cost (or released on failure) afterwards.

Both are used from one event loop and never await, so their updates are
atomic without locks; they are not thread-safe.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlift.errors import RateLimited
from mlift.types import Completion

# Histogram buckets: bucket i (i >= 1) holds latencies in
# [_LAT_MIN * _LAT_RATIO**(i-1), _LAT_MIN * _LAT_RATIO**i); bucket 0 holds
# anything faster than 1 ms and the last bucket anything slower than ~1.2 h.
# A ratio of 1.05 bounds a quantile's relative error by about 2.5%.
_LAT_MIN = 1e-3
_LAT_RATIO = 1.05
_LAT_BUCKETS = 2 + math.ceil(math.log(4_000 / _LAT_MIN) / math.log(_LAT_RATIO))
_LOG_RATIO = math.log(_LAT_RATIO)


class LatencyHistogram:
    """Quantiles of latencies in fixed memory (about 320 integers)."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * _LAT_BUCKETS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        if seconds < _LAT_MIN:
            index = 0
        else:
            index = min(_LAT_BUCKETS - 1, 1 + int(math.log(seconds / _LAT_MIN) / _LOG_RATIO))
        self.counts[index] += 1
        self.count += 1
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 < q <= 1), to within the bucket width; None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                # the geometric middle of the bucket (bucket 0 has no lower edge)
                estimate = _LAT_MIN / 2 if i == 0 else _LAT_MIN * _LAT_RATIO ** (i - 0.5)
                return min(self.max, max(self.min, estimate))
        return self.max  # pragma: no cover - counts always sum to count

    def summary(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None,
                    "max": None}
        return {"count": self.count, "mean": self.total / self.count,
                "p50": self.quantile(0.5), "p90": self.quantile(0.9),
                "p99": self.quantile(0.99), "max": self.max}


@dataclass(slots=True)
class _Cell:
    """Counters for one (stage, provider) pair, or a sum of them."""

    requests: int = 0
    successes: int = 0
    cache_hits: int = 0
    truncated: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    batch_requests: int = 0
    cost_usd: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def merge(self, other: _Cell) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.cache_hits += other.cache_hits
        self.truncated += other.truncated
        self.failures.update(other.failures)
        self.retries.update(other.retries)
        self.rate_limited += other.rate_limited
        self.attempts += other.attempts
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.batch_requests += other.batch_requests
        self.cost_usd += other.cost_usd
        self.latency.merge(other.latency)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "failures": sum(self.failures.values()),
            "failures_by_error": dict(sorted(self.failures.items())),
            "cache_hits": self.cache_hits,
            "truncated": self.truncated,
            "retries": sum(self.retries.values()),
            "retries_by_error": dict(sorted(self.retries.items())),
            "rate_limited": self.rate_limited,
            "attempts": self.attempts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "batch_requests": self.batch_requests,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency.summary(),
        }


class Accounting:
    """Per (stage, provider spec) counters for a run.

    What each record means, so nothing is counted twice:

    - ``record_attempt``: once per HTTP request sent, as it is sent, to the
      endpoint it went to; so a request cancelled mid-way (Ctrl-C, a stopped
      run) still counts what it sent, and a pooled request counts on each
      member it tried.
    - ``record_success`` / ``record_failure``: once per logical request, when
      it is finished. Their ``attempts`` adds HTTP attempts not recorded as
      they went (a batch line's); the engine's are already in.
    - ``record_retry``: once per failed attempt that will be retried, with
      the error that caused it. A 429 is counted in ``rate_limited`` by
      whichever of ``record_retry``/``record_failure`` sees it, so each 429
      response is counted exactly once.

    Tokens, dollars and latencies count only answers fetched from a provider:
    a cache hit adds to ``cache_hits`` and ``successes`` and nothing else.
    ``input_tokens`` counts every input token; ``cached_input_tokens`` and
    ``cache_write_tokens`` say how many of them were prompt-cache reads and
    writes. ``batch=True`` marks an answer that came through a Batch API
    (its ``cost_usd`` already at batch rates; its latency is the batch's wait).
    """

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], _Cell] = {}

    def _cell(self, stage: str, spec: str) -> _Cell:
        cell = self._cells.get((stage, spec))
        if cell is None:
            cell = self._cells[(stage, spec)] = _Cell()
        return cell

    def record_attempt(self, stage: str, spec: str) -> None:
        self._cell(stage, spec).attempts += 1

    def record_success(self, stage: str, spec: str, completion: Completion, *,
                       cached: bool, latency_s: float, attempts: int = 0,
                       batch: bool = False) -> None:
        cell = self._cell(stage, spec)
        cell.requests += 1
        cell.successes += 1
        if completion.finish_reason == "length":
            cell.truncated += 1
        if cached:
            cell.cache_hits += 1
            return
        cell.attempts += attempts
        usage = completion.usage
        cell.input_tokens += usage.input_tokens
        cell.output_tokens += usage.output_tokens
        cell.cached_input_tokens += usage.cached_input_tokens
        cell.cache_write_tokens += usage.cache_write_tokens
        cell.batch_requests += batch
        cell.cost_usd += completion.cost_usd
        cell.latency.add(latency_s)

    def record_failure(self, stage: str, spec: str, error: BaseException,
                       attempts: int = 0) -> None:
        cell = self._cell(stage, spec)
        cell.requests += 1
        cell.failures[type(error).__name__] += 1
        cell.attempts += attempts
        if isinstance(error, RateLimited):
            cell.rate_limited += 1

    def record_retry(self, stage: str, spec: str, error: BaseException) -> None:
        cell = self._cell(stage, spec)
        cell.retries[type(error).__name__] += 1
        if isinstance(error, RateLimited):
            cell.rate_limited += 1

    def total_cost(self) -> float:
        return sum(cell.cost_usd for cell in self._cells.values())

    def snapshot(self) -> dict[str, Any]:
        """Totals, per stage, per provider and per (stage, provider); JSON-able, stable keys."""
        totals = _Cell()
        stages: dict[str, _Cell] = {}
        providers: dict[str, _Cell] = {}
        for (stage, spec), cell in self._cells.items():
            totals.merge(cell)
            stages.setdefault(stage, _Cell()).merge(cell)
            providers.setdefault(spec, _Cell()).merge(cell)
        return {
            "totals": totals.to_json(),
            "stages": {k: v.to_json() for k, v in sorted(stages.items())},
            "providers": {k: v.to_json() for k, v in sorted(providers.items())},
            "cells": [{"stage": stage, "provider": spec, **cell.to_json()}
                      for (stage, spec), cell in sorted(self._cells.items())],
        }


class Budget:
    """The ``--max-cost`` guard: reserve a request's worst case before sending it.

    Protocol, per request that is not a cache hit::

        worst = price.max_cost(prompt_tokens, request.max_tokens)
        if not budget.reserve(worst):
            raise BudgetExceeded(...)        # start nothing that could pass the cap
        try:
            completion = await send()
        except ProviderError:
            budget.release(worst)            # a failed call is not billed
            raise
        budget.settle(worst, completion.cost_usd)

    With ``max_cost=None`` every reservation succeeds and spending is still
    tracked. ``spent`` can exceed the cap only if a provider billed more than
    the reserved worst case, i.e. if the prompt-token estimate was low.
    """

    def __init__(self, max_cost: float | None) -> None:
        if max_cost is not None and (not math.isfinite(max_cost) or max_cost < 0):
            raise ValueError(f"max_cost must be a finite number >= 0, got {max_cost!r}")
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        # Spent by earlier invocations on the same run folder: the cap is the run's.
        self.prior = 0.0

    @staticmethod
    def _check(amount: float, what: str) -> None:
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{what} must be a finite amount >= 0, got {amount!r}")

    def reserve(self, amount: float) -> bool:
        """Reserve ``amount`` dollars; False (and nothing reserved) if that could pass the cap."""
        self._check(amount, "reservation")
        if self.max_cost is not None and \
                self.prior + self.spent + self.reserved + amount > self.max_cost:
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        """Replace a reservation by what the call really cost."""
        self._check(actual, "actual cost")
        self.release(reserved)
        self.spent += actual

    def release(self, reserved: float) -> None:
        """Give back a reservation whose call cost nothing (failed or cancelled)."""
        self._check(reserved, "reservation")
        # Clamp: float sums of many reserve/release pairs can drift below 0.
        self.reserved = max(0.0, self.reserved - reserved)

    @property
    def remaining(self) -> float | None:
        """Dollars not yet spent or reserved; None without a cap."""
        if self.max_cost is None:
            return None
        return max(0.0, self.max_cost - self.prior - self.spent - self.reserved)

    @property
    def total_spent(self) -> float:
        """This invocation's spend plus what earlier invocations of the run spent."""
        return self.prior + self.spent

    def to_json(self) -> dict[str, float | None]:
        return {"max_cost": self.max_cost, "spent": self.spent, "spent_before": self.prior,
                "reserved": self.reserved, "remaining": self.remaining}


def usd(amount: float) -> str:
    """Dollars as a person reads them: cents above a dime, four decimals below ($0.0042)."""
    return f"${amount:,.2f}" if abs(amount) >= 0.1 else f"${amount:.4f}"


def _human_count(n: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            return f"{n / limit:.1f}{suffix}"
    return f"{n:.0f}"


def _human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _dollars(amount: float) -> str:
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def format_progress(snapshot: dict[str, Any], *, elapsed_s: float,
                    total_items: int | None = None, done_items: int | None = None,
                    eta_s: float | None = None) -> str:
    """One status line from ``Accounting.snapshot()``; pure, so the display is testable.

    ``req/s`` counts requests actually sent to a provider (cache hits are
    shown apart); the ETA appears only when the total is known: ``eta_s`` if
    the caller smooths one, else the item rate so far extrapolated.
    """
    t = snapshot["totals"]
    parts: list[str] = []
    if done_items is not None:
        if total_items:
            parts.append(f"{done_items:,}/{total_items:,} items "
                         f"({100 * done_items / total_items:.1f}%)")
        else:
            parts.append(f"{done_items:,} items")
    sent = t["requests"] - t["cache_hits"]
    rate = sent / elapsed_s if elapsed_s > 0 else 0.0
    parts.append(f"{rate:.1f} req/s")
    parts.append(f"tok {_human_count(t['input_tokens'])} in / "
                 f"{_human_count(t['output_tokens'])} out")
    parts.append(_dollars(t["cost_usd"]))
    parts.append(f"cache {t['cache_hits']:,}")
    parts.append(f"429s {t['rate_limited']:,}")
    parts.append(f"retries {t['retries']:,}")
    if t["failures"]:
        parts.append(f"failed {t['failures']:,}")
    if total_items and done_items is not None:
        if done_items >= total_items:
            parts.append(f"done in {_human_duration(elapsed_s)}")
        elif eta_s is not None:
            parts.append(f"ETA {_human_duration(eta_s)}")
        elif done_items > 0 and elapsed_s > 0:
            eta = (total_items - done_items) * elapsed_s / done_items
            parts.append(f"ETA {_human_duration(eta)}")
        else:
            parts.append("ETA --")
    return " · ".join(parts)
