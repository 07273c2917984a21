"""Every exception the installed SDKs export maps onto the right mlift branch.

The SDK classes are found by walking the packages, not listed by hand, so a
new class in an SDK upgrade fails this test until ``map_error`` and the
expectations below say where it belongs. Status errors are expected by their
HTTP status (the rule ``mlift.errors`` documents), never by SDK class name.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion

from mlift.errors import (
    AuthError,
    ConnectionFailed,
    MalformedResponse,
    PermanentError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransientError,
)
from mlift.providers import anthropic as anthropic_provider
from mlift.providers import openai as openai_provider
from mlift.providers.base import Endpoint

KEY = "sk-live-VERYSECRET0123456789"
ENDPOINT = Endpoint("prof", "openai", "m", base_url="http://127.0.0.1:1/v1",
                    api_key_env="PROF_KEY", api_key=KEY)

# Classes without an HTTP status: where each belongs, and why.
EXPECTED: dict[str, dict[str, type[ProviderError]]] = {
    "openai": {
        "OpenAIError": PermanentError,            # unknown SDK failure: don't retry blindly
        "APIError": ServerError,                  # the API reported an error without a status
        "APIConnectionError": ConnectionFailed,
        "APITimeoutError": ProviderTimeout,
        "APIResponseValidationError": MalformedResponse,
        "LengthFinishReasonError": PermanentError,
        "ContentFilterFinishReasonError": PermanentError,
        "InvalidWebhookSignatureError": PermanentError,
        "WebSocketConnectionClosedError": ConnectionFailed,
        "WebSocketQueueFullError": TransientError,
        "SubjectTokenProviderError": AuthError,
        "_AmbiguousModuleClientUsageError": PermanentError,
    },
    "anthropic": {
        "AnthropicError": PermanentError,
        "APIError": ServerError,
        "APIConnectionError": ConnectionFailed,
        "APITimeoutError": ProviderTimeout,
        "APIResponseValidationError": MalformedResponse,
        "APIWebhookValidationError": PermanentError,
        "CredentialsError": AuthError,
        "IdentityTokenFileError": AuthError,
        "WorkloadIdentityError": AuthError,
        "RetryableError": TransientError,
    },
}
MAPPERS: dict[str, Callable[[BaseException, Endpoint], ProviderError]] = {
    "openai": openai_provider.map_error, "anthropic": anthropic_provider.map_error}


def by_status(status: int) -> type[ProviderError]:
    """The branch an HTTP status belongs to, restated independently of the code."""
    if status in (401, 403):
        return AuthError
    if status == 429:
        return RateLimited
    if status >= 500:
        return ServerError
    if status in (408, 409):
        return TransientError
    return PermanentError


def exported_exceptions(module: ModuleType) -> list[tuple[str, type[BaseException]]]:
    found = {}
    for name in dir(module):
        obj = getattr(module, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            found[obj] = name  # aliases (RequestTooLargeError) collapse into one class
    return sorted(((n, c) for c, n in found.items()), key=lambda item: item[0])


def status_of(cls: type[BaseException]) -> int:
    declared = getattr(cls, "status_code", None)
    if isinstance(declared, int):
        return declared
    return 500 if "InternalServer" in "".join(c.__name__ for c in cls.__mro__) else 418


def instantiate(cls: type[BaseException], status: int) -> BaseException:
    """An instance built through the class's own constructor, whatever its signature."""
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    body = {"error": {"type": "error", "message": f"boom, key {KEY}"}}
    response = httpx2.Response(status, request=request, json=body,
                               headers={"x-request-id": "req_1", "request-id": "req_1",
                                        "retry-after": "3"})
    values: dict[str, Any] = {
        "message": f"boom, key {KEY}", "request": request, "response": response,
        "body": body, "unsent_messages": [], "path": None,
        "completion": ChatCompletion.model_construct(
            id="x", choices=[], created=0, model="m", object="chat.completion", usage=None),
    }
    kwargs = {}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in values:
            kwargs[param.name] = values[param.name]
        elif param.default is param.empty:
            pytest.fail(f"{cls.__name__}: cannot build an instance, unknown required "
                        f"argument {param.name!r}; extend instantiate()")
    if not kwargs and any(p.kind == p.VAR_POSITIONAL
                          for p in inspect.signature(cls.__init__).parameters.values()):
        return cls(values["message"])
    return cls(**kwargs)


CASES = [(sdk, name, cls) for sdk, module in (("openai", openai), ("anthropic", anthropic))
         for name, cls in exported_exceptions(module)]


