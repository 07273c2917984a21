"""``mlift requests IN.jsonl --out OUT.jsonl --provider NAME:MODEL``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from mlift.bulk import BulkSummary, run_requests, state_dir
from mlift.cli.batches import add_batch_args, batch_from_args, warn_open_batches
from mlift.cli.common import EngineFactory, Progress, add_engine_args, add_folder_args
from mlift.errors import ConfigError

STAGES = ("requests",)
EXAMPLE = """\
each input line is an OpenAI Chat Completions body, e.g.
  {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50, "metadata": {"k": 1}}
results come out one per input line, in input order; re-run the same command to resume.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("requests", help="run a JSONL file of chat requests through the engine",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, metavar="IN.jsonl")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.jsonl")
    p.add_argument("--provider", required=True, metavar="NAME:MODEL",
                   help="e.g. openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest, sim:default")
    p.add_argument("--stats-json", type=Path, metavar="FILE",
                   help="also write the run's accounting (tokens, cost, latency, retries) here")
    add_folder_args(p)
    add_engine_args(p)
    add_batch_args(p, STAGES)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise ConfigError(f"input file {args.input} does not exist")
    if args.input.resolve() == args.out.resolve():
        raise ConfigError("--out must differ from the input file")
    if args.batch is None:
        warn_open_batches(state_dir(args.out), "requests")
    return asyncio.run(_run(args, EngineFactory.from_args(args)))


async def _run(args: argparse.Namespace, factory: EngineFactory) -> int:
    async with factory.engine() as engine:
        summary = BulkSummary()
        # Validate before the clock starts. Without --batch no tokens are counted outside
        # the engine, whose first request sent loads the tokenizer: none on a cached re-run.
        await engine.prepare(args.provider, tokenizers=args.batch is not None)
        batch = batch_from_args(args, engine, STAGES, [("requests", args.provider)])
        async with Progress(engine, quiet=args.quiet,
                            extra=batch.progress if batch else None) as progress:
            try:
                summary = await run_requests(engine, args.input, args.out, args.provider,
                                             workers=args.concurrency or 64,
                                             new_generation=args.new_generation, batch=batch)
            finally:
                snapshot = engine.accounting.snapshot()
                if args.stats_json:
                    await asyncio.to_thread(args.stats_json.write_text, json.dumps(
                        {"elapsed_s": progress.elapsed_s, "accounting": snapshot,
                         "budget": engine.budget.to_json()}, indent=2))
    totals = snapshot["totals"]
    print(f"mlift requests: {summary.written} written ({summary.ok} ok, {summary.errors} errors)"
          f", {summary.skipped_done} already done, to {args.out}; "
          f"${totals['cost_usd']:.4f}, {totals['cache_hits']} cache hits", file=sys.stderr)
    if summary.error_kinds:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary.error_kinds.items()))
        print(f"  errors by kind: {kinds}", file=sys.stderr)
    if summary.stopped_reason:
        print(f"mlift requests: stopped early: {summary.stopped_reason}", file=sys.stderr)
        return 4
    return 4 if summary.errors else 0
