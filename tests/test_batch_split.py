"""Splitting encoded requests into batches within the limits, on bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlift.batch import Framing, Limits
from mlift.batch.split import split


@given(sizes=st.lists(st.integers(1, 120), max_size=80),
       max_requests=st.integers(1, 10), max_bytes=st.integers(20, 400),
       overhead=st.integers(0, 20), separator=st.integers(0, 2))
def test_every_batch_is_within_the_limits_and_every_unit_is_placed_once(
        sizes: list[int], max_requests: int, max_bytes: int, overhead: int,
        separator: int) -> None:
    limits, framing = Limits(max_requests, max_bytes), Framing(overhead, separator)
    plan = split(sizes, limits, framing)
    placed = [i for batch in plan.batches for i in batch]
    assert sorted(placed + plan.too_big) == list(range(len(sizes)))
    assert placed == sorted(placed)  # order kept
    for batch in plan.batches:
        assert 1 <= len(batch) <= max_requests
        assert framing.size(len(batch), sum(sizes[i] for i in batch)) <= max_bytes
    for i in plan.too_big:
        assert framing.size(1, sizes[i]) > max_bytes
    # greedy: a batch was closed only because the next unit did not fit
    for batch, following in zip(plan.batches, plan.batches[1:], strict=False):
        grown = framing.size(len(batch) + 1, sum(sizes[i] for i in batch) + sizes[following[0]])
        assert len(batch) == max_requests or grown > max_bytes


def test_60000_requests_make_two_openai_sized_batches() -> None:
    plan = split([700] * 60_000, Limits(50_000, 200 * 1024 * 1024), Framing())
    assert [len(b) for b in plan.batches] == [50_000, 10_000]


def test_bytes_split_a_stage_before_the_count_does() -> None:
    # 3,000 lines of 100 kB: 200 MB holds 2,097 of them
    plan = split([100_000] * 3_000, Limits(50_000, 200 * 1024 * 1024), Framing())
    assert [len(b) for b in plan.batches] == [2_097, 903]