@pytest.mark.parametrize(("sdk", "name", "cls"), CASES, ids=[f"{s}.{n}" for s, n, _ in CASES])
def test_every_exported_sdk_exception_maps_to_its_branch(sdk: str, name: str,
                                                         cls: type[BaseException]) -> None:
    status_cls = openai.APIStatusError if sdk == "openai" else anthropic.APIStatusError
    if issubclass(cls, status_cls):
        status = status_of(cls)
        expected = by_status(status)
    else:
        table = EXPECTED[sdk]
        if name not in table:
            pytest.fail(f"{sdk}.{name} is a new SDK exception: decide its branch in "
                        f"mlift/providers/{sdk}.py map_error and add it to EXPECTED")
        status, expected = 500, table[name]
    mapped = MAPPERS[sdk](instantiate(cls, status), ENDPOINT)
    assert type(mapped) is expected, f"{sdk}.{name} -> {type(mapped).__name__}"
    assert KEY not in str(mapped) and "VERYSECRET" not in str(mapped)
    assert (mapped.provider, mapped.model) == ("prof", "m")
    if issubclass(cls, status_cls):
        assert mapped.status == status
        assert mapped.request_id == "req_1"
        assert mapped.retry_after == 3.0


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_expectations_name_only_classes_the_sdk_has_or_had(sdk: str) -> None:
    module = openai if sdk == "openai" else anthropic
    present = {name for name, _ in exported_exceptions(module)}
    stale = set(EXPECTED[sdk]) - present - {"SubjectTokenProviderError"}
    assert not stale, f"EXPECTED lists classes {sdk} no longer exports: {sorted(stale)}"


LEAKED: list[tuple[BaseException, type[ProviderError]]] = [
    (httpx2.ReadTimeout("slow"), ProviderTimeout),
    (httpx2.ConnectTimeout("slow"), ProviderTimeout),
    (httpx2.RemoteProtocolError("peer closed connection"), ConnectionFailed),
    (httpx2.ReadError("reset by peer"), ConnectionFailed),
    (httpx2.DecodingError("bad gzip"), MalformedResponse),
    (httpx2.UnsupportedProtocol("no scheme"), PermanentError),
    (json.JSONDecodeError("Expecting value", "<html>", 0), MalformedResponse),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), MalformedResponse),
]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize(("exc", "expected"), LEAKED, ids=[type(e).__name__ for e, _ in LEAKED])
def test_transport_and_json_errors_leaking_past_the_sdk_are_mapped(
        sdk: str, exc: BaseException, expected: type[ProviderError]) -> None:
    assert type(MAPPERS[sdk](exc, ENDPOINT)) is expected


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_pydantic_validation_error_is_malformed_response(sdk: str) -> None:
    try:
        ChatCompletion.model_validate({"id": 1})
    except pydantic.ValidationError as exc:
        assert type(MAPPERS[sdk](exc, ENDPOINT)) is MalformedResponse
    else:
        pytest.fail("the body should not validate")


def test_anthropic_spend_limit_429_is_permanent_not_rate_limited() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/messages")
    body = {"type": "error", "error": {
        "type": "rate_limit_error", "message": "Spend limit reached",
        "details": {"error_code": "contract_spend_limit_reached"}}}
    response = httpx2.Response(429, request=request, json=body)
    exc = anthropic.RateLimitError("spend", response=response, body=body)
    mapped = anthropic_provider.map_error(exc, ENDPOINT)
    assert type(mapped) is PermanentError
    assert "spend limit" in str(mapped)


def test_status_error_message_comes_from_the_body_not_the_sdk_repr() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    response = httpx2.Response(400, request=request)
    exc = openai.BadRequestError("Error code: 400 - {...}", response=response,
                                 body={"message": "max_tokens is too large", "type": "x"})
    assert "max_tokens is too large" in str(openai_provider.map_error(exc, ENDPOINT))


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize(("cause", "expected"), [
    (httpx2.RemoteProtocolError("peer closed connection"), ConnectionFailed),
    (httpx2.DecodingError("bad gzip stream"), MalformedResponse),
    (httpx2.UnsupportedProtocol("Request URL is missing a scheme"), PermanentError),
    (None, ConnectionFailed),
])
def test_connection_error_is_judged_by_the_failure_it_wraps(
        sdk: str, cause: BaseException | None, expected: type[ProviderError]) -> None:
    module: Any = openai if sdk == "openai" else anthropic
    exc = module.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:1/"))
    exc.__cause__ = cause
    assert type(MAPPERS[sdk](exc, ENDPOINT)) is expected
