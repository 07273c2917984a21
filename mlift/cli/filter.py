"""``mlift filter RUN_DIR --min-score K``: sweep the judge threshold without new judge calls."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mlift.cli.common import EngineFactory, add_engine_args, cost_line
from mlift.pipeline.refilter import refilter
from mlift.prompts import load_prompts


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("filter", help="re-derive a run's dataset at another --min-score",
                       description=__doc__)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--min-score", type=int, required=True, choices=range(1, 6), metavar="K")
    p.add_argument("--prompts", action="append", type=Path, default=[], metavar="DIR")
    add_engine_args(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    library = load_prompts(args.prompts or None)
    return asyncio.run(_run(args, EngineFactory.from_args(args), library))


async def _run(args: argparse.Namespace, factory: EngineFactory, library: object) -> int:
    async with factory.engine() as engine:
        report = await refilter(args.run_dir, args.min_score, engine,
                                library)  # type: ignore[arg-type]
    print(f"mlift filter: min-score {args.min_score}: {report.kept} kept "
          f"({report.added} added, {report.removed} removed, {report.rejected} rejected on "
          f"back-translation), {report.below} below; "
          f"{cost_line(report.cost_usd, report.run_cost_usd, args.max_cost)}", file=sys.stderr)
    if report.stopped:
        print(f"mlift filter: stopped early: {report.stopped}", file=sys.stderr)
        return 4
    return 0
