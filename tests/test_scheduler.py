"""Scheduler: items answered at once (``ready``) keep their place among worked ones."""

from __future__ import annotations

import asyncio

from mlift.engine.scheduler import NOT_DONE, Scheduler, _NotDone


async def test_ready_items_are_emitted_in_input_order_among_worked_ones() -> None:
    worked: list[int] = []
    emitted: list[tuple[int, str]] = []

    async def work(i: int) -> str:
        worked.append(i)
        await asyncio.sleep(0.001 * (i % 5))  # finish out of order
        return f"worked {i}"

    def ready(i: int) -> str | None:
        return f"ready {i}" if i % 3 == 0 else None

    scheduler: Scheduler[int, str] = Scheduler(
        work, lambda index, i, r: emitted.append((index, r)), workers=4, ordered=True,
        ready=ready)
    await scheduler.run(range(60))
    assert emitted == [(i, f"ready {i}" if i % 3 == 0 else f"worked {i}") for i in range(60)]
    assert sorted(worked) == [i for i in range(60) if i % 3]
    assert (scheduler.started, scheduler.emitted) == (60, 60)


async def test_after_a_stop_no_ready_item_is_emitted_either() -> None:
    emitted: list[int] = []

    async def work(i: int) -> int | _NotDone:
        await asyncio.sleep(0.001)
        return NOT_DONE if i == 7 else i

    scheduler: Scheduler[int, int] = Scheduler(
        work, lambda index, i, r: emitted.append(r), workers=2, ordered=True,
        ready=lambda i: i if i % 2 == 0 else None)
    await scheduler.run(range(100))
    assert emitted == list(range(7))  # a prefix: nothing at or after the gap
