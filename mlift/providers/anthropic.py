"""Anthropic's Messages API; this module's class is the official-SDK transport.

Like the openai kind, the anthropic kind lists a lean aiohttp transport
(``mlift.providers.anthropic_http``), which ``transport = "auto"`` picks; both
build the body and parse the answer in ``anthropic_wire`` (system apart from
the messages, structured outputs through a forced tool, the system prompt
marked cacheable where it is long enough).

The SDK client is built with ``max_retries=0`` (the engine owns retries) and a
generous timeout (the engine cancels hung requests sooner). The
``anthropic-ratelimit-*`` headers (resets as RFC 3339 timestamps) are read
from the raw response for the engine's limiter. The SDK is imported only when
this transport is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mlift.providers import anthropic_wire
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint, Provider
from mlift.providers.errormap import json_object, missing_key
from mlift.providers.headers import anthropic_ratelimit
from mlift.providers.usage import LocalUsage
from mlift.types import ROUTE_HEADER, Completion, Request

if TYPE_CHECKING:
    import anthropic

    from mlift.errors import ProviderError

DEFAULT_BASE_URL = anthropic_wire.DEFAULT_BASE_URL


def map_error(exc: BaseException, endpoint: Endpoint) -> ProviderError:
    """The one seam where Anthropic SDK (and leaked httpx2/JSON) errors become mlift errors."""
    from mlift.providers.sdkerrors import map_sdk_error

    return map_sdk_error(exc, endpoint, "anthropic")


class AnthropicProvider(Provider):
    """``complete()`` over ``POST {base_url}/v1/messages`` with the official SDK."""

    transports: ClassVar[dict[str, str]] = {
        "aiohttp": "mlift.providers.anthropic_http:AnthropicHTTPProvider"}
    default_transport: ClassVar[str] = "aiohttp"
    # Anthropic adjusts output-token rate-limit charges to what was used.
    refunds_unused_tokens: ClassVar[bool] = True

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        import anthropic
        import httpx2

        self.endpoint = endpoint
        self.structured_outputs = anthropic_wire.structured(endpoint)
        self._client: anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
            max_retries=0, timeout=timeout)
        self._errors = (anthropic.AnthropicError, httpx2.HTTPError, ValueError)
        self._local = LocalUsage(endpoint)

    async def complete(self, request: Request) -> Completion:
        body = anthropic_wire.body(request, self.endpoint,
                                   enforce_schema=self.structured_outputs)
        sent_schema = anthropic_wire.sends_schema(request, self.structured_outputs)
        model, messages, max_tokens = body.pop("model"), body.pop("messages"), \
            body.pop("max_tokens")
        headers = {ROUTE_HEADER: request.route} if request.route else None
        try:
            # The rest (system, tools, params) goes as extra_body: sent verbatim,
            # so both transports put the same JSON on the wire.
            raw = await self._client.messages.with_raw_response.create(
                model=model, messages=messages, max_tokens=max_tokens, extra_body=body,
                extra_headers=headers)
            content = await raw.read()  # the body; reading it may still fail mid-stream
        except self._errors as exc:
            raise map_error(exc, self.endpoint) from exc
        headers_in = raw.headers
        request_id = headers_in.get("request-id") or headers_in.get("x-request-id")
        data: dict[str, Any] = json_object(content, self.endpoint, request_id)
        return anthropic_wire.parse(data, request, self.endpoint, request_id,
                                    anthropic_ratelimit(headers_in), self._local,
                                    structured_sent=sent_schema)

    async def aclose(self) -> None:
        await self._client.close()
