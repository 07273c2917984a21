"""``Engine.complete(request)``: the only way a stage talks to a model.

Inside, in this order (DESIGN.md §3.1):

1. cache — a hit returns at once, costs $0 and no rate-limit charge;
2. budget — a request whose worst case could pass ``--max-cost`` is refused;
3. the endpoint: a target may name several for one model (``a:m,b:m``); each
   attempt goes to the one that would admit it soonest (:mod:`.pool`);
4. concurrency cap, then that endpoint's closed-loop limiter (admission
   happens right before sending, so the limiter's timing is the wire's);
5. the provider call, under a timeout that fits the latencies seen so far;
6. retries (tenacity, the one owner); a 429 goes back through the limiter,
   which has learned from it;
7. accounting, what the server said fed back to the limiter, the cache write.

A caller that knows which requests come next (``mlift requests`` reads its
input ahead) may ``prefetch`` them: their cache lookups are made together, in
one hop to the cache's thread, and ``complete`` of the same request objects
then answers a hit at once. What a hit returns, records and costs is the same
either way.

Two things stop a run instead of failing items: an authentication failure
poisons its endpoint (every later call fails at once), and the circuit
breaker (:mod:`.breaker`) trips when every request fails the same permanent
way, as behind a wrong ``--base-url``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import itertools
from collections.abc import Callable, Sequence
from types import TracebackType

from tenacity import RetryCallState

from mlift.engine import signals
from mlift.engine.accounting import Accounting, Budget, usd
from mlift.engine.cache import ResponseCache
from mlift.engine.cachekey import cache_key
from mlift.engine.endpoint import EndpointState
from mlift.engine.limiter import Demand, RateLimiter, Sleep
from mlift.engine.pool import Target, check_same_model, label
from mlift.engine.retry import RetryPolicy, TimeoutPolicy
from mlift.errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    ConnectionFailed,
    EndpointUnusable,
    PermanentError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    TransientError,
)
from mlift.prices import Price, PriceTable
from mlift.providers.base import Endpoint, Provider
from mlift.providers.registry import create_provider
from mlift.tokens import count_chat_tokens, warm_up
from mlift.types import Completion, Request

Resolver = Callable[[str], Endpoint | Sequence[Endpoint]]

class Engine:
    """Runs model requests at the provider's limit, paying once per answer."""

    def __init__(self, resolve: Resolver, *, cache: ResponseCache | None = None,
                 accounting: Accounting | None = None, budget: Budget | None = None,
                 prices: PriceTable | None = None, retry: RetryPolicy | None = None,
                 timeouts: Callable[[], TimeoutPolicy] = TimeoutPolicy,
                 sleep: Sleep = asyncio.sleep,
                 provider_factory: Callable[[Endpoint], Provider] = create_provider) -> None:
        self._resolve = resolve
        self.cache = cache
        self.accounting = accounting or Accounting()
        self.budget = budget or Budget(None)
        self._prices = prices or PriceTable.load()
        self._retry = retry or RetryPolicy()
        self._timeouts = timeouts
        self._sleep = sleep
        self._factory = provider_factory
        self._targets: dict[str, Target[EndpointState]] = {}
        self._shared: dict[tuple[str, ...], EndpointState] = {}
        # Endpoints that share a server, model and key with another one but not
        # all its settings (structured outputs, transport, price).
        self._own: dict[Endpoint, EndpointState] = {}
        self._ids = itertools.count()
        # prefetch()'s lookups, by id() of the request object until complete() takes them:
        # (that request, its cache key, the hit or None).
        self._prefetched: dict[int, tuple[Request, str, Completion | None]] = {}
        # Tokenizers by model, loaded in a thread by the first request that counts tokens.
        self._tokenizers: dict[str, asyncio.Future[str]] = {}

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def prepare(self, *targets: str, tokenizers: bool = True) -> None:
        """Resolve ``targets`` now (as :meth:`endpoint` does) and load their tokenizers in a
        thread.

        A tokenizer's first load reads its file from disk (about half a second
        for o200k_base), which on the event loop would stall every request in
        flight. ``tokenizers=False`` leaves the load to the first request that
        is sent (``complete`` waits for it in a thread), for a caller that
        counts no tokens itself: a re-run answered from the cache never loads one.
        """
        resolved = [self._target(spec) for spec in targets]
        if tokenizers:
            for target in resolved:
                await self._tokenizers_of(target)

    async def _tokenizers_of(self, target: Target[EndpointState]) -> None:
        """Every member's tokenizer loaded: the request's tokens are counted next, and a
        server that reports no usage has its answer counted (``LocalUsage``).

        The first request for a model loads it in a thread (reading the file
        would stall the event loop), shielded so that a cancelled request does
        not cancel the load others wait for; later ones find it done.
        """
        for member in target.members:
            model = member.endpoint.model
            loading = self._tokenizers.get(model)
            if loading is None:
                loading = self._tokenizers[model] = asyncio.ensure_future(
                    asyncio.to_thread(warm_up, model))
            if not loading.done():
                await asyncio.shield(loading)

    def endpoint(self, target: str) -> Endpoint:
        """Resolve a ``NAME:MODEL`` spec, validating it (and its price) now.

        For a target naming several endpoints, the first (whose answers the
        cache keeps for all of them).
        """
        return self._target(target).primary.endpoint

    def endpoints(self, target: str) -> list[Endpoint]:
        return [m.endpoint for m in self._target(target).members]

    def price(self, target: str) -> Price:
        return self._target(target).primary.price

    def structured_outputs(self, target: str) -> bool:
        """Whether ``target``'s provider has the server enforce ``Request.output_schema``
        (for several endpoints: every one of them)."""
        return all(m.provider.structured_outputs for m in self._target(target).members)

    def limiter(self, target: str) -> RateLimiter:
        return self._target(target).primary.limiter

    def provider(self, target: str) -> Provider:
        """The provider behind a spec (batch mode asks the in-process simulator its URL);
        for several endpoints, the first's."""
        return self._target(target).primary.provider

    def limits(self) -> dict[str, dict[str, object]]:
        """What each endpoint's limiter has learned (for stats and messages)."""
        seen: dict[str, dict[str, object]] = {}
        for target in self._targets.values():
            for m in target.members:
                seen[label(m.endpoint, [x.endpoint for x in target.members])] = \
                    m.limiter.describe()
        return seen

    def _resolved(self, spec: str) -> list[Endpoint]:
        """The endpoints a ``NAME:MODEL[,NAME:MODEL…]`` spec names (nothing is built)."""
        endpoints: list[Endpoint] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                raise ConfigError(f"target {spec!r} has an empty entry (NAME:MODEL,…)")
            resolved = self._resolve(part)
            endpoints.extend([resolved] if isinstance(resolved, Endpoint) else resolved)
        return endpoints

    def _target(self, spec: str) -> Target[EndpointState]:
        target = self._targets.get(spec)
        if target is None:
            endpoints = self._resolved(spec)
            check_same_model(spec, endpoints)
            target = self._targets[spec] = Target([self._member(ep) for ep in endpoints])
            if target.pooled:
                for m in target.members:
                    m.health.label = label(m.endpoint, endpoints)
        return target

    def _member(self, endpoint: Endpoint) -> EndpointState:
        # A model without a price fails here, before anything is sent.
        price = self._prices.price_for(endpoint)
        # Limits are per server, model and key: profiles that point at the same
        # server and model with the same key share one limiter; another key
        # has its own (the key itself is only hashed, in memory).
        key_id = hashlib.sha256((endpoint.api_key or "").encode()).hexdigest()[:16]
        state = self._shared.get((*endpoint.limit_key, key_id))
        if state is None:
            state = EndpointState(endpoint, self._factory(endpoint), price, self._sleep,
                                   self._timeouts())
            self._shared[(*endpoint.limit_key, key_id)] = state
        elif dataclasses.replace(state.endpoint, name=endpoint.name) != endpoint:
            # The same server, model and key through other settings: a client,
            # price and breaker of its own; the same limits, slots, timeouts and
            # health (it is the same server's capacity).
            own = self._own.get(endpoint)
            if own is None:
                own = EndpointState(endpoint, self._factory(endpoint), price, self._sleep,
                                     state.timeouts)
                own.limiter, own.slots, own.inflight = state.limiter, state.slots, state.inflight
                own.health = state.health
                self._own[endpoint] = own
            state = own
        return state

    async def prefetch(self, requests: Sequence[Request]) -> None:
        """Look ``requests`` up in the cache together, for ``complete`` to find them.

        For callers that know what comes next: one hop to the cache's thread
        for all of them instead of one wait each. Only ``complete`` of the
        very same request objects uses the result (requests are immutable
        values), each once; a miss is looked up again there, so an answer
        stored meanwhile (an identical request answered earlier in the run)
        is still a hit. A request that ``complete`` would refuse (a bad spec,
        a parameter that is not JSON) is left out, to fail there as before.
        Callers prefetch only what they are about to complete: entries stay
        until then.
        """
        if self.cache is None or not requests:
            return
        keyed: list[tuple[Request, str]] = []
        for request in requests:
            try:
                keyed.append((request, cache_key(request,
                                                 self._target(request.target).primary.endpoint)))
            except Exception:  # complete() raises it for this request, where it belongs
                continue
        found = await self.cache.get_many([key for _, key in keyed], count_misses=False)
        for (request, key), hit in zip(keyed, found, strict=True):
            self._prefetched[id(request)] = (request, key, hit)

    def prefetched_hit(self, request: Request) -> Completion | None:
        """The hit ``prefetch`` found for this very request, booked as ``complete`` books
        one, or None (then ``complete`` takes the request: a miss, or nothing prefetched)."""
        looked = self._prefetched.get(id(request))
        if looked is None or looked[0] is not request or looked[2] is None:
            return None
        target = self._target(request.target)
        if target.unusable() is not None:
            return None  # complete() raises it
        del self._prefetched[id(request)]
        return self._hit(request, target.primary.endpoint, looked[2])

    def _hit(self, request: Request, primary: Endpoint, hit: Completion) -> Completion:
        # A hit comes back marked cached, at $0.
        self.accounting.record_success(request.stage, primary.spec, hit,
                                       cached=True, latency_s=0.0)
        return hit

    async def complete(self, request: Request) -> Completion:
        target = self._target(request.target)
        fatal = target.unusable()
        if fatal is not None:
            raise fatal
        primary = target.primary.endpoint
        looked = self._prefetched.pop(id(request), None) if self._prefetched else None
        if looked is not None and looked[0] is request:
            key, hit = looked[1], looked[2]
        else:
            key, hit = cache_key(request, primary), None
        if self.cache is not None:
            if hit is None:
                hit = await self.cache.get(key)
            if hit is not None:
                return self._hit(request, primary, hit)

        await self._tokenizers_of(target)
        demand = Demand(count_chat_tokens(request.messages, primary.model), request.max_tokens)
        worst = max(m.price.max_cost(demand.prompt, request.max_tokens) for m in target.members)
        if not self.budget.reserve(worst):
            raise BudgetExceeded(
                f"the next request could cost up to ${worst:.4f}, which would pass the "
                f"--max-cost cap of {usd(self.budget.max_cost or 0.0)} "
                f"(the run has spent ${self.budget.total_spent:.4f}); re-run with a higher cap "
                f"to resume")
        attempts = 0
        state = target.primary
        completion: Completion | None = None
        try:
            while completion is None:
                outcome = await self._with_retries(target, request, demand)
                attempts += outcome.attempts
                state = outcome.state
                completion = outcome.completion
                if completion is not None:
                    break
                assert outcome.error is not None
                error = await self._verdict(target, state, outcome.error)
                if isinstance(error, EndpointUnusable) and target.unusable() is None:
                    continue  # another member of the pool takes it
                raise error
        except ProviderError as exc:
            self.budget.release(worst)
            exc.item_id = request.item_id
            self.accounting.record_failure(request.stage, state.endpoint.spec, exc)
            raise
        except BaseException:
            self.budget.release(worst)
            raise

        cost = state.price.cost(completion.usage)
        self.budget.settle(worst, cost)
        completion = dataclasses.replace(completion, cost_usd=cost, attempts=attempts)
        self.accounting.record_success(request.stage, state.endpoint.spec, completion,
                                       cached=False, latency_s=completion.latency_s)
        if self.cache is not None:
            await self.cache.put(key, completion)
        return completion

    async def _with_retries(self, target: Target[EndpointState], request: Request,
                            demand: Demand) -> _Outcome:
        """Attempts with retries; each attempt goes to the member that can take it soonest."""
        outcome = _Outcome(target.primary)

        def on_retry(call: RetryCallState) -> None:
            exc = call.outcome.exception() if call.outcome else None
            if isinstance(exc, ProviderError):
                self.accounting.record_retry(request.stage, outcome.state.endpoint.spec, exc)

        for m in target.members:
            m.active += 1
        try:
            async for attempt in self._retry.retrying(
                    functools.partial(target.backoff, self._sleep), on_retry):
                with attempt:
                    outcome.completion = await self._attempt(target, request, demand, outcome)
        except ProviderError as exc:
            outcome.error = exc
        finally:
            for m in target.members:
                m.active -= 1
                m.breaker.notify()
        return outcome

    async def _verdict(self, target: Target[EndpointState], state: EndpointState,
                       error: ProviderError) -> ProviderError:
        """What a request that failed for good raises: its own error, or its endpoint's."""
        if state.health.out is not None:
            return state.health.out  # the endpoint is out: not this item's fault
        if isinstance(error, ConnectionFailed) and not state.health.answered:
            state.health.unreachable(error, asyncio.get_running_loop().time(),
                                     pooled=target.pooled)
            return state.health.out or error
        if isinstance(error, AuthError):
            state.health.unusable(error, pooled=target.pooled)
            return error
        if isinstance(error, PermanentError):
            verdict = await state.breaker.failure(error)
            if isinstance(verdict, EndpointUnusable):
                state.health.unusable(verdict, pooled=target.pooled)
            return verdict
        if isinstance(error, EndpointUnusable):
            state.health.unusable(error, pooled=target.pooled)
        return error

    async def _attempt(self, target: Target[EndpointState], request: Request, demand: Demand,
                       outcome: _Outcome) -> Completion:
        loop = asyncio.get_running_loop()
        pooled = target.pooled
        state, ticket = await target.admit(demand, self._sleep)
        outcome.state = state
        try:
            if state.health.out is not None:  # it went out while this one waited
                state.limiter.abandon(ticket)
                raise state.health.out
            outcome.attempts += 1  # an HTTP attempt: counted only when it is sent
            self.accounting.record_attempt(request.stage, state.endpoint.spec)
            start = loop.time()
            call_id = next(self._ids)
            try:
                async with asyncio.timeout_at(start + state.timeouts.current_s) as deadline:
                    state.inflight[call_id] = (start, start, deadline)
                    completion = await state.provider.complete(request)
                state.limiter.answered(ticket, completion.ratelimit, completion.usage)
            except TimeoutError as exc:
                if isinstance(exc, ProviderError):
                    state.health.transient_failure(exc, loop.time(), pooled=pooled)
                    raise
                timeout = ProviderTimeout(
                    f"no answer after {loop.time() - start:.1f}s (timeout fitted to the "
                    f"latencies seen so far); abandoned and retried",
                    provider=state.endpoint.name, model=state.endpoint.model)
                state.health.transient_failure(timeout, loop.time(), pooled=pooled)
                raise timeout from exc
            except RateLimited as exc:
                report = signals.from_error(exc, anthropic=state.anthropic)
                if report.too_large:
                    raise PermanentError(
                        f"{exc.args[0] if exc.args else exc} (this request alone is larger "
                        f"than the limit: no wait can let it through)",
                        provider=exc.provider, model=exc.model, status=exc.status,
                        request_id=exc.request_id, headers=exc.headers) from exc
                # The server did not admit it: the limiter learns from the refusal,
                # and the retry waits for capacity there.
                state.limiter.refused(ticket, report)
                raise
            except TransientError as exc:
                state.health.transient_failure(exc, loop.time(), pooled=pooled)
                raise
            except PermanentError:
                state.limiter.failed(ticket)
                raise
            finally:
                state.inflight.pop(call_id, None)
                state.limiter.abandon(ticket)  # a no-op once it was answered or refused
        finally:
            state.slots.release()
        state.health.success()
        state.breaker.success()
        state.waited_their_turn(start, loop.time())
        latency = loop.time() - start
        if state.timeouts.observe(latency):
            for _sent, since, handle in state.inflight.values():
                handle.reschedule(since + state.timeouts.current_s)
        return dataclasses.replace(completion, latency_s=latency)

    async def aclose(self) -> None:
        for state in [*self._shared.values(), *self._own.values()]:
            await state.provider.aclose()
        self._shared.clear()
        self._own.clear()
        self._targets.clear()


@dataclasses.dataclass(slots=True)
class _Outcome:
    """How one round of attempts ended, and on which endpoint."""

    state: EndpointState
    completion: Completion | None = None
    error: ProviderError | None = None
    attempts: int = 0
