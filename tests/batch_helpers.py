"""Shared pieces of the batch client tests: endpoints on the simulator, requests, a clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlift.batch import BatchClient, line_id
from mlift.batch.anthropic import AnthropicBatchClient
from mlift.batch.openai import OpenAIBatchClient
from mlift.providers.base import Endpoint
from mlift.sim import SimServer
from mlift.types import Message, Request

KINDS = ("openai", "anthropic")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}
JUDGE = "Rate the pair.\n<!-- mlift:judge format=json -->"


def endpoint(kind: str, server: SimServer, key: str = "sk-test-key") -> Endpoint:
    base = server.base_url + ("/v1" if kind == "openai" else "")
    return Endpoint(name=kind, kind=kind, model=MODELS[kind], base_url=base, api_key=key)


def client(kind: str, server: SimServer, **options: Any) -> BatchClient:
    cls: Callable[..., BatchClient] = (OpenAIBatchClient if kind == "openai"
                                       else AnthropicBatchClient)
    return cls(endpoint(kind, server), **options)


def request(kind: str, i: int, *, system: str = JUDGE, user: str | None = None,
            max_tokens: int = 60, **extra: Any) -> Request:
    text = user if user is not None else (f"<instruction>Question {i}?</instruction>"
                                          f"<response>Answer {i}.</response>")
    return Request(target=f"{kind}:{MODELS[kind]}", stage="judge", item_id=f"item-{i}",
                   max_tokens=max_tokens, messages=(Message("system", system),
                                                    Message("user", text)), **extra)


def stage_requests(kind: str, server: SimServer, n: int, *, start: int = 0,
                   **extra: Any) -> dict[str, Request]:
    ep = endpoint(kind, server)
    out = {}
    for i in range(start, start + n):
        req = request(kind, i, **extra)
        out[line_id(req, ep)] = req
    return out


class Clocked:
    """The simulator's virtual clock, moved by the driver's sleeps."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        import asyncio

        self.slept.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)
