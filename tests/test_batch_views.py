"""Pieces of batch mode on their own: how batches are shown, ``--batch`` parsing, deferral."""

from __future__ import annotations

import asyncio

import pytest

from mlift.batch.views import Shown, duration, expected_wait, summary
from mlift.engine.scheduler import DEFERRED, Scheduler, _Deferred
from mlift.errors import ConfigError
from mlift.pipeline.batchrun import parse_stages

RUN = ("to_en", "to_en_context", "instruct", "judge", "back")


def shown(state: str = "in_progress", *, kind: str = "openai", total: int = 100,
          done: int = 0, failed: int = 0, age_s: float = 600.0, ended: bool = False,
          stage: str = "to_en") -> Shown:
    return Shown(stage, "openai:gpt-4o-mini", kind, "batch_1", state, total, done, failed,
                 age_s, ended)


def test_the_expected_wait_extrapolates_the_lines_done_so_far() -> None:
    # 25 of 100 lines in 10 minutes: 75 more take 30 minutes at that rate.
    assert expected_wait(shown(done=20, failed=5)) == "~30m"
    # 1 of 100: 99 more take 16.5 hours; 1 of 1,000 would take longer than the window
    # leaves (23 h 50 min), which ends the batch first
    assert expected_wait(shown(done=1, age_s=600)) == "~16h30m"
    assert expected_wait(shown(done=1, total=1000, age_s=600)) == "~23h50m"


def test_without_counts_the_wait_is_what_the_window_leaves() -> None:
    assert expected_wait(shown("validating")) == "at most 23h50m"
    # Anthropic counts lines only at the end; it says most batches end within the hour
    assert expected_wait(shown(kind="anthropic", age_s=3600)) == "most within 1h, at most 23h00m"
    assert expected_wait(shown("completed", done=100, ended=True)) == "-"


def test_durations_are_short() -> None:
    assert [duration(s) for s in (-1, 42, 125, 3600, 86399)] == \
        ["0s", "42s", "2m", "1h00m", "23h59m"]


def test_the_summary_counts_each_stages_batches_by_state() -> None:
    line = summary([
        shown(done=50, age_s=600), shown("validating", age_s=60),
        shown("completed", done=100, ended=True),
        shown("completed", total=40, done=40, ended=True, stage="judge")])
    # to_en: the validating batch, with no rate yet, is the one expected to end last
    assert line == ("batches: to_en 1 completed, 1 in_progress, 1 validating "
                    "(150/300 done, wait at most 23h59m); judge 1 completed (40/40 done)")
    assert summary([]) == ""


def test_batch_takes_all_or_named_stages_and_to_en_brings_the_context() -> None:
    assert parse_stages("all", RUN) is None
    assert parse_stages("to_en, back", RUN) == {"to_en", "to_en_context", "back"}
    assert parse_stages("judge", RUN) == {"judge"}
    with pytest.raises(ConfigError, match="jduge is not a stage of this command; stages: "
                                          "to_en, to_en_context"):
        parse_stages("jduge", RUN)
    with pytest.raises(ConfigError, match="put it after the inputs"):
        parse_stages("corpus.jsonl", RUN)
    with pytest.raises(ConfigError, match="no stage"):
        parse_stages(",", RUN)


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_deferred_item_is_not_written_and_the_run_goes_on(ordered: bool) -> None:
    written: list[int] = []

    async def work(i: int) -> int | _Deferred:
        await asyncio.sleep(0)
        return DEFERRED if i in (3, 7) else i

    def emit(_index: int, _item: int, result: int) -> None:
        written.append(result)

    scheduler: Scheduler[int, int] = Scheduler(work, emit, workers=4, ordered=ordered)
    await scheduler.run(range(10))
    assert scheduler.deferred == 2 and scheduler.started == 10
    # ordered output stays a prefix of the input: nothing after the first deferred item
    assert sorted(written) == ([0, 1, 2] if ordered else [0, 1, 2, 4, 5, 6, 8, 9])
