"""The request timeout against a server that queues (llama.cpp, vLLM, Ollama), on virtual time.

A local server with a few slots does not refuse the requests beyond them:
it serves them in turn. The engine's timeout must tell a request waiting its
turn (requests sent before it keep being answered) from a hung one (nothing
sent before it is answered any more). The conformance suite shows the same
against a real llama-server (tests/real/test_queue.py).
"""

from __future__ import annotations

import asyncio

import pytest

from mlift.engine.accounting import Accounting
from mlift.engine.core import Engine
from mlift.engine.retry import RetryPolicy, TimeoutPolicy
from mlift.providers.base import Endpoint, Provider
from mlift.types import Completion, Message, Request, Usage


class QueueingServer(Provider):
    """``slots`` requests served at a time, first come first served, ``service_s`` each.

    Requests whose text is in ``hang`` hold their slot for an hour the first time.
    """

    def __init__(self, endpoint: Endpoint, slots: int, service_s: float,
                 hang: frozenset[str] = frozenset()) -> None:
        self.endpoint = endpoint
        self.slots = asyncio.Semaphore(slots)
        self.service_s, self.hang = service_s, set(hang)
        self.served: list[str] = []

    async def complete(self, request: Request) -> Completion:
        text = request.messages[-1].content
        async with self.slots:  # asyncio's semaphore wakes waiters in order: FIFO
            if text in self.hang:
                self.hang.discard(text)
                await asyncio.sleep(3600)
            await asyncio.sleep(self.service_s)
        self.served.append(text)
        return Completion(text="ok", finish_reason="stop", usage=Usage(10, 5), model="m")

    async def aclose(self) -> None:
        return None


def engine_on(server: QueueingServer, timeout_s: float) -> Engine:
    def policy() -> TimeoutPolicy:
        return TimeoutPolicy(initial_s=timeout_s, floor_s=1.0, min_samples=10_000)

    def factory(_endpoint: Endpoint) -> Provider:
        return server

    return Engine(lambda _spec: server.endpoint, accounting=Accounting(), timeouts=policy,
                  retry=RetryPolicy(max_attempts=5), provider_factory=factory)


def endpoint() -> Endpoint:
    return Endpoint(name="local", kind="fake", model="m", input_price=0.0, output_price=0.0)


def req(i: int) -> Request:
    return Request(target="local:m", messages=(Message("user", f"r{i}"),), max_tokens=5)


@pytest.mark.looptime
async def test_a_queue_far_longer_than_the_timeout_is_served_without_one_timeout() -> None:
    # 40 requests, 2 slots, 10 s each: the last waits 190 s, the timeout is 30 s.
    server = QueueingServer(endpoint(), slots=2, service_s=10.0)
    engine = engine_on(server, timeout_s=30.0)
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(engine.complete(req(i)) for i in range(40)))
    totals = engine.accounting.snapshot()["totals"]
    assert (totals["retries"], totals["attempts"]) == (0, 40)
    assert len(server.served) == 40
    assert loop.time() == pytest.approx(200.0, abs=1.0)  # the server's own pace


async def sent_at(engine: Engine, delay: float, i: int) -> object:
    await asyncio.sleep(delay)
    return await engine.complete(req(i))


@pytest.mark.looptime
async def test_a_hung_request_in_a_queue_is_still_abandoned_one_timeout_after_its_turn() -> None:
    # r0, r1 at t=0; r2 (hangs in its slot) at t=2; r3..r9 at t=4. r2's turn
    # comes when r0 and r1 are answered (t=10): abandoned at 10 + 30 s and sent
    # again, while r3..r9 (sent well after it) flow past without moving it.
    server = QueueingServer(endpoint(), slots=2, service_s=10.0, hang=frozenset({"r2"}))
    engine = engine_on(server, timeout_s=30.0)
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(sent_at(engine, 0.0 if i < 2 else 2.0 if i == 2 else 4.0, i)
                           for i in range(10)))
    totals = engine.accounting.snapshot()["totals"]
    assert totals["retries_by_error"] == {"ProviderTimeout": 1}
    assert sorted(server.served) == sorted(f"r{i}" for i in range(10))
    assert loop.time() < 10.0 + 30.0 + 10.0 * 10 / 2  # its turn, the timeout, the rest


@pytest.mark.looptime
async def test_a_hung_request_sent_with_a_burst_is_abandoned_once_the_burst_is_answered() -> None:
    # Requests sent together reach the server in any order, so every answer to
    # the burst moves r2's deadline: it is abandoned 30 s after the last one.
    # The engine's gentle start sends the first 4 at once (r0..r3, the burst),
    # the rest as answers come back.
    server = QueueingServer(endpoint(), slots=2, service_s=10.0, hang=frozenset({"r2"}))
    engine = engine_on(server, timeout_s=30.0)
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(engine.complete(req(i)) for i in range(10)))
    totals = engine.accounting.snapshot()["totals"]
    assert totals["retries_by_error"] == {"ProviderTimeout": 1}
    # r0, r1 answered at t=10 and r3 (sent with r2) at 20: r2 is abandoned at
    # 20 + 30; answers to r4..r9, sent after it, do not move it. Then the slot
    # it held serves the rest with the other: all done at t=70.
    assert loop.time() == pytest.approx(20.0 + 30.0 + 20.0, abs=2.0)


@pytest.mark.looptime
async def test_a_server_that_stops_answering_times_every_waiting_request_out() -> None:
    # Four requests: what the engine sends at once before its first answer
    # (more would wait for those to time out first).
    server = QueueingServer(endpoint(), slots=2, service_s=3600.0)
    engine = engine_on(server, timeout_s=30.0)
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(engine.complete(req(i)) for i in range(4)),
                                   return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
    # Nothing was ever answered, so no deadline moved: 5 attempts of 30 s each.
    assert loop.time() == pytest.approx(5 * 30.0, rel=0.2)
