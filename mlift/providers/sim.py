"""The ``sim`` provider: the built-in simulator behind the real OpenAI client.

On the first ``complete`` it starts a ``SimServer`` in-process on an
ephemeral loopback port (inside the running event loop; a lock makes
concurrent first calls start exactly one), then delegates every call to an
openai-kind provider pointed at it — the lean aiohttp client by default, the
official SDK with ``--transport sdk`` — so the whole HTTP path (client,
headers, error mapping) is the one real providers use. The simulator
enforces output schemas, so structured outputs are on unless the profile
turns them off. A ``sim`` profile with a
``base_url`` talks to a simulator already running there (``mlift sim serve``;
the URL is the server root, without ``/v1``) instead of starting one.

Model names are free-form (``sim:default``, ``sim:gpt-4o-mini``); no key is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING, ClassVar

from mlift.providers.base import DEFAULT_TIMEOUT_S, SDK, Endpoint, Provider
from mlift.types import Completion, Request

if TYPE_CHECKING:
    from mlift.sim import SimConfig

# Sent when the profile has none; the simulator accepts any key unless told
# to require one (SimConfig.require_key), which is how 401s are tested.
NO_KEY = "sim-no-key"


class SimProvider(Provider):
    """``complete()`` against an in-process (or already running) simulator."""

    # The same client choice as the openai kind it poses as.
    transports: ClassVar[dict[str, str]] = {"aiohttp": "mlift.providers.sim:SimProvider"}
    default_transport: ClassVar[str] = "aiohttp"
    refunds_unused_tokens: ClassVar[bool] = False

    def __init__(self, endpoint: Endpoint, *, sim_config: SimConfig | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self._sim_config = sim_config
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self._inner: Provider | None = None
        self.base_url: str | None = endpoint.base_url
        """The simulator's root URL once started (or the profile's)."""
        self.structured_outputs = endpoint.structured_outputs is not False

    async def complete(self, request: Request) -> Completion:
        inner = self._inner or await self._start()
        return await inner.complete(request)

    async def url(self) -> str:
        """The simulator's root URL, starting it first if this provider runs its own (its
        batch API is there too: batch mode sends to the simulator the run talks to)."""
        if self._inner is None:
            await self._start()
        assert self.base_url is not None
        return self.base_url

    async def _start(self) -> Provider:
        async with self._lock:
            if self._inner is None:
                if self.base_url is None:
                    from mlift.sim import SimConfig, SimServer

                    server = SimServer(self._sim_config or SimConfig())
                    await self._stack.enter_async_context(server)
                    self.base_url = server.base_url
                inner = dataclasses.replace(
                    self.endpoint, base_url=self.base_url.rstrip("/") + "/v1",
                    api_key=self.endpoint.api_key or NO_KEY,
                    structured_outputs=self.structured_outputs)
                if self.endpoint.transport == SDK:
                    from mlift.providers.openai import OpenAIProvider

                    self._inner = OpenAIProvider(inner, timeout=self._timeout)
                else:
                    from mlift.providers.openai_http import OpenAIHTTPProvider

                    self._inner = OpenAIHTTPProvider(inner, timeout=self._timeout)
            return self._inner

    async def aclose(self) -> None:
        """Close the client, then stop the simulator if this provider started it."""
        async with self._lock:
            if self._inner is not None:
                await self._inner.aclose()
                self._inner = None
            await self._stack.aclose()
            self.base_url = self.endpoint.base_url
