"""The Chat Completions wire format: the one body builder and the one answer parser.

Both openai-kind transports (the official SDK and mlift's aiohttp client)
send what ``body`` builds and read answers with ``parse``, so they cannot
drift apart. Compatible servers vary, so the answer is checked field by
field: a missing field is a clear ``MalformedResponse``, not an
``AttributeError`` deep in a stage.

Structured outputs: a request's ``output_schema`` goes out as
``response_format = {"type": "json_schema", "json_schema": {name, schema,
strict: true}}`` where the endpoint enforces schemas (``structured(endpoint)``);
elsewhere the prompt's own wording asks for JSON and the caller parses text.
"""

from __future__ import annotations

from typing import Any

from mlift.errors import PermanentError
from mlift.providers.base import Endpoint
from mlift.providers.errormap import malformed, redact
from mlift.providers.usage import LocalUsage
from mlift.types import Completion, FinishReason, RateLimitInfo, Request, Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PUBLIC_HOST = "api.openai.com"
# Parameters mlift sets itself or that would change the answer's wire shape.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


# OpenAI caches a prompt's prefix by itself from 1,024 tokens, in steps of 128
# (reported as usage.prompt_tokens_details.cached_tokens); the estimator uses it.
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128


def structured(endpoint: Endpoint) -> bool:
    """Whether ``endpoint`` enforces ``response_format`` json_schema.

    The profile's ``structured_outputs`` decides when set (llama.cpp's
    llama-server and vLLM accept json_schema; older servers may reject or
    ignore it); otherwise only the public OpenAI API is assumed to.
    """
    if endpoint.structured_outputs is not None:
        return endpoint.structured_outputs
    return endpoint.host_is(PUBLIC_HOST)


def sends_schema(request: Request, enforce_schema: bool) -> bool:
    """Whether ``body`` puts ``request.output_schema`` on the wire.

    Not when the endpoint does not enforce schemas, nor when the caller set
    ``response_format`` in ``Request.params`` itself (theirs is sent as given).
    """
    return (enforce_schema and request.output_schema is not None
            and all(name != "response_format" for name, _ in request.params))


def body(request: Request, endpoint: Endpoint, *, enforce_schema: bool) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``.

    ``Request.params`` are sent verbatim (including server-specific ones such
    as vLLM's ``top_k``); a param given there replaces mlift's default for it,
    and a param set to None is not sent at all — reasoning models take
    ``max_completion_tokens`` instead of ``max_tokens`` and some reject
    ``temperature``.
    """
    params = dict(request.params)
    bad = sorted(RESERVED_PARAMS & params.keys())
    if bad:
        raise PermanentError(f"params {bad} cannot be set: mlift sends them itself",
                             provider=endpoint.name, model=endpoint.model)
    out: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if "temperature" not in params:
        out["temperature"] = request.temperature
    if "max_tokens" not in params and "max_completion_tokens" not in params:
        out["max_tokens"] = request.max_tokens
    schema = request.output_schema
    if schema is not None and sends_schema(request, enforce_schema):
        spec: dict[str, Any] = {"name": schema.name, "schema": schema.schema, "strict": True}
        if schema.description:
            spec["description"] = schema.description
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    out.update({k: v for k, v in params.items() if v is not None})
    return out


def parse(data: dict[str, Any], request: Request, endpoint: Endpoint, request_id: str | None,
          ratelimit: RateLimitInfo | None, local: LocalUsage, *,
          structured_sent: bool) -> Completion:
    """A 2xx Chat Completions body as a ``Completion`` (``MalformedResponse`` if it is not one)."""
    request_id = request_id or (data["id"] if isinstance(data.get("id"), str) else None)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        what = f"error in a 2xx body: {error}" if error else "no choices"
        raise malformed(endpoint, request_id, redact(what, endpoint))
    choice = choices[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if text is not None and not isinstance(text, str):
        raise malformed(endpoint, request_id, "choices[0].message.content is not text")
    reason = choice.get("finish_reason")
    refusal = message.get("refusal") if isinstance(message, dict) else None
    if text is None and isinstance(refusal, str) and refusal:
        # A structured-output refusal comes instead of content: keep the words,
        # so the caller's parse failure shows what the model said.
        text, reason = refusal, reason or "refusal"
    if message is None or (text is None and reason is None):
        raise malformed(endpoint, request_id, "choices[0] has no message content")
    text = text or ""
    model = data.get("model")
    return Completion(
        text=text,
        finish_reason=_FINISH.get(reason, "other") if isinstance(reason, str) else "other",
        usage=usage(data.get("usage")) or local.count(request, text),
        model=model if isinstance(model, str) and model else endpoint.model,
        request_id=request_id, ratelimit=ratelimit, structured=structured_sent)


def usage(raw: object) -> Usage | None:
    """``usage`` with the prompt-cache share (None when the server sent none).

    ``prompt_tokens`` counts every input token; ``prompt_tokens_details.
    cached_tokens`` of them were read from OpenAI's automatic prompt cache.
    """
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(prompt, completion,
                 cached_input_tokens=min(cached, prompt) if isinstance(cached, int) else 0)
