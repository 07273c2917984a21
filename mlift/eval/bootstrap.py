"""Seeded bootstrap intervals of corpus scores, and paired intervals of their difference.

Every metric here is a function of *summed* per-item statistics: chrF++ and
spBLEU of sacrebleu's sufficient statistics (a corpus score is not a mean of
sentence scores), ROUGE and accuracy of ``(value, 1)`` rows, i.e. a mean. A
bootstrap replicate draws N items with replacement, sums their rows and scores
the sum, so every metric is resampled the way it is computed (Koehn 2004).

A model's interval is the 2.5th–97.5th percentile of ``resamples`` replicate
scores. The *paired* interval of a difference draws the same items for both
models in every replicate — the systems are compared on identical samples, so
item difficulty cancels and the interval is much tighter than two separate
intervals suggest. ``p_value`` is the share of replicates in which the
difference does not keep the sign of the observed one (two-sided, doubled),
the usual paired-bootstrap significance estimate.

Replicates are drawn from ``numpy.random.default_rng(seed)`` only, so the same
inputs and seed always give the same intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, np.dtype[np.float64]]
ScoreFn = Callable[[Array], float]
RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with its bootstrap interval (same units as the score)."""

    value: float
    low: float
    high: float
    n: int
    p_value: float | None = None

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        out: dict[str, Any] = {"value": round(self.value, digits), "low": round(self.low, digits),
                               "high": round(self.high, digits), "n": self.n}
        if self.p_value is not None:
            out["p_value"] = round(self.p_value, digits)
        return out


def mean_score(summed: Array) -> float:
    """Score of ``(value, 1)`` rows: their mean, in percent."""
    return float(100.0 * summed[0] / summed[1]) if summed[1] else 0.0


def mean_rows(values: list[float]) -> Array:
    """``(value, 1)`` rows for :func:`mean_score`."""
    return np.column_stack([np.asarray(values, dtype=np.float64),
                            np.ones(len(values), dtype=np.float64)])


def _weights(rng: np.random.Generator, n: int, resamples: int) -> list[Array]:
    # Counts per item rather than index arrays: a replicate is then one
    # matrix-vector product, and memory stays O(n) however many replicates.
    return [np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
            for _ in range(resamples)]


def _bounds(values: Array, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100.0
    return float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail))


def interval(stats: Array, score: ScoreFn, *, resamples: int = RESAMPLES, seed: int = 0,
             level: float = LEVEL) -> Interval:
    """The corpus score of ``stats`` (one row per item) and its bootstrap interval."""
    n = len(stats)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    point = score(stats.sum(axis=0))
    rng = np.random.default_rng(seed)
    values = np.array([score(w @ stats) for w in _weights(rng, n, resamples)])
    low, high = _bounds(values, level)
    return Interval(point, low, high, n)


def paired_delta(stats_a: Array, stats_b: Array, score: ScoreFn, *,
                 resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """score(A) − score(B) on the same items (row i of both is item i), paired bootstrap."""
    if stats_a.shape[0] != stats_b.shape[0]:
        raise ValueError("paired_delta needs the same items in the same order for both")
    n = len(stats_a)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    point = score(stats_a.sum(axis=0)) - score(stats_b.sum(axis=0))
    rng = np.random.default_rng(seed)
    deltas = np.array([score(w @ stats_a) - score(w @ stats_b)
                       for w in _weights(rng, n, resamples)])
    low, high = _bounds(deltas, level)
    if point > 0:
        p = 2.0 * float(np.mean(deltas <= 0))
    elif point < 0:
        p = 2.0 * float(np.mean(deltas >= 0))
    else:
        p = 1.0
    return Interval(point, low, high, n, min(1.0, p))
