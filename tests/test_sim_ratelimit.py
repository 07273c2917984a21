"""Rate limits: no window ever exceeds the limit, and Retry-After is honest.

Driven on a virtual clock over real HTTP (aiohttp client against the sim), and
directly against the limiter with random offers.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from mlift.sim import SimConfig, SimServer
from mlift.sim.limiter import KeyLimits
from mlift.sim.stats import max_in_window

SimFactory = Callable[..., Awaitable[SimServer]]


async def post(http: aiohttp.ClientSession, server: SimServer, max_tokens: int,
               ) -> tuple[int, dict[str, str]]:
    payload = {"model": "default", "max_tokens": max_tokens,
               "messages": [{"role": "user", "content": "hello there"}]}
    async with http.post(server.base_url + "/v1/chat/completions", json=payload,
                         headers={"Authorization": "Bearer k"}) as r:
        await r.read()
        return r.status, dict(r.headers)


@pytest.mark.parametrize("config", [
    SimConfig(rpm=300),                      # 5/s, burst of 5
    SimConfig(rpm=300, burst_s=30.0),        # a burst of 150: the 60 s log must hold the line
    SimConfig(tpm=15_000, rpm=1200),         # tokens bind (each request ~ 30-230 tokens)
], ids=["rpm", "rpm-big-burst", "tpm"])
async def test_offering_twice_the_limit_never_exceeds_it_and_retry_after_is_honest(
        sim: SimFactory, clock: Any, config: SimConfig) -> None:
    server = await sim(config, clock=clock)
    rng = random.Random(1)
    per_s = 2 * (config.rpm or 0) / 60 if config.tpm is None else 2 * config.tpm / 60 / 130
    honoured = 0
    async with aiohttp.ClientSession() as http:
        end = clock.now + 70.0
        while clock.now < end:
            clock.advance(rng.expovariate(per_s))
            max_tokens = rng.randint(20, 220)
            status, headers = await post(http, server, max_tokens)
            if status == 429 and rng.random() < 0.3:
                # Honour Retry-After with nobody else sending: it must pass.
                clock.advance(int(headers["retry-after-ms"]) / 1000)
                status, _ = await post(http, server, max_tokens)
                assert status == 200
                honoured += 1
    stats = server.stats()
    assert stats["by_status"]["429"] > 10 and honoured >= 3
    burst = config.burst_s
    if config.tpm is None:
        rpm = config.rpm or 0
        assert stats["max_requests_1s"] <= rpm / 60 * (1 + burst)
        assert stats["max_requests_60s"] <= rpm
        assert stats["max_requests_60s"] >= 0.9 * rpm  # and the limit is actually usable
    else:
        assert stats["max_tokens_60s"] <= config.tpm
        assert stats["max_tokens_1s"] <= config.tpm / 60 * (1 + burst) + 250  # + one request


def test_limiter_waits_are_honest_and_windows_hold_under_random_offers() -> None:
    rng = random.Random(7)
    for rpm, tpm, burst in ((120, None, 1.0), (None, 5000, 0.5), (600, 20_000, 10.0)):
        now = 0.0
        limits = KeyLimits(rpm, tpm, burst, now)
        times, costs = array("d"), array("d")
        for _ in range(3000):
            now += rng.expovariate(4.0)
            cost = rng.randint(10, 400)
            decision = limits.offer(cost, now)
            if decision.admitted:
                times.append(now)
                costs.append(cost)
                continue
            assert decision.refused_by in ("requests", "tokens")
            assert 0 < decision.wait_s < 60.0 + 1e-6
            retry_at = now + math.ceil(decision.wait_s * 1000 + 1) / 1000
            again = limits.offer(cost, retry_at)
            assert again.admitted, (rpm, tpm, now, decision)
            now = retry_at
            times.append(now)
            costs.append(cost)
        requests_60, tokens_60 = max_in_window(times, costs, 60.0)
        if rpm:
            assert requests_60 <= rpm
            assert max_in_window(times, costs, 1.0)[0] <= rpm / 60 * (1 + burst) + 1e-9
        if tpm:
            assert tokens_60 <= tpm


def test_request_bigger_than_the_token_limit_is_refused_for_good() -> None:
    limits = KeyLimits(None, 1000, 1.0, 0.0)
    decision = limits.offer(5000, 0.0)
    assert not decision.admitted and math.isinf(decision.wait_s)
    assert decision.refused_by == "tokens"


async def test_too_large_request_says_do_not_retry(sim: SimFactory) -> None:
    server = await sim(SimConfig(tpm=100))
    async with aiohttp.ClientSession() as http:
        status, headers = await post(http, server, max_tokens=500)
    assert status == 429
    assert headers["x-should-retry"] == "false" and "retry-after" not in headers
