"""A lean aiohttp transport for OpenAI-compatible Chat Completions.

Profiling ``mlift requests`` against a fast local server showed the official
SDK's own per-request work (request building and validation, httpx's
connection pool, response models) taking over half the client's CPU, so one
process could not use a high-tier key fully. This transport sends the same
JSON to the same ``POST {base_url}/chat/completions`` with one pooled
``aiohttp`` session and parses the answer with the same checks as the SDK
path (``OpenAIProvider._completion``); errors are classified by HTTP status
through the same ``errormap``. Select it with ``transport = "aiohttp"`` in a
provider profile or ``--transport aiohttp``; the SDK path stays the default.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from mlift.errors import ConnectionFailed, PermanentError, ProviderTimeout
from mlift.providers.base import Endpoint
from mlift.providers.errormap import from_status, json_object, missing_key, redact
from mlift.providers.headers import openai_ratelimit
from mlift.providers.openai import DEFAULT_BASE_URL, DEFAULT_TIMEOUT_S, OpenAIProvider
from mlift.types import Completion, Request


class OpenAIHTTPProvider(OpenAIProvider):
    """``OpenAIProvider`` with aiohttp on the wire instead of the SDK."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint = endpoint
        self._url = (endpoint.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {endpoint.api_key}",
                         "Content-Type": "application/json", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._warned_usage = False

    def _client_session(self) -> aiohttp.ClientSession:
        # Created lazily: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  headers=self._headers)
        return self._session

    def _body(self, request: Request) -> dict[str, Any]:
        kwargs = self._arguments(request)
        extra = kwargs.pop("extra_body", {})
        return {**kwargs, **extra}

    async def complete(self, request: Request) -> Completion:
        body = json.dumps(self._body(request), ensure_ascii=False).encode("utf-8")
        name, model = self.endpoint.name, self.endpoint.model
        try:
            async with self._client_session().post(self._url, data=body) as response:
                content = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderTimeout(f"no answer within the client timeout ({self._url})",
                                  provider=name, model=model) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"bad base_url {self.endpoint.base_url!r}",
                                 provider=name, model=model) from exc
        except (aiohttp.ClientError, OSError) as exc:
            what = redact(f"{type(exc).__name__}: {exc}", self.endpoint)
            raise ConnectionFailed(f"connection failed ({what})",
                                   provider=name, model=model) from exc
        request_id = headers.get("x-request-id")
        if status >= 400:
            try:
                parsed: object = json.loads(content)
            except ValueError:
                parsed = content.decode("utf-8", "replace")[:500]
            error = parsed.get("error") if isinstance(parsed, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            raise from_status(self.endpoint, status, parsed, headers, request_id,
                              error_code=code if isinstance(code, str) else None)
        data = json_object(content, self.endpoint, request_id)
        return self._completion(data, request, request_id, openai_ratelimit(headers))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector's transports finish closing (aiohttp's advice).
            await asyncio.sleep(0)

