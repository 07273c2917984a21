"""Prompt caching in the simulator, seen through the real openai and anthropic SDKs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest

from mlift.sim import SimConfig, SimServer
from mlift.sim.prompt_cache import anthropic_min_tokens
from mlift.tokens import count_chat_tokens, count_tokens

SimFactory = Callable[..., Awaitable[SimServer]]
GPT = "gpt-4o-mini"
CLAUDE = "claude-opus-4-1"  # caches prefixes of 1,024 tokens and more
# About 2,300 tokens of instructions shared by every request of a "stage".
LONG = " ".join(f"Rule {i}: keep the meaning, the register and every number of the text."
                for i in range(160))
SHORT = "Translate the text faithfully."


def oai(server: SimServer, key: str = "sk-test-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)


def ant(server: SimServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-ant-a",
                                    max_retries=0)


async def chat(client: openai.AsyncOpenAI, system: str, user: str) -> Any:
    reply = await client.chat.completions.create(
        model=GPT, max_tokens=50,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
    return reply.usage


def boundary_below(tokens: int) -> int:
    """The longest OpenAI cache prefix that fits in ``tokens``: 1,024 + 128·k, or 0."""
    return 0 if tokens < 1024 else 1024 + (tokens - 1024) // 128 * 128


async def test_openai_reports_the_longest_shared_prefix_in_128_token_steps(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with oai(server) as client:
        first = await chat(client, LONG, "Alpha: the monsoon came early.")
        second = await chat(client, LONG, "Beta: rice needs standing water.")
    assert first.prompt_tokens_details.cached_tokens == 0  # the first request writes, free
    shared = 4 + count_tokens(LONG, GPT) + 4  # the system message and the user's framing
    cached = second.prompt_tokens_details.cached_tokens
    assert cached == boundary_below(shared) >= 1024
    assert (cached - 1024) % 128 == 0 and cached <= second.prompt_tokens


async def test_openai_short_prompts_are_never_cached(sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with oai(server) as client:
        for _ in range(3):
            usage = await chat(client, SHORT, "The same short request.")
            assert usage.prompt_tokens < 1024
            assert usage.prompt_tokens_details.cached_tokens == 0


async def test_openai_cache_expires_after_five_idle_minutes_and_is_per_key(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with oai(server) as client, oai(server, key="sk-test-b") as other:
        await chat(client, LONG, "one")
        clock.advance(299)
        assert (await chat(client, LONG, "two")).prompt_tokens_details.cached_tokens > 0
        assert (await chat(other, LONG, "two")).prompt_tokens_details.cached_tokens == 0
        clock.advance(299)  # the hit refreshed the entry
        assert (await chat(client, LONG, "three")).prompt_tokens_details.cached_tokens > 0
        clock.advance(301)
        assert (await chat(client, LONG, "four")).prompt_tokens_details.cached_tokens == 0


async def test_openai_stream_usage_carries_cached_tokens(sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with oai(server) as client:
        await chat(client, LONG, "one")
        stream = await client.chat.completions.create(
            model=GPT, max_tokens=20, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": "two"}])
        usages = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert usages[-1].prompt_tokens_details.cached_tokens >= 1024


async def test_caching_can_be_switched_off(sim: SimFactory, clock: Any) -> None:
    server = await sim(SimConfig(prompt_cache=False), clock=clock)
    async with oai(server) as client:
        await chat(client, LONG, "one")
        assert (await chat(client, LONG, "two")).prompt_tokens_details.cached_tokens == 0


def marked_system(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": text, "cache_control": control},
            {"type": "text", "text": "<!-- mlift:translate source=hi target=en -->"}]


async def message(client: anthropic.AsyncAnthropic, system: Any, user: str,
                  model: str = CLAUDE) -> Any:
    return await client.messages.create(model=model, max_tokens=50, system=system,
                                        messages=[{"role": "user", "content": user}])


async def test_anthropic_writes_then_reads_the_marked_prefix(sim: SimFactory,
                                                             clock: Any) -> None:
    server = await sim(clock=clock)
    system = marked_system(LONG)
    prefix = count_chat_tokens([("system", LONG)], CLAUDE) - 3  # up to the marked block
    async with ant(server) as client:
        first = await message(client, system, "Alpha")
        second = await message(client, system, "Beta")
    full = "\n".join(block["text"] for block in system)
    prompt = count_chat_tokens([("system", full), ("user", "Beta")], CLAUDE)
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (
        prefix, 0)
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == prefix
    assert (second.usage.cache_creation_input_tokens,
            second.usage.cache_read_input_tokens) == (0, prefix)
    # input_tokens excludes what was read from or written to the cache
    assert second.usage.input_tokens == prompt - prefix
    assert first.usage.input_tokens + prefix == count_chat_tokens(
        [("system", full), ("user", "Alpha")], CLAUDE)


async def test_anthropic_prefix_below_the_models_minimum_is_silently_not_cached(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    text = LONG[: len(LONG) * 3 // 5]  # ~1,400 tokens: enough for Sonnet, not for Haiku 3.5
    assert 1024 <= count_tokens(text, CLAUDE) < anthropic_min_tokens("claude-3-5-haiku") == 2048
    async with ant(server) as client:
        for model, cached in (("claude-3-5-haiku-latest", False), (CLAUDE, True)):
            await message(client, marked_system(text), "one", model)
            usage = (await message(client, marked_system(text), "two", model)).usage
            assert (usage.cache_read_input_tokens > 0) is cached
            assert usage.cache_creation_input_tokens == 0


async def test_anthropic_unmarked_requests_never_touch_the_cache(sim: SimFactory,
                                                                 clock: Any) -> None:
    server = await sim(clock=clock)
    async with ant(server) as client:
        for _ in range(2):
            usage = (await message(client, LONG, "same")).usage
            assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)


async def test_anthropic_one_hour_entries_are_reported_apart_and_outlive_five_minutes(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with ant(server) as client:
        first = await message(client, marked_system(LONG, "1h"), "one")
        clock.advance(1800)
        later = await message(client, marked_system(LONG, "1h"), "two")
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == \
        first.usage.cache_creation_input_tokens > 0
    assert later.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


async def test_anthropic_refuses_more_than_four_cache_breakpoints(sim: SimFactory) -> None:
    server = await sim()
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
              for i in range(5)]
    async with ant(server) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await message(client, blocks, "x")
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in str(
        info.value)


async def test_anthropic_stream_start_reports_the_cache_use(sim: SimFactory,
                                                            clock: Any) -> None:
    server = await sim(clock=clock)
    async with ant(server) as client:
        await message(client, marked_system(LONG), "one")
        async with client.messages.stream(
                model=CLAUDE, max_tokens=30, system=marked_system(LONG),  # type: ignore[arg-type]
                messages=[{"role": "user", "content": "two"}]) as stream:
            final = await stream.get_final_message()
    assert final.usage.cache_read_input_tokens > 1024


async def test_anthropic_top_level_cache_control_marks_the_last_block(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(clock=clock)
    async with ant(server) as client:
        for expect_read in (False, True):
            reply = await client.messages.create(
                model=CLAUDE, max_tokens=20, cache_control={"type": "ephemeral"},
                system=LONG, messages=[{"role": "user", "content": "the same question"}])
            usage = reply.usage
            assert (usage.cache_read_input_tokens > 1024) is expect_read
            assert (usage.cache_creation_input_tokens > 1024) is not expect_read


async def test_anthropic_bad_cache_control_is_a_400_naming_the_block(sim: SimFactory) -> None:
    server = await sim()
    blocks = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]
    async with ant(server) as client:
        with pytest.raises(anthropic.BadRequestError, match=r"system\.0\.cache_control\.ttl"):
            await message(client, blocks, "x")


async def test_the_providers_read_cache_tokens_into_usage(sim: SimFactory, clock: Any) -> None:
    from mlift.providers.anthropic import AnthropicProvider
    from mlift.providers.base import Endpoint
    from mlift.providers.openai import OpenAIProvider
    from mlift.types import Message, Request

    server = await sim(clock=clock)
    messages = (Message("system", LONG), Message("user", "a question"))
    gpt = OpenAIProvider(Endpoint("openai", "openai", GPT, base_url=server.base_url + "/v1",
                                  api_key="sk-test-a"))
    claude = AnthropicProvider(Endpoint("anthropic", "anthropic", CLAUDE,
                                        base_url=server.base_url, api_key="sk-ant-a"))
    try:
        request = Request(target="openai:" + GPT, messages=messages, max_tokens=20)
        await gpt.complete(request)
        usage = (await gpt.complete(request)).usage
        assert usage.cached_input_tokens >= 1024 and usage.cache_write_tokens == 0
        # A top-level cache_control (sent verbatim from params) marks the last block.
        marked = Request(target="anthropic:" + CLAUDE, messages=messages, max_tokens=20,
                         params=(("cache_control", {"type": "ephemeral"}),))
        written = (await claude.complete(marked)).usage
        read = (await claude.complete(marked)).usage
    finally:
        await gpt.aclose()
        await claude.aclose()
    assert written.cache_write_tokens > 1024 and written.cached_input_tokens == 0
    assert read.cached_input_tokens == written.cache_write_tokens and read.cache_write_tokens == 0
    # input_tokens is every input token, cached or not (Anthropic's plus its cache fields)
    assert read.input_tokens == written.input_tokens
    assert read.uncached_input_tokens == read.input_tokens - read.cached_input_tokens
