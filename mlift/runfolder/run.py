"""One invocation on a run folder: the run skeleton every writing command shares.

``Run`` owns what each command used to wire itself: the ledger entry (begun,
checkpointed every few seconds, ended), the writer thread the finished
records go to, the bounded scheduler the items flow through, the budget stop
(``--max-cost`` caps what the command has spent on the folder: the spend of
its earlier invocations is carried into the engine's budget), and ``run.json``::

    folder = RunFolder.open(out, command="run", identity=identity)
    async with Run(folder, engine, files=(DatasetRow, ScoredPair, Reject)) as run:
        await run.each(items, work)          # work(item) -> the records it produced
        run.summary(config=..., funnel=...)  # run.json: this invocation and the run's totals

A work function returns the records one item produced (or raises
``BudgetExceeded``, which stops the run cleanly: nothing new starts, what is
in flight finishes). ``EndpointUnusable`` and bugs escape and end the run;
finished records are on disk either way.

Batch mode (:mod:`mlift.pipeline.batchrun`) calls ``each`` once per pass over
the input: a work function that raises ``Deferred`` leaves its item for a
later pass (no record, no stop), and ``pause()`` ends a pass early without
stopping the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mlift import __version__
from mlift.engine.scheduler import DEFERRED, NOT_DONE, Scheduler, _Deferred, _NotDone
from mlift.errors import BudgetExceeded
from mlift.records import RecordBase
from mlift.runfolder.folder import Finished, RunFolder
from mlift.runfolder.ledger import Ledger
from mlift.runfolder.writer import ThreadedWriter

T = TypeVar("T")
CHECKPOINT_S = 5.0


class Deferred(Exception):
    """Raised by a work function for an item it cannot finish in this pass: an answer
    it needs is still to come (batch mode). Nothing is written; a later pass takes the
    item up again."""


class Run:
    """See the module docstring. ``engine`` is None for commands that make no model calls."""

    def __init__(self, folder: RunFolder, engine: Any | None, *,
                 files: Sequence[type[RecordBase]], finished: Finished | None = None,
                 command: str | None = None,
                 paths: Mapping[type[RecordBase], Path] | None = None) -> None:
        self.folder = folder
        self._paths = dict(paths or {})
        self.command = command or folder.command
        self.engine = engine
        self.types = tuple(files)
        self.finished = finished if finished is not None else Finished()
        self.stopped: str | None = None
        self.started = time.time()
        self.ledger: Ledger  # read in __aenter__, off the event loop
        self.scheduler: Scheduler[Any, Sequence[RecordBase]] | None = None
        self._emitted_before = 0  # by earlier passes of this invocation
        self._ledger_lock = asyncio.Lock()
        self._writer: ThreadedWriter | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.invocation: int | None = None

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Run:
        self.ledger = await asyncio.to_thread(self.folder.ledger)
        self.invocation = (await asyncio.to_thread(self.ledger.begin, self.command)).number
        files = {cls.__name__: self._paths.get(cls, self.folder.file(cls)) for cls in self.types}
        self._writer = ThreadedWriter(files)
        if self.engine is not None:
            # --max-cost caps what this command has spent on the folder over all its
            # invocations: a resumed run can't spend its cap again (a second judge
            # has a cap of its own).
            self.engine.budget.prior = self.ledger.cost_except(self.invocation,
                                                                command=self.command)
            self._ticker = asyncio.create_task(self._checkpoints())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                await asyncio.to_thread(writer.close)
        finally:
            if self.ledger.current is not None:  # summary() not reached (a crash, a bug)
                await asyncio.to_thread(self.ledger.end, self.accounting(), self.stopped)

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_S)
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Write this invocation's accounting to the ledger now (batch mode does once each
        batch is booked: a whole batch's cost arrives at once)."""
        async with self._ledger_lock:  # one writer thread at a time on the ledger file
            await asyncio.to_thread(self.ledger.checkpoint, self.accounting())

    # -- items ------------------------------------------------------------------

    def emit(self, record: RecordBase) -> None:
        """Write one finished record (queued to the writer thread) and mark it finished."""
        assert self._writer is not None, "Run used outside `async with`"
        self._writer.put(type(record).__name__, record)
        self.finished.add(record)

    async def flush(self) -> None:
        """Wait until every record emitted so far is written and flushed."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.flush)

    def stop(self, reason: str) -> None:
        """Start nothing new (the budget is spent); in-flight items finish."""
        self.stopped = self.stopped or reason
        if self.scheduler is not None:
            self.scheduler.stop()

    def pause(self) -> None:
        """End the current pass early (in-flight items finish); the run goes on."""
        if self.scheduler is not None:
            self.scheduler.stop()

    async def each(self, items: Iterable[T] | AsyncIterable[T],
                   work: Callable[[T], Awaitable[Sequence[RecordBase]]], *,
                   workers: int = 64, ordered: bool = False,
                   on_emit: Callable[[RecordBase], None] | None = None,
                   ready: Callable[[T], Sequence[RecordBase] | None] | None = None) -> None:
        """Run ``work`` over ``items`` with ``workers`` at a time, writing what each returns.

        ``ordered`` writes results in input order (the output stays a prefix of
        the input after a stop); ``on_emit`` sees each record as it is written;
        ``ready`` gives the records of an item that needs no work (see ``Scheduler``).
        """
        async def guarded(item: T) -> Sequence[RecordBase] | _NotDone | _Deferred:
            try:
                return await work(item)
            except BudgetExceeded as exc:
                self.stop(str(exc))
                return NOT_DONE
            except Deferred:
                return DEFERRED

        def emit(_index: int, _item: T, records: Sequence[RecordBase]) -> None:
            for record in records:
                self.emit(record)
                if on_emit is not None:
                    on_emit(record)

        if self.scheduler is not None:
            self._emitted_before += self.scheduler.emitted
        self.scheduler = Scheduler(guarded, emit, workers=workers, ordered=ordered, ready=ready)
        await self.scheduler.run(items)

    @property
    def emitted(self) -> int:
        """Items finished by this invocation (over all its passes)."""
        return self._emitted_before + (self.scheduler.emitted if self.scheduler else 0)

    # -- accounting and run.json -------------------------------------------------

    def accounting(self) -> dict[str, Any]:
        """This invocation's accounting snapshot ({} without an engine)."""
        if self.engine is None:
            return {}
        snapshot: dict[str, Any] = self.engine.accounting.snapshot()
        return snapshot

    def cost(self) -> tuple[float, float]:
        """(this invocation's dollars, this command's dollars over all its invocations)."""
        now = float(self.accounting().get("totals", {}).get("cost_usd", 0.0))
        return now, self.ledger.cost_except(self.invocation, command=self.command) + now

    async def summary(self, **parts: Any) -> dict[str, Any]:
        """Write ``run.json``: ``parts`` (config, funnel, …) plus identity, accounting, ledger."""
        this = self.accounting()
        # The invocation ends here (its accounting is final), so run.json shows it complete.
        async with self._ledger_lock:
            await asyncio.to_thread(self.ledger.end, this, self.stopped)
        data: dict[str, Any] = {
            "mlift_version": __version__,
            "command": self.folder.command,
            "last_command": self.command,
            "generation": self.folder.generation,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_s": round(time.time() - self.started, 3),
            "stopped_early": self.stopped,
            "identity": self.folder.identity,
            **parts,
        }
        if self.engine is not None:
            data["accounting"] = self.ledger.totals()
            data["this_invocation"] = {"accounting": this,
                                       "budget": self.engine.budget.to_json()}
        data["invocations"] = self.ledger.history()
        await asyncio.to_thread(self.folder.write_summary, data)
        return data
