"""Batch mode (``--batch``): a command's model stages through the providers' batch APIs.

The response cache is the stage boundary. A batch run makes passes over the
input, each the command's normal bounded scheduler with its real stages
unchanged, behind a :class:`~mlift.pipeline.deferring.DeferringEngine`: a
batch-mode request is answered from what has come back, or recorded and its
item put off to a later pass; other stages go online as usual (a judge on
another provider, say). After a pass, the requests recorded for each
(stage, endpoint) go out through :class:`~mlift.batch.StageBatches` — split
within the provider's limits measured on the lines sent, written to the run
folder's journal (``batches.jsonl``) before anything is sent, results cached
as they arrive — and the next pass runs::

    pass 1   every item asks for to_en          → 1 to_en batch per endpoint
    pass 2   to_en cached; instruct asked       → instruct batch
    pass 3   judge asked (online if not batched)→ judge batch
    pass 4   unparsed verdicts re-asked; kept pairs ask for back → judge, back batches
    pass 5   everything cached: items finish, outputs written as online

Items finish in whichever pass has all their answers. A pass ends early once
``max_pending`` requests are waiting, which bounds memory; the next pass
takes up from there. A line that failed or expired is sent once more (by
``StageBatches``), then becomes its item's reject (``batch_failed``,
``batch_expired``, ``batch_canceled``), retried by the next run like any
provider failure.

Crash safety comes from the journal: after Ctrl-C or kill -9 at any moment,
the next run's passes ask for the same requests (their custom_ids are their
cache keys) and ``StageBatches`` polls the batches already sent for them
rather than sending them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mlift.batch import BatchClient, BatchJournal, BatchView, PollPolicy, StageBatches, batch_client
from mlift.batch.views import Shown, summary
from mlift.engine.core import Engine
from mlift.errors import BudgetExceeded, ConfigError, EndpointUnusable, ProviderError
from mlift.pipeline.deferring import SCOPE, DeferringEngine, ItemScope
from mlift.providers.sim import SimProvider
from mlift.records import RecordBase
from mlift.runfolder.run import Deferred, Run
from mlift.types import Request

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
ALL = "all"


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """Which stages go in batches (None: every model stage of the command), and how to wait.

    ``max_pending`` caps the requests one pass collects (they are held in memory until
    their batches end); ``poll`` spaces the status polls; ``sleep`` and ``clock`` are
    injected so tests run on the simulator's virtual clock.
    """

    stages: frozenset[str] | None = None
    max_pending: int = 50_000
    poll: PollPolicy = field(default_factory=PollPolicy)
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.time


def parse_stages(value: str, known: Sequence[str]) -> frozenset[str] | None:
    """``--batch`` alone (``all``) or ``--batch STAGE,…``; ``to_en`` includes
    ``to_en_context``. A name that is not a stage of the command fails with the list."""
    names = {n.strip() for n in value.split(",") if n.strip()}
    if names == {ALL}:
        return None
    unknown = sorted(names - set(known))
    if unknown or not names:
        looks_like_path = any("/" in n or "." in n for n in unknown)
        hint = (" (--batch takes an optional stage list: put it after the inputs, or write "
                "--batch=STAGE,…)" if looks_like_path else "")
        raise ConfigError(f"--batch {value}: {', '.join(unknown) or 'no stage'} is not a "
                          f"stage of this command; stages: {', '.join(known)}{hint}")
    if "to_en" in names and "to_en_context" in known:
        names.add("to_en_context")
    return frozenset(names)


class BatchRun:
    """The passes of one batch-mode invocation over a run folder (see the module docstring)."""

    def __init__(self, engine: Engine, options: BatchOptions | None = None) -> None:
        if engine.cache is None:
            raise ConfigError("--batch needs the response cache: it carries each batch's "
                              "answers to the next pass; drop --no-cache")
        self.options = options or BatchOptions()
        self.inner = engine
        self.engine = DeferringEngine(engine, self.batched)
        self.passes = 0
        self._clients: dict[str, BatchClient] = {}
        self._making = asyncio.Lock()  # two stages of one target must not each build a client
        self._views: dict[tuple[str, str], list[BatchView]] = {}

    def batched(self, stage: str) -> bool:
        stages = self.options.stages
        return stages is None or stage in stages

    def check(self, stage_targets: Iterable[tuple[str, str]]) -> None:
        """Fail before the first request if a batched stage's endpoint has no batch API."""
        for stage, target in stage_targets:
            if not self.batched(stage):
                continue
            endpoint = self.inner.endpoint(target)
            if endpoint.kind not in ("openai", "anthropic", "sim"):
                raise ConfigError(
                    f"--batch: stage {stage} runs on {endpoint.spec}, whose provider kind "
                    f"{endpoint.kind!r} has no batch API in mlift (kinds openai, anthropic "
                    f"and sim have one); leave it out: --batch=STAGE,… names the others")

    # -- the passes ------------------------------------------------------------------

    async def run(self, run: Run, items: Callable[[], Iterable[T] | AsyncIterable[T]],
                  work: Callable[[T], Awaitable[Sequence[RecordBase]]], *, workers: int = 64,
                  ordered: bool = False,
                  on_emit: Callable[[RecordBase], None] | None = None) -> None:
        """Pass over ``items()`` until no item waits for a batch (or the run stops)."""
        journal = BatchJournal(run.folder.path)

        async def scoped(item: T) -> Sequence[RecordBase]:
            scope = ItemScope()
            token = SCOPE.set(scope)
            try:
                records = await work(item)
            except Deferred:
                if self.engine.waiting >= self.options.max_pending:
                    run.pause()  # enough for now: send these, then take up from here
                raise
            finally:
                SCOPE.reset(token)
            self.engine.commit(scope)
            return records

        try:
            while True:
                self.passes += 1
                await run.each(items(), scoped, workers=workers, ordered=ordered,
                               on_emit=on_emit)
                if run.stopped or not self.engine.pending:
                    return
                await self._send(run, journal)
                if run.stopped:
                    return
        finally:
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()

    async def _send(self, run: Run, journal: BatchJournal) -> None:
        """Every pending request through its (stage, endpoint)'s batches, all at once."""
        groups, self.engine.pending = self.engine.pending, {}
        try:
            async with asyncio.TaskGroup() as group:
                for (stage, target), todo in groups.items():
                    group.create_task(self._drive(run, journal, stage, target, todo))
        except BaseExceptionGroup as failed:
            # What stops a run (a bad key, a bug) is raised as itself, for the CLI to map.
            raise failed.exceptions[0] from None

    async def _drive(self, run: Run, journal: BatchJournal, stage: str, target: str,
                     todo: dict[str, Request]) -> None:
        client = await self._client(target)
        o = self.options

        def progress(views: list[BatchView]) -> None:
            self._views[(stage, target)] = views

        # Each batch's cost goes to the run's ledger before its answers to the cache: after
        # a kill in between, the next run books again what it has to fetch again.
        driver = StageBatches(client, journal, stage=stage, price=self.inner.price(target),
                              budget=self.inner.budget, accounting=self.inner.accounting,
                              poll=o.poll, sleep=o.sleep, clock=o.clock, on_progress=progress,
                              on_booked=run.checkpoint)
        try:
            await driver.run(todo, on_result=self.engine.arrive)
        except BudgetExceeded as exc:
            run.stop(str(exc))
        except EndpointUnusable:
            raise
        except ProviderError as exc:
            run.stop(f"the batch API of {target} failed ({exc}); the batches sent are in "
                     f"{journal.path}: re-run the same command to resume them")

    async def _client(self, target: str) -> BatchClient:
        async with self._making:
            client = self._clients.get(target)
            if client is None:
                endpoint = self.inner.endpoint(target)
                provider = self.inner.provider(target)
                if endpoint.kind == "sim" and not endpoint.base_url and \
                        isinstance(provider, SimProvider):
                    # The in-process simulator: its batch API is on the server the run talks to.
                    endpoint = dataclasses.replace(endpoint, base_url=await provider.url())
                # Building an SDK client reads its modules and CA certificates: in a thread.
                client = self._clients[target] = await asyncio.to_thread(batch_client, endpoint)
            return client

    # -- the display -----------------------------------------------------------------

    def shown(self) -> list[Shown]:
        """Every batch this invocation has seen, for the progress line."""
        out: list[Shown] = []
        for (stage, target), views in self._views.items():
            kind = self.inner.endpoint(target).kind
            out.extend(Shown(stage, target, kind, v.batch_id, v.state, v.total, v.done,
                             v.failed, v.waited_s, v.ended) for v in views)
        return out

    def progress(self) -> str:
        """The batch part of the progress line (empty before the first batch)."""
        text = summary(self.shown())
        waiting = self.engine.waiting
        head = f"pass {self.passes}" + (f", {waiting:,} requests for the next batches"
                                        if waiting else "")
        return f"{head} · {text}" if text else head
