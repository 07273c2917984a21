"""``mlift cache stats`` and ``mlift cache clear``: look at or empty the response cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.errors import ConfigError


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _exists(directory: Path) -> bool:
    # Don't create a cache just to report that it is empty.
    return (directory / "cache.db").is_file()


def _stats(args: argparse.Namespace) -> int:
    directory = default_cache_dir(args.cache_dir)
    if not _exists(directory):
        print(f"location: {directory}\nentries:  0\nsize:     0 B (no cache here yet)")
        return 0
    with ResponseCache(directory) as cache:
        stats: dict[str, Any] = cache.stats()
    print(f"location: {stats['directory']}\n"
          f"entries:  {stats['entries']:,}\n"
          f"size:     {_human_bytes(stats['size_bytes'])} "
          f"(soft limit {_human_bytes(stats['size_limit_bytes'])}, nothing is evicted)")
    return 0


def _clear(args: argparse.Namespace) -> int:
    directory = default_cache_dir(args.cache_dir)
    if not _exists(directory):
        print(f"nothing to clear: no cache at {directory}")
        return 0
    with ResponseCache(directory) as cache:
        entries = cache.stats()["entries"]
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"refusing to delete {entries:,} cached answers in {directory} "
                                  f"without confirmation: pass --yes")
            answer = input(f"Delete {entries:,} cached answers in {directory}? "
                           f"They cost money to make. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("cache left as it was")
                return 0
        removed = cache.clear()
    print(f"removed {removed:,} cached answers from {directory}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache", help="show or clear the response cache",
        description="Every paid model answer is cached so re-runs cost nothing. "
                    "Location: --cache-dir, else $MLIFT_CACHE_DIR, else the user cache folder.")
    actions = parser.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="cache folder (default: $MLIFT_CACHE_DIR or the user cache folder)")
    stats = actions.add_parser("stats", parents=[common],
                               help="entries, size and location of the cache")
    stats.set_defaults(handler=_stats)
    clear = actions.add_parser("clear", parents=[common], help="delete every cached answer")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(handler=_clear)
