"""``mlift agree RUN``: how far the judge agrees with other judges and with people.

Reads the run's judge scores (scored.jsonl), other judges' (judge_scores.jsonl,
from ``mlift judge``), human labels (labels.jsonl) and blind choices
(preferences.jsonl, from ``mlift review``), and prints weighted Cohen's κ,
Kendall's τ-b, Spearman's ρ, exact and ±1 agreement, a confusion matrix and
the yield at each threshold λ, overall, per language and per task, each with
the number of items behind it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlift.agree.compare import agreement
from mlift.agree.render import render_text
from mlift.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agree", help="judge vs judge and judge vs human agreement of a run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.run_dir.is_dir():
        raise ConfigError(f"{args.run_dir}: not a folder (expected an mlift run folder)")
    result = agreement(args.run_dir)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(result))
    return 0
