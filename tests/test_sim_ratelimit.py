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
from mlift.sim.limiter import Charges, KeyLimits
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


# ---- accounting like real providers -----------------------------------------------------

def test_refused_requests_are_charged_when_the_key_counts_them() -> None:
    for counted in (False, True):
        limits = KeyLimits(60, None, 1.0, 0.0)  # 1/s, burst 1
        assert limits.offer(1, 0.0).admitted
        refused = [limits.offer(1, 0.1 * i, count_refused=counted) for i in range(1, 6)]
        assert not any(d.admitted for d in refused)
        if counted:
            # Five refusals each took a request's worth: the key is 5 s in debt,
            # and the last refusal's wait says so (honestly: it then passes).
            assert refused[-1].wait_s == pytest.approx(5.5, abs=0.01)
            assert not limits.offer(1, 0.5 + 5.4).admitted
        else:
            assert refused[-1].wait_s == pytest.approx(0.5, abs=0.01)
            assert limits.offer(1, 1.0).admitted


def test_output_tokens_are_charged_max_tokens_then_settled_to_what_was_written() -> None:
    limits = KeyLimits(None, None, 1.0, 0.0, otpm=600)  # 10/s, bucket 10
    first = limits.offer(Charges(output_tokens=10), 0.0)
    assert first.admitted and first.states["output_tokens"].remaining == 0
    assert not limits.offer(Charges(output_tokens=10), 0.0).admitted
    limits.settle_output(first, 2, 0.0)  # it wrote 2 of its 10
    assert limits.offer(Charges(output_tokens=8), 0.0).admitted


async def post_json(http: aiohttp.ClientSession, url: str, payload: dict[str, Any],
                    headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with http.post(url, json=payload, headers=headers) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json()


async def test_chars_accounting_charges_characters_over_four_plus_max_tokens(
        sim: SimFactory, clock: Any) -> None:
    text = "x" * 400  # 400 characters: 100 by chars/4, far fewer by the tokenizer
    payload = {"model": "gpt-4o-mini", "max_tokens": 50,
               "messages": [{"role": "user", "content": text}]}
    charged = {}
    for mode in ("tokenizer", "chars"):
        server = await sim(SimConfig(tpm=60_000, token_charge=mode), clock=clock)  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as http:
            status, headers, _ = await post_json(http, server.base_url + "/v1/chat/completions",
                                                 payload, {"Authorization": "Bearer k"})
        assert status == 200
        charged[mode] = 1000 - int(headers["x-ratelimit-remaining-tokens"])  # bucket holds 1000
    assert charged["chars"] == 100 + 50
    assert charged["tokenizer"] < charged["chars"]


async def test_anthropic_input_and_output_limits_have_their_own_headers_and_429s(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(SimConfig(rpm=600, itpm=120_000, otpm=3000), clock=clock)
    payload = {"model": "claude-3-5-haiku-latest", "max_tokens": 60,
               "messages": [{"role": "user", "content": "hello there"}]}
    url, hdrs = server.base_url + "/v1/messages", {"x-api-key": "k"}
    async with aiohttp.ClientSession() as http:
        status, headers, _ = await post_json(http, url, payload, hdrs)
        assert status == 200
        assert headers["anthropic-ratelimit-input-tokens-limit"] == "120000"
        assert headers["anthropic-ratelimit-output-tokens-limit"] == "3000"
        # Remaining token counts are rounded to the nearest thousand, as Anthropic does.
        assert int(headers["anthropic-ratelimit-input-tokens-remaining"]) % 1000 == 0
        # tokens-* shows the most restrictive token limit: output (a 50-token bucket, 60 taken).
        assert headers["anthropic-ratelimit-tokens-limit"] == "3000"
        status, headers, body = await post_json(http, url, payload, hdrs)
    assert status == 429
    assert "of 3,000 output tokens per minute" in body["error"]["message"]
    assert int(headers["retry-after"]) >= 1


async def test_no_limit_headers_mode_sends_only_429s_and_retry_after(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(SimConfig(rpm=60, limit_headers=False), clock=clock)
    async with aiohttp.ClientSession() as http:
        ok = await post(http, server, 10)
        refused = await post(http, server, 10)
    assert ok[0] == 200 and refused[0] == 429
    for _, headers in (ok, refused):
        assert not any(k.lower().startswith("x-ratelimit") for k in headers)
    assert "retry-after-ms" in refused[1]
