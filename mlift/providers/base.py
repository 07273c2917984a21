"""The provider seam: one small protocol, one resolved endpoint.

A provider turns a ``Request`` into a ``Completion`` and maps its SDK's
errors onto ``mlift.errors`` at exactly one place. It holds no retry, cache or
rate-limit logic: the engine owns those, so a new provider is ~100 lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mlift.types import Completion, Request


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A provider profile resolved for one model.

    ``name`` is the profile name used in ``NAME:MODEL`` specs (``openai``,
    ``local``, …); ``kind`` selects the implementation (``openai``,
    ``anthropic``, ``sim``). ``api_key`` was read from ``api_key_env`` by the
    one place that reads the environment (``mlift.config``); it never appears
    in a repr, a cache key or an error message.
    """

    name: str
    kind: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # Limits and prices are the engine's business; kept here so one profile
    # object carries all a user configured for it.
    rpm: float | None = None
    tpm: float | None = None
    concurrency: int | None = None
    input_price: float | None = None   # USD per 1M input tokens
    output_price: float | None = None  # USD per 1M output tokens
    context_tokens: int | None = None
    # How to talk to it: "sdk" (the official SDK) or another transport the
    # provider class lists in its ``transports`` (e.g. openai's lean "aiohttp").
    transport: str = "sdk"

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def limit_key(self) -> tuple[str, str, str]:
        """Rate limits are kept per (provider kind, base URL, model)."""
        return (self.kind, self.base_url or "", self.model)


@runtime_checkable
class Provider(Protocol):
    """What a provider implements. ``complete`` raises only ``ProviderError``s."""

    endpoint: Endpoint

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...
