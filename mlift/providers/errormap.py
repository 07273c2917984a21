"""What every provider's error seam shares: classification, body checks, redaction.

The SDK transports map their exceptions in ``mlift.providers.sdkerrors`` (one
table per SDK) and the lean aiohttp transports map HTTP answers and
transport failures in ``mlift.providers.http``; both use the pieces here, so
every transport classifies identically: by HTTP status, never by SDK class;
transport and JSON failures the SDKs wrap or leak by what they really were;
and never with an API key in a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from mlift.errors import (
    AuthError,
    MalformedResponse,
    PermanentError,
    ProviderError,
    status_error,
)
from mlift.providers.base import Endpoint
from mlift.providers.headers import kept_headers, parse_retry_after

# Things that look like API keys, in case a server echoes one back
# (OpenAI's 401 body quotes a masked key; a proxy may quote it whole).
_KEYLIKE = re.compile(r"\b(sk|sk-ant|sk-proj|key)-[A-Za-z0-9_\-*.]{6,}")
_MAX_MESSAGE = 500
# 429 error codes that waiting cannot cure: an exhausted quota or spend limit.
_NOT_RATE_LIMITS = ("spend_limit", "insufficient_quota")


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


def body_error_code(body: object) -> str | None:
    """The machine-readable code of an error body.

    OpenAI puts it at ``error.code``; Anthropic at ``error.details.error_code``.
    """
    inner = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(inner, Mapping):
        return None
    code = inner.get("code")
    if isinstance(code, str):
        return code
    details = inner.get("details")
    code = details.get("error_code") if isinstance(details, Mapping) else None
    return code if isinstance(code, str) else None


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

    ``error_code`` singles out a 429 that waiting cannot cure (a spend limit
    reached, a quota used up): it becomes a ``PermanentError``. When not
    given, it is read from the body.
    """
    error_code = error_code or body_error_code(body)
    message = redact(body_message(body), endpoint)
    if status in (401, 403):
        message = f"{message}. To fix: {auth_hint(endpoint)}"
    retry_after, kept = parse_retry_after(headers), kept_headers(headers)
    if status == 429 and error_code and any(c in error_code for c in _NOT_RATE_LIMITS):
        return PermanentError(f"{message} (a spend limit or quota: waiting will not help)",
                              provider=endpoint.name, model=endpoint.model, status=status,
                              request_id=request_id, retry_after=retry_after, headers=kept)
    return status_error(status, message, provider=endpoint.name, model=endpoint.model,
                        request_id=request_id, retry_after=retry_after, headers=kept)


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
