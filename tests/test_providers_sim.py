"""The ``sim`` provider: the real simulator, in-process, behind each openai-kind transport.

Every behaviour is checked on the lean aiohttp client (the default) and on the
official SDK (``transport = "sdk"``).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from mlift.errors import (
    AuthError,
    ConnectionFailed,
    MalformedResponse,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from mlift.providers.base import Endpoint
from mlift.providers.sim import SimProvider
from mlift.sim import SimConfig, SimServer
from mlift.types import Message, Request

ASK = Request(target="sim:default", max_tokens=64,
              messages=(Message("user", "Translate into English: hola mundo"),))


TRANSPORTS = ["aiohttp", "sdk"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def endpoint(model: str = "default", **kw: object) -> Endpoint:
    return Endpoint("sim", "sim", model, **kw)  # type: ignore[arg-type]


def tr(transport: str, *args: object, **kw: object) -> Endpoint:
    """``endpoint(...)`` on ``transport``."""
    return endpoint(*args, transport=transport, **kw)  # type: ignore[arg-type]


async def test_first_call_starts_a_simulator_and_answers(transport: str) -> None:
    provider = SimProvider(tr(transport, "gpt-4o-mini"))
    assert provider.base_url is None
    try:
        done = await provider.complete(ASK)
        assert provider.base_url is not None and provider.base_url.startswith("http://127.0.0.1:")
    finally:
        await provider.aclose()
    assert done.text.startswith("[sim]")
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    assert done.finish_reason in ("stop", "length")
    assert done.request_id
    assert provider.base_url is None  # stopped with the provider


async def test_concurrent_first_calls_start_one_simulator(transport: str) -> None:
    provider = SimProvider(tr(transport))
    try:
        results = await asyncio.gather(*(provider.complete(ASK) for _ in range(8)))
        assert provider.base_url is not None
        async with aiohttp.ClientSession() as session, \
                session.get(provider.base_url + "/stats") as response:
            stats = await response.json()
    finally:
        await provider.aclose()
    assert stats["requests"] == 8  # all eight reached the one server
    assert len({r.text for r in results}) == 1


async def test_same_request_gives_same_answer_across_restarts(transport: str) -> None:
    first, second = SimProvider(tr(transport)), SimProvider(tr(transport))
    try:
        a, b = await first.complete(ASK), await second.complete(ASK)
    finally:
        await first.aclose()
        await second.aclose()
    assert a.text == b.text


async def test_profile_base_url_uses_a_running_simulator(transport: str) -> None:
    async with SimServer(SimConfig()) as server:
        provider = SimProvider(tr(transport, base_url=server.base_url))
        try:
            done = await provider.complete(ASK)
        finally:
            await provider.aclose()
        assert server.stats()["requests"] >= 1
    assert done.text.startswith("[sim]")


async def test_simulated_limits_surface_as_rate_limited_with_retry_after(
        transport: str) -> None:
    provider = SimProvider(tr(transport), sim_config=SimConfig(rpm=1, burst_s=1.0))
    try:
        await provider.complete(ASK)
        with pytest.raises(RateLimited) as caught:
            await provider.complete(ASK)
    finally:
        await provider.aclose()
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert caught.value.provider == "sim"


async def test_required_key_missing_is_auth_error(transport: str) -> None:
    provider = SimProvider(tr(transport, api_key_env="SIM_KEY"),
                           sim_config=SimConfig(require_key="right-key"))
    try:
        with pytest.raises(AuthError, match="SIM_KEY"):
            await provider.complete(ASK)
    finally:
        await provider.aclose()


@pytest.mark.parametrize(("config", "expected"), [
    (SimConfig(error_rate=1.0), ServerError),
    (SimConfig(malformed_rate=1.0), MalformedResponse),
    (SimConfig(drop_rate=1.0), ConnectionFailed),
])
async def test_injected_faults_map_to_their_branch(config: SimConfig, expected: type[Exception],
                                                   transport: str) -> None:
    provider = SimProvider(tr(transport), sim_config=config)
    try:
        with pytest.raises(expected):
            await provider.complete(ASK)
    finally:
        await provider.aclose()


async def test_injected_hang_with_short_timeout_is_provider_timeout(transport: str) -> None:
    provider = SimProvider(tr(transport), sim_config=SimConfig(timeout_rate=1.0, hang_s=5.0),
                           timeout=0.2)
    try:
        with pytest.raises(ProviderTimeout):
            await provider.complete(ASK)
    finally:
        await provider.aclose()
