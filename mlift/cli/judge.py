"""``mlift judge RUN --judge NAME:MODEL [--sample N]``: a second judge on a seeded sample.

Prints what judging will cost first (as ``mlift estimate`` would), then
judges through the engine (cached; ``--max-cost`` caps it) and appends each
verdict to RUN/judge_scores.jsonl. ``mlift agree RUN`` then compares the
judges with each other and with human labels. Re-running judges only what
is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mlift.agree.judge import (
    JudgeOptions,
    Plan,
    estimate_judging,
    format_estimate,
    judge_sample,
    plan,
)
from mlift.cli.common import EngineFactory, Progress, add_engine_args, cost_line
from mlift.cli.estimate import resolver
from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.errors import ConfigError
from mlift.estimate.dryrun import Resolver
from mlift.prompts import PromptLibrary, load_prompts

EPILOG = """\
examples:
  mlift judge runs/hi --judge anthropic:claude-3-5-haiku-latest --sample 200
  mlift judge runs/hi --judge local:qwen2.5-7b --sample 200 --estimate   # cost only
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("judge", help="re-score a seeded sample of a run with another judge",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN", help="an `mlift run` folder")
    p.add_argument("--judge", required=True, metavar="NAME:MODEL", help="the other judge")
    p.add_argument("--sample", type=int, metavar="N",
                   help="judge N pairs drawn by --seed (default: every judged pair)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--judge-prompt", help="judge prompt id (default: the run's)")
    p.add_argument("--prompts", action="append", type=Path, default=[], metavar="DIR",
                   help="extra prompt folder (as given to mlift run)")
    p.add_argument("--estimate", action="store_true",
                   help="print what it would cost and stop (sends nothing)")
    add_engine_args(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.sample is not None and args.sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {args.sample}")
    judge = args.judge if ":" in args.judge else f"{args.judge}:default"
    options = JudgeOptions(args.run_dir, judge, args.sample, args.seed, args.judge_prompt,
                           workers=args.concurrency or 64)
    library = load_prompts(args.prompts or None)
    job = plan(options, library)
    # Config and price files are read now, before the event loop starts.
    factory = EngineFactory.from_args(args)
    return asyncio.run(_run(args, factory, resolver(args), options, job, library))


async def _estimate(args: argparse.Namespace, resolve: Resolver, job: Plan,
                    library: PromptLibrary) -> str:
    cache = None if args.no_cache else await ResponseCache.open(
        default_cache_dir(args.cache_dir))
    try:
        return format_estimate(await estimate_judging(job, library, resolve, cache),
                               job.models.judge)
    finally:
        if cache is not None:
            await cache.aclose()


async def _run(args: argparse.Namespace, factory: EngineFactory, resolve: Resolver,
               options: JudgeOptions, job: Plan, library: PromptLibrary) -> int:
    print(f"mlift judge: {len(job.sample)} pairs sampled (seed {options.seed}), "
          f"{len(job.sample) - len(job.todo)} already judged by {options.judge}",
          file=sys.stderr)
    print(await _estimate(args, resolve, job, library), file=sys.stderr)
    if args.estimate or not job.todo:
        return 0
    async with factory.engine() as engine:
        await engine.prepare(options.judge)
        async with Progress(engine, quiet=args.quiet,
                            counts=lambda: (None, len(job.todo))):
            report = await judge_sample(options, job, engine, library)
    failures = ", ".join(f"{k} {v}" for k, v in sorted(report.failures.items()))
    print(f"mlift judge: {report.scored} scored, {report.failed} without a verdict"
          + (f" ({failures})" if failures else "") + "; "
          + cost_line(report.cost_usd, report.total_cost_usd, args.max_cost)
          + f"; {options.run_dir / 'judge_scores.jsonl'}", file=sys.stderr)
    if report.stopped:
        print(f"mlift judge: stopped early: {report.stopped}", file=sys.stderr)
        return 4
    return 0
