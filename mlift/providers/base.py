"""The provider seam: one small protocol, one resolved endpoint.

A provider turns a ``Request`` into a ``Completion`` and maps its SDK's
errors onto ``mlift.errors`` at exactly one place. It holds no retry, cache or
rate-limit logic: the engine owns those, so a new provider is ~100 lines.

Everything the engine and the registry read from a provider is declared on
``Provider`` with its default; a provider class that subclasses ``Provider``
inherits the defaults and overrides what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

from mlift.types import Completion, Request

AUTO = "auto"
SDK = "sdk"
# A generous client timeout (the SDKs' own default): the engine abandons hung
# requests sooner by cancelling them, on a timeout fitted to the latencies seen.
DEFAULT_TIMEOUT_S = 600.0


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
    # How to talk to it: "auto" (the provider's default transport unless an
    # SDK-only setting is in use), "sdk" (the official SDK) or another
    # transport the provider class lists in ``Provider.transports``.
    transport: str = AUTO
    # SDK-only settings (the openai kind): OpenAI-Organization and
    # OpenAI-Project headers, and Azure OpenAI (base_url is then the resource
    # endpoint and model the deployment name).
    organization: str | None = None
    project: str | None = None
    azure_api_version: str | None = None
    # Whether the endpoint enforces Request.output_schema; None lets the
    # provider decide (yes for the public OpenAI and Anthropic APIs, no for
    # other servers unless their profile says so).
    structured_outputs: bool | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def limit_key(self) -> tuple[str, str, str]:
        """Rate limits are kept per (provider kind, base URL, model)."""
        return (self.kind, self.base_url or "", self.model)

    @property
    def sdk_only_settings(self) -> tuple[str, ...]:
        """The names of the settings in use that only the official SDK transport handles."""
        return tuple(name for name in ("organization", "project", "azure_api_version")
                     if getattr(self, name) is not None)

    def host_is(self, host: str) -> bool:
        """True when ``base_url`` points at ``host`` (e.g. ``api.openai.com``)."""
        return (urlsplit(self.base_url or "").hostname or "").lower() == host


@runtime_checkable
class Provider(Protocol):
    """What a provider implements. ``complete`` raises only ``ProviderError``s.

    Capabilities, each with the default a subclass inherits:

    - ``transports``: other clients for the same kind, ``name -> "module:Class"``
      (same constructor); "sdk" is always the class itself.
    - ``default_transport``: what ``transport = "auto"`` picks when no SDK-only
      setting is in use.
    - ``refunds_unused_tokens``: the server gives back the unused part of a
      request's token reservation (Anthropic adjusts output tokens to what was
      used; OpenAI keeps prompt + ``max_tokens`` charged), so the engine's
      limiter refunds it too.
    - ``structured_outputs``: whether this provider, for its endpoint, sends
      ``Request.output_schema`` for the server to enforce.
    """

    transports: ClassVar[Mapping[str, str]] = {}
    default_transport: ClassVar[str] = SDK
    refunds_unused_tokens: ClassVar[bool] = False
    structured_outputs: bool = False

    endpoint: Endpoint

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


CAPABILITIES = ("transports", "default_transport", "refunds_unused_tokens",
                "structured_outputs")
"""The attributes above that a provider class must have (``registry`` checks)."""
