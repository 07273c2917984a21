"""The simulator through the real anthropic SDK (AsyncAnthropic, no mocks)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import aiohttp
import anthropic
import pytest

from mlift.sim import SimConfig, SimServer
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import ROUTE_HEADER

SimFactory = Callable[..., Awaitable[SimServer]]
MODEL = "claude-3-5-haiku-latest"
SYSTEM = [{"type": "text", "text": "Write an instruction."},
          {"type": "text", "text": "Make it formal.", "cache_control": {"type": "ephemeral"}}]
ROUTE = {ROUTE_HEADER: "instruct/explain@v1 instruct task=explain style=formal"}
VERDICT_TOOL = {"name": "judge_fit", "description": "Record the verdict.", "input_schema": {
    "type": "object", "required": ["reason", "score"], "additionalProperties": False,
    "properties": {"reason": {"type": "string"},
                   "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}}}
JUDGE = [{"role": "user", "content": "<instruction>Explain monsoons.</instruction>"
                                     "<response>Monsoons are seasonal winds.</response>"}]
MESSAGES = [{"role": "user", "content": [
    {"type": "text", "text": "<response>Rice paddies need standing water; farmers flood "
                             "them before planting seedlings.</response>"}]}]


def client(server: SimServer, **kwargs: object) -> anthropic.AsyncAnthropic:
    """An SDK client that sends the instruct route, as mlift's providers would."""
    options: dict[str, object] = {"api_key": "sk-ant-test", "max_retries": 0,
                                  "default_headers": ROUTE, **kwargs}
    return anthropic.AsyncAnthropic(base_url=server.base_url, **options)  # type: ignore[arg-type]


@pytest.fixture
async def plain(sim: SimFactory) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with client(await sim()) as c:
        yield c


async def test_message_with_block_system_reports_usage(plain: anthropic.AsyncAnthropic) -> None:
    msg = await plain.messages.create(model=MODEL, max_tokens=200, system=SYSTEM,  # type: ignore[arg-type]
                                      messages=MESSAGES)  # type: ignore[arg-type]
    text = msg.content[0].text  # type: ignore[union-attr]
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert text.startswith("[sim] ") and "newcomer" in text  # the explain/formal instruction
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    system = "\n".join(b["text"] for b in SYSTEM)
    user = MESSAGES[0]["content"][0]["text"]  # type: ignore[index]
    assert msg.usage.input_tokens == count_chat_tokens([("system", system), ("user", user)],
                                                       MODEL)
    assert msg.usage.output_tokens == count_tokens(text, MODEL)


async def test_forced_tool_answers_with_a_tool_use_block_matching_its_schema(
        sim: SimFactory) -> None:
    async with client(await sim(SimConfig(bad_verdict_rate=1.0)),
                      default_headers={ROUTE_HEADER: "judge/fit@v2 judge format=json"}) as c:
        msg = await c.messages.create(  # type: ignore[call-overload]
            model=MODEL, max_tokens=200, messages=JUDGE, tools=[VERDICT_TOOL],
            tool_choice={"type": "tool", "name": "judge_fit"})
        async with c.messages.stream(  # type: ignore[call-overload]
                model=MODEL, max_tokens=200, messages=JUDGE, tools=[VERDICT_TOOL],
                tool_choice={"type": "tool", "name": "judge_fit"}) as stream:
            streamed = await stream.get_final_message()
    block = msg.content[0]
    assert block.type == "tool_use" and block.name == "judge_fit"
    assert set(block.input) == {"reason", "score"} and block.input["score"] in range(1, 6)
    assert msg.stop_reason == "tool_use"
    assert streamed.content[0].input == block.input  # type: ignore[union-attr]
    assert streamed.stop_reason == "tool_use"


