"""Anthropic's Messages API through the official ``AsyncAnthropic`` client.

Built with ``max_retries=0`` (the engine owns retries) and a generous timeout
(the engine cancels hung requests sooner). System text travels apart from the
messages, as the API wants; the answer is the concatenated text blocks.

``Request.temperature`` is not sent: the API version this SDK speaks
(``anthropic-version`` 2026-10-21) rejects every sampling parameter, even at
its default, and the SDK no longer offers them. Whoever targets a server that
still takes them can pass ``temperature`` in ``Request.params``, which are sent
verbatim. The
``anthropic-ratelimit-*`` headers (resets as RFC 3339 timestamps) are read
from the raw response for the engine's limiter.
"""

from __future__ import annotations

import logging
from typing import Any

import anthropic
import httpx2

from mlift.errors import (
    AuthError,
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
from mlift.providers.headers import anthropic_ratelimit
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import Completion, FinishReason, RateLimitInfo, Request, Usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT_S = 600.0
# Set by mlift from the Request (max_tokens is Request.max_tokens, required here).
RESERVED_PARAMS = frozenset({"model", "messages", "system", "stream", "max_tokens"})

log = logging.getLogger(__name__)
_STOP: dict[str, FinishReason] = {"end_turn": "stop", "stop_sequence": "stop",
                                  "max_tokens": "length"}

# SDK exceptions that carry no HTTP status, by class name (looked up with
# getattr so an SDK version without one of them still imports this module).
_NON_HTTP: dict[str, type[ProviderError]] = {
    "CredentialsError": AuthError,            # includes IdentityTokenFileError
    "WorkloadIdentityError": AuthError,
    "RetryableError": TransientError,         # raised by middleware to ask for a retry
    "APIWebhookValidationError": PermanentError,
}


def map_error(exc: BaseException, endpoint: Endpoint) -> ProviderError:
    """The one seam where Anthropic SDK (and leaked httpx2/JSON) errors become mlift errors."""
    if isinstance(exc, ProviderError):
        return exc
    context: dict[str, Any] = {"provider": endpoint.name, "model": endpoint.model}
    if isinstance(exc, anthropic.APIStatusError):
        headers = exc.response.headers
        request_id = exc.request_id or headers.get("x-request-id")
        return from_status(endpoint, exc.status_code, exc.body, headers, request_id,
                           error_code=getattr(exc, "error_code", None))
    if isinstance(exc, anthropic.APIResponseValidationError):
        return MalformedResponse(redact(exc.message, endpoint), status=exc.status_code,
                                 **context)
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeout(f"no answer within the client timeout ({endpoint.base_url})",
                               **context)
    if isinstance(exc, anthropic.APIConnectionError):
        return connection_error(endpoint, exc.__cause__, DEFAULT_BASE_URL)
    for name, cls in _NON_HTTP.items():
        sdk_cls = getattr(anthropic, name, None)
        if isinstance(sdk_cls, type) and isinstance(exc, sdk_cls):
            status = getattr(exc, "status_code", None)  # a failed token exchange has one
            if isinstance(status, int) and (status >= 500 or status in (408, 429)):
                return from_status(endpoint, status, getattr(exc, "body", None), {},
                                   getattr(exc, "request_id", None))
            return cls(f"{name}: {redact(str(exc), endpoint)}", **context)
    if isinstance(exc, anthropic.APIError):  # an error the API reported without a status
        return ServerError(redact(exc.message, endpoint), **context)
    mapped = from_transport(endpoint, exc)
    if mapped is not None:
        return mapped
    # An SDK error class this module does not know yet: fail the item, don't retry.
    return PermanentError(f"{type(exc).__name__}: {redact(str(exc), endpoint)}", **context)


class AnthropicProvider:
    """``complete()`` over ``POST {base_url}/v1/messages``."""

    # Anthropic adjusts output-token rate-limit charges to what was used.
    refunds_unused_tokens = True

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint = endpoint
        self._client = anthropic.AsyncAnthropic(
            api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
            max_retries=0, timeout=timeout)
        self._warned_usage = False

    async def complete(self, request: Request) -> Completion:
        kwargs = self._arguments(request)
        try:
            raw = await self._client.messages.with_raw_response.create(**kwargs)
            content = await raw.read()  # the body; reading it may still fail mid-stream
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError) as exc:
            raise map_error(exc, self.endpoint) from exc
        headers = raw.headers
        request_id = headers.get("request-id") or headers.get("x-request-id")
        data = json_object(content, self.endpoint, request_id)
        return self._completion(data, request, request_id, anthropic_ratelimit(headers))

    def _arguments(self, request: Request) -> dict[str, Any]:
        params = dict(request.params)
        bad = sorted(RESERVED_PARAMS & params.keys())
        if bad:
            raise PermanentError(f"params {bad} cannot be set: mlift sends them itself",
                                 provider=self.endpoint.name, model=self.endpoint.model)
        kwargs: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.chat],
            "max_tokens": request.max_tokens,
        }
        if request.system is not None:
            kwargs["system"] = request.system
        extra = {k: v for k, v in params.items() if v is not None}  # None: don't send
        if extra:
            kwargs["extra_body"] = extra  # sent verbatim (stop_sequences, metadata, …)
        return kwargs

    def _completion(self, data: dict[str, Any], request: Request, request_id: str | None,
                    ratelimit: RateLimitInfo | None) -> Completion:
        request_id = request_id or (data["id"] if isinstance(data.get("id"), str) else None)
        blocks = data.get("content")
        if not isinstance(blocks, list):
            error = data.get("error")
            what = f"error in a 2xx body: {error}" if error else "no content blocks"
            raise malformed(self.endpoint, request_id, redact(what, self.endpoint))
        texts: list[str] = []
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise malformed(self.endpoint, request_id, "a text block without text")
                texts.append(text)
        text = "".join(texts)
        reason = data.get("stop_reason")
        model = data.get("model")
        return Completion(
            text=text,
            finish_reason=_STOP.get(reason, "other") if isinstance(reason, str) else "other",
            usage=self._usage(data.get("usage"), request, text),
            model=model if isinstance(model, str) and model else self.endpoint.model,
            request_id=request_id, ratelimit=ratelimit)

    def _usage(self, usage: object, request: Request, text: str) -> Usage:
        if isinstance(usage, dict):
            given, output = usage.get("input_tokens"), usage.get("output_tokens")
            if isinstance(given, int) and isinstance(output, int):
                # Cache writes and reads are input the model processed; counting
                # them keeps the token limiter honest (their prices differ).
                read, write = (v if isinstance(v := usage.get(k), int) else 0
                               for k in ("cache_read_input_tokens",
                                         "cache_creation_input_tokens"))
                return Usage(given + read + write, output, cached_input_tokens=read,
                             cache_write_tokens=write)
        # A compatible proxy may omit usage: count locally (mlift.tokens'
        # approximation for Claude) rather than book the call as free.
        if not self._warned_usage:
            log.warning("%s returned no usage; counting tokens locally (an estimate)",
                        self.endpoint.spec)
            self._warned_usage = True
        model = self.endpoint.model
        return Usage(count_chat_tokens(request.messages, model), count_tokens(text, model))

    async def aclose(self) -> None:
        await self._client.close()
