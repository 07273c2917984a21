"""Providers are found by name through the ``mlift.providers`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from mlift.errors import ConfigError, UnknownNameError
from mlift.providers.anthropic import AnthropicProvider
from mlift.providers.anthropic_http import AnthropicHTTPProvider
from mlift.providers.base import CAPABILITIES, Endpoint, Provider
from mlift.providers.openai import OpenAIProvider
from mlift.providers.openai_http import OpenAIHTTPProvider
from mlift.providers.registry import (
    BUILTINS,
    GROUP,
    _load,
    choose_transport,
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


@pytest.mark.parametrize(("kind", "transport", "cls"), [
    ("openai", "auto", OpenAIHTTPProvider), ("openai", "aiohttp", OpenAIHTTPProvider),
    ("openai", "sdk", OpenAIProvider), ("anthropic", "auto", AnthropicHTTPProvider),
    ("anthropic", "aiohttp", AnthropicHTTPProvider), ("anthropic", "sdk", AnthropicProvider),
    ("sim", "auto", SimProvider), ("sim", "sdk", SimProvider)])
async def test_create_provider_builds_the_chosen_transport(kind: str, transport: str,
                                                           cls: type) -> None:
    endpoint = Endpoint("local", kind, "qwen", base_url="http://127.0.0.1:1/v1",
                        api_key="x", transport=transport)
    provider = create_provider(endpoint, timeout=5.0)
    try:
        assert type(provider) is cls
        assert isinstance(provider, Provider)
        assert provider.endpoint.model == "qwen"
        assert provider.endpoint.transport == (
            "sdk" if cls in (OpenAIProvider, AnthropicProvider) or transport == "sdk"
            else "aiohttp")  # never "auto": the provider knows which client it is
    finally:
        await provider.aclose()


@pytest.mark.parametrize("setting", [{"organization": "org-1"}, {"project": "proj_1"},
                                     {"azure_api_version": "2024-10-21"}])
def test_sdk_only_settings_make_auto_choose_the_sdk(setting: dict[str, str]) -> None:
    endpoint = Endpoint("oa", "openai", "gpt-4o-mini", **setting)  # type: ignore[arg-type]
    assert choose_transport(endpoint) == "sdk"


def test_forcing_the_lean_transport_with_sdk_only_settings_fails_naming_them() -> None:
    endpoint = Endpoint("oa", "openai", "gpt-4o-mini", organization="org-1", transport="aiohttp")
    with pytest.raises(ConfigError, match="organization only work"):
        choose_transport(endpoint)


def test_unknown_transport_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="aiohttp") as caught:
        choose_transport(Endpoint("oa", "openai", "m", transport="aiohttpp"))
    assert "Did you mean 'aiohttp'?" in str(caught.value)


def test_every_capability_has_a_default_on_the_protocol() -> None:
    class Minimal(Provider):
        pass

    assert all(hasattr(Minimal, name) for name in CAPABILITIES)
    assert (Minimal.transports, Minimal.default_transport, Minimal.refunds_unused_tokens,
            Minimal.structured_outputs) == ({}, "sdk", False, False)


def test_a_plugin_class_without_the_capabilities_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"subclass mlift\.providers\.base\.Provider"):
        _load("provider kind 'x'", f"{__name__}:_Bare")


class _Bare:
    """A provider that neither subclasses Provider nor declares its capabilities."""


def test_create_provider_with_unknown_kind_fails_before_any_request() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'sim'"):
        create_provider(Endpoint("x", "simm", "default"))
