"""What the limiter reads out of answers and refusals, in each provider's documented format."""

from __future__ import annotations

from mlift.engine.signals import from_error, from_headers, from_info
from mlift.errors import RateLimited
from mlift.types import RateLimitInfo

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_openai_429_body_names_the_limit_the_usage_and_what_this_request_was_charged() -> None:
    exc = RateLimited(
        "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): "
        "Limit 150000, Used 149700, Requested 320. Please try again in 128ms.",
        status=429, retry_after=0.128,
        headers={"x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "0",
                 "x-ratelimit-reset-tokens": "128ms"})
    report = from_error(exc, anthropic=False)
    assert (report.refused_by, report.body_limit, report.requested) == ("tokens", 150000, 320)
    assert report.retry_after_s == 0.128 and not report.too_large
    assert report.quotas["tokens"].limit == 150000
    assert report.quotas["tokens"].reset_s == 0.128


def test_openai_request_too_large_is_marked_as_never_passing() -> None:
    exc = RateLimited("Request too large for gpt-4o in organization org-x on tokens per min "
                      "(TPM): Limit 30000, Requested 45000. The input or output tokens must be "
                      "reduced in order to run successfully.", status=429)
    report = from_error(exc, anthropic=False)
    assert report.too_large and report.requested == 45000


def test_anthropic_429_names_the_family_and_its_limit_and_headers_carry_every_family() -> None:
    exc = RateLimited(
        "This request would exceed the rate limit for your organization (org-x) of 8,000 "
        "output tokens per minute. For details, see the rate limits documentation.",
        status=429, retry_after=12.0,
        headers={"anthropic-ratelimit-input-tokens-limit": "40000",
                 "anthropic-ratelimit-input-tokens-remaining": "39000",
                 "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:20Z",
                 "anthropic-ratelimit-output-tokens-limit": "8000",
                 "anthropic-ratelimit-output-tokens-remaining": "0",
                 "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:32Z",
                 "anthropic-ratelimit-tokens-limit": "8000",
                 "anthropic-ratelimit-tokens-remaining": "0",
                 "anthropic-ratelimit-requests-limit": "50",
                 "anthropic-ratelimit-requests-remaining": "49"})
    report = from_error(exc, anthropic=True)
    assert (report.refused_by, report.body_limit) == ("output_tokens", 8000)
    assert report.quotas["input_tokens"].limit == 40000
    assert report.quotas["output_tokens"].remaining == 0
    assert report.quotas["requests"].remaining == 49
    assert report.unnamed_tokens is not None and report.unnamed_tokens.limit == 8000
    assert "tokens" not in report.quotas  # tokens-* names no family


def test_anthropic_resets_are_timestamps_turned_into_seconds_from_now() -> None:
    report = from_headers({"anthropic-ratelimit-output-tokens-limit": "8000",
                           "anthropic-ratelimit-output-tokens-remaining": "4000",
                           "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:32Z"},
                          anthropic=True, now=NOW)
    assert report.quotas["output_tokens"].reset_s == 12.0


def test_a_successful_anthropic_answer_gives_its_token_limit_without_a_family() -> None:
    info = RateLimitInfo(limit_requests=50, remaining_requests=49, limit_tokens=8000,
                         remaining_tokens=7000)
    anthropic = from_info(info, anthropic=True)
    assert set(anthropic.quotas) == {"requests"}
    assert anthropic.unnamed_tokens is not None and anthropic.unnamed_tokens.limit == 8000
    openai = from_info(info, anthropic=False)
    assert set(openai.quotas) == {"requests", "tokens"}


def test_a_refusal_that_says_nothing_yields_an_empty_report() -> None:
    report = from_error(RateLimited("Too many requests", status=429), anthropic=False)
    assert report.empty and report.refused_by is None and report.retry_after_s is None
