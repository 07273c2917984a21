"""``mlift estimate INPUT [INPUT …]``: what a run will cost and how long it takes, sending nothing.

Takes the same flags and config as ``mlift run``. Input tokens are counted
with each model's own tokenizer where one is available; answer lengths and
the judge's pass rate are priors unless ``--pilot N`` runs N items for real
(through the cache, so the real run does not pay for them twice). With
``--batch [STAGE,…]`` the cost of those stages at batch prices is shown next
to the online cost, with the time the rounds of batches may take (the pilot
still runs online).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlift.cli.batches import add_batch_args, batch_stages
from mlift.cli.common import EngineFactory, add_engine_args
from mlift.cli.run import PIPELINE_STAGES, add_pipeline_args, options_from_args
from mlift.config import load_config, resolve_endpoint
from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.errors import ConfigError
from mlift.estimate.estimator import estimate
from mlift.estimate.pilot import run_pilot
from mlift.estimate.report import format_table
from mlift.pipeline.runner import RunOptions
from mlift.prices import Price, PriceTable
from mlift.prompts import PromptLibrary, load_prompts
from mlift.providers.base import Endpoint
from mlift.runfolder import Finished, RunFolder

ESTIMATE_FILE = "estimate.json"


class _KeyFree(Mapping[str, str]):
    """The environment, with a placeholder for any unset key: estimating sends nothing."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key) or "unused-by-estimate"

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("estimate", help="cost and wall time of a run, before running it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_args(p)
    add_engine_args(p)
    add_batch_args(p, PIPELINE_STAGES, poll=False)
    e = p.add_argument_group("estimate")
    e.add_argument("--json", action="store_true", help="print the estimate as JSON")
    e.add_argument("--out", type=Path, metavar="DIR", help="the run folder `mlift run` will "
                   "use: items finished there are not counted, and the estimate is saved as "
                   f"DIR/{ESTIMATE_FILE} for run.json to compare with")
    e.add_argument("--pilot", type=int, metavar="N", help="run the first N items for real "
                   "(cached) and extrapolate from what they measured")
    e.add_argument("--pilot-out", type=Path, metavar="DIR",
                   help="keep the pilot's run folder here (default: a temporary folder)")
    p.set_defaults(handler=handle)


def resolver(args: argparse.Namespace) -> Callable[[str], Endpoint]:
    """Endpoints as ``mlift run`` resolves them, without needing a key (nothing is sent)."""
    config = load_config(args.config)
    price = Price.parse(args.price) if args.price else None

    def resolve(spec: str) -> Endpoint:
        ep = resolve_endpoint(spec, config, base_url=args.base_url, rpm=args.rpm, tpm=args.tpm,
                              concurrency=args.concurrency, env=_KeyFree())
        if price is not None:
            ep = dataclasses.replace(ep, input_price=price.input, output_price=price.output)
        return ep

    return resolve


def handle(args: argparse.Namespace) -> int:
    options = options_from_args(args, args.out or Path("."))
    library = load_prompts(args.prompts or None)
    library.get(options.judge_prompt)
    if options.tasks:
        library.pool("instruct", options.tasks)
    if args.pilot is not None and args.pilot < 1:
        raise ConfigError(f"--pilot must be at least 1, got {args.pilot}")
    if args.pilot and args.no_cache:
        raise ConfigError("--pilot needs the response cache (the pilot's answers are what "
                          "make its items free in the real run); drop --no-cache")
    batch = batch_stages(args, PIPELINE_STAGES)
    # Config, price table and the --out folder are read now, before the event loop starts.
    factory = EngineFactory.from_args(args) if args.pilot else None
    result = asyncio.run(_estimate(args, options, library, batch, resolver(args),
                                   _finished(args.out), factory))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ESTIMATE_FILE).write_text(json.dumps(result, indent=2) + "\n",
                                              encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _finished(out: Path | None) -> Finished | None:
    """What ``mlift run --out DIR`` will skip: finished items, but not provider failures
    (the run tries those again)."""
    if out is None or not out.is_dir():
        return None
    finished = RunFolder(out, {}).scan()
    finished.rejected -= finished.provider_failures
    return finished


async def _estimate(args: argparse.Namespace, options: RunOptions, library: PromptLibrary,
                    batch: frozenset[str] | None, resolve: Callable[[str], Endpoint],
                    finished: Finished | None,
                    factory: EngineFactory | None) -> dict[str, Any]:
    pilot = factors = latency = None
    if factory is not None:
        result = await run_pilot(factory, options, library, resolve,
                                 args.pilot, args.pilot_out, finished=finished,
                                 quiet=args.quiet)
        pilot, factors, latency = result.summary, result.factors, result.latency_s
    cache = None if args.no_cache else await ResponseCache.open(
        default_cache_dir(args.cache_dir))
    try:
        return await estimate(options, library, resolve, cache, price_table=PriceTable.load(),
                              factors=factors, latency_s=latency, pilot=pilot,
                              finished=finished, batch=batch)
    finally:
        if cache is not None:
            await cache.aclose()
