"""Selection on every core decides exactly as one process does, in input order."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

from mlift.errors import InputError
from mlift.pipeline.parallel import select_stream
from mlift.pipeline.select import Reject, SelectConfig, Selector
from mlift.pipeline.sources import Record

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def corpus() -> list[Record | InputError]:
    """Sample paragraphs, each also repeated exactly and nearly, shuffled, with bad lines."""
    texts = [(lang, json.loads(line)["text"]) for lang in ("hi", "te", "ja", "es")
             for line in (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
    rng = random.Random(7)
    items: list[Record | InputError] = []
    for i, (lang, text) in enumerate(texts):
        items.append(Record(f"r{i}", lang, text))
        items.append(Record(f"d{i}", lang, text))                        # exact duplicate
        items.append(Record(f"n{i}", lang, text.replace(" ", "  ", 3) + " ।"))  # near one
        items.append(Record(f"w{i}", "hi" if lang == "es" else lang, text[: 40]))  # short/wrong
    rng.shuffle(items)
    for k in range(0, len(items), 50):
        items.insert(k, InputError("bad", file="x.jsonl", line=k))
    return items


def outcome(x: Record | Reject | InputError) -> tuple[str, ...]:
    if isinstance(x, InputError):
        return ("input", str(x))
    if isinstance(x, Reject):
        return ("reject", x.record.id, x.code, x.detail)
    return ("kept", x.id, x.text)


def test_the_pool_makes_the_same_decisions_in_the_same_order_as_one_process() -> None:
    items = corpus()
    alone = Selector(SelectConfig())
    expected = [outcome(x) for x in select_stream(items, alone, workers=1)]
    pooled = Selector(SelectConfig())
    got = [outcome(x) for x in select_stream(items, pooled, workers=2, chunk=7,
                                            inline_first=25)]
    assert got == expected
    assert pooled.counts() == alone.counts()
    codes = {o[2] for o in expected if o[0] == "reject"}
    assert {"duplicate", "near_duplicate"} <= codes  # the corpus exercises the index


def test_an_input_that_ends_while_the_workers_start_is_decided_here_and_they_stop() -> None:
    # The workers start halfway through the inline records; this input ends before
    # they are needed: its outcomes are one process's, and the started workers exit.
    items = corpus()[:30]
    expected = [outcome(x) for x in select_stream(items, Selector(SelectConfig()), workers=1)]
    before = set(Path("/proc/self/task").iterdir())
    got = [outcome(x) for x in select_stream(items, Selector(SelectConfig()), workers=2,
                                            inline_first=40)]
    assert got == expected
    assert set(Path("/proc/self/task").iterdir()) <= before  # no feeder thread left


def test_leaving_early_shuts_the_pool_down() -> None:
    items = corpus()
    stream = select_stream(items, Selector(SelectConfig()), workers=2, chunk=5, inline_first=3)
    first = [next(stream) for _ in range(40)]
    stream.close()  # runs the pool's shutdown
    assert len(first) == 40


def test_cancelling_the_consumer_while_it_waits_leaves_no_thread_blocked() -> None:
    import asyncio
    import threading

    from mlift.pipeline.parallel import in_thread

    release = threading.Event()

    def slow() -> list[int]:
        release.wait(5)  # the producer has nothing yet when the consumer is cancelled
        return [1]

    async def consume() -> None:
        async for _ in in_thread(slow):
            pass

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        # The producer yields only after the consumer has given up: nothing it
        # makes reaches the get() that was waiting when the cancel came.
        threading.Timer(0.3, release.set).start()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # asyncio.run returns only once the loop's executor threads are all done: a
    # get() left waiting would hang it for ever, so run it where a hang shows.
    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "asyncio.run hung on a blocked executor thread"
