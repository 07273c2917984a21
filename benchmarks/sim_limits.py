"""The simulator's own exactness check (foundation issue): are its limits exact?

1. Offer twice the rpm limit, evenly, from a raw aiohttp client for longer
   than a 60 s window (and a shorter variant with an rpm and a tpm limit at
   once). From ``/stats``: no 1 s window above limit/60 + the burst
   (``burst_s`` = 1 → capacity limit/60, so 2 × limit/60 in any 1 s), no 60 s
   window above the limit.
2. A client alone that gets a 429 sleeps exactly ``retry-after-ms`` and
   retries: every such retry must pass.

    python -m benchmarks.sim_limits [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.common import Row
from benchmarks.procs import Sim


def _body(i: int, max_tokens: int = 100) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"Say something about the number {i}."}]}


_HEADERS = {"Authorization": "Bearer sk-bench"}


async def _offer(api: str, per_s: float, seconds: float) -> dict[str, int]:
    """Send ``per_s`` requests a second, evenly, whatever the answers; count statuses."""
    counts: dict[str, int] = {}
    async with aiohttp.ClientSession(headers=_HEADERS) as http:
        async def one(i: int) -> None:
            async with http.post(api + "/chat/completions", json=_body(i)) as resp:
                await resp.read()
                counts[str(resp.status)] = counts.get(str(resp.status), 0) + 1

        start = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for i in range(int(per_s * seconds)):
                await asyncio.sleep(max(0.0, start + i / per_s - time.monotonic()))
                group.create_task(one(i))
    return counts


@dataclass(frozen=True, slots=True)
class RetryCheck:
    got_429: int
    retry_passed: int


async def _retry_after(api: str, cycles: int) -> RetryCheck:
    """Alone: send until a 429, sleep exactly retry-after-ms, retry once; count passes."""
    got = passed = 0
    async with aiohttp.ClientSession(headers=_HEADERS) as http:
        i = 0
        while got < cycles:
            i += 1
            async with http.post(api + "/chat/completions", json=_body(i)) as resp:
                await resp.read()
                if resp.status != 429:
                    continue
                wait_ms = float(resp.headers["retry-after-ms"])
            got += 1
            await asyncio.sleep(wait_ms / 1000)
            async with http.post(api + "/chat/completions", json=_body(i)) as resp:
                await resp.read()
                passed += resp.status == 200
    return RetryCheck(got, passed)


def _window_row(name: str, stats: dict[str, Any], counts: dict[str, int], *, rpm: float,
                tpm: float | None, seconds: float) -> Row:
    ok = stats["max_requests_1s"] <= 2 * rpm / 60 and stats["max_requests_60s"] <= rpm
    result = (f"offered 2× for {seconds:.0f}s: statuses {counts}; max req/1s "
              f"{stats['max_requests_1s']} (bound {2 * rpm / 60:.0f}), max req/60s "
              f"{stats['max_requests_60s']} (limit {rpm:.0f})")
    target = "1 s ≤ 2×limit/60, 60 s ≤ limit"
    if tpm is not None:
        ok = ok and stats["max_tokens_1s"] <= 2 * tpm / 60 and stats["max_tokens_60s"] <= tpm
        result += (f"; max tok/1s {stats['max_tokens_1s']} (bound {2 * tpm / 60:.0f}), "
                   f"max tok/60s {stats['max_tokens_60s']} (limit {tpm:.0f})")
    return Row("0 sim limits", name, result, target, ok)


def check(quick: bool = False) -> list[Row]:
    rows = []
    long_s = 20.0 if quick else 75.0
    with Sim("--rpm", "600") as sim:
        counts = asyncio.run(_offer(sim.api, 20.0, long_s))
        rows.append(_window_row("rpm 600", sim.stats(), counts, rpm=600, tpm=None,
                                seconds=long_s))
    with Sim("--rpm", "1200", "--tpm", "60000") as sim:
        # ~120 tokens a request: the tpm limit (~8 req/s) binds before rpm (20/s).
        counts = asyncio.run(_offer(sim.api, 16.0, 10.0 if quick else 20.0))
        rows.append(_window_row("rpm 1200 + tpm 60k", sim.stats(), counts, rpm=1200,
                                tpm=60000, seconds=10.0 if quick else 20.0))
    with Sim("--rpm", "120") as sim:
        r = asyncio.run(_retry_after(sim.api, 5 if quick else 20))
        rows.append(Row("0 sim limits", "Retry-After honoured",
                        f"{r.got_429} 429s; retry after exactly retry-after-ms passed "
                        f"{r.retry_passed}/{r.got_429}", "all pass",
                        r.retry_passed == r.got_429))
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 s instead of 75 s")
    for row in check(p.parse_args().quick):
        print(f"{row.client}: {row.result} -> {'pass' if row.ok else 'MISS'}")
