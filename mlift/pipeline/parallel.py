"""Step 0 on every core, and off the event loop.

Selection is most of a run's CPU before its first request: normalisation,
the script profile, MinHash and language ID cost ~1-3 ms a record, which on
one core made a million-record run (or its resume, which re-selects every
record so dedup decides the same way) spend some 40 minutes there.

``select_stream`` splits the work the way its dependencies allow. The
per-record analysis (:class:`~mlift.pipeline.select.Analyser`) depends on
nothing but the record, so it runs in worker processes
(:mod:`mlift.pipeline.selectworker`), in chunks; the
decisions that compare records (exact and near duplicates) are made here, in
input order, by :meth:`Selector.decide` — so the outcome is the one a single
process reaches. Small inputs never pay the pool's start-up: the first
``inline_first`` records are analysed in this process.

``in_thread`` runs such a (blocking) stream in a thread and hands its items
to the event loop in batches, so reading and selecting never block the
requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from mlift.errors import InputError
from mlift.pipeline.select import Reject, SelectConfig, Selector, unpack
from mlift.pipeline.selectworker import read_frame, write_frame
from mlift.pipeline.sources import Record

T = TypeVar("T")
CHUNK = 128
INLINE_FIRST = 2000

def machine_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def select_stream(items: Iterable[Record | InputError], selector: Selector, *,
                  workers: int | None = None, chunk: int = CHUNK,
                  inline_first: int = INLINE_FIRST) -> Iterator[Record | Reject | InputError]:
    """Each item's selection outcome, in input order (``InputError``s pass through).

    ``workers`` processes analyse records once ``inline_first`` have been done
    here (default: one per core; 1 or a selector with a custom identifier or
    token counter, which cannot be sent to another process, means no pool).
    """
    workers = machine_workers() if workers is None else workers
    pooling = workers > 1 and not selector.custom
    it = iter(items)
    # A worker takes about a second to start (importing mlift, loading the
    # language-ID model): they start halfway through the inline records, so
    # that second overlaps work done here instead of following it.
    warm_at = inline_first // 2
    started: list[_Worker] = []
    try:
        for seen, item in enumerate(it, 1):
            if pooling and not started and seen > warm_at:
                started = [_Worker(selector.config) for _ in range(workers)]
            yield item if isinstance(item, InputError) else selector.decide(
                selector.analyser.analyse(item))
            if seen >= inline_first and pooling:
                break
        else:
            return
        yield from _pooled(it, selector, started or
                           [_Worker(selector.config) for _ in range(workers)], chunk)
    finally:
        for worker in started:
            worker.close()  # a no-op for workers _pooled has closed


class _Worker:
    """One ``python -m mlift.pipeline.selectworker`` process, fed by a thread of its own.

    Chunks go in through a feeder thread, so this process never blocks writing
    to a worker that is itself blocked writing a result nobody reads yet.
    """

    def __init__(self, config: SelectConfig) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mlift.pipeline.selectworker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self.out = self.proc.stdin, self.proc.stdout
        self._chunks: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue()
        self.error: BaseException | None = None
        write_frame(self._in, config)  # small: fits the pipe, the worker reads it first
        self._feeder = threading.Thread(target=self._feed, name="mlift-select-feed",
                                        daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not None:
                write_frame(self._in, chunk)
        except BaseException as exc:  # a dead worker: reported when its result is read
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self._in.close()

    def submit(self, chunk: list[tuple[Any, ...]]) -> None:
        self._chunks.put(chunk)

    def result(self) -> list[tuple[Any, ...]]:
        got = read_frame(self.out)
        if got is None:
            code = self.proc.wait()
            raise RuntimeError(f"a selection worker exited (code {code}) before answering"
                               + (f": {self.error}" if self.error else ""))
        result: list[tuple[Any, ...]] = got
        return result

    def close(self) -> None:
        self._chunks.put(None)
        self._feeder.join(5)
        with contextlib.suppress(OSError):
            self.out.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _pooled(it: Iterator[Record | InputError], selector: Selector, workers: list[_Worker],
            chunk: int) -> Iterator[Record | Reject | InputError]:
    n = len(workers)
    # Chunk i goes to worker i % n, and each worker answers in order, so reading
    # worker (i % n) for chunk i gives back the results in input order.
    pending: deque[tuple[list[Record | InputError], _Worker]] = deque()
    turn = 0

    def drain(batch: list[Record | InputError],
              worker: _Worker) -> Iterator[Record | Reject | InputError]:
        packed = iter(worker.result())
        for item in batch:
            yield item if isinstance(item, InputError) else selector.decide(
                unpack(next(packed), item))

    try:
        while True:
            batch = [item for _, item in zip(range(chunk), it, strict=False)]
            if not batch:
                break
            worker = workers[turn % n]
            turn += 1
            worker.submit([(r.lang, r.text, r.context) for r in batch if isinstance(r, Record)])
            pending.append((batch, worker))
            while len(pending) > 2 * n:
                yield from drain(*pending.popleft())
        while pending:
            yield from drain(*pending.popleft())
    finally:
        for worker in workers:
            worker.close()


_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def in_thread(make: Callable[[], Iterable[T]], *, batch: int = 256,
                    linger_s: float = 0.05, depth: int = 8) -> AsyncIterator[T]:
    """The items of ``make()``, produced in a thread and handed over in batches.

    A batch is handed over when it holds ``batch`` items or its first item has
    waited ``linger_s`` (so the first requests start at once); at most ``depth``
    batches wait, so a slow consumer holds the producer back. Leaving the
    iteration early stops the producer; its errors are raised here.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            buffer: list[T] = []
            first = 0.0
            for item in make():
                if not buffer:
                    first = time.monotonic()
                buffer.append(item)
                if len(buffer) >= batch or time.monotonic() - first >= linger_s:
                    if not put(buffer):
                        return
                    buffer = []
            if buffer and not put(buffer):
                return
            put(_END)
        except BaseException as exc:
            put(_Failed(exc))

    thread = threading.Thread(target=produce, name="mlift-select", daemon=True)
    thread.start()
    try:
        while True:
            got = await asyncio.to_thread(handoff.get)
            if got is _END:
                return
            if isinstance(got, _Failed):
                raise got.error
            for item in got:
                yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                handoff.get_nowait()
        await asyncio.to_thread(thread.join)
        # A get() still waiting in an executor thread (this task was cancelled while
        # it waited) would block forever, and asyncio.run's shutdown with it: wake it.
        with contextlib.suppress(queue.Full):
            handoff.put_nowait(_END)
