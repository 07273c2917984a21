"""``--pilot N``: run N selected items for real, then measure the factors.

The pilot is the real pipeline (:class:`mlift.pipeline.runner.Pipeline`)
through the real engine and the same response cache, on N selected items
spread evenly through the input (the first N of a file sorted by language or
source would measure one language only), writing into a temporary run folder
(or ``--pilot-out``), with the live progress line of ``mlift run``.
Afterwards its items go through the dry run (:mod:`mlift.estimate.dryrun`)
again: every answer is now cached, and each cached answer is compared with
what the prior predicted for it. Per factor:

* a length factor is the ratio estimator actual / predicted summed over the
  pilot's answers, with a 95 % interval of ± t₀.₉₇₅(n−1) standard errors (so
  three answers give a wide interval, not a confident one); its per-request
  spread is the residuals' standard deviation relative to the mean answer;
* the pass rate is the Beta posterior (from the prior's Beta, worth 6 pairs) of
  how many of the pilot's judged pairs reached the back translation, counted
  from the pilot run's own outputs; the re-ask rate is the Beta posterior
  (prior worth 8 verdicts) of re-asks per judged pair, counted from the cached
  conversations.

Those factors replace the priors for the rest of the input; the pilot's own
items are then cache hits at $0, in the estimate and in the real run alike.
The mean latency each endpoint showed replaces the assumed one for the wall time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.cli.common import EngineFactory, Progress
from mlift.estimate.dryrun import Resolver
from mlift.estimate.estimator import dry_run, new_engine
from mlift.estimate.priors import LENGTHS, Factor, prior_factors
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.sources import Record
from mlift.prices import PriceTable
from mlift.prompts import PromptLibrary
from mlift.runfolder import Finished
from mlift.runfolder.report import RunReport

# Student's t, two-sided 95 %, by degrees of freedom (beyond the table: the normal's 1.96).
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
        10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04, 60: 2.00}


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


def t95(df: int) -> float:
    """Student's t quantile for a 95 % interval (the next smaller tabled df: on the wide side)."""
    if df < 1:
        return math.inf
    return _T95[max(k for k in _T95 if k <= df)] if df <= max(_T95) else 1.96


def length_factor(what: str, predicted: list[float], actual: list[float],
                  prior: Factor) -> Factor:
    """actual/predicted with a 95 % interval and a per-request spread; the prior if unmeasured."""
    n, sp, sa = len(predicted), sum(predicted), sum(actual)
    if n < 2 or sp <= 0 or sa <= 0:
        return prior
    r = sa / sp
    mean_p = sp / n
    s2 = sum((a - r * p) ** 2 for p, a in zip(predicted, actual, strict=True)) / (n - 1)
    se = math.sqrt(s2 / n) / mean_p
    half = t95(n - 1) * se
    return Factor(r, max(r * 0.05, r - half), r + half, source=f"pilot: {n} answers",
                  spread=math.sqrt(s2) / (r * mean_p))


def rate_factor(successes: float, trials: float, what: str, prior: Factor) -> Factor:
    """The Beta posterior of ``successes`` in ``trials`` from the prior's Beta; the prior if none.

    Conjugate: Beta(a + successes, b + failures). The priors are worth a few
    trials only, so a pilot's counts soon dominate; but 0 re-asks in 2 verdicts
    stays near the prior's 3 % instead of a flat prior's 17 %.
    """
    if trials <= 0 or prior.beta is None:
        return prior
    a, b = prior.beta
    return Factor.rate(a + successes, b + max(0.0, trials - successes),
                       f"pilot: {successes:.0f} {what} of {trials:.0f}, with the prior")


def passes(finished: Finished, min_score: int) -> tuple[int, int]:
    """(pairs at or above ``min_score``, pairs judged) in a run folder's outputs."""
    judged = len(finished.scores) + sum(
        n for key, n in finished.reasons.items()
        if key.startswith("judge:") and not key.startswith("judge:provider_"))
    return sum(1 for s in finished.scores.values() if s >= min_score), judged


async def run_pilot(factory: EngineFactory, options: RunOptions, library: PromptLibrary,
                    resolve: Resolver, n: int, out_dir: Path | None, *,
                    finished: Finished | None = None, quiet: bool = True) -> PilotResult:
    """Run ``n`` items for real (with a progress line) and return the factors they measured."""
    table = PriceTable.load()
    tmp = None if out_dir else await asyncio.to_thread(tempfile.mkdtemp, prefix="mlift-pilot-")
    try:
        folder = out_dir or Path(str(tmp))
        async with factory.engine() as engine:
            m = options.models
            await engine.prepare(*sorted({m.translator, m.generator, m.judge}))
            selection = Pipeline(options, engine, library)
            ids = await asyncio.to_thread(lambda: [
                r.id for r in selection.items(finished or Finished()) if isinstance(r, Record)])
            chosen = spread(ids, n)
            opts = dataclasses.replace(options, out_dir=folder, only_ids=chosen)
            pipeline = Pipeline(opts, engine, library)
            async with Progress(engine, quiet=quiet,
                                counts=lambda: (pipeline.emitted, len(chosen))):
                report = await pipeline.run()
            snapshot = engine.accounting.snapshot()
            judged = pipeline.run_state.finished if pipeline.run_state else Finished()
            cache = engine.cache
            pairs = _Pairs()
            dry = new_engine(resolve, library, opts, cache, table, observe=pairs)
            await dry_run(opts, library, dry)
    finally:
        if tmp is not None:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)
    return _result(options, pairs, passes(judged, options.min_score), snapshot, report,
                   out_dir, dry.ledger.items)


def _result(options: RunOptions, pairs: _Pairs, passed: tuple[int, int],
            snapshot: dict[str, Any], report: RunReport, out_dir: Path | None,
            items: int) -> PilotResult:
    priors = prior_factors(options.min_score)
    factors = {f: length_factor(f, pairs.predicted.get(f, []), pairs.actual.get(f, []),
                                priors[f]) for f in LENGTHS}
    factors["reask"] = rate_factor(sum(pairs.actual.get("reask", [])),
                                   sum(pairs.predicted.get("reask", [])), "re-asks",
                                   priors["reask"])
    factors["pass"] = rate_factor(passed[0], passed[1], "passed", priors["pass"])
    latency = {spec: p["latency_s"]["mean"] for spec, p in snapshot["providers"].items()
               if p["latency_s"]["mean"] is not None}
    summary = {"items": items, "cost_usd": snapshot["totals"]["cost_usd"],
               "out": str(out_dir) if out_dir else None,
               "kept": report.kept, "below_threshold": report.below,
               "rejected": report.rejected,
               "stages": {k: {"requests": v["requests"], "cache_hits": v["cache_hits"],
                              "input_tokens": v["input_tokens"],
                              "output_tokens": v["output_tokens"], "cost_usd": v["cost_usd"]}
                          for k, v in snapshot["stages"].items()},
               "latency_s": latency}
    return PilotResult(factors, latency, summary)
