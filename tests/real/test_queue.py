"""More requests than llama-server has slots: a local server queues them, it does not 429.

What mlift must not do there: time out requests that are only waiting their
turn (each abandoned one is cancelled by the server and sent again at the
back of the queue — a retry storm made of false timeouts).
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from mlift.engine.retry import TimeoutPolicy
from mlift.types import Message, Request
from real.real_support import SLOTS, WIRES, EngineFactory, spec


def request(kind: str, i: int, max_tokens: int) -> Request:
    return Request(target=spec(kind), max_tokens=max_tokens, temperature=0.0,
                   messages=(Message("user", f"Count from {i} to {i + 60}, one per line."),))


@pytest.mark.parametrize(("kind", "transport"), WIRES)
async def test_more_requests_than_slots_are_all_answered_once(
        make_engine: EngineFactory, kind: str, transport: str) -> None:
    n = 4 * SLOTS
    async with make_engine(transport=transport) as engine:
        done = await asyncio.gather(*(engine.complete(request(kind, i, 16)) for i in range(n)))
        totals = engine.accounting.snapshot()["totals"]
    assert all(d.text for d in done)
    assert (totals["successes"], totals["failures"], totals["retries"],
            totals["rate_limited"]) == (n, 0, 0, 0)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_requests_queued_longer_than_the_timeout_are_waited_for_not_abandoned(
        make_engine: EngineFactory, kind: str) -> None:
    # Scaled down in time: the timeout is 4x what one batch of slots takes (at
    # least 5 s, for the jitter of the first connections), and enough batches
    # are queued at once that the last ones wait about twice the timeout
    # before the server starts on them; once served, each is answered well
    # within it.
    async with make_engine() as engine:
        started = time.monotonic()
        await asyncio.gather(*(engine.complete(request(kind, i, 24)) for i in range(SLOTS)))
        batch_s = time.monotonic() - started
    timeout_s = max(4 * batch_s, 5.0)
    n = SLOTS * min(20, math.ceil(2 * timeout_s / batch_s) + 1)

    def policy() -> TimeoutPolicy:
        # min_samples beyond the test's requests: the timeout stays put.
        return TimeoutPolicy(initial_s=timeout_s, floor_s=1.0, min_samples=1000)

    async with make_engine(timeouts=policy) as engine:
        started = time.monotonic()
        await asyncio.gather(*(engine.complete(request(kind, 100 + i, 24)) for i in range(n)))
        elapsed = time.monotonic() - started
        totals = engine.accounting.snapshot()["totals"]
    assert totals["retries_by_error"] == {}, (
        f"timeout {timeout_s:.1f}s, a batch {batch_s:.1f}s, a queue of {n} took {elapsed:.1f}s")
    assert totals["successes"] == n and totals["attempts"] == n
