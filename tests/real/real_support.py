"""What the conformance tests share: the server's facts, its profiles, small helpers."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.providers.registry import transports

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"  # llama-server serves the one model it loaded, whatever it is called
KINDS = ("openai", "anthropic")
# Every (kind, transport) mlift offers, asked of the registry so a new transport is covered.
WIRES = [(kind, transport) for kind in KINDS for transport in transports(kind)]
# What this conformance suite knows about its llama-server (scripts/real_server.py).
SLOTS, CONTEXT_PER_SLOT = 2, 4096


@dataclasses.dataclass(frozen=True)
class RealServer:
    url: str
    config_path: Path

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.loads(response.read())

    def tokens(self, text: str, *, special: bool = False) -> list[int]:
        """The server's own tokenization of ``text``."""
        tokens: list[int] = self.post("/tokenize", {"content": text, "add_special": special,
                                                    "parse_special": special})["tokens"]
        return tokens

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the prompt the server builds from ``messages`` with its chat template."""
        prompt = self.post("/apply-template", {"messages": messages})["prompt"]
        return len(self.tokens(prompt, special=True))


def profiles(url: str) -> str:
    """Profiles for both kinds against the server, as a user would write them."""
    return f"""
[providers.llama]
kind = "openai"
base_url = "{url}/v1"
context_tokens = {CONTEXT_PER_SLOT}
prices = {{ input = 0.0, output = 0.0 }}

[providers.llama-anthropic]
kind = "anthropic"
base_url = "{url}"
context_tokens = {CONTEXT_PER_SLOT}
prices = {{ input = 0.0, output = 0.0 }}

# The same two, told that the server enforces output schemas.
[providers.llama-json]
kind = "openai"
base_url = "{url}/v1"
context_tokens = {CONTEXT_PER_SLOT}
prices = {{ input = 0.0, output = 0.0 }}
structured_outputs = true

[providers.llama-anthropic-tool]
kind = "anthropic"
base_url = "{url}"
context_tokens = {CONTEXT_PER_SLOT}
prices = {{ input = 0.0, output = 0.0 }}
structured_outputs = true
"""


def spec(kind: str, *, structured: bool = False) -> str:
    """The profile for ``kind``; ``structured``: the one with structured_outputs on."""
    name = "llama" if kind == "openai" else "llama-anthropic"
    if structured:
        name += "-json" if kind == "openai" else "-tool"
    return f"{name}:{MODEL}"


EngineFactory = Callable[..., Engine]
