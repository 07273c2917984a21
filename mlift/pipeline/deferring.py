"""The engine a batch run's stages talk to: answers from the cache, or the item waits.

``DeferringEngine`` has the two methods the stages use of an
:class:`~mlift.engine.core.Engine` (``endpoint`` and ``complete``). For a
request of a stage in batch mode it never sends anything:

1. an answer that came back in a batch during this invocation is returned as
   it arrived (priced at batch rates, ``cached=False``), so the item's usage
   reads as an online run's would;
2. otherwise a cached answer is returned (marked cached, $0), as the engine
   would return it;
3. a request that failed in its batch for good raises ``StageReject`` with
   ``batch_failed`` / ``batch_expired`` / ``batch_canceled`` and the
   provider's detail, marked for retry on the next run;
4. anything else is recorded as pending for its (stage, endpoint) and the
   item is put off (``Deferred``) until the batch runner has sent it.

Requests of other stages go to the engine as usual (online).

An item is replayed from its start in every pass until it finishes, so what
a replay does must not count twice: the cache hits it books and the batch
answers it holds are kept per item (:class:`ItemScope`, set for each item's
work by the batch runner) and committed only when the item finishes — a
deferred item's bookings are dropped and made again by the pass that
finishes it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field

from mlift.batch import LineResult
from mlift.engine.cachekey import cache_key
from mlift.engine.core import Engine
from mlift.pipeline.stages import StageReject
from mlift.providers.base import Endpoint
from mlift.runfolder.run import Deferred
from mlift.types import Completion, Request

# What the outcome of a line that failed for good becomes as a reject code.
REJECT_CODES = {"failed": "batch_failed", "expired": "batch_expired",
                "canceled": "batch_canceled"}


@dataclass(slots=True)
class ItemScope:
    """What one item's work booked in this pass: committed if it finishes, else dropped."""

    hits: list[tuple[str, str, Completion]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


SCOPE: contextvars.ContextVar[ItemScope | None] = contextvars.ContextVar(
    "mlift_batch_item", default=None)


class DeferringEngine:
    """See the module docstring. ``batched(stage)`` says which stages go in batches."""

    def __init__(self, engine: Engine, batched: Callable[[str], bool]) -> None:
        self.inner = engine
        self.batched = batched
        # (stage, target) -> {custom_id (the cache key): request}, for the next batches.
        self.pending: dict[tuple[str, str], dict[str, Request]] = {}
        self.arrived: dict[str, Completion] = {}   # answers of this invocation's batches
        self.failed: dict[str, LineResult] = {}    # lines that failed for good

    @property
    def waiting(self) -> int:
        """Requests recorded for the next batches."""
        return sum(len(group) for group in self.pending.values())

    def endpoint(self, target: str) -> Endpoint:
        return self.inner.endpoint(target)

    async def complete(self, request: Request) -> Completion:
        if not self.batched(request.stage):
            return await self.inner.complete(request)
        endpoint = self.inner.endpoint(request.target)
        key = cache_key(request, endpoint)
        scope = SCOPE.get()
        fresh = self.arrived.get(key)
        if fresh is not None:
            if scope is None:
                del self.arrived[key]
            else:
                scope.used.add(key)
            return fresh
        cache = self.inner.cache
        hit = await cache.get(key) if cache is not None else None
        if hit is not None:
            if scope is None:
                self._book_hit(request.stage, endpoint.spec, hit)
            else:
                scope.hits.append((request.stage, endpoint.spec, hit))
            return hit
        failed = self.failed.get(key)
        if failed is not None:
            raise StageReject(request.stage, REJECT_CODES[failed.outcome], _detail(failed),
                              retry=True)
        self.pending.setdefault((request.stage, request.target), {})[key] = request
        raise Deferred(f"{request.stage} answer for {request.item_id} is in a batch")

    def commit(self, scope: ItemScope) -> None:
        """The item finished: book its cache hits, let go of the batch answers it used
        (another item asking the same is then a cache hit, as online)."""
        for stage, spec, hit in scope.hits:
            self._book_hit(stage, spec, hit)
        for key in scope.used:
            self.arrived.pop(key, None)

    def _book_hit(self, stage: str, spec: str, hit: Completion) -> None:
        self.inner.accounting.record_success(stage, spec, hit, cached=True, latency_s=0.0)

    async def arrive(self, line: LineResult) -> None:
        """A line's end, from ``StageBatches``: an answer is cached at once (a crash after
        this costs nothing), a failure kept for the item's reject."""
        if line.completion is not None:
            cache = self.inner.cache
            if cache is not None:
                await cache.put(line.custom_id, line.completion)
            self.arrived[line.custom_id] = line.completion
        else:
            self.failed[line.custom_id] = line


def _detail(line: LineResult) -> str:
    """The line's end in words: outcome, whether it was sent twice, batch, error."""
    again = ", sent twice" if line.retryable else ""
    where = f" in batch {line.batch_id}" if line.batch_id else ""
    error = f": {line.error}" if line.error is not None else ""
    return f"{line.outcome}{again}{where}{error}"
