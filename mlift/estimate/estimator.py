"""``estimate()``: requests, tokens, dollars and wall time of a run, before it is run.

The estimate is the run without the sending: the run's own
:class:`~mlift.pipeline.runner.Pipeline` selects the records (step 0, same
selector, same skips of a run folder's finished items) and takes each selected
one through the real stages (:meth:`~mlift.pipeline.runner.Pipeline.process`),
on a :class:`~mlift.estimate.dryrun.DryRunEngine` that books what each request
would cost. The ledger is then priced and timed (:mod:`mlift.estimate.model`).
The only I/O is reading the inputs and looking answers up in the response
cache; no run folder is written.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlift import __version__
from mlift.engine.cache import ResponseCache
from mlift.estimate.dryrun import DryRunEngine, Observer, Resolver
from mlift.estimate.model import sample, stage_figures, wall_time
from mlift.estimate.priors import Factor, prior_factors
from mlift.pipeline.parallel import in_thread
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.sources import Record
from mlift.prices import PriceTable
from mlift.prompts import PromptLibrary
from mlift.records import RecordBase
from mlift.runfolder import Finished
from mlift.tokens import tokenizer_name

SCHEMA = "mlift-estimate-v1"


async def dry_run(options: RunOptions, library: PromptLibrary, engine: DryRunEngine, *,
                  finished: Finished | None = None,
                  on_item: Callable[[tuple[RecordBase, ...]], None] | None = None,
                  ) -> dict[str, int]:
    """Every selected item through the real stages on ``engine``; the selection counts.

    ``on_item`` sees what each item would end as (with stand-ins where answers
    were predicted).
    """
    pipeline = Pipeline(options, engine, library)
    done = finished or Finished()
    async for item in in_thread(lambda: pipeline.items(done)):
        if isinstance(item, Record):  # unreadable and unselected records cost nothing
            async with engine.item(item) as take:
                outcome = await take(functools.partial(pipeline.process, item))
            if on_item is not None:
                on_item(outcome)
    return {**pipeline.selector.counts(), "already_done": pipeline.report.skipped_done}


def new_engine(resolve: Resolver, library: PromptLibrary, options: RunOptions,
               cache: ResponseCache | None, table: PriceTable,
               observe: Observer | None = None) -> DryRunEngine:
    """A dry-run engine with every stage's endpoint resolved (a missing price fails now)."""
    engine = DryRunEngine(resolve, library, cache, prices=table, observe=observe)
    m = options.models
    for spec in (m.translator, m.generator, m.judge):
        engine.endpoint(spec)
    return engine


async def estimate(options: RunOptions, library: PromptLibrary, resolve: Resolver,
                   cache: ResponseCache | None, *, price_table: PriceTable | None = None,
                   factors: Mapping[str, Factor] | None = None,
                   finished: Finished | None = None,
                   latency_s: Mapping[str, float] | None = None,
                   pilot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The estimate as a JSON-able dict (schema ``mlift-estimate-v1``).

    ``resolve`` turns a ``NAME:MODEL`` spec into its endpoint. ``factors``
    default to the priors; ``--pilot`` passes measured ones. ``finished``: the
    run folder's finished items, which the run will skip.
    """
    table = price_table or PriceTable.load()
    factors = factors or prior_factors(options.min_score)
    engine = new_engine(resolve, library, options, cache, table)
    selection = await dry_run(options, library, engine, finished=finished)
    ledger = engine.ledger
    draws = sample(factors, ledger.units)
    stages, total = stage_figures(ledger, draws, engine.prices)
    used = {s.target: engine.endpoint(s.target) for s in stages.values()}
    wall, per_endpoint = wall_time(ledger, draws, used, latency_s)
    approx = sorted({ep.model for ep in used.values() if tokenizer_name(ep.model) == "approx"})
    notes = sorted(ledger.notes)
    if approx:
        notes.append("input tokens of " + ", ".join(approx) + " are a script-aware "
                     "approximation (no public tokenizer, or its encoding did not load)")
    if pilot is None:
        notes.append("answer lengths and the pass rate are priors; --pilot N measures them")
    return {
        "schema": SCHEMA,
        "mlift_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "price_table": {"version": table.version, "updated": table.updated},
        "items": {"input": selection["seen"], "selected": selection["kept"],
                  "estimated": ledger.items, "selection": selection},
        "min_score": options.min_score,
        "factors": {k: f.to_json() for k, f in factors.items()},
        "stages": {
            name: {"model": s.target, "spec": s.target,
                   "tokenizer": tokenizer_name(used[s.target].model),
                   "price_per_1m": {"input": (p := engine.prices[s.target]).input,
                                    "output": p.output, "source": p.source},
                   "requests": s.requests.to_json(1), "cached_requests": s.cached,
                   "input_tokens": s.input_tokens.to_json(0),
                   "output_tokens": s.output_tokens.to_json(0),
                   "cost_usd": s.cost_usd.to_json()}
            for name, s in stages.items()},
        "pass_rate": factors["pass"].to_json(),
        "total": {"cost_usd": total.to_json(), "cached_requests": sum(ledger.cached.values())},
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
