"""``estimate()``: requests, tokens, dollars and wall time of a run, before it is run.

Selection (step 0) runs for real with the run's own :class:`Selector`, so the
item count is the run's; each selected item is walked through its requests
(:mod:`mlift.estimate.plan`) and the ledger is priced and timed
(:mod:`mlift.estimate.model`). Nothing is sent: the only I/O is reading the
inputs and looking answers up in the response cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlift import __version__
from mlift.engine.cache import ResponseCache
from mlift.estimate.model import sample, stage_figures, wall_time
from mlift.estimate.plan import STAGE_ROLE, Ledger, Observer, Walker, selected_records
from mlift.estimate.priors import Factor, prior_factors
from mlift.pipeline.runner import RunOptions
from mlift.pipeline.select import Selector
from mlift.prices import Price, PriceTable
from mlift.prompts import PromptLibrary
from mlift.providers.base import Endpoint
from mlift.tokens import tokenizer_name

SCHEMA = "mlift-estimate-v1"


async def walk_items(options: RunOptions, library: PromptLibrary,
                     endpoints: dict[str, Endpoint], cache: ResponseCache | None, *,
                     skip: Callable[[str], bool] = lambda _id: False,
                     limit: int | None = None, observe: Observer | None = None,
                     ) -> tuple[Ledger, dict[str, int]]:
    """The ledger of every selected item (the first ``limit``), and the selection counts."""
    selector = Selector(options.select)
    ledger = Ledger()
    walker = Walker(options, library, endpoints, cache, ledger, observe)
    for record in selected_records(options, selector, skip):
        if limit is not None and ledger.items >= limit:
            break
        await walker.walk(record)
    return ledger, selector.counts()


async def estimate(options: RunOptions, library: PromptLibrary, endpoints: dict[str, Endpoint],
                   prices: dict[str, Price], cache: ResponseCache | None, *,
                   price_table: PriceTable | None = None,
                   factors: dict[str, Factor] | None = None,
                   skip: Callable[[str], bool] = lambda _id: False,
                   latency_s: dict[str, float] | None = None,
                   pilot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The estimate as a JSON-able dict (schema ``mlift-estimate-v1``).

    ``endpoints`` and ``prices`` are keyed by role (translator, generator,
    judge). ``factors`` default to the priors; ``--pilot`` passes measured ones.
    """
    factors = factors or prior_factors(options.min_score)
    ledger, selection = await walk_items(options, library, endpoints, cache, skip=skip)
    draws = sample(factors)
    stages, total = stage_figures(ledger, draws, prices)
    wall, per_endpoint = wall_time(ledger, draws, endpoints, latency_s)
    approx = sorted({endpoints[r].model for r in STAGE_ROLE.values()
                     if tokenizer_name(endpoints[r].model) == "approx"})
    notes = []
    if approx:
        notes.append("input tokens of " + ", ".join(approx) + " are a script-aware "
                     "approximation (no public tokenizer, or its encoding did not load)")
    if pilot is None:
        notes.append("answer lengths and the pass rate are priors; --pilot N measures them")
    return {
        "schema": SCHEMA,
        "mlift_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "price_table": ({"version": price_table.version, "updated": price_table.updated}
                        if price_table else None),
        "items": {"input": selection["seen"], "selected": selection["kept"],
                  "estimated": ledger.items, "selection": selection},
        "min_score": options.min_score,
        "factors": {k: f.to_json() for k, f in factors.items()},
        "stages": {
            name: {"model": (spec := getattr(options.models, STAGE_ROLE[name])),
                   "tokenizer": tokenizer_name(endpoints[STAGE_ROLE[name]].model),
                   "price_per_1m": {"input": prices[STAGE_ROLE[name]].input,
                                    "output": prices[STAGE_ROLE[name]].output,
                                    "source": prices[STAGE_ROLE[name]].source},
                   "requests": s.requests.to_json(1), "cached_requests": s.cached,
                   "input_tokens": s.input_tokens.to_json(0),
                   "output_tokens": s.output_tokens.to_json(0),
                   "cost_usd": s.cost_usd.to_json(), "spec": spec}
            for name, s in stages.items()},
        "pass_rate": factors["pass"].to_json(),
        "total": {"cost_usd": total.to_json(),
                  "cached_requests": sum(ledger.cached.values())},
        "wall_time_s": {**wall.to_json(1), "endpoints": [
            {"spec": e.spec, "requests": round(e.requests, 1), "tokens": round(e.tokens),
             "bound": e.bound, "seconds": e.seconds.to_json(1)} for e in per_endpoint]},
        "pilot": pilot,
        "notes": notes,
    }


def estimate_vs_actual(est: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """Per stage and in total: the estimate's dollars next to an ``Accounting.snapshot()``.

    For ``run.json``, so a user sees how close the estimate was.
    """
    out: dict[str, Any] = {}
    for name, stage in est.get("stages", {}).items():
        actual = snapshot.get("stages", {}).get(name, {}).get("cost_usd", 0.0)
        out[name] = {"estimate_usd": stage["cost_usd"], "actual_usd": actual}
    actual_total = snapshot.get("totals", {}).get("cost_usd", 0.0)
    expected = est.get("total", {}).get("cost_usd", {}).get("expected")
    out["total"] = {"estimate_usd": est.get("total", {}).get("cost_usd"),
                    "actual_usd": actual_total,
                    "error": (expected - actual_total) / actual_total
                    if expected is not None and actual_total else None}
    return out
