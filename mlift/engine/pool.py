"""Several endpoints for one model: spread by learned capacity, set a failing one aside.

A target may name several endpoints that serve the same model — several keys
(``--judge key1:gpt-4o-mini,key2:gpt-4o-mini``, one profile per key) or
several servers (``--base-url http://a:8000/v1,http://b:8000/v1``). Each
member keeps its own limiter, concurrency cap and breaker. Requests wait in
one queue per target and are bound to a member only when one can admit them:
each attempt (a retry too) goes to the member with a free slot that would
admit it soonest by its own learned limits — ties, as between servers
without limits, to the one with the fewest requests out, which spreads by
speed. Binding late matters: a request bound early waits behind the slowest
member's queue.

A member that keeps failing is set aside with a message: after
``SET_ASIDE_AFTER`` transient failures in a row (connection refused, 5xx,
timeouts) for a while that doubles each time, and for the rest of the run
when its key is rejected or its breaker trips. The others carry on; only
when every member is out does the target fail.

A member nothing has ever answered — every connection refused, or its host
unknown, for ``UNREACHABLE_AFTER_S`` and at least ``UNREACHABLE_TRIES``
attempts — is out for the run with :class:`~mlift.errors.EndpointUnreachable`
(a wrong port or a server not started), so the run stops in seconds instead
of retrying every item for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from mlift.engine.limiter import Demand, RateLimiter, Sleep, Ticket
from mlift.errors import (
    ConfigError,
    ConnectionFailed,
    EndpointUnreachable,
    EndpointUnusable,
    ProviderError,
)
from mlift.providers.base import Endpoint

log = logging.getLogger(__name__)

SET_ASIDE_AFTER = 5
SET_ASIDE_S = 30.0
SET_ASIDE_MAX_S = 300.0
UNREACHABLE_AFTER_S = 5.0
UNREACHABLE_TRIES = 3


class Member(Protocol):
    endpoint: Endpoint
    limiter: RateLimiter
    health: Health
    slots: asyncio.Semaphore


M = TypeVar("M", bound=Member)


class Health:
    """Whether one member may take requests now."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.label = endpoint.spec
        self.out: EndpointUnusable | None = None   # for the rest of the run
        self.aside_until = float("-inf")
        self.answered = False                      # has it ever answered a request?
        self._row = 0
        self._aside_s = SET_ASIDE_S
        self._unreachable_since: float | None = None
        self._unreachable_tries = 0
        self.gone = asyncio.Event()                # set when it goes out

    def usable(self, now: float) -> bool:
        return self.out is None and now >= self.aside_until

    def success(self) -> None:
        self._row = 0
        self._aside_s = SET_ASIDE_S
        self.answered = True

    def transient_failure(self, exc: ProviderError, now: float, *, pooled: bool) -> None:
        if not isinstance(exc, ConnectionFailed):
            self.answered = True  # a status, a timeout, a torn body: something is there
        elif not self.answered:
            self._no_server(exc, now, pooled=pooled)
        self._row += 1
        if pooled and self._row >= SET_ASIDE_AFTER:
            self.aside_until = now + self._aside_s
            log.warning("%s set aside for %.0f s after %d failures in a row (last: %s); "
                        "the other endpoints carry on", self.label, self._aside_s, self._row,
                        exc)
            self._aside_s = min(SET_ASIDE_MAX_S, 2 * self._aside_s)
            self._row = 0

    def _no_server(self, exc: ProviderError, now: float, *, pooled: bool) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = now
        self._unreachable_tries += 1
        waited = now - self._unreachable_since
        if waited >= UNREACHABLE_AFTER_S and self._unreachable_tries >= UNREACHABLE_TRIES:
            self.unreachable(exc, now, pooled=pooled)

    def unreachable(self, exc: ProviderError, now: float, *, pooled: bool) -> None:
        """Out: nothing ever answered here. Also when one item has used up every try
        without a connection, however few seconds that took (its jittered backoffs can
        be short), rather than file that item as failed."""
        waited = now - (self._unreachable_since if self._unreachable_since is not None else now)
        ep = self.endpoint
        url = ep.base_url or f"the {ep.kind} kind's default URL"
        self.unusable(EndpointUnreachable(
            f"nothing answered at {url} for model {ep.model!r}: {self._unreachable_tries} "
            f"connections failed over {waited:.0f}s (last: {exc.args[0] if exc.args else exc}). "
            f"Check the host and port in --base-url (or the profile's base_url), and that "
            f"the server is running. Items not yet done were left for the next run: fix "
            f"the endpoint and re-run the same command",
            provider=ep.name, model=ep.model), pooled=pooled)

    def unusable(self, exc: EndpointUnusable, *, pooled: bool) -> None:
        if self.out is None and pooled:
            log.warning("%s set aside for the rest of the run: %s", self.label, exc)
        self.out = self.out or exc
        self.gone.set()


