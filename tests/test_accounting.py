"""Accounting counters, latency quantiles, the budget guard and the progress line."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlift.engine.accounting import Accounting, Budget, LatencyHistogram, format_progress
from mlift.errors import AuthError, RateLimited, ServerError
from mlift.prices import PriceTable
from mlift.types import Completion, Usage


def done(inp: int = 100, out: int = 20, cost: float = 0.001, finish: str = "stop",
         cached: bool = False) -> Completion:
    return Completion("x", finish, Usage(inp, out), "m",  # type: ignore[arg-type]
                      cached=cached, cost_usd=0.0 if cached else cost)


def test_successes_add_tokens_dollars_and_attempts_per_stage_and_provider() -> None:
    acc = Accounting()
    acc.record_success("translate", "openai:gpt-4o-mini", done(100, 20, 0.001),
                       cached=False, latency_s=0.5, attempts=1)
    acc.record_success("translate", "openai:gpt-4o-mini", done(50, 10, 0.0005),
                       cached=False, latency_s=1.5, attempts=3)
    acc.record_success("judge", "anthropic:claude-3-5-haiku", done(200, 5, 0.002),
                       cached=False, latency_s=0.7, attempts=1)
    snap = acc.snapshot()
    translate = snap["stages"]["translate"]
    assert (translate["requests"], translate["successes"], translate["attempts"]) == (2, 2, 4)
    assert (translate["input_tokens"], translate["output_tokens"]) == (150, 30)
    assert translate["cost_usd"] == pytest.approx(0.0015)
    assert snap["providers"]["anthropic:claude-3-5-haiku"]["input_tokens"] == 200
    assert snap["totals"]["requests"] == 3
    assert acc.total_cost() == pytest.approx(0.0035) == snap["totals"]["cost_usd"]
    assert [(c["stage"], c["provider"]) for c in snap["cells"]] == [
        ("judge", "anthropic:claude-3-5-haiku"), ("translate", "openai:gpt-4o-mini")]


def test_tokens_are_counted_by_kind_and_batch_calls_at_batch_prices() -> None:
    # claude-3-5-haiku: $0.80 fresh, $0.08 cache read, $1.00 cache write, $4.00 output per 1M
    # online; batch halves each. One online and one batch call with the same usage
    # (2,000 fresh + 6,000 read + 2,000 written, 1,000 out):
    #   online 2,000 x 0.80 + 6,000 x 0.08 + 2,000 x 1.00 + 1,000 x 4.00 = 8,080 -> $0.00808
    #   batch  half of that                                              -> $0.00404
    price = PriceTable.load().lookup("anthropic", "claude-3-5-haiku")
    usage = Usage(10_000, 1_000, cached_input_tokens=6_000, cache_write_tokens=2_000)
    acc = Accounting()
    for batch in (False, True):
        completion = Completion("x", "stop", usage, "claude-3-5-haiku",
                                cost_usd=price.cost(usage, batch=batch))
        acc.record_success("judge", "anthropic:claude-3-5-haiku", completion, cached=False,
                           latency_s=1.0, attempts=1, batch=batch)
    totals = acc.snapshot()["totals"]
    assert (totals["input_tokens"], totals["cached_input_tokens"],
            totals["cache_write_tokens"], totals["output_tokens"]) == (20_000, 12_000,
                                                                        4_000, 2_000)
    assert (totals["requests"], totals["batch_requests"]) == (2, 1)
    assert totals["cost_usd"] == pytest.approx(0.00808 + 0.00404, abs=1e-12)


def test_cache_hits_count_as_successes_but_add_no_tokens_dollars_or_latency() -> None:
    acc = Accounting()
    acc.record_success("judge", "sim:default", done(cached=True), cached=True,
                       latency_s=0.0001, attempts=0)
    totals = acc.snapshot()["totals"]
    assert (totals["successes"], totals["cache_hits"]) == (1, 1)
    assert (totals["input_tokens"], totals["cost_usd"], totals["attempts"]) == (0, 0.0, 0)
    assert totals["latency_s"]["count"] == 0


def test_answers_cut_at_max_tokens_are_counted_as_truncated() -> None:
    acc = Accounting()
    acc.record_success("instruct", "sim:default", done(finish="length"), cached=False,
                       latency_s=0.1, attempts=1)
    assert acc.snapshot()["totals"]["truncated"] == 1


def test_each_429_is_counted_once_whether_retried_or_final() -> None:
    acc = Accounting()
    acc.record_retry("judge", "openai:gpt-4o", RateLimited("slow down", status=429))
    acc.record_retry("judge", "openai:gpt-4o", ServerError("oops", status=503))
    acc.record_failure("judge", "openai:gpt-4o", RateLimited("slow down", status=429),
                       attempts=3)
    totals = acc.snapshot()["totals"]
    assert totals["rate_limited"] == 2
    assert totals["retries"] == 2
    assert totals["retries_by_error"] == {"RateLimited": 1, "ServerError": 1}
    assert (totals["failures"], totals["failures_by_error"]) == (1, {"RateLimited": 1})
    assert (totals["requests"], totals["attempts"]) == (1, 3)


def test_failures_are_grouped_by_error_class() -> None:
    acc = Accounting()
    acc.record_failure("back", "openai:gpt-4o", AuthError("bad key", status=401), attempts=1)
    acc.record_failure("back", "openai:gpt-4o", ServerError("boom", status=500), attempts=4)
    acc.record_failure("back", "openai:gpt-4o", ServerError("boom", status=502), attempts=4)
    stage = acc.snapshot()["stages"]["back"]
    assert stage["failures_by_error"] == {"AuthError": 1, "ServerError": 2}
    assert stage["successes"] == 0 and stage["cost_usd"] == 0.0


def test_snapshot_is_json_with_the_same_keys_for_every_group() -> None:
    acc = Accounting()
    assert json.loads(json.dumps(acc.snapshot()))["totals"]["requests"] == 0
    acc.record_success("a", "p:m", done(), cached=False, latency_s=0.2, attempts=1)
    acc.record_failure("b", "p:m", ServerError("x"), attempts=2)
    snap = json.loads(json.dumps(acc.snapshot()))
    keys = set(snap["totals"])
    assert {"requests", "successes", "failures", "cache_hits", "retries", "rate_limited",
            "input_tokens", "output_tokens", "cost_usd", "latency_s"} <= keys
    assert all(set(group) == keys for group in (*snap["stages"].values(),
                                                *snap["providers"].values()))
    assert set(snap["totals"]["latency_s"]) == {"count", "mean", "p50", "p90", "p99", "max"}


def test_latency_quantiles_are_within_a_few_percent() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(0, 1) for _ in range(20_000)]
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert hist.quantile(q) == pytest.approx(exact, rel=0.03)
    assert hist.summary()["max"] == values[-1]
    assert hist.summary()["mean"] == pytest.approx(sum(values) / len(values))


def test_latency_memory_does_not_grow_with_the_number_of_requests() -> None:
    hist = LatencyHistogram()
    buckets = len(hist.counts)
    for i in range(100_000):
        hist.add((i % 997) * 0.01)
    hist.add(10_000.0)  # beyond the last bucket edge
    hist.add(0.0)
    assert len(hist.counts) == buckets
    assert hist.count == 100_002 and hist.max == 10_000.0


def test_an_empty_histogram_reports_no_quantiles() -> None:
    assert LatencyHistogram().summary() == {"count": 0, "mean": None, "p50": None,
                                            "p90": None, "p99": None, "max": None}


def test_budget_refuses_a_reservation_that_could_pass_the_cap() -> None:
    budget = Budget(1.0)
    assert budget.reserve(0.6)
    assert not budget.reserve(0.5)
    assert budget.reserved == pytest.approx(0.6)
    budget.settle(0.6, 0.2)
    assert budget.spent == pytest.approx(0.2) and budget.reserved == 0.0
    assert budget.reserve(0.5)
    budget.release(0.5)
    assert budget.remaining == pytest.approx(0.8)


def test_budget_without_a_cap_accepts_everything_and_still_tracks_spending() -> None:
    budget = Budget(None)
    assert budget.reserve(1e9)
    budget.settle(1e9, 3.5)
    assert budget.spent == 3.5 and budget.remaining is None
    assert budget.to_json() == {"max_cost": None, "spent": 3.5, "spent_before": 0.0,
                                "reserved": 0.0, "remaining": None}


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_budget_rejects_nonsense_amounts(bad: float) -> None:
    with pytest.raises(ValueError):
        Budget(bad)
    with pytest.raises(ValueError):
        Budget(1.0).reserve(bad)


@given(cap=st.floats(0, 10),
       calls=st.lists(st.tuples(st.floats(0, 2), st.floats(0, 1), st.booleans()), max_size=60))
def test_budget_never_lets_spending_pass_the_cap_when_calls_cost_at_most_their_reservation(
        cap: float, calls: list[tuple[float, float, bool]]) -> None:
    budget = Budget(cap)
    for worst, fraction, fails in calls:
        if not budget.reserve(worst):
            continue
        if fails:
            budget.release(worst)
        else:
            budget.settle(worst, worst * fraction)
        assert budget.spent + budget.reserved <= cap + 1e-9


def snapshot_with(requests: int = 40, hits: int = 10, retries: int = 3) -> dict[str, object]:
    acc = Accounting()
    for _ in range(requests - hits):
        acc.record_success("s", "p:m", done(1500, 300, 0.01), cached=False, latency_s=0.3,
                           attempts=1)
    for _ in range(hits):
        acc.record_success("s", "p:m", done(cached=True), cached=True, latency_s=0.0,
                           attempts=0)
    for _ in range(retries):
        acc.record_retry("s", "p:m", RateLimited("429"))
    return acc.snapshot()


def test_progress_line_shows_items_rate_tokens_dollars_cache_429s_retries_and_eta() -> None:
    line = format_progress(snapshot_with(), elapsed_s=10.0, total_items=100, done_items=25)
    assert "\n" not in line
    for part in ("25/100 items (25.0%)", "3.0 req/s", "tok 45.0k in / 9.0k out", "$0.3000",
                 "cache 10", "429s 3", "retries 3", "ETA 30s"):
        assert part in line, (part, line)


def test_progress_line_without_a_total_has_no_eta() -> None:
    line = format_progress(snapshot_with(), elapsed_s=10.0, done_items=25)
    assert "25 items" in line and "ETA" not in line


def test_progress_line_at_the_start_does_not_divide_by_zero() -> None:
    line = format_progress(Accounting().snapshot(), elapsed_s=0.0, total_items=10,
                           done_items=0)
    assert "0.0 req/s" in line and "ETA --" in line and "$0.0000" in line


def test_progress_line_formats_long_etas_and_large_costs() -> None:
    acc = Accounting()
    acc.record_success("s", "p:m", done(2_500_000, 1_000, 12.5), cached=False, latency_s=1,
                       attempts=1)
    acc.record_failure("s", "p:m", ServerError("x"), attempts=5)
    line = format_progress(acc.snapshot(), elapsed_s=3600.0, total_items=1000, done_items=100)
    assert "ETA 9h00m" in line and "$12.50" in line and "tok 2.5M in" in line
    assert "failed 1" in line
    finished = format_progress(acc.snapshot(), elapsed_s=75.0, total_items=2, done_items=2)
    assert "done in 1m15s" in finished
