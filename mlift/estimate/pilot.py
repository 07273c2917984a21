"""``--pilot N``: run N selected items for real, then measure the factors.

The pilot is the real pipeline (:class:`mlift.pipeline.runner.Pipeline`)
through the real engine and the same response cache, on N selected items
spread evenly through the input (the first N of a file sorted by language or
source would measure one language only), writing into a temporary run folder (or ``--pilot-out``).
Afterwards its items are walked again through the cache
(:mod:`mlift.estimate.plan`), which now holds every answer, and each factor
is measured as a ratio estimator, actual / predicted summed over the pilot's
requests, with a 95 % interval of ±1.96 standard errors (for the pass and
re-ask rates, the binomial Wilson interval). Those factors replace the
priors for the rest of the input; the pilot's own items are then cache hits
at $0, in the estimate and in the real run alike. The mean latency each
endpoint showed replaces the assumed one for the wall time.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.cli.common import EngineFactory
from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.estimate.estimator import walk_items
from mlift.estimate.model import Z95
from mlift.estimate.plan import selected_records
from mlift.estimate.priors import FACTORS, Factor, prior_factors
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.select import Selector
from mlift.prompts import PromptLibrary
from mlift.providers.base import Endpoint


@dataclass(slots=True)
class PilotResult:
    factors: dict[str, Factor]
    latency_s: dict[str, float]
    summary: dict[str, Any]


@dataclass(slots=True)
class _Pairs:
    predicted: dict[str, list[float]] = field(default_factory=dict)
    actual: dict[str, list[float]] = field(default_factory=dict)

    def __call__(self, what: str, predicted: float, actual: float) -> None:
        self.predicted.setdefault(what, []).append(predicted)
        self.actual.setdefault(what, []).append(actual)


def spread(ids: list[str], n: int) -> frozenset[str]:
    """``n`` ids evenly spaced through ``ids``, so a pilot sees every part of the input."""
    if n >= len(ids):
        return frozenset(ids)
    return frozenset(ids[(i * len(ids)) // n] for i in range(n))


def ratio_factor(what: str, predicted: list[float], actual: list[float],
                 prior: Factor) -> Factor:
    """actual/predicted with a 95 % interval; the prior if nothing was measured."""
    n, sp, sa = len(predicted), sum(predicted), sum(actual)
    if n == 0 or sp <= 0:
        return prior
    r = sa / sp
    if what in ("pass", "reask"):  # rates: Wilson interval on successes / trials
        trials = sp
        p = min(1.0, r)
        z2 = Z95 * Z95
        centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
        half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (
            1 + z2 / trials)
        return Factor(r, max(0.0, centre - half), centre + half,
                      source=f"pilot: {sa:.0f} of {trials:.0f}", log_scale=False)
    mean_p = sp / n
    resid = [a - r * p for p, a in zip(predicted, actual, strict=True)]
    var = sum(e * e for e in resid) / max(1, n - 1) / n / (mean_p * mean_p)
    se = math.sqrt(var)
    low = max(r * 0.05, r - Z95 * se)
    return Factor(r, low, r + Z95 * se, source=f"pilot: {n} answers")


async def run_pilot(factory: EngineFactory, options: RunOptions, library: PromptLibrary,
                    endpoints: dict[str, Endpoint], n: int, out_dir: Path | None, *,
                    quiet: bool = True) -> PilotResult:
    """Run ``n`` items for real and return the factors they measured."""
    ids = [r.id for r in selected_records(options, Selector(options.select))]
    chosen = spread(ids, n)
    with tempfile.TemporaryDirectory(prefix="mlift-pilot-") as tmp:
        folder = out_dir or Path(tmp)
        opts = dataclasses.replace(options, out_dir=folder, only_ids=chosen)
        async with factory.engine() as engine:
            for spec in {opts.models.translator, opts.models.generator, opts.models.judge}:
                engine.endpoint(spec)
            pipeline = Pipeline(opts, engine, library)
            report = await pipeline.run()
            snapshot = engine.accounting.snapshot()
    pairs = _Pairs()
    cache = await ResponseCache.open(default_cache_dir(factory.args.cache_dir))
    try:
        ledger, _ = await walk_items(options, library, endpoints, cache,
                                     skip=lambda i: i not in chosen, observe=pairs)
    finally:
        await cache.aclose()
    priors = prior_factors(options.min_score)
    factors = {f: ratio_factor(f, pairs.predicted.get(f, []), pairs.actual.get(f, []),
                               priors[f]) for f in FACTORS}
    latency = {spec: p["latency_s"]["mean"] for spec, p in snapshot["providers"].items()
               if p["latency_s"]["mean"] is not None}
    summary = {"items": ledger.items, "cost_usd": snapshot["totals"]["cost_usd"],
               "out": str(out_dir) if out_dir else None,
               "kept": report.kept, "below_threshold": report.below,
               "rejected": report.rejected,
               "stages": {k: {"requests": v["requests"], "cache_hits": v["cache_hits"],
                              "input_tokens": v["input_tokens"],
                              "output_tokens": v["output_tokens"], "cost_usd": v["cost_usd"]}
                          for k, v in snapshot["stages"].items()},
               "latency_s": latency}
    return PilotResult(factors, latency, summary)
