"""Engine behaviour on virtual time, with a scripted in-memory provider.

The provider here is our own protocol's test double (no SDK involved); the
SDK paths are tested against the simulator in test_engine_sim.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mlift.engine.accounting import Accounting, Budget
from mlift.engine.cache import ResponseCache
from mlift.engine.core import Engine
from mlift.engine.retry import RetryPolicy, TimeoutPolicy
from mlift.errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    PermanentError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from mlift.providers.base import Endpoint, Provider
from mlift.types import Completion, Message, Request, Usage

Step = Callable[[Request], object]


class ScriptedProvider(Provider):
    """Answers after ``latency`` virtual seconds, or raises what the script says."""

    def __init__(self, endpoint: Endpoint, script: list[object] | None = None,
                 latency: float = 0.1) -> None:
        self.endpoint = endpoint
        self.script = list(script or [])
        self.latency = latency
        self.calls: list[float] = []

    async def complete(self, request: Request) -> Completion:
        loop = asyncio.get_running_loop()
        self.calls.append(loop.time())
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        await asyncio.sleep(step if isinstance(step, float) else self.latency)
        return Completion(text=f"answer to {request.messages[-1].content}",
                          finish_reason="stop", usage=Usage(100, 20), model=self.endpoint.model)

    async def aclose(self) -> None:
        return None


def make_engine(script: list[object] | None = None, *, latency: float = 0.1,
                rpm: float | None = None, cache: ResponseCache | None = None,
                budget: Budget | None = None,
                timeouts: Callable[[], TimeoutPolicy] = TimeoutPolicy,
                ) -> tuple[Engine, ScriptedProvider]:
    endpoint = Endpoint(name="fake", kind="fake", model="m1", rpm=rpm,
                        input_price=1.0, output_price=2.0, api_key_env="FAKE_API_KEY")
    provider = ScriptedProvider(endpoint, script, latency)

    def factory(_ep: Endpoint) -> Provider:
        return provider

    engine = Engine(lambda _spec: endpoint, cache=cache, budget=budget,
                    accounting=Accounting(), timeouts=timeouts,
                    retry=RetryPolicy(max_attempts=5), provider_factory=factory)
    return engine, provider


def req(text: str = "hello", max_tokens: int = 50) -> Request:
    return Request(target="fake:m1", messages=(Message("user", text),), max_tokens=max_tokens)


@pytest.mark.looptime
async def test_429_with_retry_after_waits_that_long_then_succeeds() -> None:
    engine, provider = make_engine([RateLimited("slow down", status=429, retry_after=7.0)])
    result = await engine.complete(req())
    assert result.text == "answer to hello"
    assert result.attempts == 2
    assert provider.calls[1] - provider.calls[0] >= 7.0
    totals = engine.accounting.snapshot()["totals"]
    assert totals["retries"] == 1
    assert totals["rate_limited"] == 1


@pytest.mark.looptime
async def test_429_cools_down_the_whole_endpoint_not_just_one_request() -> None:
    engine, provider = make_engine([RateLimited("slow down", status=429, retry_after=5.0)],
                                   latency=0.0)
    first = asyncio.create_task(engine.complete(req("a")))
    await asyncio.sleep(0.01)  # the first request got its 429
    await engine.complete(req("b"))
    assert provider.calls[1] >= 5.0  # b waited for the cooldown too
    await first


@pytest.mark.looptime
async def test_server_errors_are_retried_with_backoff_until_success() -> None:
    errors: list[object] = [ServerError("boom", status=500) for _ in range(3)]
    engine, provider = make_engine(errors)
    result = await engine.complete(req())
    assert result.attempts == 4
    gaps = [b - a for a, b in zip(provider.calls, provider.calls[1:], strict=False)]
    assert all(g > 0 for g in gaps)


@pytest.mark.looptime
async def test_bad_request_fails_at_once_without_retry() -> None:
    engine, provider = make_engine([PermanentError("bad", status=400)])
    with pytest.raises(PermanentError):
        await engine.complete(req())
    assert len(provider.calls) == 1
    assert engine.accounting.snapshot()["totals"]["failures"] == 1


@pytest.mark.looptime
async def test_auth_error_stops_every_later_call_without_sending_it() -> None:
    engine, provider = make_engine([AuthError("no key; set FAKE_API_KEY", status=401)])
    with pytest.raises(AuthError, match="FAKE_API_KEY"):
        await engine.complete(req("a"))
    with pytest.raises(AuthError):
        await engine.complete(req("b"))
    assert len(provider.calls) == 1


@pytest.mark.looptime
async def test_retries_give_up_after_max_attempts_with_the_last_error() -> None:
    engine, provider = make_engine([ServerError("boom", status=503) for _ in range(10)])
    with pytest.raises(ServerError):
        await engine.complete(req())
    assert len(provider.calls) == 5


@pytest.mark.looptime
async def test_hung_request_is_abandoned_once_latencies_are_known_and_retried() -> None:
    # The first call hangs for an hour; 30 quick answers then fit the timeout
    # (floor 10 s), and the hung call is abandoned at that point, not at 120 s.
    engine, _provider = make_engine([3600.0], latency=0.1)
    loop = asyncio.get_running_loop()
    hung = asyncio.create_task(engine.complete(req("hung")))
    await asyncio.sleep(0)
    await asyncio.gather(*(engine.complete(req(f"q{i}")) for i in range(30)))
    result = await hung
    assert result.attempts == 2
    assert loop.time() < 15.0
    assert engine.accounting.snapshot()["totals"]["retries"] == 1


@pytest.mark.looptime
async def test_hung_request_without_latency_history_times_out_at_the_initial_timeout() -> None:
    def policy() -> TimeoutPolicy:
        return TimeoutPolicy(initial_s=30.0)

    engine, _ = make_engine([3600.0, 3600.0, 3600.0, 3600.0, 3600.0], timeouts=policy)
    loop = asyncio.get_running_loop()
    with pytest.raises(ProviderTimeout):
        await engine.complete(req())
    assert loop.time() == pytest.approx(5 * 30.0, rel=0.1)


@pytest.mark.looptime
async def test_budget_refuses_a_request_that_could_pass_the_cap() -> None:
    # worst case = 10 prompt tokens * $1/M + 1000 * $2/M ≈ $0.002 > $0.001 cap
    engine, provider = make_engine(budget=Budget(0.001))
    with pytest.raises(BudgetExceeded, match="max-cost"):
        await engine.complete(req(max_tokens=1000))
    assert provider.calls == []


@pytest.mark.looptime
async def test_budget_settles_to_the_real_cost() -> None:
    engine, _ = make_engine(budget=Budget(1.0))
    result = await engine.complete(req())
    assert result.cost_usd == pytest.approx(100 * 1e-6 + 20 * 2e-6)
    assert engine.budget.spent == pytest.approx(result.cost_usd)
    assert engine.budget.reserved == pytest.approx(0.0)


async def test_second_identical_request_is_served_from_cache_for_free(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        engine, provider = make_engine(cache=cache, latency=0.0)
        first = await engine.complete(req())
        second = await engine.complete(req())
        assert len(provider.calls) == 1
        assert (second.text, second.cached, second.cost_usd) == (first.text, True, 0.0)
        assert engine.accounting.snapshot()["totals"]["cache_hits"] == 1
    finally:
        await cache.aclose()


async def test_failed_calls_are_not_cached(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        engine, provider = make_engine([PermanentError("bad", status=400)], cache=cache,
                                       latency=0.0)
        with pytest.raises(ProviderError):
            await engine.complete(req())
        await engine.complete(req())
        assert len(provider.calls) == 2
    finally:
        await cache.aclose()


@pytest.mark.looptime
async def test_rpm_limit_paces_engine_calls() -> None:
    engine, provider = make_engine(rpm=600, latency=0.0)
    await asyncio.gather(*(engine.complete(req(f"x{i}")) for i in range(50)))
    # 5 at once (half a second of burst), then 10/s: the 50th goes at 4.5 s.
    assert max(provider.calls) == pytest.approx(4.5, abs=0.01)


@pytest.mark.looptime
async def test_a_429_storm_slows_a_request_down_but_does_not_fail_it() -> None:
    storm: list[object] = [RateLimited("slow down", status=429, retry_after=1.0)
                           for _ in range(20)]
    engine, provider = make_engine(storm)  # max_attempts=5 counts other failures only
    result = await engine.complete(req())
    assert result.attempts == 21
    assert provider.calls[-1] >= 20.0


class RefundingProvider(ScriptedProvider):
    refunds_unused_tokens = True


@pytest.mark.looptime
async def test_unused_tokens_are_refunded_only_for_providers_that_refund() -> None:
    loop = asyncio.get_running_loop()
    # 1000 tokens/s, a 500-token bucket; each request reserves ~410 and uses 120.
    endpoint = Endpoint(name="fake", kind="fake", model="m1", tpm=60000,
                        input_price=1.0, output_price=2.0)
    waited = {}
    for refunds in (False, True):
        provider = (RefundingProvider if refunds else ScriptedProvider)(endpoint, latency=0.0)
        engine = Engine(lambda _s, ep=endpoint: ep,
                        provider_factory=lambda _e, p=provider: p)  # type: ignore[misc]
        start = loop.time()
        for i in range(3):
            await engine.complete(req(f"x{i}", max_tokens=400))
        waited[refunds] = loop.time() - start
    assert waited[False] > 0.6  # every reservation kept: ~0.73 s
    assert waited[True] < 0.2   # unused tokens returned at once


async def test_a_prefetched_hit_is_the_same_answer_and_record_as_a_plain_hit(
        tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        warm, _ = make_engine(cache=cache, latency=0.0)
        await warm.complete(req("a"))
        plain, plain_provider = make_engine(cache=cache, latency=0.0)
        expected = await plain.complete(req("a"))
        engine, provider = make_engine(cache=cache, latency=0.0)
        request = req("a")
        await engine.prefetch([request])
        got = await engine.complete(request)
        assert got == expected and got.cached and got.cost_usd == 0.0
        assert provider.calls == plain_provider.calls == []
        assert engine.accounting.snapshot() == plain.accounting.snapshot()
    finally:
        await cache.aclose()


async def test_a_prefetched_answer_is_never_given_to_another_request(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        warm, _ = make_engine(cache=cache, latency=0.0)
        await warm.complete(req("a"))
        engine, provider = make_engine(cache=cache, latency=0.0)
        await engine.prefetch([req("a")])
        other = await engine.complete(req("b"))
        assert (other.text, other.cached, len(provider.calls)) == ("answer to b", False, 1)
    finally:
        await cache.aclose()


async def test_a_prefetched_miss_still_finds_an_answer_stored_since(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        engine, provider = make_engine(cache=cache, latency=0.0)
        first, again = req("same"), req("same")  # equal requests, two lines of an input
        await engine.prefetch([first, again])  # both misses now
        await engine.complete(first)
        second = await engine.complete(again)
        assert second.cached and len(provider.calls) == 1
    finally:
        await cache.aclose()


async def test_a_request_prefetch_cannot_key_fails_in_complete_as_before(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    try:
        engine, _provider = make_engine(cache=cache, latency=0.0)
        bad = Request(target="fake:m1", messages=(Message("user", "x"),),
                      params=(("stop", {1, 2}),))  # a set is not JSON
        await engine.prefetch([bad, req("fine")])
        with pytest.raises(ConfigError, match="not plain JSON"):
            await engine.complete(bad)
        assert (await engine.complete(req("fine"))).text == "answer to fine"
    finally:
        await cache.aclose()