@pytest.mark.parametrize(("tools", "choice", "message"), [
    ([VERDICT_TOOL], {"type": "tool", "name": "other"}, "tool_choice.name"),
    ([], {"type": "any"}, "tool_choice"),
    ([{"name": "x"}], {"type": "auto"}, "tools.0.input_schema: Field required"),
    ([VERDICT_TOOL], {"type": "sometimes"}, "tool_choice.type"),
])
async def test_bad_tools_are_bad_requests(plain: anthropic.AsyncAnthropic, tools: list[object],
                                          choice: dict[str, str], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        await plain.messages.create(model=MODEL, max_tokens=20, messages=JUDGE,  # type: ignore[call-overload]
                                    tools=tools, tool_choice=choice)


async def test_max_tokens_cut_gives_stop_reason_max_tokens(
        plain: anthropic.AsyncAnthropic) -> None:
    msg = await plain.messages.create(model=MODEL, max_tokens=3, system="plain string system",
                                      messages=[{"role": "user", "content": "tell a long story"}])
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens <= 3


async def test_stream_has_the_real_event_sequence(plain: anthropic.AsyncAnthropic) -> None:
    full = await plain.messages.create(model=MODEL, max_tokens=200, system=SYSTEM,  # type: ignore[arg-type]
                                       messages=MESSAGES)  # type: ignore[arg-type]
    async with plain.messages.stream(model=MODEL, max_tokens=200, system=SYSTEM,  # type: ignore[arg-type]
                                     messages=MESSAGES) as stream:  # type: ignore[arg-type]
        events = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events.index("message_delta") > events.index("content_block_stop")
    assert final.content[0].text == full.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == full.usage.output_tokens


async def test_error_faults_include_529_overloaded(sim: SimFactory) -> None:
    server = await sim(SimConfig(error_rate=1.0, seed=1))
    seen: dict[int, type[Exception]] = {}
    async with client(server) as c:
        for _ in range(30):
            with pytest.raises(anthropic.InternalServerError) as info:
                await c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
            seen[info.value.status_code] = type(info.value)
    assert set(seen) == {500, 503, 529}
    # This SDK version has dedicated subclasses for 529 and 503.
    assert seen[529] is anthropic.OverloadedError
    assert seen[503] is anthropic.ServiceUnavailableError


async def test_faults_surface_as_sdk_exceptions(sim: SimFactory) -> None:
    cases: list[tuple[SimConfig, type[BaseException]]] = [
        (SimConfig(timeout_rate=1.0, hang_s=30.0), anthropic.APITimeoutError),
        (SimConfig(drop_rate=1.0), anthropic.APIConnectionError),
        # A 200 whose body is not JSON: this SDK lets the parser's error escape.
        (SimConfig(malformed_rate=1.0), json.JSONDecodeError),
    ]
    for config, expected in cases:
        async with client(await sim(config), timeout=0.2) as c:
            with pytest.raises(expected):
                await c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]


async def test_wrong_key_raises_authentication_error(sim: SimFactory) -> None:
    server = await sim(SimConfig(require_key="sk-ant-right"))
    async with client(server, api_key="sk-ant-wrong") as c:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert "sk-ant-wrong" not in str(info.value)


async def test_missing_max_tokens_is_bad_request(sim: SimFactory) -> None:
    server = await sim()
    async with aiohttp.ClientSession() as http, http.post(
            server.base_url + "/v1/messages", json={"model": MODEL, "messages": MESSAGES}) as r:
        assert r.status == 400
        body = await r.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error",
                             "message": "max_tokens: Field required"}


async def test_429_headers_and_sdk_retry(sim: SimFactory) -> None:
    server = await sim(SimConfig(rpm=300, tpm=50_000, burst_s=0.2))
    async with client(server, max_retries=1) as c:
        for _ in range(2):
            msg = await c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
            assert msg.content
    assert server.stats()["by_status"] == {"200": 2, "429": 1}
    async with aiohttp.ClientSession() as http, http.post(
            server.base_url + "/v1/messages", headers={"x-api-key": "sk-ant-test"},
            json={"model": MODEL, "max_tokens": 10, "messages": MESSAGES}) as r:
        assert r.status == 429  # limits are per key: the SDK's key is still spent
        body = await r.json()
        headers = r.headers
    assert body["error"]["type"] == "rate_limit_error"
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-limit"] == "300"
    assert headers["anthropic-ratelimit-tokens-limit"] == "50000"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None


async def test_a_wrong_base_url_gets_anthropics_404_and_is_counted(sim: SimFactory) -> None:
    server = await sim()
    async with anthropic.AsyncAnthropic(base_url=server.base_url + "/anthropic",
                                        api_key="sk-ant-test", max_retries=0) as c:
        with pytest.raises(anthropic.NotFoundError) as caught:
            await c.messages.create(model="claude-3-5-haiku-latest", max_tokens=50,
                                    messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.body == {"type": "error", "request_id": caught.value.request_id,
                                 "error": {"type": "not_found_error", "message": "Not Found"}}
    stats = server.stats()
    assert (stats["requests"], stats["by_status"]) == (1, {"404": 1})
