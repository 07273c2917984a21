"""OpenAI and Anthropic providers, on every transport, against a loopback HTTP server.

The server below speaks just enough of ``/v1/chat/completions`` and
``/v1/messages`` (with the real error bodies and headers) for the behaviour
under test; the model name in a request picks what it does, so each test
states its scenario in one word. Every behaviour is checked for both kinds
and both transports (the official SDK and mlift's lean aiohttp client),
because the engine relies on them mapping identically.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from mlift.errors import (
    AuthError,
    ConnectionFailed,
    MalformedResponse,
    PermanentError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransientError,
)
from mlift.providers.anthropic import AnthropicProvider
from mlift.providers.anthropic_wire import ANTHROPIC_VERSION
from mlift.providers.base import Endpoint, Provider
from mlift.providers.openai import OpenAIProvider
from mlift.providers.registry import create_provider
from mlift.types import ROUTE_HEADER, Message, OutputSchema, Request

KEY = "sk-test-SECRET0123456789abcdef"
RESET_AT = "2099-01-01T00:00:00Z"


class FakeAPI:
    """The loopback server: records what it received, answers by model name."""

    def __init__(self) -> None:
        # Headers kept case-insensitive: the SDKs send them lower-cased.
        self.received: list[tuple[CIMultiDict[str], dict[str, Any]]] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/v1/messages", self.anthropic)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def root(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def _common(self, request: web.Request, flavour: str) -> web.StreamResponse | None:
        body = await request.json()
        self.received.append((CIMultiDict(request.headers), body))
        model = body["model"]
        if model.startswith("status-"):
            return _error(int(model.removeprefix("status-")), flavour, request)
        if model == "malformed":
            return web.Response(body=b'{"id": "x", "choi', content_type="application/json")
        if model == "html":
            return web.Response(text="<html>Bad Gateway</html>", content_type="text/html")
        if model == "wrong-shape":
            return web.json_response({"id": "x", "object": "chat.completion"})
        if model == "drop":
            assert request.transport is not None
            request.transport.close()
            await self.release.wait()
        if model == "drop-mid-body":
            response = web.StreamResponse(headers={"Content-Type": "application/json",
                                                   "Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b'{"id": "chatcmpl-1", "choices": [')
            assert request.transport is not None
            request.transport.close()
            return response
        if model == "hang":
            await self.release.wait()
        return None

    async def openai(self, request: web.Request) -> web.StreamResponse:
        early = await self._common(request, "openai")
        if early is not None:
            return early
        body = self.received[-1][1]
        text: str | None = json.dumps(body) if body["model"] == "echo" else "Hola mundo"
        if body["model"] == "structured":
            text = VERDICT
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if body["model"] == "refusal":
            message = {"role": "assistant", "content": None, "refusal": "I can't rate this."}
        data: dict[str, Any] = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
            "model": body["model"] + "-2024",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "length" if body["model"] == "length" else "stop"}],
        }
        if body["model"] != "no-usage":
            data["usage"] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                             "prompt_tokens_details": {"cached_tokens": 8}}
        headers = {"x-request-id": "req_openai_1", "x-ratelimit-limit-requests": "500",
                   "x-ratelimit-remaining-requests": "499",
                   "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
                   "x-ratelimit-remaining-tokens": "29985",
                   "x-ratelimit-reset-tokens": "1m30s"}
        return web.json_response(data, headers=headers)

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        early = await self._common(request, "anthropic")
        if early is not None:
            return early
        body = self.received[-1][1]
        text = json.dumps(body) if body["model"] == "echo" else "Hola mundo"
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        stop = "max_tokens" if body["model"] == "length" else "end_turn"
        if body["model"] == "structured":  # a forced tool: its input is the answer
            content = [{"type": "text", "text": "Recording the verdict."},
                       {"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"],
                        "input": json.loads(VERDICT)}]
            stop = "tool_use"
        data: dict[str, Any] = {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None,
        }
        if body["model"] != "no-usage":
            data["usage"] = {"input_tokens": 12, "output_tokens": 3,
                             "cache_read_input_tokens": 4, "cache_creation_input_tokens": 5}
        headers = {"request-id": "req_anthropic_1",
                   "anthropic-ratelimit-requests-limit": "50",
                   "anthropic-ratelimit-requests-remaining": "49",
                   "anthropic-ratelimit-requests-reset": RESET_AT,
                   "anthropic-ratelimit-tokens-limit": "40000",
                   "anthropic-ratelimit-tokens-remaining": "39985",
                   "anthropic-ratelimit-tokens-reset": RESET_AT}
        return web.json_response(data, headers=headers)


def _error(status: int, flavour: str, request: web.Request) -> web.Response:
    """An error answer shaped like the real API's, echoing the key as some proxies do."""
    sent_key = request.headers.get("x-api-key") or request.headers.get("authorization") or ""
    message = {401: f"Incorrect API key provided: {sent_key.removeprefix('Bearer ')}",
               429: "Rate limit reached for requests", 529: "Overloaded"}.get(
                   status, f"error {status}")
    headers = {"x-request-id": "req_err_1", "request-id": "req_err_1"}
    if status == 429:
        headers |= {"retry-after": "20", "retry-after-ms": "1500",
                    "x-ratelimit-remaining-requests": "0"}
    if flavour == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": "error", "code": None}}
    else:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
    return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def api() -> AsyncIterator[FakeAPI]:
    fake = FakeAPI()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        await fake.server.close()


