"""The openai kind's lean transport: Chat Completions over mlift's aiohttp client.

The default for openai-kind (and sim) endpoints without SDK-only settings:
the same body (``openai_wire.body``), the same answer checks
(``openai_wire.parse``) and the same error classification as the SDK
transport, at a fraction of its CPU per request. ``--transport sdk`` (or
``transport = "sdk"`` in a profile) selects the SDK instead.
"""

from __future__ import annotations

from typing import ClassVar

from mlift.providers import openai_wire
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint, Provider
from mlift.providers.errormap import missing_key
from mlift.providers.headers import openai_ratelimit
from mlift.providers.http import LeanClient
from mlift.providers.usage import LocalUsage
from mlift.types import ROUTE_HEADER, Completion, Request


class OpenAIHTTPProvider(Provider):
    """``complete()`` over ``POST {base_url}/chat/completions`` with aiohttp."""

    refunds_unused_tokens: ClassVar[bool] = False

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint = endpoint
        self.structured_outputs = openai_wire.structured(endpoint)
        url = (endpoint.base_url or openai_wire.DEFAULT_BASE_URL).rstrip("/")
        self._client = LeanClient(endpoint, url + "/chat/completions",
                                  {"Authorization": f"Bearer {endpoint.api_key}"},
                                  timeout=timeout)
        self._local = LocalUsage(endpoint)

    async def complete(self, request: Request) -> Completion:
        body = openai_wire.body(request, self.endpoint, enforce_schema=self.structured_outputs)
        sent_schema = openai_wire.sends_schema(request, self.structured_outputs)
        headers = {ROUTE_HEADER: request.route} if request.route else None
        data, got, request_id = await self._client.post(body, headers)
        return openai_wire.parse(data, request, self.endpoint, request_id,
                                 openai_ratelimit(got), self._local,
                                 structured_sent=sent_schema)

    async def aclose(self) -> None:
        await self._client.aclose()
