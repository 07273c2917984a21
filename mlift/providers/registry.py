"""Provider implementations, registered by name.

Built-ins and third-party providers are found the same way: the
``mlift.providers`` entry-point group, where a package declares
``kind = "module:Class"`` (mlift's own pyproject declares ``openai``,
``anthropic`` and ``sim``). When mlift runs from a source tree without its
metadata installed, the built-ins are still found through ``BUILTINS``.
Classes are imported only when asked for, so listing the known kinds does not
import any SDK.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, cast

from mlift.errors import ConfigError, UnknownNameError
from mlift.providers.base import Endpoint, Provider

GROUP = "mlift.providers"
BUILTINS: dict[str, str] = {
    "openai": "mlift.providers.openai:OpenAIProvider",
    "anthropic": "mlift.providers.anthropic:AnthropicProvider",
    "sim": "mlift.providers.sim:SimProvider",
}


def _targets() -> dict[str, str]:
    """``kind -> "module:attr"``: the built-ins, overlaid by installed entry points."""
    targets = dict(BUILTINS)
    targets.update({ep.name: ep.value for ep in entry_points(group=GROUP)})
    return targets


def known_kinds() -> list[str]:
    """Every provider kind that can be named in a profile's ``kind``, sorted."""
    return sorted(_targets())


def get_provider_class(kind: str) -> type[Provider]:
    """The class registered for ``kind``; ``UnknownNameError`` suggests the nearest."""
    targets = _targets()
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
    return cast("type[Provider]", obj)


def transports(kind: str) -> list[str]:
    """The transports a kind offers: always "sdk", plus what its class lists."""
    return ["sdk", *sorted(getattr(get_provider_class(kind), "transports", {}))]


def create_provider(endpoint: Endpoint, **options: Any) -> Provider:
    """A provider for ``endpoint``; ``options`` go to its constructor (e.g. ``timeout``).

    A provider class may offer other transports than its SDK through a
    ``transports`` mapping of name -> "module:Class" (same constructor).
    """
    cls = get_provider_class(endpoint.kind)
    if endpoint.transport != "sdk":
        alternatives: dict[str, str] = getattr(cls, "transports", {})
        target = alternatives.get(endpoint.transport)
        if target is None:
            raise UnknownNameError(f"transport for {endpoint.kind}", endpoint.transport,
                                   ["sdk", *alternatives])
        cls = _load(f"transport {endpoint.transport!r} of {endpoint.kind}", target)
    return cls(endpoint, **options)  # type: ignore[call-arg]