VERDICT = '{"reason": "Fits well.", "score": 4}'
TRANSPORTS = ["sdk", "aiohttp"]
# kind-transport: the lean transport must behave exactly like the SDK path.
KINDS = [f"{k}-{t}" for k in ("openai", "anthropic") for t in TRANSPORTS]
OPENAI = [k for k in KINDS if k.startswith("openai")]
ANTHROPIC = [k for k in KINDS if k.startswith("anthropic")]
SCHEMA = OutputSchema("judge_fit", {
    "type": "object", "required": ["reason", "score"], "additionalProperties": False,
    "properties": {"reason": {"type": "string"}, "score": {"type": "integer",
                                                           "enum": [1, 2, 3, 4, 5]}}},
    "Score the pair.")


def endpoint(kind: str, base: str, model: str = "ok", **kw: Any) -> Endpoint:
    flavour, transport = kind.split("-")
    url = base + "/v1" if flavour == "openai" else base
    return Endpoint(flavour, flavour, model, base_url=url, api_key_env=f"{flavour.upper()}_API_KEY",
                    api_key=KEY, transport=transport, **kw)


def make(kind: str, api: FakeAPI, model: str = "ok", *, timeout: float = 5.0,
         **kw: Any) -> Provider:
    return create_provider(endpoint(kind, api.root, model, **kw), timeout=timeout)


def ask(text: str = "Translate: hello", **kw: Any) -> Request:
    return Request(target="x:y", messages=(Message("system", "Be brief.", route="t/x@v1 t a=b"),
                                           Message("user", text)), **kw)


async def call(kind: str, api: FakeAPI, model: str, request: Request | None = None,
               **kw: Any) -> Any:
    provider = make(kind, api, model, **kw)
    try:
        return await provider.complete(request or ask())
    finally:
        await provider.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_success_returns_text_usage_and_request_id(kind: str, api: FakeAPI) -> None:
    done = await call(kind, api, "ok")
    assert done.text == "Hola mundo"
    assert done.finish_reason == "stop"
    assert not done.structured
    u = done.usage
    if kind.startswith("openai"):  # prompt_tokens is the total; cached_tokens a part of it
        assert (u.input_tokens, u.output_tokens, u.cached_input_tokens) == (12, 3, 8)
        assert u.cache_write_tokens == 0
        assert done.request_id == "req_openai_1"
        assert done.model == "ok-2024"
    else:  # cache reads and writes count as input the model processed, each kept apart
        assert (u.input_tokens, u.output_tokens) == (21, 3)
        assert (u.cached_input_tokens, u.cache_write_tokens, u.uncached_input_tokens) == (4, 5, 12)
        assert done.request_id == "req_anthropic_1"


