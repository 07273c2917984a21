"""Bounded scheduling: a fixed pool of workers under one TaskGroup.

A 10-million-line input never becomes 10 million tasks: a producer feeds a
bounded queue, ``workers`` tasks pull from it, and a window caps how far the
producer may run ahead of the oldest unfinished item, so memory stays flat in
the input size. Results are emitted as they complete, or in input order
(``ordered=True``) through a reorder buffer no larger than the window.

Per-item failures are the work function's business (it returns a result
describing them); anything that escapes it is a bug or a deliberate stop and
cancels the whole group. ``stop()`` ends the run cleanly: nothing new is
started, what is in flight finishes, and results from ``NOT_DONE`` onwards are
not emitted (in ordered mode nothing after the first gap, so the output stays
a prefix of the input and a re-run resumes after it). ``DEFERRED`` is the
same gap without the stop: batch mode's passes over the input put an item
off until its answers have come back.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Final, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _NotDone:
    def __repr__(self) -> str:
        return "NOT_DONE"


NOT_DONE: Final = _NotDone()
"""Returned by a work function for an item it did not finish (the run is stopping)."""


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Final = _Deferred()
"""Returned by a work function for an item put off to a later pass over the input (batch
mode: an answer is still to come). Nothing is emitted for it — in ordered mode nothing
after it either, so the output stays a prefix of the input — but the run goes on."""


class Scheduler(Generic[T, R]):
    """``ready(item)``, if given, may return an item's result at once (an answer already
    at hand, such as a prefetched cache hit): it is emitted without a worker, in its
    place; None sends the item to the workers."""

    def __init__(self, work: Callable[[T], Awaitable[R | _NotDone | _Deferred]],
                 emit: Callable[[int, T, R], Any], *, workers: int = 64,
                 window: int | None = None, ordered: bool = False,
                 ready: Callable[[T], R | None] | None = None) -> None:
        self._work, self._emit, self._ready = work, emit, ready
        self._workers = max(1, workers)
        self._window = asyncio.Semaphore(window or max(1000, 16 * self._workers))
        self._ordered = ordered
        self._stopping = False
        self._pending: dict[int, tuple[T, R]] = {}
        self._gap = float("inf")
        self._next_emit = 0
        self.started = 0
        self.emitted = 0
        self.deferred = 0

    def stop(self) -> None:
        """Start nothing new; let in-flight items finish."""
        self._stopping = True

    async def run(self, items: Iterable[T] | AsyncIterable[T]) -> None:
        queue: asyncio.Queue[tuple[int, T] | None] = asyncio.Queue(maxsize=2 * self._workers)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._workers):
                    group.create_task(self._worker(queue))
                await self._produce(items, queue)
                # Only on the way out of a finished input: if the body failed or
                # was cancelled, the group cancels the workers itself (and a put
                # into a full queue nobody reads any more would never return).
                for _ in range(self._workers):
                    await queue.put(None)
        except BaseExceptionGroup as group:
            # One kind of failure (an auth error seen by every worker at once, a
            # bad input file, a bug) cancelled the rest: raise it as itself so
            # callers can map it to a message.
            first = group.exceptions[0]
            if all(type(e) is type(first) for e in group.exceptions):
                raise first from None
            raise

    async def _produce(self, items: Iterable[T] | AsyncIterable[T],
                       queue: asyncio.Queue[tuple[int, T] | None]) -> None:
        if isinstance(items, AsyncIterable):
            async for item in items:
                if not await self._feed(item, queue):
                    return
        else:
            for item in items:
                if not await self._feed(item, queue):
                    return

    async def _feed(self, item: T, queue: asyncio.Queue[tuple[int, T] | None]) -> bool:
        await self._window.acquire()
        if self._stopping:
            self._window.release()
            return False
        result = self._ready(item) if self._ready is not None else None
        if result is not None:
            # No hop through the queue and a worker's wake-up: on a cached re-run
            # those were a good part of each line's time.
            self.started += 1
            await self._done(self.started - 1, item, result)
            return True
        await queue.put((self.started, item))
        self.started += 1
        return True

    async def _worker(self, queue: asyncio.Queue[tuple[int, T] | None]) -> None:
        while (job := await queue.get()) is not None:
            index, item = job
            result = NOT_DONE if self._stopping else await self._work(item)
            await self._done(index, item, result)

    async def _done(self, index: int, item: T, result: R | _NotDone | _Deferred) -> None:
        if isinstance(result, _NotDone):
            self._stopping = True
            self._gap = min(self._gap, index)
        elif isinstance(result, _Deferred):
            self.deferred += 1
            self._gap = min(self._gap, index)
        if not self._ordered:
            self._window.release()
            if not isinstance(result, _NotDone | _Deferred):
                await self._call_emit(index, item, result)
            return
        if index >= self._gap:
            # Ordered output stays a prefix of the input: nothing at or after a
            # gap is written (it is cached, so a re-run gets it for free).
            self._window.release()
            return
        self._pending[index] = (item, result)  # type: ignore[assignment]
        while self._next_emit in self._pending:
            item, done = self._pending.pop(self._next_emit)
            self._window.release()
            await self._call_emit(self._next_emit, item, done)
            self._next_emit += 1
        if self._gap != float("inf"):
            for late in [k for k in self._pending if k >= self._gap]:
                del self._pending[late]
                self._window.release()

    async def _call_emit(self, index: int, item: T, result: R) -> None:
        self.emitted += 1
        out = self._emit(index, item, result)
        if out is not None and inspect.isawaitable(out):
            await out
