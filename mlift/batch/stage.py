"""Run one stage's requests through a provider's batch API, crash-safe.

``StageBatches.run(requests)`` takes the stage's uncached requests keyed by
custom_id and returns every one's ``LineResult``::

    journal (replayed) ─► resolve batches in doubt ─► collect ended batches
         ▲                                                   │
         │            submit what no batch covers ◄──────────┘
         └──────────── poll open batches, with backoff ◄─────┘

1. **Journal first.** A batch is written to the journal (its custom_ids
   included) before anything is sent, its id as soon as the provider gives
   one, every state change as polling sees it. After a crash at any point
   the next ``run`` with the same journal polls the same batches: a batch
   whose creation was sent but not acknowledged is looked up at the provider
   (``BatchClient.find``) before anything is sent again, so no request is
   paid for twice.
2. **Limits on bytes sent.** Requests are encoded exactly as the online
   provider would send them and split (``mlift.batch.split``) on those bytes.
3. **Results by custom_id.** Answers become ``Completion``s through the
   online provider's parser, priced at batch rates; errors are mapped as
   online errors are. A request that failed transiently or expired is sent
   again, up to ``max_attempts`` batches in all; one that failed for good (a
   4xx) or was cancelled is not — within this ``run``. A request that an
   earlier ``run`` gave up on and the caller asks for again is sent afresh:
   the caller made that failure the item's reject, to be retried on the next
   run as online provider failures are.

A collected batch's answers are booked in the accounting all at once and,
before any is handed to ``on_result``, ``on_booked`` lets the caller make the
booking durable (batch mode checkpoints the run's ledger there).

Only a request's latest batch speaks for it. Control calls (upload, create,
poll, download) are retried by the engine's ``RetryPolicy`` on the injected
``sleep``; polls back off from ``PollPolicy.first_s`` to ``max_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from mlift.batch.base import BatchClient, LineResult, Status
from mlift.batch.journal import BatchJournal, ChunkRecord
from mlift.batch.split import split
from mlift.engine.accounting import Accounting, Budget
from mlift.engine.retry import RetryPolicy
from mlift.errors import (
    BudgetExceeded,
    EndpointUnusable,
    PermanentError,
    ProviderError,
    TransientError,
)
from mlift.prices import Price
from mlift.tokens import count_chat_tokens
from mlift.types import Request

log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
OnResult = Callable[[LineResult], Awaitable[None]]


class _LookupFailed(Exception):
    """A batch lookup failed while deciding whether to resend: not to be retried."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Seconds between polls: ``first_s``, times ``factor`` each round, at most ``max_s``."""

    first_s: float = 5.0
    factor: float = 1.5
    max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class BatchView:
    """One batch as the progress display shows it."""

    chunk: str
    batch_id: str | None
    state: str
    total: int
    done: int
    failed: int
    waited_s: float
    ended: bool = False


