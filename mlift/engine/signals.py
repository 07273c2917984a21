"""What a server said about its limits, in one shape for the limiter.

Sources, as the providers document them:

* OpenAI-style headers ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
  (resets as Go durations, ``"6m0s"``, ``"20ms"``);
* Anthropic's ``anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-
  {limit,remaining,reset}`` (resets as RFC 3339 times; token ``remaining``
  rounded to the nearest thousand; ``tokens-*`` is "the most restrictive token
  limit in effect", so it names no family and is only used once it can be
  matched to one);
* ``retry-after`` / ``retry-after-ms``;
* 429 bodies: OpenAI's "Rate limit reached for M … on tokens per min (TPM):
  Limit 150000, Used 149700, Requested 320" (what the server charged this very
  request, in its own count) and "Request too large …"; Anthropic's "… would
  exceed the rate limit for your organization … of 50,000 input tokens per
  minute".

Successful answers reach the engine as the provider's ``RateLimitInfo``
(requests, a token limit, and Anthropic's input and output families); errors
carry their rate-limit headers and message, which are parsed here in full.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlift.errors import ProviderError
from mlift.providers.headers import parse_duration, parse_retry_after, parse_timestamp_delay
from mlift.types import RateLimitInfo

REQUESTS, TOKENS, INPUT, OUTPUT = "requests", "tokens", "input_tokens", "output_tokens"
DIMENSIONS = (REQUESTS, TOKENS, INPUT, OUTPUT)

_UNITS = {"requests": REQUESTS, "tokens": TOKENS, "input tokens": INPUT,
          "output tokens": OUTPUT}
_OPENAI_BODY = re.compile(
    r"on (?P<unit>requests|tokens|input tokens|output tokens) per min(?:ute)?\b[^:]*:\s*"
    r"Limit (?P<limit>\d+)(?:, Used (?P<used>\d+))?, Requested (?P<requested>\d+)", re.I)
_ANTHROPIC_BODY = re.compile(
    r"of (?P<limit>\d[\d,]*) (?P<unit>requests|tokens|input tokens|output tokens) per minute",
    re.I)
_TOO_LARGE = re.compile(r"request too large|must be reduced in order to run", re.I)
_ANTHROPIC_FAMILIES = {REQUESTS: "requests", INPUT: "input-tokens", OUTPUT: "output-tokens"}


@dataclass(frozen=True, slots=True)
class Quota:
    """One server limit as reported: per minute, left now, seconds until full again."""

    limit: float | None = None
    remaining: float | None = None
    reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class ServerReport:
    """Everything one answer (or refusal) said about the server's limits."""

    quotas: dict[str, Quota] = field(default_factory=dict)
    unnamed_tokens: Quota | None = None  # Anthropic's tokens-*: a token limit, family unknown
    retry_after_s: float | None = None
    refused_by: str | None = None        # the limit a 429 names
    body_limit: float | None = None      # "Limit L" / "of 50,000 … per minute"
    requested: float | None = None       # "Requested R": the server's charge for this request
    too_large: bool = False              # no wait will ever let this request through

    @property
    def empty(self) -> bool:
        return not self.quotas and self.unnamed_tokens is None


def _quota(limit: float | None, remaining: float | None, reset: float | None) -> Quota | None:
    if limit is None and remaining is None:
        return None
    return Quota(limit, remaining, reset)


def from_info(info: RateLimitInfo | None, *, anthropic: bool) -> ServerReport:
    """A successful answer's report (the provider parsed the headers into ``info``)."""
    if info is None:
        return ServerReport()
    families = {
        REQUESTS: _quota(info.limit_requests, info.remaining_requests, info.reset_requests_s),
        TOKENS: _quota(info.limit_tokens, info.remaining_tokens, info.reset_tokens_s),
        INPUT: _quota(info.limit_input_tokens, info.remaining_input_tokens,
                      info.reset_input_tokens_s),
        OUTPUT: _quota(info.limit_output_tokens, info.remaining_output_tokens,
                       info.reset_output_tokens_s),
    }
    # Anthropic's tokens-* is its most restrictive token limit: it names no family.
    unnamed = families.pop(TOKENS) if anthropic else None
    quotas = {name: quota for name, quota in families.items() if quota is not None}
    return ServerReport(quotas, unnamed, info.retry_after_s)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def from_headers(headers: Mapping[str, str], *, anthropic: bool,
                 now: float | None = None) -> ServerReport:
    """Every limit the (lower-cased) headers of a response describe."""
    current = time.time() if now is None else now
    quotas: dict[str, Quota] = {}
    unnamed = None
    if anthropic:
        def family(name: str) -> Quota | None:
            prefix = f"anthropic-ratelimit-{name}-"
            return _quota(_number(headers.get(prefix + "limit")),
                          _number(headers.get(prefix + "remaining")),
                          parse_timestamp_delay(headers.get(prefix + "reset"), current))

        for dim, name in _ANTHROPIC_FAMILIES.items():
            quota = family(name)
            if quota is not None:
                quotas[dim] = quota
        unnamed = family("tokens")
    else:
        for dim in (REQUESTS, TOKENS):
            quota = _quota(_number(headers.get(f"x-ratelimit-limit-{dim}")),
                           _number(headers.get(f"x-ratelimit-remaining-{dim}")),
                           parse_duration(headers.get(f"x-ratelimit-reset-{dim}")))
            if quota is not None:
                quotas[dim] = quota
    return ServerReport(quotas, unnamed, parse_retry_after(headers, current))


def from_error(exc: ProviderError, *, anthropic: bool) -> ServerReport:
    """A failed answer's report: its headers plus what a 429 body says."""
    base = from_headers(exc.headers, anthropic=anthropic)
    message = str(exc.args[0]) if exc.args else ""
    retry_after = exc.retry_after if exc.retry_after is not None else base.retry_after_s
    refused_by = body_limit = requested = None
    match = _OPENAI_BODY.search(message)
    if match:
        refused_by = _UNITS[match["unit"].lower()]
        body_limit, requested = float(match["limit"]), float(match["requested"])
    else:
        match = _ANTHROPIC_BODY.search(message)
        if match:
            refused_by = _UNITS[match["unit"].lower()]
            body_limit = float(match["limit"].replace(",", ""))
    return ServerReport(base.quotas, base.unnamed_tokens, retry_after, refused_by, body_limit,
                        requested, bool(_TOO_LARGE.search(message)))
