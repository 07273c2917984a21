"""Value objects passed between the engine, providers and stages.

Frozen, slotted dataclasses: cheap to create, safe to share between tasks,
and hashable where the cache needs a canonical form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "other"]

ROUTE_HEADER = "X-Mlift-Prompt"
"""The request header carrying ``Request.route``: metadata for tools, never model input."""

ROUTE_FIELD = "mlift_route"
"""The batch-line field carrying ``Request.route`` (batch lines have no headers); only
sent to the simulator (provider kind ``sim``), which alone reads it."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``route`` is metadata about the prompt it came from.

    ``route`` is set by ``mlift.prompts.render`` on the system message it renders:
    the prompt's ``id@vN`` and its ``sim`` hint with the variables filled in
    (``translate/to_en@v1 translate source=hi target=en``). It is never part of
    the content a model reads, of equality or of the cache key; providers send
    it as the ``X-Mlift-Prompt`` header, where the simulator (and a logging
    proxy) can see which prompt a request came from.
    """

    role: Role
    content: str
    route: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """A JSON Schema the answer must match, where the endpoint can enforce one.

    ``name`` follows both APIs' rule for schema and tool names
    (``[A-Za-z0-9_-]{1,64}``); ``schema`` is a JSON object schema in the strict
    subset OpenAI documents (every object closes ``additionalProperties`` and
    requires all its properties), which Anthropic's tool ``input_schema`` and
    llama.cpp's grammar conversion also take.
    """

    name: str
    schema: Mapping[str, Any] = field(hash=False)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.schema, "description": self.description}


@dataclass(frozen=True, slots=True)
class Request:
    """One model call, independent of any provider's wire format.

    ``target`` is the ``NAME:MODEL`` spec the engine resolves to an endpoint;
    ``params`` holds extra generation parameters (``top_p``, ``seed``, …) that
    are sent as given and are part of the cache key. ``prompt`` is the
    ``id@version#hash`` of the prompt file that produced the messages, so
    editing a prompt invalidates exactly the calls that used it.
    ``output_schema``, when set, asks for an answer matching it: providers
    send it where the endpoint enforces schemas and otherwise rely on the
    prompt's own wording (``Completion.structured`` says which happened).
    """

    target: str
    messages: tuple[Message, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    params: tuple[tuple[str, Any], ...] = ()
    prompt: str | None = None
    stage: str = "requests"
    item_id: str | None = None
    output_schema: OutputSchema | None = None

    @property
    def system(self) -> str | None:
        """The system text (Anthropic takes it apart from the messages)."""
        texts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(texts) if texts else None

    @property
    def chat(self) -> tuple[Message, ...]:
        """The non-system messages."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def route(self) -> str | None:
        """The first message's ``route`` (see ``Message``), sent as ``ROUTE_HEADER``."""
        return next((m.route for m in self.messages if m.route is not None), None)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call (or a sum of calls).

    ``input_tokens`` is every input token the model processed, cached or not
    (OpenAI's ``prompt_tokens``; Anthropic's ``input_tokens`` plus its cache
    reads and writes). Of those, ``cached_input_tokens`` were read from the
    provider's prompt cache (OpenAI ``prompt_tokens_details.cached_tokens``,
    Anthropic ``cache_read_input_tokens``) and ``cache_write_tokens`` were
    written to it (Anthropic ``cache_creation_input_tokens``); each kind is
    priced at its own rate.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cached_input_tokens - self.cache_write_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.cached_input_tokens + other.cached_input_tokens,
                     self.cache_write_tokens + other.cache_write_tokens)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a provider's rate-limit response headers said (None = not sent).

    ``*_tokens`` is the one token limit OpenAI-style servers report, or
    Anthropic's ``tokens-*`` ("the most restrictive token limit in effect");
    ``*_input_tokens`` and ``*_output_tokens`` are Anthropic's separate
    input- and output-token limits.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None
    limit_input_tokens: int | None = None
    remaining_input_tokens: int | None = None
    reset_input_tokens_s: float | None = None
    limit_output_tokens: int | None = None
    remaining_output_tokens: int | None = None
    reset_output_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer plus what it cost.

    ``finish_reason == "length"`` means ``max_tokens`` cut the answer; that
    is a result, not a transport error. ``cached`` answers cost nothing.
    ``structured`` is True when the request's ``output_schema`` was sent for
    the endpoint to enforce (OpenAI ``json_schema``, an Anthropic forced tool);
    False when the answer is free text that only the prompt asked to be JSON.
    """

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str
    request_id: str | None = None
    cached: bool = False
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 1
    ratelimit: RateLimitInfo | None = field(default=None, compare=False)
    structured: bool = False

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        usage = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}
        if u.cached_input_tokens:
            usage["cached_input_tokens"] = u.cached_input_tokens
        if u.cache_write_tokens:
            usage["cache_write_tokens"] = u.cache_write_tokens
        out: dict[str, Any] = {"text": self.text, "finish_reason": self.finish_reason,
                               "usage": usage, "model": self.model,
                               "request_id": self.request_id}
        if self.structured:
            out["structured"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False, cost_usd: float = 0.0,
                  latency_s: float = 0.0, attempts: int = 1) -> Completion:
        """The answer ``to_json`` wrote; the keywords set the rest (the cache marks its hits)."""
        u = data["usage"]
        # All positional: every cache hit is built here.
        return cls(data["text"], data["finish_reason"],
                   Usage(u["input_tokens"], u["output_tokens"],
                         u.get("cached_input_tokens", 0), u.get("cache_write_tokens", 0)),
                   data["model"], data.get("request_id"), cached, cost_usd, latency_s, attempts,
                   None, bool(data.get("structured", False)))
