"""``Engine.complete(request)``: the only way a stage talks to a model.

Inside, in this order (DESIGN.md §3.1):

1. cache — a hit returns at once, costs $0 and no rate-limit charge;
2. budget — a request whose worst case could pass ``--max-cost`` is refused;
3. concurrency cap, then the endpoint's rpm/tpm limiter (admission happens
   right before sending, so the limiter's timing is the wire's timing);
4. the provider call, under a timeout that fits the latencies seen so far;
5. retries (tenacity, the one owner), honouring Retry-After through an
   endpoint-wide cooldown;
6. accounting, refunds of over-reserved tokens, and the cache write.

An authentication failure poisons its endpoint: every later call to it fails
at once, so a run stops instead of sending thousands of doomed requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from types import TracebackType

from tenacity import RetryCallState

from mlift.engine.accounting import Accounting, Budget, usd
from mlift.engine.cache import ResponseCache, cache_key
from mlift.engine.limiter import RateLimiter
from mlift.engine.retry import RetryPolicy, TimeoutPolicy
from mlift.errors import (
    AuthError,
    BudgetExceeded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from mlift.prices import Price, PriceTable
from mlift.providers.base import Endpoint, Provider
from mlift.providers.headers import anthropic_ratelimit, openai_ratelimit
from mlift.providers.registry import create_provider
from mlift.tokens import count_chat_tokens, warm_up
from mlift.types import Completion, Request

Resolver = Callable[[str], Endpoint]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_CONCURRENCY = 64
# Requests sent within this many seconds of each other count as sent together.
SAME_BURST_S = 1.0


class _EndpointState:
    """Everything the engine keeps per endpoint (provider + base URL + model)."""

    def __init__(self, endpoint: Endpoint, provider: Provider, price: Price,
                 sleep: Sleep, timeouts: TimeoutPolicy) -> None:
        self.endpoint, self.provider, self.price = endpoint, provider, price
        # Half a second of burst, not the servers' usual one: requests leave
        # here at the limit but reach the server with a few ms of jitter, and
        # a client bucket as deep as the server's would meet it near-empty.
        self.limiter = RateLimiter(endpoint.rpm, endpoint.tpm, burst_s=0.5, sleep=sleep)
        # OpenAI charges prompt + max_tokens when it admits a request and keeps
        # the charge; Anthropic adjusts output tokens to what was used. Refund
        # unused reservations only where the provider does.
        self.refunds = provider.refunds_unused_tokens
        self.slots = asyncio.Semaphore(endpoint.concurrency or DEFAULT_CONCURRENCY)
        self.timeouts = timeouts
        self.auth_error: AuthError | None = None
        # In-flight calls: when each was sent, since when its timeout counts
        # (see Engine._waited_their_turn) and its handle, re-armed when that moves.
        self.inflight: dict[int, tuple[float, float, asyncio.Timeout]] = {}


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
        self._states: dict[str, _EndpointState] = {}
        self._shared: dict[tuple[str, str, str], _EndpointState] = {}
        # States of profiles that share a server and model with another one.
        self._own: list[_EndpointState] = []
        self._ids = itertools.count()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def endpoint(self, target: str) -> Endpoint:
        """Resolve a ``NAME:MODEL`` spec, validating it (and its price) now."""
        return self._state(target).endpoint

    def price(self, target: str) -> Price:
        return self._state(target).price

    def structured_outputs(self, target: str) -> bool:
        """Whether ``target``'s provider has the server enforce ``Request.output_schema``."""
        return bool(self._state(target).provider.structured_outputs)

    def limiter(self, target: str) -> RateLimiter:
        return self._state(target).limiter

    def provider(self, target: str) -> Provider:
        """The provider behind a spec (batch mode asks the in-process simulator its URL)."""
        return self._state(target).provider

    def _state(self, target: str) -> _EndpointState:
        state = self._states.get(target)
        if state is None:
            endpoint = self._resolve(target)
            # A model without a price fails here, before anything is sent.
            price = self._prices.price_for(endpoint)
            # Load the tokenizer now (~1 s once), not inside the first request.
            warm_up(endpoint.model)
            # Profiles that point at the same server and model share one limiter.
            state = self._shared.get(endpoint.limit_key)
            if state is None:
                state = _EndpointState(endpoint, self._factory(endpoint), price,
                                       self._sleep, self._timeouts())
                self._shared[endpoint.limit_key] = state
            elif dataclasses.replace(state.endpoint, name=endpoint.name) != endpoint:
                # The same server and model through other settings (structured
                # outputs, transport, key, price): a client and price of its own,
                # the same limits, slots and timeouts.
                own = _EndpointState(endpoint, self._factory(endpoint), price,
                                     self._sleep, state.timeouts)
                own.limiter, own.slots, own.inflight = state.limiter, state.slots, state.inflight
                self._own.append(own)
                state = own
            self._states[target] = state
        return state

    async def complete(self, request: Request) -> Completion:
        state = self._state(request.target)
        endpoint = state.endpoint
        if state.auth_error is not None:
            raise state.auth_error
        key = cache_key(request, endpoint)
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:  # comes back marked cached, at $0
                self.accounting.record_success(request.stage, endpoint.spec, hit,
                                               cached=True, latency_s=0.0, attempts=0)
                return hit

        prompt_tokens = count_chat_tokens(request.messages, endpoint.model)
        reserve_tokens = prompt_tokens + request.max_tokens
        worst = state.price.max_cost(prompt_tokens, request.max_tokens)
        if not self.budget.reserve(worst):
            raise BudgetExceeded(
                f"the next request could cost up to ${worst:.4f}, which would pass the "
                f"--max-cost cap of {usd(self.budget.max_cost or 0.0)} "
                f"(the run has spent ${self.budget.total_spent:.4f}); re-run with a higher cap "
                f"to resume")

        attempts = 0

        def on_retry(call: RetryCallState) -> None:
            exc = call.outcome.exception() if call.outcome else None
            if isinstance(exc, ProviderError):
                self.accounting.record_retry(request.stage, endpoint.spec, exc)

        try:
            async for attempt in self._retry.retrying(self._sleep, on_retry):
                with attempt:
                    attempts += 1
                    completion = await self._attempt(state, request, reserve_tokens)
        except ProviderError as exc:
            self.budget.release(worst)
            exc.item_id = request.item_id
            if isinstance(exc, AuthError):
                state.auth_error = exc
            self.accounting.record_failure(request.stage, endpoint.spec, exc, attempts)
            raise
        except BaseException:
            self.budget.release(worst)
            raise

        cost = state.price.cost(completion.usage)
        self.budget.settle(worst, cost)
        completion = dataclasses.replace(completion, cost_usd=cost, attempts=attempts)
        self.accounting.record_success(request.stage, endpoint.spec, completion, cached=False,
                                       latency_s=completion.latency_s, attempts=attempts)
        if self.cache is not None:
            await self.cache.put(key, completion)
        return completion

    async def _attempt(self, state: _EndpointState, request: Request,
                       reserve_tokens: int) -> Completion:
        loop = asyncio.get_running_loop()
        async with state.slots:
            await state.limiter.acquire(reserve_tokens)
            start = loop.time()
            call_id = next(self._ids)
            try:
                async with asyncio.timeout_at(start + state.timeouts.current_s) as deadline:
                    state.inflight[call_id] = (start, start, deadline)
                    completion = await state.provider.complete(request)
            except TimeoutError as exc:
                if isinstance(exc, ProviderError):
                    raise
                raise ProviderTimeout(
                    f"no answer after {loop.time() - start:.1f}s (timeout fitted to the "
                    f"latencies seen so far); abandoned and retried",
                    provider=state.endpoint.name, model=state.endpoint.model) from exc
            except RateLimited as exc:
                # The server did not admit it: give the tokens back, and hold the
                # whole endpoint for Retry-After.
                state.limiter.refund(reserve_tokens, 0)
                state.limiter.cool_down(exc.retry_after if exc.retry_after else 1.0)
                info = openai_ratelimit(exc.headers) or anthropic_ratelimit(exc.headers)
                if info is not None:
                    state.limiter.update(info)
                raise
            finally:
                state.inflight.pop(call_id, None)
        self._waited_their_turn(state, start, loop.time())
        latency = loop.time() - start
        if state.refunds:
            used = completion.usage.input_tokens + completion.usage.output_tokens
            state.limiter.refund(reserve_tokens, used)
        if completion.ratelimit is not None:
            state.limiter.update(completion.ratelimit)
        if state.timeouts.observe(latency):
            for _sent, since, handle in state.inflight.values():
                handle.reschedule(since + state.timeouts.current_s)
        return dataclasses.replace(completion, latency_s=latency)

    @staticmethod
    def _waited_their_turn(state: _EndpointState, answered_sent: float, now: float) -> None:
        """An answer came: calls sent after it may only have been queued behind it.

        A local server (llama.cpp, vLLM, Ollama) serves a few requests at a
        time and queues the rest instead of refusing them; while requests sent
        earlier keep being answered, a later one is waiting its turn, not
        hung. So its timeout counts from the latest such answer. "Earlier"
        has a tolerance (``SAME_BURST_S``): requests sent together reach the
        server in any order. A hung call still times out: nothing sent before
        it is answered any more, and answers to calls sent well after it do
        not move its deadline.
        """
        for call_id, (sent, since, handle) in state.inflight.items():
            if answered_sent <= sent + SAME_BURST_S and since < now:
                state.inflight[call_id] = (sent, now, handle)
                handle.reschedule(now + state.timeouts.current_s)

    async def aclose(self) -> None:
        for state in [*self._shared.values(), *self._own]:
            await state.provider.aclose()
        self._shared.clear()
        self._own.clear()
        self._states.clear()