@pytest.mark.parametrize("kind", KINDS)
async def test_every_request_carries_the_route_header_and_no_marker(kind: str,
                                                                   api: FakeAPI) -> None:
    await call(kind, api, "ok")
    headers, body = api.received[-1]
    assert headers[ROUTE_HEADER] == "t/x@v1 t a=b"
    assert "mlift" not in json.dumps(body)


@pytest.mark.parametrize("kind", KINDS)
async def test_request_without_route_sends_no_route_header(kind: str, api: FakeAPI) -> None:
    plain = Request(target="x:y", messages=(Message("user", "hi"),))
    await call(kind, api, "ok", plain)
    assert ROUTE_HEADER not in api.received[-1][0]


@pytest.mark.parametrize("kind", OPENAI)
async def test_openai_sends_the_schema_as_strict_json_schema(kind: str, api: FakeAPI) -> None:
    done = await call(kind, api, "structured", ask(output_schema=SCHEMA),
                      structured_outputs=True)
    body = api.received[-1][1]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "judge_fit", "schema": SCHEMA.schema, "strict": True,
        "description": "Score the pair."}}
    assert done.structured and json.loads(done.text) == json.loads(VERDICT)


@pytest.mark.parametrize("kind", ANTHROPIC)
async def test_anthropic_forces_a_tool_and_returns_its_input_as_json(kind: str,
                                                                     api: FakeAPI) -> None:
    done = await call(kind, api, "structured", ask(output_schema=SCHEMA),
                      structured_outputs=True)
    body = api.received[-1][1]
    assert body["tools"] == [{"name": "judge_fit", "description": "Score the pair.",
                              "input_schema": SCHEMA.schema}]
    assert body["tool_choice"] == {"type": "tool", "name": "judge_fit"}
    assert done.structured and done.finish_reason == "stop"
    assert json.loads(done.text) == json.loads(VERDICT)  # the tool input, not the text block


@pytest.mark.parametrize("kind", KINDS)
async def test_schema_is_not_sent_where_the_endpoint_cannot_enforce_it(kind: str,
                                                                       api: FakeAPI) -> None:
    # A loopback compatible server whose profile does not say it enforces schemas.
    done = await call(kind, api, "echo", ask(output_schema=SCHEMA))
    body = api.received[-1][1]
    assert "response_format" not in body and "tools" not in body
    assert not done.structured


@pytest.mark.parametrize("kind", KINDS)
async def test_public_apis_enforce_schemas_unless_the_profile_says_no(kind: str) -> None:
    flavour = kind.split("-")[0]
    url = "https://api.openai.com/v1" if flavour == "openai" else "https://api.anthropic.com"
    on = create_provider(Endpoint(flavour, flavour, "m", base_url=url, api_key=KEY,
                                  transport=kind.split("-")[1]))
    off = create_provider(Endpoint(flavour, flavour, "m", base_url=url, api_key=KEY,
                                   transport=kind.split("-")[1], structured_outputs=False))
    try:
        assert on.structured_outputs and not off.structured_outputs
    finally:
        await on.aclose()
        await off.aclose()


@pytest.mark.parametrize("kind", OPENAI)
async def test_structured_refusal_keeps_the_models_words(kind: str, api: FakeAPI) -> None:
    done = await call(kind, api, "refusal", ask(output_schema=SCHEMA), structured_outputs=True)
    assert done.text == "I can't rate this."