class StageBatches:
    """The batches of one (stage, endpoint) of a run, driven to completion."""

    def __init__(self, client: BatchClient, journal: BatchJournal, *, stage: str,
                 price: Price | None = None, budget: Budget | None = None,
                 accounting: Accounting | None = None, poll: PollPolicy | None = None,
                 retry: RetryPolicy | None = None, max_attempts: int = 2,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.time,
                 on_progress: Callable[[list[BatchView]], None] | None = None,
                 on_booked: Callable[[], Awaitable[None]] | None = None) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.client, self.journal, self.stage = client, journal, stage
        self.target = client.endpoint.spec
        self._price, self._budget, self._accounting = price, budget, accounting
        self._poll = poll or PollPolicy()
        self._retry = retry or RetryPolicy()
        self._max_attempts = max_attempts
        self._sleep, self._clock, self._on_progress = sleep, clock, on_progress
        self._on_booked = on_booked
        self._chunks: list[ChunkRecord] = []
        self._status: dict[str, Status] = {}
        self._reserved: dict[str, float] = {}
        self._rejected_before: set[str] = set()  # chunks refused before this ``run``

    # ---- the loop -------------------------------------------------------------------------

    async def run(self, requests: Mapping[str, Request], *,
                  on_result: OnResult | None = None) -> dict[str, LineResult]:
        """Every request's result, resuming whatever the journal says is under way."""
        self._chunks = [c for c in await self.journal.load()
                        if c.stage == self.stage and c.target == self.target]
        self._rejected_before = {c.chunk for c in self._chunks if c.rejected}
        for chunk in self._chunks:
            if chunk.open:  # a batch from an earlier run, paid for there but not yet booked
                self._reserve(chunk, [requests[c] for c in chunk.custom_ids if c in requests],
                              strict=False)
        final: dict[str, LineResult] = {}
        collected: set[str] = set()
        interval = self._poll.first_s
        while True:
            for chunk in [c for c in self._chunks if c.in_doubt]:
                await self._resolve(chunk)
            latest = self._latest(requests, final)
            for chunk in self._chunks:
                if chunk.chunk not in collected and (chunk.ended or chunk.rejected) and \
                        self._speaks_for(chunk, latest):
                    await self._collect(chunk, requests, latest, final, on_result)
                    collected.add(chunk.chunk)
            latest = self._latest(requests, final)
            todo = [cid for cid in requests if cid not in final and (
                cid not in latest or self._given_back(latest[cid], cid))]
            if todo:
                await self._submit(todo, requests, final, on_result)
                interval = self._poll.first_s
                continue
            open_chunks = [c for c in self._chunks if c.open]
            if not open_chunks:
                return final
            await self._poll_once(open_chunks)
            if any(c.ended for c in open_chunks):
                continue
            await self._sleep(interval)
            interval = min(self._poll.max_s, interval * self._poll.factor)

    def _latest(self, requests: Mapping[str, Request],
                final: Mapping[str, LineResult]) -> dict[str, ChunkRecord]:
        """Each unfinished request's latest batch (abandoned ones never happened)."""
        latest: dict[str, ChunkRecord] = {}
        for chunk in self._chunks:
            if chunk.abandoned:
                continue
            for cid in chunk.custom_ids:
                if cid in requests and cid not in final:
                    latest[cid] = chunk
        return latest

    def _given_back(self, chunk: ChunkRecord, custom_id: str) -> bool:
        """``chunk`` handed the request back: to be retried, or failed for good in an
        earlier ``run`` (a failure this ``run`` saw is in its results already)."""
        if chunk.rejected:
            return chunk.chunk in self._rejected_before
        return chunk.collected and (custom_id in chunk.retry or custom_id in chunk.final)

    def _speaks_for(self, chunk: ChunkRecord, latest: Mapping[str, ChunkRecord]) -> list[str]:
        """The requests ``chunk`` holds the latest word on, short of those it handed back
        (a collected chunk's successes can be fetched again)."""
        return [cid for cid in chunk.custom_ids if latest.get(cid) is chunk
                and not self._given_back(chunk, cid)]

    def _attempts(self, custom_id: str) -> int:
        """Batches that carried the request since it last failed for good."""
        count = 0
        for chunk in self._chunks:
            if chunk.collected and custom_id in chunk.final:
                count = 0
            elif custom_id in chunk.members and not (chunk.abandoned or chunk.rejected):
                count += 1
        return count

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async for attempt in self._retry.retrying(self._sleep):
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity reraises the last error")

    # ---- submitting -----------------------------------------------------------------------

    async def _submit(self, todo: list[str], requests: Mapping[str, Request],
                      final: dict[str, LineResult], on_result: OnResult | None) -> None:
        ids, units = [], []
        for cid in todo:
            try:
                units.append(self.client.encode(cid, requests[cid]))
            except ProviderError as exc:  # the online provider would refuse it too
                await self._finish(LineResult(cid, "failed", error=exc), requests, final,
                                   on_result)
                continue
            ids.append(cid)
        plan = split([len(u) for u in units], self.client.limits, self.client.framing)
        for i in plan.too_big:
            too_big = PermanentError(
                f"the request is {len(units[i]):,} bytes, more than a whole batch may hold "
                f"({self.client.limits.max_bytes:,}); send it online instead",
                provider=self.client.endpoint.name, model=self.client.endpoint.model)
            await self._finish(LineResult(ids[i], "failed", error=too_big), requests, final,
                               on_result)
        for indexes in plan.batches:
            chunk_ids = [ids[i] for i in indexes]
            chunk_units = [units[i] for i in indexes]
            chunk = ChunkRecord(chunk=f"c{uuid.uuid4().hex[:20]}", stage=self.stage,
                                target=self.target, kind=self.client.endpoint.kind,
                                custom_ids=chunk_ids,
                                bytes=self.client.framing.size(
                                    len(chunk_units), sum(map(len, chunk_units))),
                                submitted_at=self._clock())
            self._reserve(chunk, [requests[c] for c in chunk_ids], strict=True)
            await self.journal.append({
                "event": "submitting", "chunk": chunk.chunk, "stage": self.stage,
                "target": self.target, "kind": chunk.kind, "custom_ids": chunk_ids,
                "bytes": chunk.bytes, "at": chunk.submitted_at})
            self._chunks.append(chunk)
            await self._create(chunk, chunk_units)

    async def _create(self, chunk: ChunkRecord, units: list[bytes]) -> None:
        async def on_step(event: str, data: dict[str, str]) -> None:
            await self._record(chunk, {"event": event, **data})

        async def attempt() -> str:
            try:
                return await self.client.submit(units, chunk.chunk, on_step)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                # The create may have reached the provider before the answer was lost:
                # look before sending again. A lookup that keeps failing stops the run
                # with the chunk in doubt (the next run looks again), never a resend.
                try:
                    found = await self._call(partial(
                        self.client.find, chunk.chunk, len(chunk.custom_ids),
                        chunk.submitted_at, self._known()))
                except ProviderError as lookup:
                    raise _LookupFailed(lookup) from lookup
                if found is None:
                    raise
                return found

        try:
            batch_id = await self._call(attempt)
        except _LookupFailed as exc:
            raise exc.error from exc
        except ProviderError as exc:
            if exc.retryable:
                raise  # still in doubt: the next run looks the batch up before resending
            if isinstance(exc, EndpointUnusable):  # a bad key: stop the run, send nothing
                await self._record(chunk, {"event": "abandoned", "reason": str(exc)})
                raise
            await self._record(chunk, {"event": "rejected", "error": str(exc)})
            return
        await self._record(chunk, {"event": "created", "batch_id": batch_id,
                                   "at": self._clock()})

    def _known(self) -> set[str]:
        return {c.batch_id for c in self._chunks if c.batch_id}

    async def _resolve(self, chunk: ChunkRecord) -> None:
        """A chunk sent for creation before a crash: find its batch or give it up."""
        found = await self._call(partial(self.client.find, chunk.chunk, len(chunk.custom_ids),
                                         chunk.submitted_at, self._known()))
        if found is None:
            await self._record(chunk, {"event": "abandoned",
                                       "reason": "no batch was created before the crash"})
        else:
            log.info("batch %s of %s found at the provider after a crash", found, chunk.chunk)
            await self._record(chunk, {"event": "created", "batch_id": found,
                                       "at": self._clock(), "adopted": True})

    async def _record(self, chunk: ChunkRecord, event: dict[str, object]) -> None:
        event = {**event, "chunk": chunk.chunk}
        await self.journal.append(event)
        chunk.apply(event)

    # ---- polling --------------------------------------------------------------------------

    async def _poll_once(self, chunks: list[ChunkRecord]) -> None:
        for chunk in chunks:
            batch_id = chunk.batch_id
            assert batch_id is not None
            try:
                status = await self._call(partial(self.client.status, batch_id))
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                status = Status(batch_id, "lost", True, len(chunk.custom_ids),
                                detail=str(exc))
            self._status[chunk.chunk] = status
            if status.ended:
                await self._record(chunk, {"event": "ended", "state": status.state,
                                           "done": status.done, "failed": status.failed,
                                           "total": status.total, "at": self._clock(),
                                           "detail": status.detail})
            elif status.state != chunk.state:
                await self._record(chunk, {"event": "state", "state": status.state,
                                           "done": status.done, "failed": status.failed,
                                           "total": status.total, "at": self._clock()})
            else:
                chunk.done, chunk.failed, chunk.total = status.done, status.failed, status.total
        if self._on_progress is not None:
            self._on_progress(self.views())

    def views(self) -> list[BatchView]:
        """Every batch of this stage, for the progress display."""
        now = self._clock()
        return [BatchView(c.chunk, c.batch_id, c.state, c.total or len(c.custom_ids), c.done,
                          c.failed, (c.ended_at or now) - c.submitted_at,
                          c.ended or c.rejected is not None)
                for c in self._chunks if not c.abandoned]

    # ---- collecting -----------------------------------------------------------------------

    async def _collect(self, chunk: ChunkRecord, requests: Mapping[str, Request],
                       latest: Mapping[str, ChunkRecord], final: dict[str, LineResult],
                       on_result: OnResult | None) -> None:
        mine = {cid: requests[cid] for cid in self._speaks_for(chunk, latest)}
        if chunk.rejected:
            self._settle(chunk, [])
            for cid in mine:
                refused = PermanentError(f"the provider refused the batch: {chunk.rejected}",
                                         provider=self.client.endpoint.name,
                                         model=self.client.endpoint.model)
                await self._finish(LineResult(cid, "failed", error=refused), requests, final,
                                   on_result)
            return
        assert chunk.batch_id is not None
        batch_id = chunk.batch_id
        status = self._status.get(chunk.chunk)
        if status is None or (not status.refs and status.state != "lost"):
            status = await self._call(partial(self.client.status, batch_id))
        lines = [] if status.state == "lost" else \
            await self._call(partial(self.client.results, status, mine))
        by_id = {line.custom_id: line for line in lines}
        if chunk.adopted and not self.client.exact_find and set(by_id) != set(mine):
            # A batch found after a crash that holds other requests: not ours after all.
            self._settle(chunk, [])
            await self._record(chunk, {"event": "abandoned",
                                       "reason": f"batch {batch_id} holds other requests"})
            return
        retry, failed, succeeded = [], [], 0
        handed: list[LineResult] = []
        latency = self._clock() - chunk.submitted_at
        for cid in mine:
            line = by_id.get(cid)
            if line is None:
                error: ProviderError
                outcome, error = self.client.absent(status)
                if status.state == "lost":
                    error = TransientError(f"batch {batch_id} is gone at the provider",
                                           provider=self.client.endpoint.name,
                                           model=self.client.endpoint.model)
                line = LineResult(cid, outcome, error=error, batch_id=batch_id)
            if line.retryable and self._attempts(cid) < self._max_attempts:
                retry.append(cid)
                if self._accounting is not None and line.error is not None:
                    self._accounting.record_retry(self.stage, self.target, line.error)
                continue
            succeeded += line.outcome == "succeeded"
            if line.outcome != "succeeded":
                failed.append(cid)
            await self._finish(line, requests, final, None, latency=latency)
            handed.append(final[cid])
        # Booked, then made durable by the caller, then handed over: a crash while handing
        # over (the caller caches answers, so the next run asks only for the rest) can
        # count an answer twice but never lose what it cost.
        if self._on_booked is not None:
            await self._on_booked()
        if on_result is not None:
            for done in handed:
                await on_result(done)
        self._settle(chunk, [final[c] for c in mine if c in final])
        # A chunk collected again (after a crash, or for answers the cache lost) keeps the
        # requests it already handed back.
        if chunk.collected:
            retry, failed = sorted({*chunk.retry, *retry}), sorted({*chunk.final, *failed})
        await self._record(chunk, {"event": "collected", "succeeded": succeeded,
                                   "retry": retry, "final": failed, "at": self._clock()})

    async def _finish(self, line: LineResult, requests: Mapping[str, Request],
                      final: dict[str, LineResult], on_result: OnResult | None, *,
                      latency: float = 0.0) -> None:
        """Make ``line`` the request's final result: priced, booked, handed over."""
        spec = self.target
        if line.completion is not None:
            cost = self._price.cost(line.completion.usage, batch=True) if self._price else 0.0
            completion = replace(line.completion, cost_usd=cost, latency_s=latency)
            line = replace(line, completion=completion)
            if self._accounting is not None:
                self._accounting.record_success(self.stage, spec, completion, cached=False,
                                                latency_s=latency, attempts=1, batch=True)
        elif self._accounting is not None and line.error is not None:
            self._accounting.record_failure(self.stage, spec, line.error, attempts=1)
        if line.error is not None:
            line.error.item_id = requests[line.custom_id].item_id
        final[line.custom_id] = line
        if on_result is not None:
            await on_result(line)

    # ---- budget ---------------------------------------------------------------------------

    def _reserve(self, chunk: ChunkRecord, requests: list[Request], *, strict: bool) -> None:
        if self._budget is None or self._price is None:
            return
        model = self.client.endpoint.model
        worst = sum(self._price.max_cost(count_chat_tokens(r.messages, model), r.max_tokens,
                                         batch=True) for r in requests)
        if self._budget.reserve(worst):
            self._reserved[chunk.chunk] = worst
        elif strict:
            raise BudgetExceeded(
                f"the next batch ({len(requests):,} requests) could cost up to ${worst:.4f} "
                f"at batch prices, which would pass the --max-cost cap of "
                f"${self._budget.max_cost:.2f} (spent ${self._budget.spent:.4f}); batches "
                "already sent keep running; re-run with a higher cap to resume")

    def _settle(self, chunk: ChunkRecord, lines: list[LineResult]) -> None:
        if self._budget is None:
            return
        actual = sum(line.completion.cost_usd for line in lines if line.completion)
        self._budget.settle(self._reserved.pop(chunk.chunk, 0.0), actual)

    async def refresh(self) -> list[ChunkRecord]:
        """Poll every open batch of this stage once (for ``mlift batches``); state changes
        go to the journal. Batches in doubt are left alone: a run may be creating them."""
        self._chunks = [c for c in await self.journal.load()
                        if c.stage == self.stage and c.target == self.target]
        await self._poll_once([c for c in self._chunks if c.open])
        return self._chunks

    # ---- cancelling -----------------------------------------------------------------------

    async def cancel(self, only: Collection[str] | None = None) -> list[Status]:
        """Ask the provider to cancel every open batch of this stage, or those of them
        whose batch id is in ``only`` (explicit, never automatic); their finished lines
        are still collected by the next ``run``."""
        chunks = [c for c in await self.journal.load()
                  if c.stage == self.stage and c.target == self.target]
        self._chunks = chunks
        out = []
        for chunk in chunks:
            if chunk.in_doubt:
                await self._resolve(chunk)
            if only is not None and chunk.batch_id not in only:
                continue
            if chunk.open and chunk.batch_id is not None:
                await self._record(chunk, {"event": "cancel", "at": self._clock()})
                out.append(await self._call(partial(self.client.cancel, chunk.batch_id)))
        return out

