"""What every provider's error seam shares: classification, body checks, redaction.

Each provider module keeps its own ``map_error`` (the one seam where its SDK's
exceptions become ``mlift.errors``); the pieces that do not depend on the SDK
live here so the two seams classify identically: by HTTP status, never by
SDK class; transport and JSON failures the SDKs wrap or leak by what they
really were; and never with an API key in a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpx2

from mlift.errors import (
    AuthError,
    ConnectionFailed,
    MalformedResponse,
    PermanentError,
    ProviderError,
    ProviderTimeout,
    status_error,
)
from mlift.providers.base import Endpoint
from mlift.providers.headers import kept_headers, parse_retry_after

# Things that look like API keys, in case a server echoes one back
# (OpenAI's 401 body quotes a masked key; a proxy may quote it whole).
_KEYLIKE = re.compile(r"\b(sk|sk-ant|sk-proj|key)-[A-Za-z0-9_\-*.]{6,}")
_MAX_MESSAGE = 500


def redact(text: str, endpoint: Endpoint) -> str:
    """``text`` with the endpoint's key and anything key-shaped replaced by ``***``."""
    if endpoint.api_key and len(endpoint.api_key) >= 4:
        text = text.replace(endpoint.api_key, "***")
    return _KEYLIKE.sub(r"\1-***", text)


def body_message(body: object) -> str:
    """The human-readable part of an error body (OpenAI, Anthropic or plain text)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(inner, str) and inner:
            return inner
        return json.dumps(body, ensure_ascii=False, default=str)[:_MAX_MESSAGE]
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    return text[:_MAX_MESSAGE] if text else "(empty body)"


def auth_hint(endpoint: Endpoint) -> str:
    """How to fix a rejected or missing key, naming the variable to set."""
    if endpoint.api_key_env:
        return (f"set {endpoint.api_key_env} to a valid key for {endpoint.kind} "
                f"(profile {endpoint.name!r} reads its key from that variable)")
    return (f"profile {endpoint.name!r} sends no key; set api_key_env in its "
            f"[providers.{endpoint.name}] config section to the variable holding one")


def from_status(endpoint: Endpoint, status: int, body: object, headers: Mapping[str, str],
                request_id: str | None, *, error_code: str | None = None) -> ProviderError:
    """Classify an HTTP error answer by its status (see ``mlift.errors.status_error``).

    ``error_code`` lets a provider single out a 429 that waiting cannot cure
    (a spend limit reached): it becomes a ``PermanentError``.
    """
    message = redact(body_message(body), endpoint)
    if status in (401, 403):
        message = f"{message}. To fix: {auth_hint(endpoint)}"
    retry_after, kept = parse_retry_after(headers), kept_headers(headers)
    if status == 429 and error_code and "spend_limit" in error_code:
        return PermanentError(f"{message} (a spend limit: waiting will not help)",
                              provider=endpoint.name, model=endpoint.model, status=status,
                              request_id=request_id, retry_after=retry_after, headers=kept)
    return status_error(status, message, provider=endpoint.name, model=endpoint.model,
                        request_id=request_id, retry_after=retry_after, headers=kept)


def from_transport(endpoint: Endpoint, exc: BaseException) -> ProviderError | None:
    """Map an httpx2, JSON or validation error the SDK let through (None: not one of those)."""
    cls: type[ProviderError]
    if isinstance(exc, httpx2.TimeoutException):
        cls, what = ProviderTimeout, "request timed out"
    elif isinstance(exc, httpx2.DecodingError):
        cls, what = MalformedResponse, "undecodable response body"
    elif isinstance(exc, httpx2.UnsupportedProtocol | httpx2.InvalidURL):
        cls, what = PermanentError, f"bad base_url {endpoint.base_url!r}"
    elif isinstance(exc, httpx2.HTTPError):
        cls, what = ConnectionFailed, "connection failed"
    elif isinstance(exc, ValueError):  # json.JSONDecodeError, pydantic.ValidationError
        cls, what = MalformedResponse, "unparseable response body"
    else:
        return None
    detail = redact(f"{type(exc).__name__}: {exc}", endpoint)
    return cls(f"{what} ({detail})", provider=endpoint.name, model=endpoint.model)


def connection_error(endpoint: Endpoint, cause: BaseException | None,
                     default_url: str) -> ProviderError:
    """What an SDK's connection error really was, judged by the exception it wraps.

    The SDKs wrap every transport failure in one class; the cause tells a
    dropped connection (retry) from an undecodable body (malformed) or a base
    URL without a scheme (retrying cannot help).
    """
    mapped = from_transport(endpoint, cause) if cause is not None else None
    if mapped is not None and not isinstance(mapped, ConnectionFailed):
        return mapped
    detail = f" ({type(cause).__name__}: {redact(str(cause), endpoint)})" if cause else ""
    return ConnectionFailed(f"connection to {endpoint.base_url or default_url} failed{detail}",
                            provider=endpoint.name, model=endpoint.model)


def missing_key(endpoint: Endpoint) -> AuthError:
    """The error for an endpoint that reached a provider without a key."""
    return AuthError(f"no API key: {auth_hint(endpoint)}",
                     provider=endpoint.name, model=endpoint.model)


def json_object(content: bytes, endpoint: Endpoint, request_id: str | None) -> dict[str, object]:
    """A 2xx body decoded as a JSON object, or ``MalformedResponse`` saying what it was."""
    try:
        data = json.loads(content)
    except ValueError as exc:  # also UnicodeDecodeError
        snippet = redact(content[:120].decode("utf-8", "replace"), endpoint)
        raise MalformedResponse(f"response body is not JSON ({exc}): {snippet!r}",
                                provider=endpoint.name, model=endpoint.model,
                                request_id=request_id) from exc
    if not isinstance(data, dict):
        raise malformed(endpoint, request_id, f"expected a JSON object, got {type(data).__name__}")
    return data


def malformed(endpoint: Endpoint, request_id: str | None, what: str) -> MalformedResponse:
    """A ``MalformedResponse`` for a JSON body of the wrong shape."""
    return MalformedResponse(f"unexpected response shape: {what}", provider=endpoint.name,
                             model=endpoint.model, request_id=request_id)
