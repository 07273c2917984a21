"""The engine against servers that count differently from it, on virtual time.

Each test runs the simulator in the test's event loop with its limiter on the
loop's clock (looptime makes that clock virtual), and sends requests through
``Engine.complete`` over real loopback HTTP (the lean aiohttp transport for
the openai kind, the Anthropic SDK for the anthropic kind). What the server
admitted, charged and refused is read from the simulator, never from the
engine's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlift.engine.cache import ResponseCache
from mlift.engine.core import Engine
from mlift.engine.endpoint import PROBE
from mlift.engine.retry import RetryPolicy
from mlift.errors import (
    AuthError,
    ConfigError,
    ConnectionFailed,
    EndpointMisconfigured,
    EndpointUnreachable,
    EndpointUnusable,
    PermanentError,
)
from mlift.providers.base import Endpoint
from mlift.sim import SimConfig, SimServer
from mlift.types import Completion, Message, Request

pytestmark = pytest.mark.looptime

_WORDS = ["river", "farmer", "library", "neighbour", "council", "teacher", "train", "village",
          "museum", "baker", "harbour", "bookshop", "road", "club", "sailor", "bridge", "basket",
          "mango", "valley", "clock", "lantern", "letter", "cousin", "water", "bird", "market",
          "coast", "harvest", "garden", "choir"]


def text(i: int, words: int = 110) -> str:
    rng = random.Random(i)
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def request(i: int, target: str = "x:gpt-4o-mini", max_tokens: int = 50) -> Request:
    return Request(target=target, messages=(Message("user", text(i)),), max_tokens=max_tokens)


def openai(name: str, server: SimServer, *, path: str = "/v1", key: str = "k",
           rpm: float | None = None, tpm: float | None = None) -> Endpoint:
    return Endpoint(name=name, kind="openai", model="gpt-4o-mini", base_url=server.base_url + path,
                    api_key=key, transport="aiohttp", input_price=0.0, output_price=0.0,
                    rpm=rpm, tpm=tpm)


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    servers: list[SimServer]
    engine: Engine
    started: float = 0.0
    ended: float = 0.0
    results: list[Completion | BaseException] = field(default_factory=list)

    @property
    def server(self) -> SimServer:
        return self.servers[0]

    async def run(self, requests: Sequence[Request]) -> list[Completion | BaseException]:
        self.started = self.loop.time()
        self.results = list(await asyncio.gather(*(self.engine.complete(r) for r in requests),
                                                 return_exceptions=True))
        self.ended = self.loop.time()
        return self.results

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def failures(self) -> list[BaseException]:
        return [r for r in self.results if isinstance(r, BaseException)]

    def refused(self, server: SimServer | None = None, start: float = 0.0,
                end: float = float("inf")) -> int:
        """429s in ``[start, end)`` seconds after the run started."""
        return (server or self.server).refused_between(self.started + start, self.started + end)

    def admitted(self, start: float, end: float, server: SimServer | None = None,
                 ) -> dict[str, float]:
        return (server or self.server).admitted_between(self.started + start,
                                                        self.started + end)


@asynccontextmanager
async def harness(configs: Sequence[SimConfig],
                  endpoints: Callable[[list[SimServer]], dict[str, Endpoint]],
                  cache: ResponseCache | None = None) -> AsyncIterator[Harness]:
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        servers = []
        for config in configs:
            server = SimServer(config, clock=loop.time)
            await stack.enter_async_context(server)
            servers.append(server)
        table = endpoints(servers)
        engine = Engine(lambda spec: table[spec.split(":", 1)[0]], cache=cache)
        await stack.enter_async_context(engine)
        yield Harness(loop, servers, engine)


def charge_per_minute(h: Harness, start: float, end: float, what: str = "tokens") -> float:
    return h.admitted(start, end)[what] / (end - start) * 60.0


@pytest.mark.parametrize("factor", [1.10, 1.25, 1.50])
async def test_a_server_charging_more_than_mlift_estimates_is_met_at_its_limit(
        factor: float) -> None:
    # The server charges factor × (prompt + max_tokens); mlift is told the right tpm.
    config = SimConfig(tpm=60_000, charge_factor=factor, latency_ms=200)
    async with harness([config], lambda s: {"x": openai("x", s[0], tpm=60_000)}) as h:
        n = 500
        await h.run([request(i) for i in range(n)])
        assert h.failures() == []
        # It learned what the server charges, within 2 %.
        assert h.engine.limiter("x:gpt-4o-mini").multiplier() == pytest.approx(factor, rel=0.02)
        # Refusals taught it early and then stopped.
        assert h.refused() <= 0.01 * n
        assert h.refused(start=60.0) <= 1
        # Throughput settles at the limit: within 5 % of it from the second minute
        # on (a stretch shorter than a minute may also hold part of a burst).
        rate = charge_per_minute(h, 60.0, h.wall - 10.0)
        assert 0.95 * 60_000 <= rate <= 1.02 * 60_000
        assert h.server.stats()["max_tokens_60s"] <= 60_000


async def test_a_limit_told_twice_too_high_meets_a_server_that_counts_refusals() -> None:
    config = SimConfig(rpm=600, count_refused=True, latency_ms=300)
    async with harness([config], lambda s: {"x": openai("x", s[0], rpm=1200)}) as h:
        n = 600
        await h.run([request(i, max_tokens=20) for i in range(n)])
        assert h.failures() == []
        assert h.engine.limiter("x:gpt-4o-mini").rpm == 600  # learned from the first answer
        assert h.refused() <= 0.01 * n
        assert h.wall <= 1.05 * n / 10  # ideal: 600 requests at 10/s
        # Refusals never feed themselves: in no 10 s stretch do they come near the
        # admissions (the issue measured 32 arrivals/s against 8 admitted).
        for start in range(0, int(h.wall) - 10, 10):
            admitted = h.admitted(start, start + 10)["requests"]
            assert h.refused(start=start, end=start + 10) <= 0.05 * admitted


@pytest.mark.parametrize("bound", ["requests", "tokens"])
async def test_told_nothing_it_learns_the_limits_from_the_first_answers(bound: str) -> None:
    if bound == "requests":
        config = SimConfig(rpm=600, latency_ms=300)
    else:  # tokens, counted as OpenAI's limiter is reported to: characters / 4 + max_tokens
        config = SimConfig(tpm=60_000, token_charge="chars", latency_ms=200)
    async with harness([config], lambda s: {"x": openai("x", s[0])}) as h:
        n = 500
        await h.run([request(i) for i in range(n)])
        assert h.failures() == []
        assert h.refused() <= 0.01 * n
        charged = h.admitted(0.0, h.wall + 1.0)
        ideal = charged["requests"] / 10 if bound == "requests" else charged["tokens"] / 1000
        assert h.wall <= 1.05 * ideal
        # the server's windows were never overrun (it enforces them: this is the sim's own check)
        stats = h.server.stats()
        assert stats["max_requests_60s"] <= 600 and stats["max_tokens_60s"] <= 60_000 * 10


async def test_the_rate_settles_without_oscillating_when_the_server_says_nothing() -> None:
    # No rate-limit headers, 429 bodies that name no limit: only Retry-After and the
    # refusals themselves. The limit must be found by probing (AIMD).
    config = SimConfig(rpm=600, limit_headers=False, latency_ms=100)
    async with harness([config], lambda s: {"x": openai("x", s[0])}) as h:
        limiter_rates: list[tuple[float, float]] = []
        decreases_at_60 = 0

        async def watch() -> None:
            nonlocal decreases_at_60
            while True:
                await asyncio.sleep(2.0)
                limiter = h.engine.limiter("x:gpt-4o-mini")
                info = limiter.describe().get("requests")
                if info is not None:
                    limiter_rates.append((h.loop.time() - h.started,
                                          float(info["per_minute"]) * float(info["share"])))
                if h.loop.time() - h.started < 60.0:
                    decreases_at_60 = limiter.stats.decreases

        watcher = asyncio.create_task(watch())
        n = 1500
        await h.run([request(i, max_tokens=20) for i in range(n)])
        watcher.cancel()
        assert h.failures() == []
        late = [rate for at, rate in limiter_rates if 60.0 <= at <= h.wall - 5.0]
        assert late, "the run was too short to watch it settle"
        # Settled: the offered rate stays within 10 % of the limit, without sawing.
        assert min(late) >= 0.9 * 600 and max(late) <= 1.1 * 600
        assert h.engine.limiter("x:gpt-4o-mini").stats.decreases - decreases_at_60 <= 3
        assert charge_per_minute(h, 60.0, h.wall - 5.0, "requests") >= 0.9 * 600
        assert h.refused(start=60.0) <= 0.01 * n


@pytest.mark.parametrize("bound", ["input", "output"])
async def test_anthropic_input_and_output_token_limits_are_each_met(bound: str) -> None:
    itpm, otpm = (20_000, 60_000) if bound == "input" else (60_000, 6000)
    config = SimConfig(rpm=3000, itpm=itpm, otpm=otpm, latency_ms=200)

    def endpoints(servers: list[SimServer]) -> dict[str, Endpoint]:
        return {"a": Endpoint(name="a", kind="anthropic", model="claude-3-5-haiku-latest",
                              base_url=servers[0].base_url, api_key="k", input_price=0.0,
                              output_price=0.0)}

    async with harness([config], endpoints) as h:
        n = 300
        await h.run([request(i, "a:claude-3-5-haiku-latest", max_tokens=40) for i in range(n)])
        assert h.failures() == []
        assert h.refused() <= 0.01 * n
        charged = h.admitted(0.0, h.wall + 1.0)
        ideal = (charged["input_tokens"] / itpm if bound == "input"
                 else charged["output_tokens"] / otpm) * 60
        assert h.wall <= 1.05 * ideal
        limiter = h.engine.limiter("a:claude-3-5-haiku-latest")
        assert (limiter.itpm, limiter.otpm) == (itpm, otpm)


async def test_anthropic_limits_are_read_from_the_first_answers_before_any_refusal() -> None:
    # Told nothing: the input- and output-token families of a successful
    # answer's headers name the limits, so no 429 is needed to learn them (the
    # first four requests fit both limits' one-second bursts).
    config = SimConfig(rpm=3000, itpm=60_000, otpm=30_000, latency_ms=200)

    def endpoints(servers: list[SimServer]) -> dict[str, Endpoint]:
        return {"a": Endpoint(name="a", kind="anthropic", model="claude-3-5-haiku-latest",
                              base_url=servers[0].base_url, api_key="k", input_price=0.0,
                              output_price=0.0, transport=transport)}

    for transport in ("aiohttp", "sdk"):
        async with harness([config], endpoints) as h:
            await h.run([request(i, "a:claude-3-5-haiku-latest", max_tokens=40)
                         for i in range(400)])
            assert h.failures() == []
            assert h.refused() == 0, transport
            limiter = h.engine.limiter("a:claude-3-5-haiku-latest")
            assert (limiter.itpm, limiter.otpm) == (60_000, 30_000)
            ideal = h.admitted(0.0, h.wall + 1.0)["input_tokens"] / 60_000 * 60
            assert h.wall <= 1.05 * ideal, transport


async def test_a_request_larger_than_the_limit_fails_at_once_instead_of_waiting() -> None:
    async with harness([SimConfig(tpm=1000)], lambda s: {"x": openai("x", s[0])}) as h:
        results = await h.run([request(0, max_tokens=5000)])
        assert isinstance(results[0], PermanentError)
        assert "larger than the limit" in str(results[0])
        assert h.server.stats()["by_status"] == {"429": 1}


# ---- the circuit breaker ----------------------------------------------------------------

async def test_a_wrong_base_url_stops_every_request_within_a_few() -> None:
    # The simulator's root without /v1: every POST answers 404.
    async with harness([SimConfig()], lambda s: {"x": openai("x", s[0], path="")}) as h:
        await h.run([request(i) for i in range(200)])
        failures = h.failures()
        assert len(failures) == 200
        assert all(isinstance(f, EndpointMisconfigured) for f in failures)
        # the gentle start's probe, and no burst after it
        assert h.server.stats()["requests"] == PROBE
        message = str(failures[0])
        assert h.server.base_url in message and "gpt-4o-mini" in message
        assert "--base-url" in message and "/v1" in message


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def unreachable(name: str) -> Endpoint:
    return Endpoint(name=name, kind="openai", model="gpt-4o-mini",
                    base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key="k",
                    transport="aiohttp", input_price=0.0, output_price=0.0)


async def test_a_url_where_nothing_listens_stops_every_request_within_seconds() -> None:
    dead = unreachable("x")
    async with harness([SimConfig()], lambda s: {"x": dead}) as h:
        await h.run([request(i) for i in range(200)])
        failures = h.failures()
        assert len(failures) == 200
        assert all(isinstance(f, EndpointUnreachable) for f in failures), Counter(
            f"{type(f).__name__}: {str(f)[:300]}" for f in failures)
        assert h.wall <= 10.0  # the retries alone would take minutes
        message = str(failures[0])
        assert dead.base_url is not None and dead.base_url in message
        assert "gpt-4o-mini" in message and "port" in message and "running" in message


async def test_requests_cancelled_in_flight_still_count_what_they_sent() -> None:
    async with harness([SimConfig(latency_ms=2000)], lambda s: {"x": openai("x", s[0])}) as h:
        tasks = [asyncio.create_task(h.engine.complete(request(i))) for i in range(10)]
        await asyncio.sleep(0.5)  # the probe's requests are out, none answered
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sent = h.server.stats()["requests"]
        assert sent == PROBE
        assert h.engine.accounting.snapshot()["totals"]["attempts"] == sent


async def test_an_item_out_of_tries_before_the_endpoint_is_judged_stops_the_run_too() -> None:
    # Jittered backoffs can be short: one item may use up all its tries to a URL where
    # nothing listens in under the 5 s the endpoint is given. It stops the run like the
    # rest would have, instead of being filed as failed (and so burned for the re-run).
    dead = unreachable("x")
    engine = Engine(lambda spec: dead, retry=RetryPolicy(backoff_s=0.001, max_backoff_s=0.001))
    async with engine:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(EndpointUnreachable, match="port"):
            await engine.complete(request(0))
        assert loop.time() - start < 1.0  # it did not wait for the 5 s


async def test_a_server_that_answered_once_and_went_away_is_retried_not_given_up() -> None:
    async with harness([SimConfig()], lambda s: {"x": openai("x", s[0])}) as h:
        first = await h.run([request(i) for i in range(3)])
        assert all(isinstance(r, Completion) for r in first)
        await h.server.__aexit__(None, None, None)  # the server stops mid-run
        later = await h.run([request(i) for i in range(3, 6)])
        assert all(isinstance(r, ConnectionFailed) for r in later), later
        assert not any(isinstance(r, EndpointUnusable) for r in later)
        assert h.wall > 10.0  # each was retried with backoff before it failed


async def test_an_unreachable_member_of_a_pool_is_set_aside_and_the_others_carry_on() -> None:
    dead = unreachable("dead")

    def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
        return {"dead": dead, "b": openai("b", s[0])}

    async with harness([SimConfig(latency_ms=100)], endpoints) as h:
        await h.run([request(i, "dead:gpt-4o-mini,b:gpt-4o-mini") for i in range(100)])
        assert h.failures() == []
        assert h.server.stats()["by_status"] == {"200": 100}


async def test_bad_items_among_good_ones_never_trip_the_breaker() -> None:
    # The first three items are bad (max_tokens 0 is a 400), then every fourth.
    def bad(i: int) -> bool:
        return i < 3 or i % 4 == 0

    async with harness([SimConfig(latency_ms=50)], lambda s: {"x": openai("x", s[0])}) as h:
        results = await h.run([request(i, max_tokens=0 if bad(i) else 20) for i in range(80)])
        for i, result in enumerate(results):
            if bad(i):
                assert isinstance(result, PermanentError), (i, result)
                assert not isinstance(result, EndpointUnusable)
            else:
                assert isinstance(result, Completion), (i, result)


async def test_an_endpoint_whose_first_items_fail_in_different_ways_serves_the_rest() -> None:
    # Cold, the failures are held for a verdict while their places in the gentle start
    # stay taken; two kinds of 400 in turn never make a row, and the good ones still go.
    def bad(i: int) -> Request:
        if i % 2:
            return request(i, max_tokens=0)
        return dataclasses.replace(request(i), params=(("response_format", {"type": "x"}),))

    async with harness([SimConfig(latency_ms=50)], lambda s: {"x": openai("x", s[0])}) as h:
        results = await h.run([bad(i) if i < 8 else request(i) for i in range(60)])
        assert all(isinstance(r, PermanentError) and not isinstance(r, EndpointUnusable)
                   for r in results[:8])
        assert all(isinstance(r, Completion) for r in results[8:])
        assert h.server.stats()["by_status"] == {"400": 8, "200": 52}


# ---- several endpoints for one model ----------------------------------------------------

async def test_requests_spread_over_several_endpoints_by_their_learned_capacity() -> None:
    configs = [SimConfig(rpm=600, latency_ms=200), SimConfig(rpm=1200, latency_ms=200)]

    def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
        return {"a": openai("a", s[0]), "b": openai("b", s[1])}

    async with harness(configs, endpoints) as h:
        n = 900
        await h.run([request(i, "a:gpt-4o-mini,b:gpt-4o-mini", 20) for i in range(n)])
        assert h.failures() == []
        a, b = (h.admitted(0.0, h.wall + 1.0, server)["requests"] for server in h.servers)
        assert a + b == n
        assert 1.6 <= b / a <= 2.4          # by capacity: 1200 vs 600 rpm
        assert h.wall <= 1.1 * n / 30       # together: 30 requests/s
        assert h.refused(h.servers[0]) + h.refused(h.servers[1]) <= 0.02 * n


async def test_a_member_that_keeps_failing_is_set_aside_and_the_others_carry_on(
        caplog: pytest.LogCaptureFixture) -> None:
    def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
        dead = Endpoint(name="dead", kind="openai", model="gpt-4o-mini",
                        base_url="http://127.0.0.1:9/v1", api_key="k", transport="aiohttp",
                        input_price=0.0, output_price=0.0)  # port 9: connection refused
        return {"live": openai("live", s[0]), "dead": dead}

    caplog.set_level(logging.WARNING, logger="mlift.engine.pool")
    async with harness([SimConfig(latency_ms=100)], endpoints) as h:
        results = await h.run([request(i, "dead:gpt-4o-mini,live:gpt-4o-mini", 20)
                               for i in range(100)])
        assert all(isinstance(r, Completion) for r in results)
        assert h.server.stats()["by_status"] == {"200": 100}
        assert "dead:gpt-4o-mini set aside" in caplog.text


async def test_a_member_whose_key_is_rejected_is_set_aside_for_the_run(
        caplog: pytest.LogCaptureFixture) -> None:
    def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
        return {"good": openai("good", s[0], key="sk-good-key-1234"),
                "bad": openai("bad", s[0], key="sk-bad-key-5678")}

    caplog.set_level(logging.WARNING, logger="mlift.engine.pool")
    config = SimConfig(require_key="sk-good-key-1234", latency_ms=50)
    async with harness([config], endpoints) as h:
        results = await h.run([request(i, "bad:gpt-4o-mini,good:gpt-4o-mini", 20)
                               for i in range(50)])
        assert all(isinstance(r, Completion) for r in results)
        assert "bad:gpt-4o-mini set aside for the rest of the run" in caplog.text
        assert h.server.stats()["by_status"]["401"] <= 4  # the first answers' worth
        # Alone, the bad key still stops the run at once.
        with pytest.raises(AuthError):
            await h.engine.complete(request(0, "bad:gpt-4o-mini"))


async def test_a_pool_caches_answers_whichever_member_served_them(tmp_path: Path) -> None:
    cache = await ResponseCache.open(tmp_path / "cache")
    try:
        configs = [SimConfig(), SimConfig()]

        def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
            return {"a": openai("a", s[0]), "b": openai("b", s[1])}

        async with harness(configs, endpoints, cache) as h:
            await h.run([request(i, "a:gpt-4o-mini,b:gpt-4o-mini") for i in range(20)])
            served = sum(s.stats()["requests"] for s in h.servers)
            again = await h.run([request(i, "a:gpt-4o-mini,b:gpt-4o-mini") for i in range(20)])
            alone = await h.run([request(i, "a:gpt-4o-mini") for i in range(20)])
            assert served == 20 and sum(s.stats()["requests"] for s in h.servers) == 20
            assert all(isinstance(r, Completion) and r.cached for r in [*again, *alone])
    finally:
        await cache.aclose()



async def test_a_target_whose_endpoints_serve_different_models_is_refused_up_front() -> None:
    def endpoints(s: list[SimServer]) -> dict[str, Endpoint]:
        return {"a": openai("a", s[0]), "b": dataclasses.replace(openai("b", s[0]),
                                                                  model="gpt-4o")}

    async with harness([SimConfig()], endpoints) as h:
        with pytest.raises(ConfigError, match="same model"):
            h.engine.endpoint("a:gpt-4o-mini,b:gpt-4o")
        with pytest.raises(ConfigError, match="empty entry"):
            h.engine.endpoint("a:gpt-4o-mini,")
        assert h.server.stats()["requests"] == 0