@pytest.mark.parametrize("kind", ANTHROPIC)
async def test_long_system_prompt_is_marked_cacheable_and_a_short_one_is_not(
        kind: str, api: FakeAPI) -> None:
    long_system = "Judge the pair of texts carefully and fairly. " * 400  # ~3,600 tokens
    provider = make(kind, api, "claude-sonnet-4-6")
    try:
        await provider.complete(ask())
        short = api.received[-1][1]["system"]
        await provider.complete(Request(target="x:y", messages=(
            Message("system", long_system), Message("user", "hi"))))
        marked = api.received[-1][1]["system"]
    finally:
        await provider.aclose()
    assert short == "Be brief."
    assert marked == [{"type": "text", "text": long_system,
                       "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize("kind", OPENAI)
async def test_sdk_only_settings_reach_the_server_through_the_sdk(kind: str,
                                                                  api: FakeAPI) -> None:
    flavour_transport = kind.replace("aiohttp", "sdk")  # auto would pick the SDK anyway
    await call(flavour_transport, api, "ok", organization="org-9", project="proj_9")
    headers = api.received[-1][0]
    assert (headers["OpenAI-Organization"], headers["OpenAI-Project"]) == ("org-9", "proj_9")


@pytest.mark.parametrize("kind", KINDS)
async def test_answer_cut_at_max_tokens_is_a_length_result(kind: str, api: FakeAPI) -> None:
    done = await call(kind, api, "length")
    assert done.finish_reason == "length"
    assert done.text == "Hola mundo"


@pytest.mark.parametrize("kind", OPENAI)
async def test_openai_rate_limit_headers_are_parsed(kind: str, api: FakeAPI) -> None:
    info = (await call(kind, api, "ok")).ratelimit
    assert info is not None
    assert (info.limit_requests, info.remaining_requests) == (500, 499)
    assert info.reset_requests_s == pytest.approx(0.12)
    assert (info.limit_tokens, info.remaining_tokens) == (30000, 29985)
    assert info.reset_tokens_s == pytest.approx(90.0)


@pytest.mark.parametrize("kind", ANTHROPIC)
async def test_anthropic_rate_limit_headers_are_parsed(kind: str, api: FakeAPI) -> None:
    info = (await call(kind, api, "ok")).ratelimit
    assert info is not None
    assert (info.limit_requests, info.remaining_requests) == (50, 49)
    assert (info.limit_tokens, info.remaining_tokens) == (40000, 39985)
    assert info.reset_tokens_s is not None and info.reset_tokens_s > 0


@pytest.mark.parametrize("kind", OPENAI)
async def test_openai_sends_system_message_params_and_key(kind: str, api: FakeAPI) -> None:
    provider = make(kind, api, "echo")
    try:
        await provider.complete(ask(params=(("top_p", 0.5), ("top_k", 7)), max_tokens=33))
    finally:
        await provider.aclose()
    headers, body = api.received[-1]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["max_tokens"], body["top_p"], body["top_k"]) == (33, 0.5, 7)


@pytest.mark.parametrize("kind", OPENAI)
async def test_openai_reasoning_model_params_replace_or_drop_defaults(kind: str,
                                                                      api: FakeAPI) -> None:
    provider = make(kind, api, "echo")
    try:
        await provider.complete(ask(params=(("max_completion_tokens", 99),
                                            ("temperature", None))))
    finally:
        await provider.aclose()
    body = api.received[-1][1]
    assert body["max_completion_tokens"] == 99
    assert "max_tokens" not in body
    assert "temperature" not in body  # None means: do not send


@pytest.mark.parametrize("kind", ANTHROPIC)
async def test_anthropic_sends_system_apart_from_messages(kind: str, api: FakeAPI) -> None:
    provider = make(kind, api, "echo")
    try:
        await provider.complete(ask(params=(("top_k", 5),), max_tokens=40))
    finally:
        await provider.aclose()
    headers, body = api.received[-1]
    # The lean client sends the documented x-api-key; this SDK version sends a bearer token.
    assert KEY in (headers.get("x-api-key"), headers.get("Authorization", "")[7:])
    # Both transports speak the API version of the installed SDK.
    assert headers["anthropic-version"] == ANTHROPIC_VERSION
    assert body["system"] == "Be brief."
    assert "temperature" not in body  # this API version rejects sampling parameters
    assert body["messages"] == [{"role": "user", "content": "Translate: hello"}]
    assert (body["max_tokens"], body["top_k"]) == (40, 5)


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_usage_is_counted_locally_not_zero(kind: str, api: FakeAPI) -> None:
    done = await call(kind, api, "no-usage")
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
async def test_401_is_auth_error_naming_env_var_without_the_key(kind: str, api: FakeAPI) -> None:
    with pytest.raises(AuthError) as caught:
        await call(kind, api, "status-401")
    message = str(caught.value)
    assert f"{kind.split('-')[0].upper()}_API_KEY" in message
    assert KEY not in message and "SECRET" not in message
    assert caught.value.status == 401
    assert caught.value.request_id == "req_err_1"
    assert caught.value.provider == kind.split("-")[0]


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_rate_limited_with_retry_after_from_ms_header(kind: str,
                                                                   api: FakeAPI) -> None:
    with pytest.raises(RateLimited) as caught:
        await call(kind, api, "status-429")
    assert caught.value.retry_after == pytest.approx(1.5)
    assert caught.value.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [500, 503, 529])
