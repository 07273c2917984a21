"""The simulator through the real openai SDK (AsyncOpenAI, no mocks)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest

from mlift.sim import SimConfig, SimServer
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import ROUTE_HEADER

SimFactory = Callable[..., Awaitable[SimServer]]

MODEL = "gpt-4o-mini"
TRANSLATE = [{"role": "system", "content": "Translate."},
             {"role": "user", "content": "<text>इस साल मानसून जल्दी आ गया, और किसानों ने धान की "
                                         "रोपाई शुरू कर दी।</text>"}]
ROUTE = {ROUTE_HEADER: "translate/to_en@v1 translate source=hi target=en"}
VERDICT_FORMAT = {"type": "json_schema", "json_schema": {"name": "judge_fit", "strict": True,
                  "schema": {"type": "object", "required": ["reason", "score"],
                             "additionalProperties": False, "properties": {
                                 "reason": {"type": "string"},
                                 "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}}}}
JUDGE = [{"role": "user", "content": "<instruction>Explain monsoons.</instruction>"
                                     "<response>Monsoons are seasonal winds.</response>"}]


def client(server: SimServer, **kwargs: object) -> openai.AsyncOpenAI:
    """An SDK client that sends the translate route, as mlift's providers would."""
    options: dict[str, object] = {"api_key": "sk-test", "max_retries": 0,
                                  "default_headers": ROUTE, **kwargs}
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", **options)  # type: ignore[arg-type]


@pytest.fixture
async def plain(sim: SimFactory) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client(await sim()) as c:
        yield c


async def test_completion_reports_usage_from_mlift_tokens(plain: openai.AsyncOpenAI) -> None:
    resp = await plain.chat.completions.create(model=MODEL, messages=TRANSLATE,  # type: ignore[arg-type]
                                               max_tokens=300)
    text = resp.choices[0].message.content or ""
    assert text.startswith("[sim] ")
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_chat_tokens(
        [(m["role"], m["content"]) for m in TRANSLATE], MODEL)
    assert resp.usage.completion_tokens == count_tokens(text, MODEL)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


async def test_the_route_header_not_the_text_decides_the_answer(sim: SimFactory) -> None:
    server = await sim()
    async with client(server) as routed, client(server, default_headers={}) as bare:
        translated = await routed.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
        generic = await bare.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert "simulated answer" not in (translated.choices[0].message.content or "")
    assert (generic.choices[0].message.content or "").startswith(
        "[sim] This is a simulated answer")


async def test_json_schema_response_format_gets_a_matching_object(sim: SimFactory) -> None:
    async with client(await sim(SimConfig(bad_verdict_rate=1.0)),
                      default_headers={ROUTE_HEADER: "judge/fit@v2 judge format=json"}) as c:
        resp = await c.chat.completions.create(model=MODEL, messages=JUDGE,  # type: ignore[arg-type]
                                               response_format=VERDICT_FORMAT)  # type: ignore[arg-type]
        prose = await c.chat.completions.create(model=MODEL, messages=JUDGE)  # type: ignore[arg-type]
    verdict = json.loads(resp.choices[0].message.content or "")
    assert set(verdict) == {"reason", "score"} and verdict["score"] in range(1, 6)
    # Without the schema, bad_verdict_rate=1 makes every verdict prose.
    assert "score" not in (prose.choices[0].message.content or "").lower()


