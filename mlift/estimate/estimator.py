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

import asyncio
import functools
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mlift import __version__
from mlift.batch.views import WINDOW_S
from mlift.engine.cache import ResponseCache
from mlift.estimate.dryrun import DryRunEngine, Observer, Resolver
from mlift.estimate.ledger import Ledger
from mlift.estimate.model import Range, batch_costs, sample, stage_figures, wall_time
from mlift.estimate.priors import Factor, prior_factors
from mlift.pipeline.parallel import in_thread
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.sources import Record
from mlift.pipeline.stages import MAX_REASKS
from mlift.prices import PriceTable
from mlift.prompts import PromptLibrary
from mlift.providers.base import Endpoint
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
                   pilot: dict[str, Any] | None = None,
                   batch: Collection[str] | None = None) -> dict[str, Any]:
    """The estimate as a JSON-able dict (schema ``mlift-estimate-v1``).

    ``resolve`` turns a ``NAME:MODEL`` spec into its endpoint. ``factors``
    default to the priors; ``--pilot`` passes measured ones. ``finished``: the
    run folder's finished items, which the run will skip. ``batch``: the stages
    a ``--batch`` run would send as batch jobs; their cost at batch prices and
    the time window are added next to the online figures.
    """
    factors = factors or prior_factors(options.min_score)
    # Reading the price table and each model's tokenizer blocks: in a thread.
    table = price_table if price_table is not None else await asyncio.to_thread(PriceTable.load)
    engine = await asyncio.to_thread(new_engine, resolve, library, options, cache, table)
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
    out = {
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
                   # of which read from the provider's prompt cache (priced lower)
                   "cached_input_tokens": s.cached_input_tokens.to_json(0),
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
    if batch is not None:
        kinds = {spec: ep.kind for spec, ep in used.items()}
        out["batch"] = _batch(out, ledger, batch,
                              *batch_costs(ledger, draws, engine.prices, batch, kinds), used)
    return out


# The order a batch run's stages wait for each other in: one round of batches each.
ROUNDS = ("to_en", "to_en_context", "instruct", "judge", "back")


def _batch(est: dict[str, Any], ledger: Ledger, batched: Collection[str],
           costs: Mapping[str, Range], total: Range,
           endpoints: Mapping[str, Endpoint]) -> dict[str, Any]:
    """Batch prices next to the online ones, and how long the rounds of batches may take:
    each round's batches end within the providers' 24-hour window, one round after the
    other (a judge re-ask is a round more, at most ``MAX_REASKS``)."""
    stages = est["stages"]
    for name, stage in stages.items():
        stage["batch"] = name in batched
        stage["cost_usd_batch"] = costs[name].to_json()
    est["total"]["cost_usd_batch"] = total.to_json()
    rounds = [s for s in ROUNDS if s in batched and s in stages
              and stages[s]["requests"]["expected"] > 0]
    reasks = MAX_REASKS if "judge" in rounds and any(
        stage == "judge" and what == "requests" and "reask" in names
        for stage, _, what, names in ledger.terms) else 0
    kinds = {endpoints[stages[s]["spec"]].kind for s in rounds}
    return {"stages": [s for s in stages if s in batched], "window_h": WINDOW_S / 3600,
            "rounds": rounds, "reask_rounds_at_most": reasks,
            "at_most_s": (len(rounds) + reasks) * WINDOW_S,
            "note": "Anthropic says most batches end within an hour" if "anthropic" in kinds
            else None}


def estimate_vs_actual(est: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """Per stage and in total: the estimate's dollars next to an ``Accounting.snapshot()``.

    For ``run.json``, so a user sees how close the estimate was. A stage the run
    sent in batches is held against the estimate's batch figure, if it has one
    (``mlift estimate --batch``).
    """
    out: dict[str, Any] = {}
    actual_stages = snapshot.get("stages", {})
    batched = {name for name, cell in actual_stages.items() if cell.get("batch_requests")}
    for name, stage in est.get("stages", {}).items():
        actual = actual_stages.get(name, {}).get("cost_usd", 0.0)
        key = "cost_usd_batch" if name in batched and "cost_usd_batch" in stage else "cost_usd"
        out[name] = {"estimate_usd": stage[key], "actual_usd": actual,
                     "priced": "batch" if key == "cost_usd_batch" else "online"}
    actual_total = snapshot.get("totals", {}).get("cost_usd", 0.0)
    total = est.get("total", {})
    key = "cost_usd_batch" if batched and "cost_usd_batch" in total else "cost_usd"
    expected = total.get(key, {}).get("expected")
    out["total"] = {"estimate_usd": total.get(key),
                    "actual_usd": actual_total,
                    "error": (expected - actual_total) / actual_total
                    if expected is not None and actual_total else None}
    return out
