"""Rate-limit and retry hints read from response headers (pure functions, fixed time)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlift.providers.headers import (
    anthropic_ratelimit,
    kept_headers,
    openai_ratelimit,
    parse_duration,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("20ms", 0.02), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("2.5", 2.5),
    ("0s", 0.0),
])
def test_go_style_durations_are_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1x", None])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert parse_duration(text) is None


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(h: int, m: int, s: int, ms: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s{ms}ms") == pytest.approx(h * 3600 + m * 60 + s
                                                                  + ms / 1000)


def test_retry_after_ms_is_preferred_to_retry_after() -> None:
    assert parse_retry_after({"retry-after": "20", "retry-after-ms": "1500"}) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    date = "Tue, 14 Nov 2023 22:13:50 GMT"  # NOW + 30 s
    assert parse_retry_after({"retry-after": date}, now=NOW) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": "Mon, 01 Jan 2001 00:00:00 GMT"}, now=NOW) == 0.0


def test_missing_or_garbage_retry_after_is_none() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "later please"}) is None


def test_openai_headers_without_rate_limits_give_none() -> None:
    assert openai_ratelimit({"content-type": "application/json"}) is None


def test_anthropic_resets_are_seconds_from_now() -> None:
    info = anthropic_ratelimit({
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:32Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "100",
        "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21.500000+00:00",
        "retry-after": "12",
    }, now=NOW)
    assert info is not None
    assert (info.limit_requests, info.remaining_requests) == (50, 0)
    assert info.reset_requests_s == pytest.approx(12.0)
    assert info.reset_tokens_s == pytest.approx(1.5)
    assert info.retry_after_s == 12.0


def test_anthropic_input_and_output_token_families_are_kept_apart() -> None:
    info = anthropic_ratelimit({"anthropic-ratelimit-input-tokens-limit": "8000",
                                "anthropic-ratelimit-input-tokens-remaining": "7000",
                                "anthropic-ratelimit-output-tokens-limit": "2000",
                                "anthropic-ratelimit-output-tokens-remaining": "1000",
                                "anthropic-ratelimit-output-tokens-reset":
                                    "2023-11-14T22:13:22Z"}, now=NOW)
    assert info is not None
    assert (info.limit_input_tokens, info.remaining_input_tokens) == (8000, 7000)
    assert (info.limit_output_tokens, info.remaining_output_tokens) == (2000, 1000)
    assert info.reset_output_tokens_s == pytest.approx(2.0)
    assert (info.limit_tokens, info.remaining_tokens) == (None, None)  # no tokens-* was sent


def test_kept_headers_are_only_limits_retry_and_ids() -> None:
    kept = kept_headers({"X-RateLimit-Remaining-Tokens": "5", "Retry-After": "1",
                         "request-id": "r", "Set-Cookie": "secret", "Authorization": "Bearer x"})
    assert kept == {"x-ratelimit-remaining-tokens": "5", "retry-after": "1", "request-id": "r"}
