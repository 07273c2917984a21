"""Read rate-limit and retry hints out of HTTP response headers.

OpenAI-style servers send ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
with resets as Go-style durations (``"6m0s"``, ``"20ms"``); Anthropic sends
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` with resets as
RFC 3339 timestamps. Both may send ``retry-after`` (seconds or an HTTP date)
and ``retry-after-ms``. Everything here is pure: the current time is passed
in, so tests need no clock.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from datetime import datetime

from mlift.types import RateLimitInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# Headers worth keeping on an error: the engine's limiter and a human reading
# the failure both need them; nothing else from a response is carried along.
_KEPT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_KEPT_NAMES = ("retry-after", "retry-after-ms", "x-request-id", "request-id")


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


def parse_duration(value: str | None) -> float | None:
    """Seconds in a duration like ``"1m30.5s"``, ``"20ms"`` or a bare ``"2.5"``."""
    if value is None:
        return None
    text = value.strip().lower()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_timestamp_delay(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` (epoch) until an RFC 3339 timestamp; never negative."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a reset without a zone cannot be placed in time
    return max(0.0, moment.timestamp() - now)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait before retrying, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after-ms`` is preferred because it is finer. ``retry-after`` may be
    a number of seconds or an HTTP date.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def openai_ratelimit(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo | None:
    """The ``x-ratelimit-*`` headers of an OpenAI-style response (None if none were sent)."""
    info = RateLimitInfo(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        limit_tokens=_int(headers.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_s=parse_retry_after(headers, now),
    )
    return None if info == RateLimitInfo() else info


def anthropic_ratelimit(headers: Mapping[str, str],
                        now: float | None = None) -> RateLimitInfo | None:
    """The ``anthropic-ratelimit-*`` headers (None if none were sent).

    Each family (requests, tokens, input-tokens, output-tokens) goes to its
    own fields, so the limiter can pace input and output on their own limits.
    """
    current = time.time() if now is None else now

    def get(bucket: str, field: str) -> str | None:
        return headers.get(f"anthropic-ratelimit-{bucket}-{field}")

    def family(bucket: str) -> tuple[int | None, int | None, float | None]:
        return (_int(get(bucket, "limit")), _int(get(bucket, "remaining")),
                parse_timestamp_delay(get(bucket, "reset"), current))

    requests, tokens = family("requests"), family("tokens")
    inputs, outputs = family("input-tokens"), family("output-tokens")
    info = RateLimitInfo(*requests, *tokens, parse_retry_after(headers, current),
                         *inputs, *outputs)
    return None if info == RateLimitInfo() else info


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit, retry and request-id headers of a response, lower-cased."""
    return {k.lower(): v for k, v in headers.items()
            if k.lower().startswith(_KEPT_PREFIXES) or k.lower() in _KEPT_NAMES}
