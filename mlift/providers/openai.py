"""OpenAI chat completions, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp).

The official ``AsyncOpenAI`` client is built with ``max_retries=0`` (the engine
owns retries) and a generous timeout (the engine abandons hung requests by
cancelling them sooner). The answer is read through ``with_raw_response`` so
the rate-limit headers reach the engine, and the body is checked field by
field: compatible servers vary, and a missing field must be a clear
``MalformedResponse``, not an ``AttributeError`` deep in a stage.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import httpx2
import openai

from mlift.errors import (
    AuthError,
    ConnectionFailed,
    MalformedResponse,
    PermanentError,
    ProviderError,
    ProviderTimeout,
    ServerError,
    TransientError,
)
from mlift.providers.base import Endpoint
from mlift.providers.errormap import (
    connection_error,
    from_status,
    from_transport,
    json_object,
    malformed,
    missing_key,
    redact,
)
from mlift.providers.headers import openai_ratelimit
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import Completion, FinishReason, RateLimitInfo, Request, Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 600.0
# Parameters mlift sets itself or that would change the answer's wire shape.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
log = logging.getLogger(__name__)

# SDK exceptions that carry no HTTP status, by class name (looked up with
# getattr so an SDK version without one of them still imports this module).
_NON_HTTP: dict[str, type[ProviderError]] = {
    "LengthFinishReasonError": PermanentError,         # only from .parse(): cut at max_tokens
    "ContentFilterFinishReasonError": PermanentError,  # refused by the content filter
    "SubjectTokenProviderError": AuthError,            # workload identity token unavailable
    "WebSocketConnectionClosedError": ConnectionFailed,
    "WebSocketQueueFullError": TransientError,
    "InvalidWebhookSignatureError": PermanentError,
    "_AmbiguousModuleClientUsageError": PermanentError,
}


def map_error(exc: BaseException, endpoint: Endpoint) -> ProviderError:
    """The one seam where OpenAI SDK (and leaked httpx2/JSON) errors become mlift errors."""
    if isinstance(exc, ProviderError):
        return exc
    context: dict[str, Any] = {"provider": endpoint.name, "model": endpoint.model}
    if isinstance(exc, openai.APIStatusError):
        return from_status(endpoint, exc.status_code, exc.body, exc.response.headers,
                           exc.request_id or exc.response.headers.get("x-request-id"))
    if isinstance(exc, openai.APIResponseValidationError):
        return MalformedResponse(redact(exc.message, endpoint), status=exc.status_code,
                                 **context)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"no answer within the client timeout ({endpoint.base_url})",
                               **context)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error(endpoint, exc.__cause__, DEFAULT_BASE_URL)
    if isinstance(exc, openai.APIError):  # an error the API reported without a status
        return ServerError(redact(exc.message, endpoint), **context)
    for name, cls in _NON_HTTP.items():
        sdk_cls = getattr(openai, name, None)
        if isinstance(sdk_cls, type) and isinstance(exc, sdk_cls):
            return cls(f"{name}: {redact(str(exc), endpoint)}", **context)
    mapped = from_transport(endpoint, exc)
    if mapped is not None:
        return mapped
    # An SDK error class this module does not know yet: fail the item, don't retry.
    return PermanentError(f"{type(exc).__name__}: {redact(str(exc), endpoint)}", **context)


class OpenAIProvider:
    """``complete()`` over ``POST {base_url}/chat/completions``."""

    # The lean aiohttp transport: same requests and checks, a fraction of the CPU.
    transports: ClassVar[dict[str, str]] = {
        "aiohttp": "mlift.providers.openai_http:OpenAIHTTPProvider"}
    # OpenAI charges prompt + max_tokens against the token limit on admission.
    refunds_unused_tokens = False

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint = endpoint
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
            max_retries=0, timeout=timeout)
        self._warned_usage = False

    async def complete(self, request: Request) -> Completion:
        kwargs = self._arguments(request)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
            content = raw.content  # the body; reading it may still fail mid-stream
        except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
            raise map_error(exc, self.endpoint) from exc
        headers = raw.headers
        request_id = headers.get("x-request-id")
        data = json_object(content, self.endpoint, request_id)
        return self._completion(data, request, request_id, openai_ratelimit(headers))

    def _arguments(self, request: Request) -> dict[str, Any]:
        params = dict(request.params)
        bad = sorted(RESERVED_PARAMS & params.keys())
        if bad:
            raise PermanentError(f"params {bad} cannot be set: mlift sends them itself",
                                 provider=self.endpoint.name, model=self.endpoint.model)
        kwargs: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        # Reasoning models take max_completion_tokens and reject max_tokens, and
        # some reject temperature: a param given in params replaces the default,
        # and a param set to None is not sent at all.
        defaults: dict[str, Any] = {"temperature": request.temperature,
                                    "max_tokens": request.max_tokens}
        if "max_completion_tokens" in params:
            del defaults["max_tokens"]
        kwargs.update({k: v for k, v in defaults.items() if k not in params})
        extra = {k: v for k, v in params.items() if v is not None}
        if extra:
            # extra_body sends them verbatim, including server-specific ones
            # (vLLM's top_k, repetition_penalty) the SDK's signature lacks.
            kwargs["extra_body"] = extra
        return kwargs

    def _completion(self, data: dict[str, Any], request: Request, request_id: str | None,
                    ratelimit: RateLimitInfo | None) -> Completion:
        request_id = request_id or (data["id"] if isinstance(data.get("id"), str) else None)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            error = data.get("error")
            what = f"error in a 2xx body: {error}" if error else "no choices"
            raise malformed(self.endpoint, request_id, redact(what, self.endpoint))
        choice = choices[0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if text is not None and not isinstance(text, str):
            raise malformed(self.endpoint, request_id, "choices[0].message.content is not text")
        reason = choice.get("finish_reason")
        if message is None or (text is None and reason is None):
            raise malformed(self.endpoint, request_id, "choices[0] has no message content")
        model = data.get("model")
        return Completion(
            text=text or "",
            finish_reason=_FINISH.get(reason, "other") if isinstance(reason, str) else "other",
            usage=self._usage(data.get("usage"), request, text or ""),
            model=model if isinstance(model, str) and model else self.endpoint.model,
            request_id=request_id, ratelimit=ratelimit)

    def _usage(self, usage: object, request: Request, text: str) -> Usage:
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                details = usage.get("prompt_tokens_details")
                cached = details.get("cached_tokens") if isinstance(details, dict) else None
                return Usage(prompt, completion,
                             cached_input_tokens=cached if isinstance(cached, int) else 0)
        # Some compatible servers omit usage; counting locally (mlift.tokens:
        # exact for OpenAI models, a script-aware approximation otherwise) keeps
        # cost and the limiter's token accounting honest where 0 would look free.
        if not self._warned_usage:
            log.warning("%s returned no usage; counting tokens locally (an estimate)",
                        self.endpoint.spec)
            self._warned_usage = True
        model = self.endpoint.model
        return Usage(count_chat_tokens(request.messages, model), count_tokens(text, model))

    async def aclose(self) -> None:
        await self._client.close()

