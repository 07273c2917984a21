"""Flags shared by the commands that send requests, and the live progress line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from mlift.config import Config, load_config, resolve_endpoint
from mlift.engine.accounting import Accounting, Budget, format_progress, usd
from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.engine.core import Engine
from mlift.engine.retry import TimeoutPolicy
from mlift.errors import ConfigError
from mlift.prices import Price, PriceTable
from mlift.providers.base import Endpoint
from mlift.runfolder.report import RunReport


def add_folder_args(parser: argparse.ArgumentParser) -> None:
    """``--new-generation``, for every command that writes a run folder."""
    parser.add_argument(
        "--new-generation", action="store_true",
        help="the --out folder holds a run made with other settings: move it into "
             "OUT/generations/N/ and start afresh (without this flag such a resume is "
             "refused, so rows made two ways never mix)")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("provider and engine")
    g.add_argument("--config", metavar="FILE",
                   help="TOML config with [providers.NAME] profiles (default: $MLIFT_CONFIG, "
                        "else ./mlift.toml if present)")
    g.add_argument("--base-url", metavar="URL[,URL…]",
                   help="send to this server instead (an OpenAI- or Anthropic-compatible API); "
                        "several, comma-separated: servers of the same model, sharing the work")
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
    """Builds endpoints and an engine from the parsed flags.

    Made before ``asyncio.run``: it reads the config file and the price table.
    """

    args: argparse.Namespace
    config: Config
    price: Price | None
    prices: PriceTable

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineFactory:
        price = Price.parse(args.price) if args.price else None
        if args.request_timeout is not None and args.request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be positive, got {args.request_timeout}")
        if args.max_cost is not None and args.max_cost < 0:
            raise ConfigError(f"--max-cost must be >= 0, got {args.max_cost}")
        return cls(args, load_config(args.config), price, PriceTable.load())

    def resolve(self, spec: str) -> list[Endpoint]:
        """The endpoints of one ``NAME:MODEL``: one per ``--base-url`` URL (else the profile's)."""
        a = self.args
        urls = [u.strip() for u in a.base_url.split(",")] if a.base_url else [None]
        endpoints = []
        for url in urls:
            if url == "":
                raise ConfigError(f"--base-url {a.base_url!r} has an empty entry")
            endpoint = resolve_endpoint(spec, self.config, base_url=url, rpm=a.rpm,
                                        tpm=a.tpm, concurrency=a.concurrency,
                                        transport=a.transport)
            if self.price is not None:
                endpoint = dataclasses.replace(endpoint, input_price=self.price.input,
                                               output_price=self.price.output)
            endpoints.append(endpoint)
        return endpoints

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
                        budget=Budget(self.args.max_cost), prices=self.prices,
                        timeouts=self.timeouts)
        try:
            yield engine
        finally:
            await engine.aclose()
            if cache is not None:
                await cache.aclose()


# Where each stage's requests are shown on the progress line: the order items flow.
STAGE_ORDER = ("to_en", "to_en_context", "instruct", "judge", "back",
               "translate_instruction", "translate_response")


class Eta:
    """Seconds left, from the recent completion rate, moving steadily rather than jumping.

    The rate is measured over the last ``window_s`` seconds (a run's start,
    with every worker's first item still in flight, and bursts of items that
    finish together would otherwise swing it). Each update moves the ETA at
    most 30 % of the way to the new figure, and by no more than a tenth of
    itself (at least 2 s), besides the time that passed.
    """

    def __init__(self, window_s: float = 60.0, warmup_s: float = 5.0) -> None:
        self.window_s, self.warmup_s = window_s, warmup_s
        self._samples: deque[tuple[float, int]] = deque()
        self._eta: float | None = None
        self._at = 0.0

    def update(self, now: float, done: int | None, total: int | None) -> float | None:
        if not total or done is None:
            return None
        if done >= total:
            return 0.0
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        start, done0 = self._samples[0]
        if now - start < self.warmup_s or done <= done0:
            if self._eta is None:
                return None
            return max(0.0, self._eta - (now - self._at))
        raw = (total - done) * (now - start) / (done - done0)
        if self._eta is None:
            eta = raw
        else:
            expected = max(0.0, self._eta - (now - self._at))
            cap = max(2.0, 0.1 * expected)
            eta = expected + max(-cap, min(cap, 0.3 * (raw - expected)))
        self._eta, self._at = eta, now
        return eta


