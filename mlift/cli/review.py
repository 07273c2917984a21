"""``mlift review RUN [RUN …]``: a local web page to browse, label and blind-compare pairs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from mlift.errors import ConfigError
from mlift.review.blind import DEFAULT_PER_LANG

EPILOG = """\
examples:
  mlift review runs/hi                          # browse and label one run folder
  mlift review runs/hi runs/hi-translate runs/hi-template --labeller asha
                                                # and compare them blind (first = ours)

Labels go to RUN/labels.jsonl, blind choices to the first RUN's preferences.jsonl,
each line with the labeller's name and the time. The server listens on 127.0.0.1
only unless --host says otherwise; press Ctrl+C to stop it.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("review", help="browse, label and blind-compare pairs in a local web page",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="run folders (mlift run or baselines); two or three enable the blind "
                        "comparison")
    p.add_argument("--labeller", help="your name on the labels (default: your login name)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the page may be opened under besides IP addresses and "
                        "localhost (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the blind comparison's deck")
    p.add_argument("--per-lang", type=int, default=DEFAULT_PER_LANG, metavar="N",
                   help=f"comparisons per language and two runs (default {DEFAULT_PER_LANG})")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from mlift.review.app import Review

    if len(args.runs) > 3:
        raise ConfigError("give one run folder to review, or two or three to compare blind")
    if args.per_lang < 1:
        raise ConfigError(f"--per-lang must be at least 1, got {args.per_lang}")
    try:
        review = Review(args.runs, labeller=args.labeller or getpass.getuser(), seed=args.seed,
                        per_lang=args.per_lang, allow_hosts=tuple(args.allow_host))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--labeller: {exc}") from None
    try:
        return asyncio.run(_serve(review, args.host, args.port))
    except KeyboardInterrupt:  # the way to stop it; every saved label is already on disk
        print("mlift review: stopped", file=sys.stderr)
        return 0


async def _serve(review: object, host: str, port: int) -> int:
    from mlift.review.app import Review, serve

    assert isinstance(review, Review)
    runner, url = await serve(review, host, port)
    pairs = sum(len(r.pairs) for r in review.runs)
    print(f"mlift review: {pairs} pairs in {len(review.runs)} run folder(s); "
          f"{len(review.deck)} blind comparisons", file=sys.stderr)
    print(f"mlift review: open {url}  (Ctrl+C stops)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0
