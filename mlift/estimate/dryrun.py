"""``DryRunEngine``: the engine's interface, booking predicted costs instead of sending.

The estimator runs the pipeline's real stages (:meth:`Pipeline.process
<mlift.pipeline.runner.Pipeline.process>`) on this engine, so every request it
counts is the one the run would send — same prompts, renders, re-ask
conversations and ``max_tokens`` — and a change to the stages changes the
estimate with it. For each request:

1. **Cache.** A request whose text is fully known is looked up in the real
   response cache under the engine's own :func:`~mlift.engine.cachekey.cache_key`.
   A hit is exact: it costs $0 and its real text flows on to the next stage.
2. **Book.** Otherwise its cost is booked: one request, its input tokens counted
   with the model's tokenizer, its answer's tokens predicted from the priors
   (:mod:`mlift.estimate.priors`), each term tagged with the factors it scales
   with (:mod:`mlift.estimate.ledger`).
3. **Stand in.** It answers with a *stand-in*: a marker word the stages'
   validators accept — an English word for a translation into English or an
   instruction (with ``<<CONTEXT>>`` where the prompt asks for it), a verdict,
   a word in the item's script for the back translation. Later requests of the
   item that carry a stand-in count its *predicted* length, with its factors,
   instead of the marker's. Markers are derived from the request they answer,
   so the same request always gets the same stand-in.

**Verdicts.** Whether the judge passes a pair decides what the pipeline does
next, so an item whose verdict had to be predicted is taken through the stages
twice (:meth:`DryRunEngine.item`): once with a passing verdict and once with a
failing one. What both outcomes send is booked once; what only the passing
one sends (the back translation) scales with the pass rate, what only the
failing one sends with one minus it. **Re-asks** come out of the stage itself:
a judge call that is not cached first gets an unreadable stand-in, the stage
builds its re-ask exactly as in a run, and that re-ask scales with the re-ask
rate. A predicted answer longer than the request's ``max_tokens`` comes back
cut (``finish_reason="length"``), so the stage rejects the item as the run
would. Nothing here opens a connection: the engine has no provider.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from mlift.engine.cache import ResponseCache
from mlift.engine.cachekey import cache_key
from mlift.estimate.ledger import Ledger
from mlift.estimate.priors import STAGE_FACTOR, density, english_chars_per_token, expected_output
from mlift.langs import Language, get_language, script_of
from mlift.pipeline import stages
from mlift.pipeline.runner import context_text
from mlift.pipeline.sources import Record
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER
from mlift.pipeline.verdict import SCORE_MAX, SCORE_MIN
from mlift.prices import Price, PriceTable
from mlift.prompts import PromptLibrary, PromptTemplate
from mlift.providers import anthropic_wire, openai_wire
from mlift.providers.base import Endpoint
from mlift.providers.registry import create_provider
from mlift.tokens import count_chat_tokens, count_tokens, warm_up
from mlift.types import Completion, Message, Request, Usage

T = TypeVar("T")
Resolver = Callable[[str], Endpoint]
# (factor, predicted, actual): what a cached answer says about a prior (see pilot.py).
Observer = Callable[[str, float, float], None]
Entry = tuple[str, float, tuple[str, ...]]  # (quantity, amount, factors) of one request
TRANSLATIONS_TO_EN = ("to_en", "to_en_context")
PASS, FAIL = "pass", "fail"
_ASCII = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class StandIn:
    """A marker handed out for an answer, and the answer's predicted length."""

    marker: str
    chars: float                 # predicted characters of the real answer
    factors: tuple[str, ...]     # what that length scales with
    english: bool = True         # else in the item's own language


@dataclass(slots=True)
class _Answer:
    """One distinct request of an item: its answer and what it was booked at."""

    request: Request
    completion: Completion
    entries: list[Entry]
    hit: bool = False
    verdict: bool = False        # a passing stand-in verdict (the fork point)


@dataclass(slots=True)
class _Item:
    record: Record
    lang: Language
    branch: str = PASS
    answers: dict[str, dict[str, _Answer]] = field(
        default_factory=lambda: {PASS: {}, FAIL: {}})     # branch → cache key → answer
    stand_ins: dict[str, StandIn] = field(default_factory=dict)
    unparsed: set[str] = field(default_factory=set)      # markers of unreadable verdicts
    instruction: str | StandIn | None = None             # the latest instruct answer
    per_char: dict[str, float] = field(default_factory=dict)  # model → tokens per character

    @property
    def forked(self) -> bool:
        return any(a.verdict for a in self.answers[PASS].values())