class Progress:
    """A live status line on stderr: redrawn in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, engine: Engine, *, quiet: bool = False,
                 counts: Callable[[], tuple[int | None, int | None]] | None = None,
                 extra: Callable[[], str] | None = None,
                 stream: TextIO | None = None) -> None:
        """``extra`` adds a part of its own to the line (batch mode: passes and batches:
        each stage's batches by state, lines done, the expected wait)."""
        # sys.stderr looked up now, not at import: tests and redirections swap it.
        stream = stream or sys.stderr
        self._engine, self._quiet, self._stream = engine, quiet, stream
        self._counts = counts or (lambda: (None, None))
        self._extra = extra
        self._tty = stream.isatty()
        self._start = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._eta = Eta()

    def line(self) -> str:
        done, total = self._counts()
        snapshot = self._engine.accounting.snapshot()
        now = time.monotonic()
        text = format_progress(snapshot, elapsed_s=now - self._start, total_items=total,
                               done_items=done, eta_s=self._eta.update(now, done, total))
        stages = snapshot.get("stages", {})
        if len(stages) > 1:  # a pipeline: where the requests are going, in flow order
            order = {name: i for i, name in enumerate(STAGE_ORDER)}
            names = sorted(stages, key=lambda n: (order.get(n, len(order)), n))
            text += " · " + " ".join(f"{name} {stages[name]['requests']:,}" for name in names)
        extra = self._extra() if self._extra is not None else ""
        return f"{text} · {extra}" if extra else text

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

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # never re-raises: our cancellation stays ours
            # A usage error (a refused folder, a bad flag) is the whole story: no
            # status line of nothing done in front of it.
            if exc_type is None or not issubclass(exc_type, ConfigError):
                self._draw(final=True)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._start


def print_summary(command: str, report: RunReport, out_dir: Path,
                  max_cost: float | None = None) -> None:
    """The closing lines of a dataset-building command: the count check, rejects, cost, where."""
    parts = [f"{report.kept} kept"]
    if report.below is not None:
        parts.append(f"{report.below} below threshold")
    parts.append(f"{report.rejected} rejected")
    missing = report.unfinished
    if missing > 0 and report.stopped:
        parts.append(f"{missing} not processed yet")
        status = "stopped early: re-run to finish"
    elif missing > 0:
        status = (f"MISMATCH: {missing} input records are in none of the outputs; this is a "
                  f"bug — please report it with {out_dir / 'run.json'}")
    elif missing < 0:
        status = (f"MISMATCH: the outputs hold {-missing} records more than this input has; "
                  f"were records removed from an input file since the folder was made?")
    else:
        status = "ok"
    print(f"mlift {command}: {report.inputs} input = {' + '.join(parts)} [{status}]"
          + (f"; {report.skipped_done} already done" if report.skipped_done else ""),
          file=sys.stderr)
    if report.retried:
        print(f"  retried {report.retried} items whose calls had failed at the provider",
              file=sys.stderr)
    if report.provider_failures:
        print(f"  {report.provider_failures} items failed at the provider (see rejects with "
              f"\"retry\": true); re-run the same command to try them again", file=sys.stderr)
    reasons = report.funnel.get("rejects_by_stage_and_reason", {})
    if reasons:
        top = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:6])
        print(f"  rejects: {top}", file=sys.stderr)
    print(f"  {cost_line(report.cost_usd, report.run_cost_usd, max_cost)}; "
          f"dataset: {out_dir / 'dataset.jsonl'}", file=sys.stderr)


def cost_line(this: float, total: float, max_cost: float | None) -> str:
    """``cost $X this invocation, $Y over all invocations`` — which figure is which, always."""
    cap = f" (--max-cost {usd(max_cost)} caps the total)" if max_cost is not None else ""
    if abs(total - this) < 1e-12:
        return f"cost {usd(this)}{cap}"
    return f"cost {usd(this)} this invocation, {usd(total)} over all invocations{cap}"
