"""The anthropic kind's lean transport: the Messages API over mlift's aiohttp client.

The default for anthropic-kind endpoints: ``POST {base_url}/v1/messages``
with the headers the API documents (``x-api-key``, ``anthropic-version``,
``content-type: application/json``), the body of ``anthropic_wire.body``,
answers checked by ``anthropic_wire.parse`` and errors classified by HTTP
status exactly as the SDK transport's are. ``--transport sdk`` selects the SDK.
"""

from __future__ import annotations

from typing import ClassVar

from mlift.providers import anthropic_wire
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint, Provider
from mlift.providers.errormap import missing_key
from mlift.providers.headers import anthropic_ratelimit
from mlift.providers.http import LeanClient
from mlift.providers.usage import LocalUsage
from mlift.types import ROUTE_HEADER, Completion, Request


class AnthropicHTTPProvider(Provider):
    """``complete()`` over ``POST {base_url}/v1/messages`` with aiohttp."""

    refunds_unused_tokens: ClassVar[bool] = True

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint = endpoint
        self.structured_outputs = anthropic_wire.structured(endpoint)
        url = (endpoint.base_url or anthropic_wire.DEFAULT_BASE_URL).rstrip("/")
        self._client = LeanClient(endpoint, url + "/v1/messages", {
            "x-api-key": endpoint.api_key,
            "anthropic-version": anthropic_wire.ANTHROPIC_VERSION}, timeout=timeout)
        self._local = LocalUsage(endpoint)

    async def complete(self, request: Request) -> Completion:
        body = anthropic_wire.body(request, self.endpoint,
                                   enforce_schema=self.structured_outputs)
        sent_schema = anthropic_wire.sends_schema(request, self.structured_outputs)
        headers = {ROUTE_HEADER: request.route} if request.route else None
        data, got, request_id = await self._client.post(
            body, headers, request_id_headers=("request-id", "x-request-id"))
        return anthropic_wire.parse(data, request, self.endpoint, request_id,
                                    anthropic_ratelimit(got), self._local,
                                    structured_sent=sent_schema)

    async def aclose(self) -> None:
        await self._client.aclose()
