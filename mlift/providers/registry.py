"""Provider implementations, registered by name.

Built-ins and third-party providers are found the same way: the
``mlift.providers`` entry-point group, where a package declares
``kind = "module:Class"`` (mlift's own pyproject declares ``openai``,
``anthropic`` and ``sim``). When mlift runs from a source tree without its
metadata installed, the built-ins are still found through ``BUILTINS``.
Classes are imported only when asked for, so listing the known kinds does not
import any SDK.

A kind's class is its "sdk" transport; ``Provider.transports`` names the
others. ``transport = "auto"`` picks the class's ``default_transport`` (the
lean aiohttp client for the built-ins) unless the endpoint uses an SDK-only
setting, which only the SDK handles.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from importlib.metadata import entry_points
from typing import Any, cast

from mlift.errors import ConfigError, UnknownNameError
from mlift.providers.base import AUTO, CAPABILITIES, SDK, Endpoint, Provider

GROUP = "mlift.providers"
BUILTINS: dict[str, str] = {
    "openai": "mlift.providers.openai:OpenAIProvider",
    "anthropic": "mlift.providers.anthropic:AnthropicProvider",
    "sim": "mlift.providers.sim:SimProvider",
}


@functools.cache
def _targets() -> dict[str, str]:
    """``kind -> "module:attr"``: the built-ins, overlaid by installed entry points.

    Looked up once per process: finding entry points reads every installed
    package's metadata from disk, and endpoints are resolved on the event loop.
    """
    targets = dict(BUILTINS)
    targets.update({ep.name: ep.value for ep in entry_points(group=GROUP)})
    return targets


def known_kinds() -> list[str]:
    """Every provider kind that can be named in a profile's ``kind``, sorted."""
    return sorted(_targets())


def get_provider_class(kind: str) -> type[Provider]:
    """The class registered for ``kind``; ``UnknownNameError`` suggests the nearest."""
    targets = dict(_targets())
    target = targets.get(kind)
    if target is None:
        raise UnknownNameError("provider kind", kind, list(targets))
    return _load(f"provider kind {kind!r}", target)


def _load(what: str, target: str) -> type[Provider]:
    module_name, _, attr = target.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} is registered as {target!r}, "
                          f"which cannot be loaded: {exc}") from exc
    if not isinstance(obj, type):
        raise ConfigError(f"{what} is registered as {target!r}, which is not a class")
    missing = [name for name in CAPABILITIES if not hasattr(obj, name)]
    if missing:
        raise ConfigError(f"{what} ({target}) lacks {', '.join(missing)}: subclass "
                          "mlift.providers.base.Provider to inherit their defaults")
    return cast("type[Provider]", obj)


def transports(kind: str) -> list[str]:
    """The transports a kind offers: "auto", "sdk", plus what its class lists."""
    return [AUTO, SDK, *sorted(get_provider_class(kind).transports)]


def choose_transport(endpoint: Endpoint) -> str:
    """The concrete transport for ``endpoint`` ("sdk" or one its class lists).

    Raises ``ConfigError`` for an unknown transport, or for a lean one forced
    on an endpoint with SDK-only settings (those would be silently dropped).
    """
    cls = get_provider_class(endpoint.kind)
    sdk_only = endpoint.sdk_only_settings
    wanted = endpoint.transport
    if wanted == AUTO:
        return SDK if sdk_only else cls.default_transport
    if wanted != SDK and wanted not in cls.transports:
        raise UnknownNameError(f"transport for {endpoint.kind}", wanted,
                               transports(endpoint.kind))
    if wanted != SDK and sdk_only:
        raise ConfigError(f"{endpoint.name}: {', '.join(sdk_only)} only work(s) with the "
                          f"official SDK; use --transport sdk (or auto), not {wanted!r}")
    return wanted


def create_provider(endpoint: Endpoint, **options: Any) -> Provider:
    """A provider for ``endpoint``; ``options`` go to its constructor (e.g. ``timeout``).

    The provider gets the endpoint with ``transport`` resolved (never "auto"),
    so it can tell which client it is.
    """
    cls = get_provider_class(endpoint.kind)
    chosen = choose_transport(endpoint)
    if chosen != endpoint.transport:
        endpoint = dataclasses.replace(endpoint, transport=chosen)
    if chosen != SDK:
        cls = _load(f"transport {chosen!r} of {endpoint.kind}", cls.transports[chosen])
    return cls(endpoint, **options)  # type: ignore[call-arg]
