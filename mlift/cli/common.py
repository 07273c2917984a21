"""Flags shared by the commands that send requests, and the live progress line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TextIO

from mlift.config import Config, load_config, resolve_endpoint
from mlift.engine.accounting import Accounting, Budget, format_progress
from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.engine.core import Engine
from mlift.engine.retry import TimeoutPolicy
from mlift.errors import ConfigError
from mlift.prices import Price, PriceTable
from mlift.providers.base import Endpoint


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("provider and engine")
    g.add_argument("--config", metavar="FILE",
                   help="TOML config with [providers.NAME] profiles (default: $MLIFT_CONFIG, "
                        "else ./mlift.toml if present)")
    g.add_argument("--base-url", metavar="URL",
                   help="send to this server instead (an OpenAI- or Anthropic-compatible API)")
    g.add_argument("--rpm", type=float, help="requests per minute allowed by the provider")
    g.add_argument("--tpm", type=float, help="tokens per minute allowed by the provider")
    g.add_argument("--transport", choices=["auto", "sdk", "aiohttp"],
                   help="HTTP client: auto (default: mlift's lean aiohttp client, or the "
                        "official SDK where a profile uses an SDK-only setting such as "
                        "organization, project or Azure), sdk, or aiohttp")
    g.add_argument("--concurrency", type=int, help="most requests in flight per endpoint "
                   "(default 64)")
    g.add_argument("--max-cost", type=float, metavar="USD",
                   help="never start a request that could take the run past this many dollars")
    g.add_argument("--price", metavar="IN,OUT",
                   help="USD per 1M input,output tokens for a model the price table lacks")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="response cache (default: $MLIFT_CACHE_DIR, else the user cache folder)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    g.add_argument("--request-timeout", type=float, metavar="S",
                   help="abandon (and retry) any request after S seconds; by default the "
                        "timeout is fitted to the latencies seen so far (10 s to 10 min)")
    g.add_argument("-q", "--quiet", action="store_true", help="no live progress line")


@dataclasses.dataclass(slots=True)
class EngineFactory:
    """Builds endpoints and an engine from the parsed flags."""

    args: argparse.Namespace
    config: Config
    price: Price | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineFactory:
        price = Price.parse(args.price) if args.price else None
        if args.request_timeout is not None and args.request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be positive, got {args.request_timeout}")
        if args.max_cost is not None and args.max_cost < 0:
            raise ConfigError(f"--max-cost must be >= 0, got {args.max_cost}")
        return cls(args, load_config(args.config), price)

    def resolve(self, spec: str) -> Endpoint:
        a = self.args
        endpoint = resolve_endpoint(spec, self.config, base_url=a.base_url, rpm=a.rpm,
                                    tpm=a.tpm, concurrency=a.concurrency,
                                    transport=a.transport)
        if self.price is not None:
            endpoint = dataclasses.replace(endpoint, input_price=self.price.input,
                                           output_price=self.price.output)
        return endpoint

    def timeouts(self) -> TimeoutPolicy:
        cap = self.args.request_timeout
        if cap is None:
            return TimeoutPolicy()
        return TimeoutPolicy(initial_s=cap, floor_s=cap, ceiling_s=cap)

    @asynccontextmanager
    async def engine(self) -> AsyncIterator[Engine]:
        cache = None if self.args.no_cache else await ResponseCache.open(
            default_cache_dir(self.args.cache_dir))
        engine = Engine(self.resolve, cache=cache, accounting=Accounting(),
                        budget=Budget(self.args.max_cost), prices=PriceTable.load(),
                        timeouts=self.timeouts)
        try:
            yield engine
        finally:
            await engine.aclose()
            if cache is not None:
                await cache.aclose()


class Progress:
    """A live status line on stderr: redrawn in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, engine: Engine, *, quiet: bool = False,
                 counts: Callable[[], tuple[int | None, int | None]] | None = None,
                 stream: TextIO | None = None) -> None:
        # sys.stderr looked up now, not at import: tests and redirections swap it.
        stream = stream or sys.stderr
        self._engine, self._quiet, self._stream = engine, quiet, stream
        self._counts = counts or (lambda: (None, None))
        self._tty = stream.isatty()
        self._start = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def line(self) -> str:
        done, total = self._counts()
        snapshot = self._engine.accounting.snapshot()
        text = format_progress(snapshot, elapsed_s=time.monotonic() - self._start,
                               total_items=total, done_items=done)
        stages = snapshot.get("stages", {})
        if len(stages) > 1:  # a pipeline: where the requests are going
            text += " · " + " ".join(f"{name} {cell['requests']:,}"
                                     for name, cell in stages.items())
        return text

    async def _tick(self) -> None:
        period = 1.0 if self._tty else 10.0
        while True:
            await asyncio.sleep(period)
            self._draw()

    def _draw(self, final: bool = False) -> None:
        text = self.line()
        if self._tty:
            self._stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    async def __aenter__(self) -> Progress:
        self._start = time.monotonic()
        if not self._quiet:
            self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # never re-raises: our cancellation stays ours
            self._draw(final=True)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._start


class FunnelReport(Protocol):
    inputs: int
    kept: int
    rejected: int
    skipped_done: int
    funnel: dict[str, Any]

    @property
    def balanced(self) -> bool: ...


def print_summary(command: str, report: FunnelReport, out_dir: Path,
                  cost: float | None) -> None:
    """The closing lines of a dataset-building command: the count check, rejects, where to look."""
    status = "ok" if report.balanced else "MISMATCH"
    below = getattr(report, "below", None)
    parts = [f"{report.kept} kept"]
    if below is not None:
        parts.append(f"{below} below threshold")
    parts.append(f"{report.rejected} rejected")
    print(f"mlift {command}: {report.inputs} input = {' + '.join(parts)} [{status}]"
          + (f"; {report.skipped_done} already done" if report.skipped_done else ""),
          file=sys.stderr)
    reasons = report.funnel.get("rejects_by_stage_and_reason", {})
    if reasons:
        top = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:6])
        print(f"  rejects: {top}", file=sys.stderr)
    spent = f"cost ${cost:.4f} this run; " if cost is not None else ""
    print(f"  {spent}dataset: {out_dir / 'dataset.jsonl'}", file=sys.stderr)
