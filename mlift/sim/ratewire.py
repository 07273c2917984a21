"""How the simulator tells its limits, in each dialect: 429 messages and rate-limit headers.

OpenAI-style ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with Go
durations and its "Rate limit reached … Limit L, Used U, Requested R"
message; Anthropic's ``anthropic-ratelimit-*`` families with RFC 3339 resets
and token ``remaining`` rounded to the thousand; ``retry-after`` and
``retry-after-ms``. Pure, like :mod:`mlift.sim.wire`: the server decides.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from mlift.sim.limiter import Decision, LimitState

# ---- 429 messages --------------------------------------------------------------------------

_OPENAI_UNITS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)",
                 "input_tokens": "input tokens per min (ITPM)",
                 "output_tokens": "output tokens per min (OTPM)"}
_ANTHROPIC_UNITS = {"requests": "requests", "tokens": "tokens",
                    "input_tokens": "input tokens", "output_tokens": "output tokens"}


def openai_rate_message(model: str, by: str, limit: int, used: int, requested: int,
                        wait_s: float) -> str:
    """OpenAI's 429 message: which limit, ``Limit L, Used U, Requested R``, when to retry."""
    unit = _OPENAI_UNITS[by]
    if math.isinf(wait_s):
        return (f"Request too large for {model} in organization org-mlift-sim on {unit}: "
                f"Limit {limit}, Requested {requested}. The input or output tokens must be "
                "reduced in order to run successfully.")
    return (f"Rate limit reached for {model} in organization org-mlift-sim on {unit}: "
            f"Limit {limit}, Used {used}, Requested {requested}. Please try again in "
            f"{go_duration(wait_s)}. (mlift simulator)")


def anthropic_rate_message(by: str, limit: int) -> str:
    """Anthropic's 429 message names the limit and its size, not the usage (see the headers)."""
    return (f"This request would exceed the rate limit for your organization (org-mlift-sim) "
            f"of {limit:,} {_ANTHROPIC_UNITS[by]} per minute. The response headers show the "
            "current usage; lower the prompt length or max_tokens, or retry later. "
            "(mlift simulator)")


# ---- rate-limit headers -------------------------------------------------------------------

def go_duration(seconds: float) -> str:
    """OpenAI's reset format: ``120ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    total = math.ceil(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s"


def rfc3339(seconds_from_now: float) -> str:
    at = datetime.fromtimestamp(time.time() + seconds_from_now, tz=UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def openai_limit_headers(decision: Decision) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; resets as Go durations."""
    headers: dict[str, str] = {}
    for name in ("requests", "tokens"):
        state = decision.states.get(name)
        if state is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(state.reset_s)
    return headers


def _nearest_thousand(value: int) -> int:
    return math.floor(value / 1000 + 0.5) * 1000


def anthropic_limit_headers(decision: Decision) -> dict[str, str]:
    """``anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,remaining,reset}``.

    As Anthropic documents them: resets are RFC 3339 times at which the bucket
    is full again; token ``remaining`` values are rounded to the nearest
    thousand; ``tokens-*`` shows the most restrictive token limit in effect
    (here: whichever token limit has the smallest share left).
    """
    headers: dict[str, str] = {}
    families = {"requests": "requests", "input_tokens": "input-tokens",
                "output_tokens": "output-tokens"}
    for name, family in families.items():
        state = decision.states.get(name)
        if state is not None:
            headers.update(_anthropic_family(family, state, exact=name == "requests"))
    token_states = [decision.states[n] for n in ("tokens", "input_tokens", "output_tokens")
                    if n in decision.states]
    if token_states:
        tightest = min(token_states, key=lambda st: st.remaining / max(1, st.limit))
        headers.update(_anthropic_family("tokens", tightest, exact=False))
    return headers


def _anthropic_family(family: str, state: LimitState, *, exact: bool) -> dict[str, str]:
    remaining = state.remaining if exact else _nearest_thousand(state.remaining)
    return {f"anthropic-ratelimit-{family}-limit": str(state.limit),
            f"anthropic-ratelimit-{family}-remaining": str(remaining),
            f"anthropic-ratelimit-{family}-reset": rfc3339(state.reset_s)}


def retry_headers(wait_s: float) -> dict[str, str]:
    """``retry-after`` (whole seconds, rounded up) and ``retry-after-ms`` (rounded up + 1 ms).

    Both round up, so a client that waits either one and retries finds room.
    """
    ms = math.ceil(wait_s * 1000) + 1
    return {"retry-after": str(math.ceil(ms / 1000)), "retry-after-ms": str(ms)}
