"""OpenAI chat completions, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp).

This module is the openai kind as registered: its class is the official-SDK
transport (``--transport sdk``) and lists the lean aiohttp transport
(``mlift.providers.openai_http``), which ``transport = "auto"`` picks unless
an SDK-only setting is in use: ``organization``, ``project`` (sent by the SDK
as headers) or ``azure_api_version`` (Azure OpenAI, through
``AsyncAzureOpenAI``). Both transports build the body and parse the answer in
``openai_wire``.

The SDK client is built with ``max_retries=0`` (the engine owns retries) and a
generous timeout (the engine abandons hung requests by cancelling them
sooner). The answer is read through ``with_raw_response`` so the rate-limit
headers reach the engine. The SDK is imported only when this transport is
built, so runs on the lean transport never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mlift.providers import openai_wire
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint, Provider
from mlift.providers.errormap import json_object, missing_key
from mlift.providers.headers import openai_ratelimit
from mlift.providers.usage import LocalUsage
from mlift.types import ROUTE_HEADER, Completion, Request

if TYPE_CHECKING:
    import openai

    from mlift.errors import ProviderError

DEFAULT_BASE_URL = openai_wire.DEFAULT_BASE_URL


def map_error(exc: BaseException, endpoint: Endpoint) -> ProviderError:
    """The one seam where OpenAI SDK (and leaked httpx2/JSON) errors become mlift errors."""
    from mlift.providers.sdkerrors import map_sdk_error

    return map_sdk_error(exc, endpoint, "openai")


class OpenAIProvider(Provider):
    """``complete()`` over ``POST {base_url}/chat/completions`` with the official SDK."""

    transports: ClassVar[dict[str, str]] = {
        "aiohttp": "mlift.providers.openai_http:OpenAIHTTPProvider"}
    default_transport: ClassVar[str] = "aiohttp"
    # OpenAI charges prompt + max_tokens against the token limit on admission.
    refunds_unused_tokens: ClassVar[bool] = False

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        import httpx2
        import openai

        self.endpoint = endpoint
        self.structured_outputs = openai_wire.structured(endpoint)
        self._client: openai.AsyncOpenAI
        if endpoint.azure_api_version is not None:
            self._client = openai.AsyncAzureOpenAI(
                api_key=endpoint.api_key, azure_endpoint=endpoint.base_url or "",
                api_version=endpoint.azure_api_version, max_retries=0, timeout=timeout)
        else:
            self._client = openai.AsyncOpenAI(
                api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
                organization=endpoint.organization, project=endpoint.project,
                max_retries=0, timeout=timeout)
        self._errors = (openai.OpenAIError, httpx2.HTTPError, ValueError)
        self._local = LocalUsage(endpoint)

    async def complete(self, request: Request) -> Completion:
        body = openai_wire.body(request, self.endpoint, enforce_schema=self.structured_outputs)
        sent_schema = openai_wire.sends_schema(request, self.structured_outputs)
        model, messages = body.pop("model"), body.pop("messages")
        headers = {ROUTE_HEADER: request.route} if request.route else None
        try:
            # Everything but model and messages goes as extra_body: sent
            # verbatim, so both transports put the same JSON on the wire.
            raw = await self._client.chat.completions.with_raw_response.create(
                model=model, messages=messages, extra_body=body, extra_headers=headers)
            content = raw.content  # the body; reading it may still fail mid-stream
        except self._errors as exc:
            raise map_error(exc, self.endpoint) from exc
        request_id = raw.headers.get("x-request-id")
        data: dict[str, Any] = json_object(content, self.endpoint, request_id)
        return openai_wire.parse(data, request, self.endpoint, request_id,
                                 openai_ratelimit(raw.headers), self._local,
                                 structured_sent=sent_schema)

    async def aclose(self) -> None:
        await self._client.close()
