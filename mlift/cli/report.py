"""``mlift report DIR [DIR …]``: statistics of run folders, side by side, as text, JSON or HTML."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlift.errors import ConfigError
from mlift.report import dataset_stats, load_folder, render_html, render_text
from mlift.report.agreement import agreement_html, agreement_text, agreements
from mlift.report.evals import is_eval_folder, load_eval, render_eval_html, render_eval_text
from mlift.report.stats import TOKEN_MODEL


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help="statistics of run folders side by side (text, --json, --html)",
        description="Funnel, score histogram and yields, lengths, diversity and task spread of "
                    "one or more run folders (mlift run or baselines), one column per folder; "
                    "eval folders (mlift eval) as score tables with intervals.")
    p.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="run folders to compare")
    p.add_argument("--html", type=Path, metavar="OUT.html",
                   help="also write a self-contained HTML page with plots (needs matplotlib)")
    p.add_argument("--json", action="store_true",
                   help="print the statistics as JSON instead of the table")
    p.add_argument("--token-model", default=TOKEN_MODEL, metavar="MODEL",
                   help=f"whose tokenizer counts token lengths (default {TOKEN_MODEL})")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    evals = [load_eval(d) for d in args.dirs if is_eval_folder(d)]  # mlift eval's score tables
    dirs = [d for d in args.dirs if not is_eval_folder(d)]
    stats = [dataset_stats(load_folder(d), token_model=args.token_model) for d in dirs]
    agreed = agreements(dirs)  # judges vs judges and people, where the folders have them
    if args.html:
        page = render_html(stats, sections=agreement_html(agreed) + render_eval_html(evals))
        if args.html.is_dir():
            raise ConfigError(f"--html {args.html} is a folder; name the page to write, "
                              f"e.g. {args.html / 'report.html'}")
        args.html.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.html.with_name(args.html.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, args.html)
        print(f"mlift report: wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps([*(s.to_json() for s in stats), *evals], indent=2, ensure_ascii=False))
    else:
        if stats or not evals:
            sys.stdout.write(render_text(stats) + agreement_text(agreed))
        sys.stdout.write(render_eval_text(evals))
    return 0
