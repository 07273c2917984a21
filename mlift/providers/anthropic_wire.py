"""The Messages API wire format: the one body builder and the one answer parser.

Both anthropic-kind transports (the official SDK and mlift's aiohttp client)
send what ``body`` builds and read answers with ``parse``. System text travels
apart from the messages, as the API wants; the answer is the concatenated
text blocks.

``Request.temperature`` is not sent: the API version spoken here
(``ANTHROPIC_VERSION``, the installed SDK's) rejects every sampling
parameter, even at its default. Whoever targets a server that still takes
them can pass ``temperature`` in ``Request.params``, which are sent verbatim.

Structured outputs go through a forced tool: ``tools = [{name, description,
input_schema}]`` with ``tool_choice = {"type": "tool", "name": ...}``; the
answer's ``tool_use`` input becomes the completion text, as JSON.

Prompt caching: the system prompt is the prefix every call of a stage
shares, so it is marked ``cache_control: {"type": "ephemeral"}`` when it is
long enough for the model to cache (shorter prefixes are never cached, so
marking them would only add noise to the request).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from mlift.errors import PermanentError
from mlift.providers.base import Endpoint
from mlift.providers.errormap import malformed, redact
from mlift.providers.usage import LocalUsage
from mlift.tokens import count_tokens
from mlift.types import Completion, FinishReason, RateLimitInfo, Request, Usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
PUBLIC_HOST = "api.anthropic.com"
ANTHROPIC_VERSION = "2026-10-21"  # the installed SDK's; a test keeps them equal
# Set by mlift from the Request (max_tokens is Request.max_tokens, required here).
RESERVED_PARAMS = frozenset({"model", "messages", "system", "stream", "max_tokens"})
_STOP: dict[str, FinishReason] = {"end_turn": "stop", "stop_sequence": "stop",
                                  "tool_use": "stop", "max_tokens": "length"}

# Shortest cacheable prefix, in tokens, by model family (Anthropic's prompt
# caching documentation, 2026): 4,096 for the models below, 2,048 for the 3.x
# Haikus, 1,024 for the rest (Opus 4.8 and 4.1, Sonnet 4.6 and 4.5, ...). A
# model not listed gets the smallest minimum, because marking a prefix too
# short to cache costs nothing (the request is simply processed uncached).
CACHE_MIN_TOKENS: tuple[tuple[str, int], ...] = (
    ("opus-4-7", 4096), ("opus-4-6", 4096), ("opus-4-5", 4096), ("haiku-4-5", 4096),
    ("mythos-preview", 4096), ("3-5-haiku", 2048), ("3-haiku", 2048),
)
DEFAULT_CACHE_MIN_TOKENS = 1024


def structured(endpoint: Endpoint) -> bool:
    """Whether ``endpoint`` honours a forced tool (the profile decides, else: the public API)."""
    if endpoint.structured_outputs is not None:
        return endpoint.structured_outputs
    return endpoint.host_is(PUBLIC_HOST)


def cache_min_tokens(model: str) -> int:
    """The shortest prefix ``model`` caches, in tokens."""
    return next((n for part, n in CACHE_MIN_TOKENS if part in model), DEFAULT_CACHE_MIN_TOKENS)


@functools.lru_cache(maxsize=256)
def cacheable(text: str, model: str) -> bool:
    """Whether a prefix of ``text`` is long enough for ``model`` to cache it."""
    # A stage sends the same system text on every call: count it once.
    return count_tokens(text, model) >= cache_min_tokens(model)


def sends_schema(request: Request, enforce_schema: bool) -> bool:
    """Whether ``body`` puts ``request.output_schema`` on the wire.

    Not when the endpoint does not enforce schemas, nor when the caller set
    ``tools`` in ``Request.params`` itself (theirs is sent as given).
    """
    return (enforce_schema and request.output_schema is not None
            and all(name != "tools" for name, _ in request.params))


def body(request: Request, endpoint: Endpoint, *, enforce_schema: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``request``."""
    params = dict(request.params)
    bad = sorted(RESERVED_PARAMS & params.keys())
    if bad:
        raise PermanentError(f"params {bad} cannot be set: mlift sends them itself",
                             provider=endpoint.name, model=endpoint.model)
    out: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.chat],
        "max_tokens": request.max_tokens,
    }
    tools: list[dict[str, Any]] = []
    schema = request.output_schema
    if schema is not None and sends_schema(request, enforce_schema):
        tools = [{"name": schema.name, "description": schema.description or
                  f"Record the answer as {schema.name}.", "input_schema": schema.schema}]
        out["tools"] = tools
        out["tool_choice"] = {"type": "tool", "name": schema.name}
    system = request.system
    if system is not None:
        # The cached prefix is tools + system, so both count towards the minimum.
        prefix = system + (json.dumps(tools) if tools else "")
        if cacheable(prefix, endpoint.model):
            out["system"] = [{"type": "text", "text": system,
                              "cache_control": {"type": "ephemeral"}}]
        else:
            out["system"] = system
    out.update({k: v for k, v in params.items() if v is not None})  # None: don't send
    return out


def parse(data: dict[str, Any], request: Request, endpoint: Endpoint, request_id: str | None,
          ratelimit: RateLimitInfo | None, local: LocalUsage, *,
          structured_sent: bool) -> Completion:
    """A 2xx Messages body as a ``Completion`` (``MalformedResponse`` if it is not one)."""
    request_id = request_id or (data["id"] if isinstance(data.get("id"), str) else None)
    blocks = data.get("content")
    if not isinstance(blocks, list):
        error = data.get("error")
        what = f"error in a 2xx body: {error}" if error else "no content blocks"
        raise malformed(endpoint, request_id, redact(what, endpoint))
    texts: list[str] = []
    tool_input: str | None = None
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise malformed(endpoint, request_id, "a text block without text")
            texts.append(text)
        elif block.get("type") == "tool_use" and structured_sent and tool_input is None:
            value = block.get("input")
            if not isinstance(value, dict):
                raise malformed(endpoint, request_id, "a tool_use block without an input object")
            tool_input = json.dumps(value, ensure_ascii=False)
    # The forced tool's input is the answer; text blocks beside it are commentary.
    # A server that ignores the forced tool (llama-server's /v1/messages) answers
    # in text only: then no schema shaped the answer.
    text = tool_input if tool_input is not None else "".join(texts)
    reason = data.get("stop_reason")
    model = data.get("model")
    return Completion(
        text=text,
        finish_reason=_STOP.get(reason, "other") if isinstance(reason, str) else "other",
        usage=usage(data.get("usage")) or local.count(request, text),
        model=model if isinstance(model, str) and model else endpoint.model,
        request_id=request_id, ratelimit=ratelimit, structured=tool_input is not None)


def usage(raw: object) -> Usage | None:
    """``usage`` with cache reads and writes (None when the server sent none).

    Anthropic's ``input_tokens`` excludes the cached prefix; cache reads and
    writes are input the model processed too, so ``Usage.input_tokens`` is
    their sum (which keeps the token limiter honest) and each share is kept
    apart for pricing.
    """
    if not isinstance(raw, dict):
        return None
    given, output = raw.get("input_tokens"), raw.get("output_tokens")
    if not isinstance(given, int) or not isinstance(output, int):
        return None
    read = raw.get("cache_read_input_tokens")
    write = raw.get("cache_creation_input_tokens")
    read = read if isinstance(read, int) and read > 0 else 0
    write = write if isinstance(write, int) and write > 0 else 0
    return Usage(given + read + write, output, cached_input_tokens=read,
                 cache_write_tokens=write)
