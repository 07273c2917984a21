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
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Protocol

from mlift.engine.limiter import Demand, RateLimiter
from mlift.errors import ConfigError, EndpointUnusable, ProviderError
from mlift.providers.base import Endpoint

log = logging.getLogger(__name__)

SET_ASIDE_AFTER = 5
SET_ASIDE_S = 30.0
SET_ASIDE_MAX_S = 300.0


class Member(Protocol):
    endpoint: Endpoint
    limiter: RateLimiter
    health: Health
    slots: asyncio.Semaphore


class Health:
    """Whether one member may take requests now."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.out: EndpointUnusable | None = None   # for the rest of the run
        self.aside_until = float("-inf")
        self._row = 0
        self._aside_s = SET_ASIDE_S

    def usable(self, now: float) -> bool:
        return self.out is None and now >= self.aside_until

    def success(self) -> None:
        self._row = 0
        self._aside_s = SET_ASIDE_S

    def transient_failure(self, exc: ProviderError, now: float, *, pooled: bool) -> None:
        self._row += 1
        if pooled and self._row >= SET_ASIDE_AFTER:
            self.aside_until = now + self._aside_s
            log.warning("%s set aside for %.0f s after %d failures in a row (last: %s); "
                        "the other endpoints carry on", self.label, self._aside_s, self._row,
                        exc)
            self._aside_s = min(SET_ASIDE_MAX_S, 2 * self._aside_s)
            self._row = 0

    def unusable(self, exc: EndpointUnusable, *, pooled: bool) -> None:
        if self.out is None and pooled:
            log.warning("%s set aside for the rest of the run: %s", self.label, exc)
        self.out = self.out or exc


def pick(members: Sequence[Member], demand: Demand, now: float) -> tuple[Member | None, float]:
    """The usable member with a free slot that would admit ``demand`` soonest, and how
    soon (None: every usable member is busy or set aside)."""
    best: Member | None = None
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