@lru_cache(maxsize=64)
def script_letters(script: str) -> str:
    """Ten letters of ``script``, to write a stand-in the script check accepts."""
    found: list[str] = []
    for ch in map(chr, range(0x41, 0x30000)):
        if len(found) == 10:
            return "".join(found)
        if ch.isalpha() and script_of(ch) == script:
            found.append(ch)
    return "bcdfghklmn"


async def enforces_schema(endpoint: Endpoint) -> bool:
    """Whether ``endpoint``'s provider sends ``Request.output_schema`` for the server to
    enforce (its declared capability; the provider is made and closed, nothing is sent)."""
    provider = create_provider(endpoint)
    try:
        return bool(provider.structured_outputs)
    finally:
        await provider.aclose()


def marker(key: str, alphabet: str = _ASCII) -> str:
    """A word no text contains, fixed by the request it answers."""
    n = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
    digits = "".join(alphabet[(n // len(alphabet) ** i) % len(alphabet)] for i in range(8))
    return f"zqx{digits}xqz" if alphabet is _ASCII else alphabet[0] * 2 + digits


class DryRunEngine:
    """``endpoint`` and ``complete`` as :class:`~mlift.engine.core.Engine` has them; sends nothing.

    Take each item through the stages with :meth:`item`; ``ledger`` holds what
    was booked. ``observe`` (for ``--pilot``) is told, for every cached answer,
    what its prior predicted and what the answer was.
    """

    def __init__(self, resolve: Resolver, library: PromptLibrary, cache: ResponseCache | None,
                 *, prices: PriceTable | None = None, observe: Observer | None = None) -> None:
        self._resolve, self.library, self.cache = resolve, library, cache
        self._prices = prices or PriceTable.load()
        self.observe = observe
        self.ledger = Ledger()
        self._endpoints: dict[str, Endpoint] = {}
        self.prices: dict[str, Price] = {}
        self._templates = {t.ref: t for t in library}
        self._items: dict[str, _Item] = {}
        self._enforces: dict[str, bool] = {}  # target → its provider enforces output schemas
        self._prefixes: dict[str, set[str]] = {}  # target → system prompts already sent

    # -- the engine's interface ------------------------------------------------

    def endpoint(self, target: str) -> Endpoint:
        """Resolve a ``NAME:MODEL`` spec and its price as the engine does (no price: an error)."""
        ep = self._endpoints.get(target)
        if ep is None:
            ep = self._resolve(target)
            self.prices[target] = self._prices.price_for(ep)
            warm_up(ep.model)
            self._endpoints[target] = ep
        return ep

    async def complete(self, request: Request) -> Completion:
        ep = self.endpoint(request.target)
        if request.target not in self._enforces:
            self._enforces[request.target] = await enforces_schema(ep)
        item = self._items.get(request.item_id or "")
        if item is None:
            raise RuntimeError(f"dry run: request for item {request.item_id!r} outside "
                               f"DryRunEngine.item()")
        key = cache_key(request, ep)
        mine = item.answers[item.branch]
        if key in mine:  # asked again within the item: the run finds its own answer cached
            return mine[key].completion
        if item.branch == FAIL and key in item.answers[PASS]:
            # Up to the verdict both outcomes send the same requests: book them once.
            first = item.answers[PASS][key]
            done = self._failing(first.completion) if first.verdict else first.completion
            mine[key] = _Answer(request, done, first.entries, first.hit)
            return done
        present = [s for m in self._markers(item, request) if (s := item.stand_ins.get(m))]
        if not present and self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                self._observe(request, item, ep, hit)
                if request.stage == "instruct":
                    item.instruction = hit.text.strip()
                mine[key] = _Answer(request, hit, [], hit=True)
                return hit
        answer = self._book(key, request, item, ep, present)
        mine[key] = answer
        return answer.completion

    # -- items -----------------------------------------------------------------

    @asynccontextmanager
    async def item(self, record: Record) -> AsyncIterator[Callable[[Callable[[], Awaitable[T]]],
                                                                   Awaitable[T]]]:
        """Book ``record``'s requests as one item; yields ``take(stages)`` to run them.

        ``take`` runs ``stages`` with passing verdicts and, if one had to be
        predicted, again with failing ones; it returns the passing run's result.
        """
        item = self._items[record.id] = _Item(record, get_language(record.lang or ""))

        async def take(run: Callable[[], Awaitable[T]]) -> T:
            result = await run()
            if item.forked:
                item.branch = FAIL
                await run()
            return result

        try:
            yield take
        finally:
            del self._items[record.id]
            self._settle(item)

    def _settle(self, item: _Item) -> None:
        """Into the ledger: what both outcomes sent once, the rest under pass or fail."""
        led, rid = self.ledger, item.record.id
        led.open(rid)
        passing, failing = item.answers[PASS], item.answers[FAIL]
        forked = item.forked
        if forked:
            led.units["pass"] += 1
        for branch, answers in ((PASS, passing), (FAIL, failing)):
            for key, a in answers.items():
                if branch == FAIL and key in passing:
                    continue
                gate: tuple[str, ...] = ()
                if forked and (key not in failing or key not in passing):
                    gate = (branch,)
                stage, target = a.request.stage, a.request.target
                if a.hit:
                    led.hit(stage, target)
                for what, amount, factors in a.entries:
                    led.add(rid, stage, target, what, amount, (*factors, *gate))
                    if what == "requests" and "reask" in factors:
                        led.units["reask"] += 1
        led.close(rid)

    # -- booking ---------------------------------------------------------------

    def _markers(self, item: _Item, request: Request) -> list[str]:
        return [m for m in item.stand_ins if any(m in msg.content for msg in request.messages)]

    def _book(self, key: str, request: Request, item: _Item, ep: Endpoint,
              present: list[StandIn]) -> _Answer:
        stage, model = request.stage, ep.model
        reask = stage == "judge" and any(
            m.role == "assistant" and m.content in item.unparsed for m in request.messages)
        gates = ("reask",) if reask else ()
        entries: list[Entry] = [("requests", 1.0, gates)]
        # Input: the request as sent, with every stand-in counted at its predicted length.
        stripped = []
        for m in request.messages:
            content = m.content
            for s in present:
                n = content.count(s.marker)
                if n:
                    content = content.replace(s.marker, "")
                    entries.append(("input", n * self._tokens(s, item, model),
                                    (*s.factors, *gates)))
            stripped.append(Message(m.role, content))
        exact = float(count_chat_tokens(stripped, model))
        read, write = self._prompt_cache(request, ep, exact)
        entries.append(("input", exact - read - write, gates))
        if read:
            entries.append(("cached_input", read, gates))
        if write:
            entries.append(("cache_write", write, gates))
        # Output: the prior's prediction, cut at max_tokens as the model would be.
        chars, tokens, factors = self._predict(request, item, model)
        cut = tokens > request.max_tokens
        if cut:
            tokens, factors = float(request.max_tokens), ()
        entries.append(("output", tokens, (*factors, *gates)))
        text, verdict = self._stand_in(key, request, item, chars, factors)
        done = Completion(text=text, finish_reason="length" if cut else "stop",
                          usage=Usage(0, 0), model=model)
        return _Answer(request, done, entries, verdict=verdict)

    def _prompt_cache(self, request: Request, ep: Endpoint, prompt: float) -> tuple[float, float]:
        """(tokens read from, tokens written to) the provider's prompt cache by this request.

        The prefix a stage repeats on every call is its system message. OpenAI
        caches a prompt's prefix by itself once the prompt reaches 1,024 tokens,
        in steps of 128, read by every later request with that prefix (the first
        pays in full); Anthropic reads what mlift marked cacheable (the system
        prompt, when it reaches the model's minimum), and the first request
        writes it at the cache-write price.
        """
        system = request.system
        if not system:
            return 0.0, 0.0
        seen = self._prefixes.setdefault(request.target, set())
        first = system not in seen
        seen.add(system)
        if ep.kind == "anthropic":
            if not anthropic_wire.cacheable(system, ep.model):
                return 0.0, 0.0
            tokens = float(count_tokens(system, ep.model))
            return (0.0, tokens) if first else (tokens, 0.0)
        least, step = openai_wire.CACHE_MIN_TOKENS, openai_wire.CACHE_STEP_TOKENS
        if ep.kind in ("openai", "sim") and prompt >= least and not first:
            prefix = count_tokens(system, ep.model)
            return float(prefix - prefix % step if prefix >= least else 0), 0.0
        return 0.0, 0.0

    def _stand_in(self, key: str, request: Request, item: _Item, chars: float,
                  factors: tuple[str, ...]) -> tuple[str, bool]:
        """The stand-in text, and whether it is a passing verdict."""
        stage = request.stage
        placeholders = sum(m.content.count(CONTEXT_PLACEHOLDER)
                           for m in request.messages if m.role != "system")
        if stage == "back":
            word = marker(key, script_letters(item.lang.scripts[0]))
            return word + f" {CONTEXT_PLACEHOLDER}" * placeholders, False
        s = StandIn(marker(key), chars, factors)
        item.stand_ins[s.marker] = s
        if stage == "judge":
            first = not any(m.role == "assistant" for m in request.messages)
            # An enforced schema makes every verdict readable: nothing to re-ask.
            schema = request.output_schema is not None and self._enforces[request.target]
            if first and stages.MAX_REASKS > 0 and not schema:
                # Unreadable, so the stage builds its real re-ask (booked under the re-ask rate).
                item.unparsed.add(s.marker)
                return s.marker, False
            return json.dumps({"reason": s.marker, "score": SCORE_MAX}), True
        if stage == "instruct":
            template = self._template(request)
            item.instruction = s
            if template is not None and template.has_context:
                return f"{s.marker}\n\n{CONTEXT_PLACEHOLDER}", False
            return s.marker, False
        return s.marker + f" {CONTEXT_PLACEHOLDER}" * placeholders, False

    @staticmethod
    def _failing(verdict: Completion) -> Completion:
        reason = json.loads(verdict.text)["reason"]
        return Completion(text=json.dumps({"reason": reason, "score": SCORE_MIN}),
                          finish_reason=verdict.finish_reason, usage=verdict.usage,
                          model=verdict.model)

    # -- predictions -------------------------------------------------------------

    def _predict(self, request: Request, item: _Item,
                 model: str) -> tuple[float, float, tuple[str, ...]]:
        """(characters, tokens, factors) the prior expects of this request's answer."""
        stage, lang = request.stage, item.lang
        cpt = english_chars_per_token(model, self.library)
        if stage in TRANSLATIONS_TO_EN:
            source = (item.record.text if stage == "to_en" else context_text(item.record)) or ""
            chars = len(source) / density(lang)
            return chars, chars / cpt, ("en",)
        if stage == "back":
            text = item.instruction
            if isinstance(text, StandIn):
                chars_en, factors = text.chars, ("back_out", *text.factors)
            else:
                chars_en = len((text or "").replace(CONTEXT_PLACEHOLDER, ""))
                factors = ("back_out",)
            chars = chars_en * density(lang)
            marks = sum(m.content.count(CONTEXT_PLACEHOLDER)
                        for m in request.messages if m.role != "system")
            tokens = chars * self._per_char(item, model) + marks * count_tokens(
                CONTEXT_PLACEHOLDER, model)
            return chars, tokens, factors
        template = self._template(request)
        tokens = float(expected_output(stage, template.params if template else {}))
        factor = STAGE_FACTOR.get(stage)
        if factor is None:
            self.ledger.notes.add(f"stage {stage!r} has no output prior: {tokens:.0f} tokens "
                                  f"per answer assumed")
        return tokens * cpt, tokens, (factor,) if factor else ()

    def _tokens(self, s: StandIn, item: _Item, model: str) -> float:
        if s.english:
            return s.chars / english_chars_per_token(model, self.library)
        return s.chars * self._per_char(item, model)

    @staticmethod
    def _per_char(item: _Item, model: str) -> float:
        """``model``'s tokens per character of the item's language, on its own text."""
        if model not in item.per_char:
            text = item.record.text
            item.per_char[model] = count_tokens(text, model) / max(1, len(text))
        return item.per_char[model]

    def _template(self, request: Request) -> PromptTemplate | None:
        return self._templates.get(request.prompt or "")

    def _observe(self, request: Request, item: _Item, ep: Endpoint, done: Completion) -> None:
        """Tell the observer what the prior would have said of a cached answer."""
        if self.observe is None or item.branch != PASS:
            return
        if request.stage == "judge":
            reask = any(m.role == "assistant" for m in request.messages)
            self.observe("reask", 0.0 if reask else 1.0, 1.0 if reask else 0.0)
        factor = STAGE_FACTOR.get(request.stage)
        if factor is None or done.finish_reason == "length":
            return  # a cut answer says nothing about the length it wanted
        _, predicted, _ = self._predict(request, item, ep.model)
        self.observe(factor, predicted, float(done.usage.output_tokens))