@pytest.mark.parametrize(("response_format", "param"), [
    ({"type": "yaml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}},
     "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "ok", "schema": []}},
     "response_format.json_schema.schema"),
])
async def test_bad_response_format_is_bad_request_naming_the_param(
        plain: openai.AsyncOpenAI, response_format: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await plain.chat.completions.create(model=MODEL, messages=JUDGE,  # type: ignore[arg-type]
                                            response_format=response_format)  # type: ignore[arg-type]
    assert info.value.body["param"] == param  # type: ignore[index]


async def test_max_tokens_cuts_answer_with_finish_reason_length(
        plain: openai.AsyncOpenAI) -> None:
    for param in ("max_tokens", "max_completion_tokens"):
        resp = await plain.chat.completions.create(
            model=MODEL, messages=TRANSLATE, **{param: 4})  # type: ignore[call-overload]
        assert resp.choices[0].finish_reason == "length"
        assert resp.usage.completion_tokens == 4
        assert count_tokens(resp.choices[0].message.content, MODEL) == 4


async def test_same_request_gives_same_answer_across_servers(sim: SimFactory) -> None:
    answers = []
    for _ in range(2):
        async with client(await sim(SimConfig(seed=3))) as c:
            resp = await c.chat.completions.create(model=MODEL, messages=TRANSLATE,  # type: ignore[arg-type]
                                                   max_tokens=300)
            answers.append(resp.choices[0].message.content)
    assert answers[0] == answers[1]


async def test_streaming_yields_chunks_then_usage(plain: openai.AsyncOpenAI) -> None:
    full = await plain.chat.completions.create(model=MODEL, messages=TRANSLATE,  # type: ignore[arg-type]
                                               max_tokens=300)
    stream = await plain.chat.completions.create(  # type: ignore[call-overload]
        model=MODEL, messages=TRANSLATE, max_tokens=300, stream=True,
        stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert len(pieces) > 2
    assert "".join(pieces) == full.choices[0].message.content
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == full.usage.completion_tokens  # type: ignore[union-attr]


async def test_error_fault_raises_internal_server_error(sim: SimFactory) -> None:
    server = await sim(SimConfig(error_rate=1.0))
    async with client(server) as c:
        statuses = set()
        for _ in range(8):
            with pytest.raises(openai.InternalServerError) as info:
                await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
            statuses.add(info.value.status_code)
            assert info.value.body["type"] == "server_error"  # type: ignore[index]
    assert statuses <= {500, 503}
    assert server.stats()["faults"] == {"error": 8}


async def test_timeout_fault_hangs_until_client_gives_up(sim: SimFactory) -> None:
    server = await sim(SimConfig(timeout_rate=1.0, hang_s=30.0))
    async with client(server, timeout=0.2) as c:
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert server.stats()["faults"] == {"timeout": 1}


async def test_timeout_fault_answers_after_hang_s(sim: SimFactory) -> None:
    server = await sim(SimConfig(timeout_rate=1.0, hang_s=0.1))
    async with client(server, timeout=5.0) as c:
        resp = await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert resp.choices[0].message.content


async def test_drop_fault_raises_connection_error(sim: SimFactory) -> None:
    server = await sim(SimConfig(drop_rate=1.0))
    async with client(server) as c:
        with pytest.raises(openai.APIConnectionError) as info:
            await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert not isinstance(info.value, openai.APITimeoutError)
    assert server.stats()["by_status"] == {"dropped": 1}


async def test_malformed_fault_surfaces_as_json_decode_error(sim: SimFactory) -> None:
    # This SDK version lets the JSON parser's error escape for a 200 whose body is not JSON.
    server = await sim(SimConfig(malformed_rate=1.0))
    async with client(server) as c:
        with pytest.raises(json.JSONDecodeError):
            await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]


async def test_wrong_key_raises_authentication_error_without_echoing_key(
        sim: SimFactory) -> None:
    server = await sim(SimConfig(require_key="sk-right-key-0123456789"))
    secret = "sk-wrong-key-9876543210"
    async with client(server, api_key=secret) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    body = info.value.body
    assert body["code"] == "invalid_api_key"  # type: ignore[index]
    assert secret not in str(body) and secret not in str(info.value)
    async with client(server, api_key="sk-right-key-0123456789") as c:
        ok = await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert ok.choices[0].message.content


async def test_missing_messages_is_bad_request(plain: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await plain.chat.completions.create(model=MODEL, messages=[])
    assert info.value.body["param"] == "messages"  # type: ignore[index]


async def test_429_retry_after_is_read_by_sdk_which_then_succeeds(sim: SimFactory) -> None:
    # Bucket of one request refilling 5/s: the second request waits <= 200 ms.
    server = await sim(SimConfig(rpm=300, burst_s=0.2))
    async with client(server, max_retries=1) as c:
        for _ in range(2):
            resp = await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
            assert resp.choices[0].message.content
    assert server.stats()["by_status"] == {"200": 2, "429": 1}


async def test_429_body_and_headers_over_raw_http(sim: SimFactory) -> None:
    server = await sim(SimConfig(rpm=60, tpm=100_000))
    payload = {"model": MODEL, "messages": TRANSLATE, "max_tokens": 50}
    async with aiohttp.ClientSession() as http:
        url = server.base_url + "/v1/chat/completions"
        async with http.post(url, json=payload) as ok:
            assert ok.status == 200
            assert ok.headers["x-ratelimit-limit-requests"] == "60"
            assert ok.headers["x-ratelimit-remaining-requests"] == "0"
            assert ok.headers["x-request-id"].startswith("req_")
        async with http.post(url, json=payload) as refused:
            assert refused.status == 429
            body = await refused.json()
            headers = refused.headers
    error = body["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert "requests per min (RPM): Limit 60, Used 1, Requested 1" in error["message"]
    assert 0 < int(headers["retry-after-ms"]) <= 1001
    # Whole seconds, rounded up from the exact wait (1000 ms + 1 at most here).
    assert int(headers["retry-after"]) == -(-int(headers["retry-after-ms"]) // 1000)
    assert headers["x-ratelimit-reset-requests"].endswith(("ms", "s"))
    assert headers["x-ratelimit-limit-tokens"] == "100000"


async def test_models_list_and_stats_routes(sim: SimFactory) -> None:
    server = await sim()
    async with client(server) as c:
        models = [m.id async for m in c.models.list()]
    assert "gpt-4o-mini" in models
    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/stats") as r:
            stats = await r.json()
        assert stats["requests"] == 0
        async with http.post(server.base_url + "/v1/chat/completions", data=b"{not json") as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
        async with http.post(server.base_url + "/stats/reset") as r:
            assert r.status == 200
        async with http.get(server.base_url + "/stats") as r:
            assert (await r.json())["by_status"] == {}


async def test_a_wrong_base_url_gets_openais_404_and_is_counted(sim: SimFactory) -> None:
    server = await sim()
    options: dict[str, object] = {"api_key": "sk-test", "max_retries": 0}
    async with openai.AsyncOpenAI(base_url=server.base_url, **options) as c:  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as caught:
            await c.chat.completions.create(model=MODEL, messages=TRANSLATE)  # type: ignore[arg-type]
    assert caught.value.body == {"message": "Invalid URL (POST /chat/completions)",
                                 "type": "invalid_request_error", "param": None, "code": None}
    assert caught.value.request_id
    stats = server.stats()
    assert (stats["requests"], stats["by_status"]) == (1, {"404": 1})
