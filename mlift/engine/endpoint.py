"""What the engine keeps per endpoint: client, price, limiter, slots, timeouts, health.

One ``EndpointState`` per server, model and key (profiles that differ only in
name share one); the engine's ``Target`` pools them for a spec that names
several endpoints of one model.
"""

from __future__ import annotations

import asyncio

from mlift.engine.breaker import Breaker
from mlift.engine.limiter import RateLimiter, Sleep
from mlift.engine.pool import Health
from mlift.engine.retry import TimeoutPolicy
from mlift.prices import Price
from mlift.providers.base import Endpoint, Provider

DEFAULT_CONCURRENCY = 64
# Requests out before an endpoint's first answer: a gentle start, so a limit
# told wrong (or not at all) is learned before a burst meets it.
PROBE = 4
# Requests sent within this many seconds of each other count as sent together.
SAME_BURST_S = 1.0


class EndpointState:
    """Everything the engine keeps per endpoint (kind + base URL + model + key)."""

    def __init__(self, endpoint: Endpoint, provider: Provider, price: Price,
                 sleep: Sleep, timeouts: TimeoutPolicy) -> None:
        self.endpoint, self.provider, self.price = endpoint, provider, price
        # OpenAI charges prompt + max_tokens when it admits a request and keeps
        # the charge; Anthropic counts input and output apart and adjusts
        # output to what was written.
        self.anthropic = provider.refunds_unused_tokens
        concurrency = endpoint.concurrency or DEFAULT_CONCURRENCY
        # Half a second of burst, not the servers' usual one: requests leave
        # here at the limit but reach the server with a few ms of jitter, and
        # a client bucket as deep as the server's would meet it near-empty.
        self.limiter = RateLimiter(endpoint.rpm, endpoint.tpm, burst_s=0.5, sleep=sleep,
                                   anthropic=self.anthropic, probe=PROBE,
                                   max_window=concurrency)
        self.slots = asyncio.Semaphore(concurrency)
        self.timeouts = timeouts
        self.active = 0  # complete() calls that may use this endpoint, in their retry loop
        self.breaker = Breaker(endpoint, attempting=lambda: self.active,
                               pending=lambda: self.limiter.outstanding)
        self.health = Health(endpoint)
        # In-flight calls: when each was sent, since when its timeout counts
        # (see ``waited_their_turn``) and its handle, re-armed when that moves.
        self.inflight: dict[int, tuple[float, float, asyncio.Timeout]] = {}

    def waited_their_turn(self, answered_sent: float, now: float) -> None:
        """An answer came: calls sent after it may only have been queued behind it.

        A local server (llama.cpp, vLLM, Ollama) serves a few requests at a
        time and queues the rest instead of refusing them; while requests sent
        earlier keep being answered, a later one is waiting its turn, not
        hung. So its timeout counts from the latest such answer. "Earlier"
        has a tolerance (``SAME_BURST_S``): requests sent together reach the
        server in any order. A hung call still times out: nothing sent before
        it is answered any more, and answers to calls sent well after it do
        not move its deadline.
        """
        for call_id, (sent, since, handle) in self.inflight.items():
            if answered_sent <= sent + SAME_BURST_S and since < now:
                self.inflight[call_id] = (sent, now, handle)
                handle.reschedule(now + self.timeouts.current_s)