def pick(members: Sequence[M], demand: Demand, now: float) -> tuple[M | None, float]:
    """The usable member with a free slot that would admit ``demand`` soonest, and how
    soon (None: every usable member is busy or set aside)."""
    best: M | None = None
    best_key = (math.inf, math.inf)
    for member in members:
        if not member.health.usable(now) or member.slots.locked():
            continue
        key = (member.limiter.eta(demand), float(member.limiter.outstanding))
        if best is None or key < best_key:
            best, best_key = member, key
    return best, best_key[0]


def next_usable_at(members: Sequence[Member]) -> float | None:
    """When the first member set aside for a while comes back (None: all out for good)."""
    times = [m.health.aside_until for m in members if m.health.out is None]
    return min(times) if times else None


def label(endpoint: Endpoint, members: Sequence[Endpoint]) -> str:
    """How a member is named in messages: its spec, plus its URL where specs repeat."""
    same = sum(1 for m in members if m.spec == endpoint.spec)
    return f"{endpoint.spec} at {endpoint.base_url}" if same > 1 else endpoint.spec


def check_same_model(spec: str, endpoints: Sequence[Endpoint]) -> None:
    """A pool serves one model: every member must name the same one."""
    models = sorted({ep.model for ep in endpoints})
    if len(models) > 1:
        raise ConfigError(f"{spec!r}: the endpoints of one target must serve the same model "
                          f"(they answer for each other and share cached answers), got "
                          f"{', '.join(models)}")


class Target(Generic[M]):
    """What a ``NAME:MODEL[,NAME:MODEL…]`` spec resolved to: one or more endpoints."""

    def __init__(self, members: list[M]) -> None:
        self.members = members
        self.primary = members[0]  # its endpoint keys the cache: any member's answer is one
        self.lock = asyncio.Lock()

    @property
    def pooled(self) -> bool:
        return len(self.members) > 1

    def unusable(self) -> EndpointUnusable | None:
        """The error to raise when no member can ever serve again."""
        outs = [m.health.out for m in self.members]
        return outs[0] if all(outs) else None

    async def backoff(self, sleep: Sleep, seconds: float) -> None:
        """A retry's wait, cut short when every member goes out (its next attempt then
        raises at once: a stopped run must not wait out the longest backoff)."""
        pending = [m.health.gone for m in self.members if m.health.out is None]
        if not pending:
            return
        napping = asyncio.ensure_future(sleep(seconds))
        watching = [asyncio.ensure_future(gone.wait()) for gone in pending]
        try:
            while not napping.done() and self.unusable() is None:
                await asyncio.wait([napping, *watching], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (napping, *watching):
                task.cancel()

    async def admit(self, demand: Demand, sleep: Sleep) -> tuple[M, Ticket]:
        """A concurrency slot and an admission from one member (the caller releases the slot)."""
        if not self.pooled:
            state = self.primary
            await state.slots.acquire()
            try:
                return state, await state.limiter.acquire(demand)
            except BaseException:
                state.slots.release()
                raise
        loop = asyncio.get_running_loop()
        async with self.lock:  # one queue for the target, first come first served
            while True:
                fatal = self.unusable()
                if fatal is not None:
                    raise fatal
                picked, wait = pick(self.members, demand, loop.time())
                if picked is not None and wait <= 1e-6:
                    member = picked
                    await member.slots.acquire()  # free: picked only with a free slot
                    ticket = member.limiter.try_acquire(demand)
                    if ticket is not None:
                        return member, ticket
                    member.slots.release()
                    wait = 0.005
                elif picked is None:
                    back = next_usable_at(self.members)
                    wait = 0.01 if back is None else max(0.01, back - loop.time())
                # Look again when the soonest member should be ready (or an answer
                # frees a slot somewhere), at least every second.
                await sleep(min(wait, 1.0))
