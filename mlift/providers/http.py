"""mlift's lean HTTP client: one pooled aiohttp session, JSON in and out.

Profiling ``mlift requests`` against a fast local server showed the official
SDKs' own per-request work (request building and validation, httpx's
connection pool, response models) taking most of the client's CPU, so one
process could not use a high-tier key fully. ``LeanClient`` sends the JSON a
wire module built to one URL and hands back the decoded 2xx body; an error
answer is classified by its HTTP status through ``errormap.from_status`` and
a transport failure by what it was, exactly as the SDK transports'
``sdkerrors`` do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlift.errors import ConnectionFailed, PermanentError, ProviderTimeout
from mlift.providers.base import Endpoint
from mlift.providers.errormap import from_status, json_object, redact

if TYPE_CHECKING:
    import aiohttp


class LeanClient:
    """POSTs JSON bodies to one URL with fixed headers (auth, version) plus per-call ones."""

    def __init__(self, endpoint: Endpoint, url: str, headers: Mapping[str, str], *,
                 timeout: float) -> None:
        self._endpoint = endpoint
        self.url = url
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         **headers}
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client_session(self) -> aiohttp.ClientSession:
        # Created lazily: a session belongs to the running event loop. aiohttp itself is
        # imported here too (a fifth of a cached re-run's wall, its TLS set-up included):
        # a run whose every answer is in the cache never needs it.
        if self._session is None or self._session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers=self._headers)
        return self._session

    async def post(self, body: dict[str, Any], headers: Mapping[str, str] | None = None,
                   *, request_id_headers: tuple[str, ...] = ("x-request-id",),
                   ) -> tuple[dict[str, Any], Mapping[str, str], str | None]:
        """(decoded 2xx body, response headers, request id); raises ``ProviderError``s."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        endpoint = self._endpoint
        context: dict[str, Any] = {"provider": endpoint.name, "model": endpoint.model}
        session = self._client_session()
        import aiohttp  # loaded by the session above: a lookup, for the errors below

        try:
            async with session.post(self.url, data=data,
                                                   headers=headers) as response:
                content = await response.read()
                status, got = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderTimeout(f"no answer within the client timeout ({self.url})",
                                  **context) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"bad base_url {endpoint.base_url!r}", **context) from exc
        except (aiohttp.ClientError, OSError) as exc:
            what = redact(f"{type(exc).__name__}: {exc}", endpoint)
            raise ConnectionFailed(f"connection to {self.url} failed ({what})",
                                   **context) from exc
        request_id = next((got[h] for h in request_id_headers if h in got), None)
        if status >= 400:
            try:
                parsed: object = json.loads(content)
            except ValueError:
                parsed = content.decode("utf-8", "replace")[:500]
            raise from_status(endpoint, status, parsed, got, request_id)
        return json_object(content, endpoint, request_id), got, request_id

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector's transports finish closing (aiohttp's advice).
            await asyncio.sleep(0)
