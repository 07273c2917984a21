"""``mlift export DIR --format F --out OUT``: a run folder's dataset in a fine-tuning format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlift.export import FORMATS, export, validate_openai_chat


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export", help="write a run's dataset as hf, openai-chat, alpaca or sharegpt",
        description="Export DIR/dataset.jsonl for fine-tuning, with a dataset card (README.md) "
                    "beside it. OUT is a file, except for hf, where it is a folder "
                    "(datasets.load_from_disk(OUT), Parquet under OUT/data/).")
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (mlift run, baseline)")
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    p.add_argument("--out", required=True, type=Path, metavar="OUT")
    p.add_argument("--system", metavar="TEXT",
                   help="a system message for every example (openai-chat, sharegpt, hf)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    result = export(args.run_dir, args.fmt, args.out, system=args.system,
                    overwrite=args.overwrite)
    print(f"mlift export: {result.rows} rows as {result.format} → {result.out} "
          f"(card: {result.card})", file=sys.stderr)
    if args.fmt == "openai-chat":
        problems = validate_openai_chat(result.out)
        for problem in problems[:20]:
            print(f"mlift export: invalid: {problem}", file=sys.stderr)
        if problems:
            print(f"mlift export: {len(problems)} problems in {result.out}", file=sys.stderr)
            return 1
    return 0