async def test_5xx_and_529_are_server_errors(kind: str, status: int, api: FakeAPI) -> None:
    with pytest.raises(ServerError) as caught:
        await call(kind, api, f"status-{status}")
    assert caught.value.status == status
    assert caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_permanent(kind: str, status: int, api: FakeAPI) -> None:
    with pytest.raises(PermanentError) as caught:
        await call(kind, api, f"status-{status}")
    assert not caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [408, 409])
async def test_408_and_409_are_transient(kind: str, status: int, api: FakeAPI) -> None:
    with pytest.raises(TransientError):
        await call(kind, api, f"status-{status}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", ["malformed", "html", "wrong-shape"])
async def test_unparseable_body_is_malformed_response(kind: str, model: str,
                                                      api: FakeAPI) -> None:
    with pytest.raises(MalformedResponse) as caught:
        await call(kind, api, model)
    assert caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", ["drop", "drop-mid-body"])
async def test_dropped_connection_is_connection_failed(kind: str, model: str,
                                                       api: FakeAPI) -> None:
    with pytest.raises(ConnectionFailed):
        await call(kind, api, model)


@pytest.mark.parametrize("kind", KINDS)
async def test_hung_server_with_short_timeout_is_provider_timeout(kind: str,
                                                                  api: FakeAPI) -> None:
    with pytest.raises(ProviderTimeout) as caught:
        await call(kind, api, "hang", timeout=0.2)
    assert isinstance(caught.value, TimeoutError)


@pytest.mark.parametrize("kind", KINDS)
async def test_unreachable_server_is_connection_failed(kind: str) -> None:
    provider = create_provider(endpoint(kind, "http://127.0.0.1:9"))
    try:
        with pytest.raises(ConnectionFailed):
            await provider.complete(ask())
    finally:
        await provider.aclose()


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
def test_provider_without_key_refuses_to_start_naming_the_variable(cls: type[Any]) -> None:
    with pytest.raises(AuthError, match="MY_KEY_VAR"):
        cls(Endpoint("p", "openai", "m", api_key_env="MY_KEY_VAR"))


@pytest.mark.parametrize("kind", KINDS)
async def test_reserved_params_are_refused_before_sending(kind: str, api: FakeAPI) -> None:
    provider = make(kind, api, "ok")
    try:
        with pytest.raises(PermanentError, match="stream"):
            await provider.complete(ask(params=(("stream", True),)))
    finally:
        await provider.aclose()
    assert api.received == []
