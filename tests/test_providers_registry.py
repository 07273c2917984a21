"""Providers are found by name through the ``mlift.providers`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from mlift.errors import ConfigError, UnknownNameError
from mlift.providers.anthropic import AnthropicProvider
from mlift.providers.base import Endpoint, Provider
from mlift.providers.openai import OpenAIProvider
from mlift.providers.registry import (
    BUILTINS,
    GROUP,
    create_provider,
    get_provider_class,
    known_kinds,
)
from mlift.providers.sim import SimProvider


def test_builtins_are_known_kinds() -> None:
    assert {"openai", "anthropic", "sim"} <= set(known_kinds())


@pytest.mark.parametrize(("kind", "cls"), [
    ("openai", OpenAIProvider), ("anthropic", AnthropicProvider), ("sim", SimProvider)])
def test_builtin_kinds_resolve_to_their_classes(kind: str, cls: type) -> None:
    assert get_provider_class(kind) is cls


def test_installed_entry_points_agree_with_the_fallback_table() -> None:
    installed = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    for name, target in installed.items():
        if name in BUILTINS:
            assert BUILTINS[name] == target


def test_unknown_kind_lists_known_ones_and_suggests_the_nearest() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_provider_class("opnai")
    message = str(caught.value)
    assert "Did you mean 'openai'?" in message
    assert "anthropic" in message and "sim" in message
    assert isinstance(caught.value, ConfigError)


async def test_create_provider_builds_a_provider_for_the_endpoint() -> None:
    endpoint = Endpoint("local", "openai", "qwen", base_url="http://127.0.0.1:1/v1",
                        api_key="x")
    provider = create_provider(endpoint, timeout=5.0)
    try:
        assert isinstance(provider, OpenAIProvider)
        assert isinstance(provider, Provider)
        assert provider.endpoint is endpoint
    finally:
        await provider.aclose()


def test_create_provider_with_unknown_kind_fails_before_any_request() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'sim'"):
        create_provider(Endpoint("x", "simm", "default"))
