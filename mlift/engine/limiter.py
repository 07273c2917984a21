"""Client-side rate limiting per endpoint, in closed loop with what the server says.

An endpoint has up to four limits, each a :class:`~mlift.engine.bucket.Bucket`:
requests/min, tokens/min (OpenAI's: prompt + ``max_tokens``, kept), and
Anthropic's separate input- and output-tokens/min (output charged
``max_tokens`` and settled to what was written). A limit is *told* (config or
flags), *announced* by the server (rate-limit headers, 429 bodies), or, for a
server that refuses without saying why, *estimated* from the rate that
passed.

Every request takes a :class:`Ticket`; how it ended comes back through
:meth:`RateLimiter.answered`, :meth:`~RateLimiter.refused` or
:meth:`~RateLimiter.failed`, and closes the loops:

* the token charge is mlift's estimate × a learned multiplier
  (:class:`~mlift.engine.control.ChargeModel`), because servers count their
  own way;
* ``remaining`` lowers a bucket to what the server has left (the server's
  count wins), carried forward over what was sent since that answer;
* a refusal is forgotten by the 60 s log (it used none of the server's
  window) but its charge stays in the level, Retry-After becomes a debt of
  the refusing limit, and the offered rate steps down (AIMD,
  :class:`~mlift.engine.control.Aimd`) — so a burst of 429s slows the
  endpoint instead of sending the retries at once;
* until the first answer (and, without any limit, until answers keep coming)
  only a small window of requests is out: a gentle start.

Waiters are served first-come first-served by one lock, so a large request
is not starved by small ones. Time is injected (``clock``/``sleep``) so tests
run on virtual time; cancellation while waiting takes nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from mlift.engine.bucket import EPS
from mlift.engine.dimension import Demand, Dimension, LimiterStats, Ticket
from mlift.engine.history import History
from mlift.engine.signals import (
    DIMENSIONS,
    INPUT,
    OUTPUT,
    REQUESTS,
    TOKENS,
    Quota,
    ServerReport,
    from_info,
)
from mlift.types import RateLimitInfo, Usage

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """The rpm/tpm limiter of one endpoint. ``None`` limits are unknown (unlimited until told).

    ``anthropic`` selects Anthropic's accounting: separate input and output
    token limits, unused reservations settled to the real usage. ``probe``
    caps the requests out before the first answer (``None``: no gentle start);
    without any known limit the cap then grows by one per answer up to
    ``max_window``. A request that *failed* (:meth:`failed`: the server
    refused it for good) keeps its place under the cap until an answer comes:
    an endpoint that fails everything (a wrong URL, an unknown model) gets the
    probe's few requests, then one at a time, never a burst.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 burst_s: float = 1.0, clock: Clock | None = None,
                 sleep: Sleep | None = None, anthropic: bool = False,
                 probe: int | None = None, max_window: int = 64) -> None:
        self._clock: Clock = clock or _loop_time
        self._sleep: Sleep = sleep or asyncio.sleep
        self._burst_s = burst_s
        self._anthropic = anthropic
        now = self._clock()
        self._limits: dict[str, Dimension] = {}
        for name, value in ((REQUESTS, rpm), (TOKENS, tpm)):
            if value:
                self._limits[name] = Dimension(name, value, "told", burst_s, now)
        self._cool_until = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._window: int | None = probe
        self._max_window = max_window
        self.outstanding = 0
        self._failed = 0  # failed since the last answer, while the cap holds
        self._queued = 0  # callers waiting in acquire
        self._rtt = 0.0
        self._history = History()  # the last minute's admissions, for limits learned later
        self.stats = LimiterStats()

    # ---- what it knows ----------------------------------------------------------------

    def _per_minute(self, name: str) -> float | None:
        limit = self._limits.get(name)
        return limit.bucket.per_minute if limit else None

    @property
    def rpm(self) -> float | None:
        return self._per_minute(REQUESTS)

    @property
    def tpm(self) -> float | None:
        return self._per_minute(TOKENS)

    @property
    def itpm(self) -> float | None:
        return self._per_minute(INPUT)

    @property
    def otpm(self) -> float | None:
        return self._per_minute(OUTPUT)

    def multiplier(self, name: str = TOKENS) -> float:
        """The learned server charge per unit of mlift's estimate (1.0 until learned)."""
        limit = self._limits.get(name)
        return limit.model.multiplier if limit else 1.0

    def describe(self) -> dict[str, Any]:
        """The limits as learned so far (for stats and messages)."""
        return {name: {"per_minute": lim.bucket.per_minute, "source": lim.source,
                       "share": round(lim.aimd.factor, 3),
                       "multiplier": round(lim.model.multiplier, 3)}
                for name, lim in sorted(self._limits.items())}

    def eta(self, demand: Demand) -> float:
        """About how long a new request would wait here (for choosing between endpoints)."""
        now = self._clock()
        if self._window_full():
            return math.inf
        wait = max(0.0, self._cool_until - now)
        queued = 1 + self._queued
        for lim in self._limits.values():
            wait = max(wait, lim.bucket.wait_for(queued * lim.amount(demand), now))
        return wait

    # ---- admission --------------------------------------------------------------------

    async def acquire(self, demand: Demand | int) -> Ticket:
        """Wait until one request may be sent; a plain int is a prompt of that many tokens."""
        if isinstance(demand, int):
            demand = Demand(demand)
        self._queued += 1
        try:
            return await self._admit(demand)
        finally:
            self._queued -= 1

    async def _admit(self, demand: Demand) -> Ticket:
        async with self._lock:
            while True:
                now = self._clock()
                self._climb(now)
                if self._window_full():
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                wait = self._cool_until - now
                for lim in self._limits.values():
                    wait = max(wait, lim.bucket.wait_for(lim.amount(demand), now))
                if wait <= EPS:
                    break
                self.stats.waits += 1
                # Re-check after sleeping — or as soon as an answer comes back,
                # which may have given tokens back (Anthropic settles output to
                # what was written): a cooldown, debt or tighter limit may have
                # arrived meanwhile too.
                self._wake.clear()
                await self._nap(wait)
                self.stats.waited_s += self._clock() - now
            return self._take(demand, now)

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` (with the injected sleep), or less if an answer wakes us."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def try_acquire(self, demand: Demand) -> Ticket | None:
        """Admit one request now if it may go at once (and nobody is queued); else None."""
        if self._lock.locked():
            return None
        now = self._clock()
        self._climb(now)
        if self._window_full():
            return None
        wait = self._cool_until - now
        for lim in self._limits.values():
            wait = max(wait, lim.bucket.wait_for(lim.amount(demand), now))
        return self._take(demand, now) if wait <= EPS else None

    def _window_full(self) -> bool:
        """The gentle start's cap is reached (see the class's docstring)."""
        if self._window is None:
            return False
        if self.outstanding >= self._window:
            return True
        # Failures hold their places while something is out that may still answer;
        # when nothing is, one more may go (a failure may be its item's own).
        return self.outstanding > 0 and self.outstanding + self._failed >= self._window

    def _take(self, demand: Demand, now: float) -> Ticket:
        ticket = Ticket(now, demand)
        for name, lim in self._limits.items():
            amount = lim.amount(demand)
            ticket.entries[name] = lim.bucket.take(amount, now)
            lim.reserved += amount
            lim.estimated += demand.estimate(name)
            ticket.reserved_after[name] = lim.reserved
            ticket.estimated_after[name] = lim.estimated
        self.outstanding += 1
        self._history.add(now, demand.prompt, demand.max_output)
        return ticket

    def _climb(self, now: float) -> None:
        for lim in self._limits.values():
            factor = lim.aimd.advance(now)
            if factor != lim.bucket.factor:
                lim.bucket.set_factor(factor, now)

    def _finish(self, ticket: Ticket) -> bool:
        if ticket.done:
            return False
        ticket.done = True
        self.outstanding -= 1
        self._wake.set()
        return True

    # ---- how it ended -----------------------------------------------------------------

    def answered(self, ticket: Ticket, report: ServerReport | RateLimitInfo | None = None,
                 usage: Usage | None = None) -> None:
        """The server answered; ``report`` is what its headers said."""
        if not self._finish(ticket):
            return
        now = self._clock()
        latency = now - ticket.at
        self._rtt = latency if not self._rtt else 0.8 * self._rtt + 0.2 * latency
        report = self._as_report(report)
        self._failed = 0
        self._learn(report, now)
        self._sync(report, ticket, now)
        if usage is not None and self._anthropic:
            self._settle(ticket, usage, now)
        # Anthropic's answers name a token limit without saying which (input or
        # output); until a refusal tells, keep starting slowly.
        unnamed = (self._anthropic and report.unnamed_tokens is not None
                   and INPUT not in self._limits and OUTPUT not in self._limits)
        if self._limits and not unnamed:
            self._window = None  # the buckets pace from here
        elif self._window is not None:
            self._window += 1    # slow start: one more per answer
            if self._window >= self._max_window:
                self._window = None

    def refused(self, ticket: Ticket, report: ServerReport | None = None) -> None:
        """The server refused it (429): it will be retried through :meth:`acquire` again."""
        if not self._finish(ticket):
            return
        now = self._clock()
        report = report or ServerReport()
        self.stats.refusals += 1
        self._history.remove(ticket.at, ticket.demand.prompt, ticket.demand.max_output)
        for name, entry in ticket.entries.items():
            self._limits[name].bucket.forget(entry, now)
        tokens = self._limits.get(TOKENS)
        if tokens is not None and tokens.telescope is not None:
            tokens.telescope.refusal(ticket.at)
        self._learn(report, now)
        by = report.refused_by
        if report.requested and by in (TOKENS, INPUT) and by in self._limits:
            self._limits[by].sample(report.requested, ticket.demand.estimate(by))
        self._sync(report, ticket, now)
        if not self._limits:
            self._estimate_limit(now)
        retry_after = report.retry_after_s
        hold = max(1.0, 2 * self._rtt)
        if by in self._limits:
            targets = [self._limits[by]]
        else:
            self.cool_down(retry_after if retry_after is not None else 1.0)
            targets = list(self._limits.values())
        if retry_after is not None:
            # The server says this request could pass in retry_after: a debt of
            # the limit that refused it (of every limit, when it named none),
            # so the retries after it leave one by one, not in a burst.
            for lim in targets:
                need = min(lim.amount(ticket.demand), lim.bucket.capacity)
                since = lim.reserved - ticket.reserved_after.get(lim.name, 0.0)
                debt = need - lim.bucket.per_minute / 60 * retry_after - since
                if lim.bucket.lower_to(debt, now):
                    self.stats.synced += 1
        for lim in targets:
            if lim.aimd.refused(now, hold):
                self.stats.decreases += 1
                observed = self._observed_per_minute(now) if lim.aimd.decreases > 1 else None
                if lim.source == "estimated" and observed is not None:
                    # What passed just before the refusal is the best guess of the limit.
                    lim.bucket.set_limit(observed, now)
                    lim.aimd.rebase()
                lim.bucket.set_factor(lim.aimd.factor, now)
        self._window = None

    def failed(self, ticket: Ticket) -> None:
        """The server refused it for good (a 4xx other than 429); what it took stays taken."""
        if self._finish(ticket) and self._window is not None:
            self._failed += 1

    def abandon(self, ticket: Ticket) -> None:
        """No answer (timeout, lost connection, cancelled); what it took stays taken (the
        server may have charged). A no-op once settled."""
        self._finish(ticket)

    def cool_down(self, seconds: float) -> None:
        """Pause the whole endpoint (a 429 said Retry-After ``seconds``, naming no limit)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._cool_until:
            self._cool_until = until
            self.stats.cooldowns += 1

    # ---- learning ---------------------------------------------------------------------

    def _as_report(self, report: ServerReport | RateLimitInfo | None) -> ServerReport:
        if isinstance(report, RateLimitInfo):
            return from_info(report, anthropic=self._anthropic)
        return report or ServerReport()

    def _named(self, report: ServerReport) -> dict[str, Quota]:
        """The report's quotas, with Anthropic's unnamed tokens-* matched to a family."""
        quotas = dict(report.quotas)
        loose = report.unnamed_tokens
        if loose is not None and loose.limit:
            for name in (INPUT, OUTPUT):
                lim = self._limits.get(name)
                if lim and name not in quotas and abs(lim.bucket.per_minute - loose.limit) < 0.5:
                    quotas[name] = loose
                    break
        return quotas

    def _learn(self, report: ServerReport, now: float) -> None:
        for name, quota in report.quotas.items():
            if quota.limit:
                self._announce(name, quota.limit, now, known_level=quota.remaining is not None)
        if report.refused_by and report.body_limit:
            self._announce(report.refused_by, report.body_limit, now, known_level=False)

    def _announce(self, name: str, per_minute: float, now: float, *, known_level: bool) -> None:
        """The server announced a limit: adopt it if it is new or tighter (or ours was a guess)."""
        lim = self._limits.get(name)
        if lim is None or lim.source == "estimated":
            granularity = 500.0 if self._anthropic and name != REQUESTS else 0.0
            # A level the server reports is synced right after; without one we
            # do not know what this window already spent: start empty. Nor do we
            # from a level rounded to the nearest thousand (Anthropic's tokens),
            # which can be more than a second's burst above the truth.
            exact = known_level and not granularity
            self._limits[name] = Dimension(name, per_minute, "server", self._burst_s, now,
                                        level=None if exact else 0.0,
                                        granularity=granularity)
            self._replay(self._limits[name], now)
            self.stats.tightened += 1
        elif per_minute < lim.bucket.per_minute - 1e-9:
            lim.bucket.set_limit(per_minute, now)
            lim.source = "server"
            self.stats.tightened += 1

    def _replay(self, lim: Dimension, now: float) -> None:
        """A new limit's 60 s log: what was sent in the last minute (refusals excepted)."""
        for at, requests, prompt, max_output in self._history.bins(now - 61.0):
            amount = requests if lim.name == REQUESTS else lim.amount(
                Demand(round(prompt), round(max_output)))
            lim.bucket.record(at, amount)

    def _sync(self, report: ServerReport, ticket: Ticket, now: float) -> None:
        """Lower each bucket to what the server had left, carried forward to now."""
        for name, quota in self._named(report).items():
            lim = self._limits.get(name)
            if lim is None or quota.remaining is None:
                continue
            rate = (quota.limit or lim.bucket.per_minute) / 60.0
            since = lim.reserved - ticket.reserved_after.get(name, 0.0)
            left = quota.remaining + rate * max(0.0, now - ticket.at) - since
            if lim.bucket.lower_to(left + lim.granularity, now):
                self.stats.synced += 1
            if lim.telescope is not None and name in ticket.estimated_after:
                lim.telescope.observe(ticket.at, ticket.estimated_after[name],
                                      quota.remaining, quota.reset_s, rate)

    def _settle(self, ticket: Ticket, usage: Usage, now: float) -> None:
        """Anthropic's accounting: input charged as counted, output adjusted to what was written."""
        actual = {INPUT: float(max(0, usage.input_tokens - usage.cached_input_tokens)),
                  OUTPUT: float(usage.output_tokens),
                  TOKENS: float(usage.input_tokens + usage.output_tokens)}
        if ticket.demand.prompt > 0 and INPUT in self._limits:
            self._limits[INPUT].sample(actual[INPUT], ticket.demand.prompt)
        for name, entry in ticket.entries.items():
            if name == REQUESTS:
                continue
            charged = actual[name]
            if name == TOKENS:
                charged = min(charged, entry.amount)  # a told combined limit: refunds only
            lim = self._limits[name]
            lim.reserved += charged - entry.amount
            lim.bucket.settle(entry, charged, now)

    def _observed_per_minute(self, now: float) -> float | None:
        """Requests admitted (and not refused) per minute over the last ~10 s that have
        answered; None with under a second of history."""
        end = now - self._rtt
        first = self._history.first
        start = end if first is None else max(end - 10.0, first)
        if end - start < 1.0:
            return None
        return max(1.0, self._history.requests_between(start, end) / (end - start) * 60.0)

    def _estimate_limit(self, now: float) -> None:
        """Refused with no limit known or named: guess one from the rate that passed."""
        first = self._history.first
        window = 1.0 if first is None else min(10.0, max(1.0, now - first))
        per_minute = max(1.0, self._history.requests_between(now - window, now + 1) / window * 60)
        self._limits[REQUESTS] = Dimension(REQUESTS, per_minute, "estimated", self._burst_s, now,
                                        level=0.0)
        self._replay(self._limits[REQUESTS], now)
        self.stats.tightened += 1


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


__all__ = ["DIMENSIONS", "Demand", "LimiterStats", "RateLimiter", "Ticket"]
