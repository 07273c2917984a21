"""More requests than llama-server has slots: a local server queues them, it does not 429.

What mlift must not do there: time out requests that are only waiting their
turn (each abandoned one is cancelled by the server and sent again at the
back of the queue — a retry storm made of false timeouts).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from real_support import SLOTS, WIRES, EngineFactory, spec

from mlift.engine.retry import TimeoutPolicy
from mlift.types import Message, Request


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
    # Scaled down in time: the timeout is set to 2x what a full batch of
    # slots takes, and 4 batches are queued at once, so the last ones wait
    # 1.5 timeouts before the server starts on them. Each request is
    # answered well within the timeout once it is served.
    async with make_engine() as engine:
        started = time.monotonic()
        await asyncio.gather(*(engine.complete(request(kind, i, 32)) for i in range(SLOTS)))
        batch_s = time.monotonic() - started

    def policy() -> TimeoutPolicy:
        # min_samples beyond the test's requests: the timeout stays put.
        return TimeoutPolicy(initial_s=2 * batch_s, floor_s=1.0, min_samples=1000)

    n = 4 * SLOTS
    async with make_engine(timeouts=policy) as engine:
        started = time.monotonic()
        await asyncio.gather(*(engine.complete(request(kind, 100 + i, 32)) for i in range(n)))
        elapsed = time.monotonic() - started
        totals = engine.accounting.snapshot()["totals"]
    assert totals["retries_by_error"] == {}, (
        f"timeout {2 * batch_s:.1f}s, queue of {n} took {elapsed:.1f}s")
    assert totals["successes"] == n and totals["attempts"] == n
