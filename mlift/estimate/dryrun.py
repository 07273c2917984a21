"""``DryRunEngine``: the engine's interface, booking predicted costs instead of sending.

The estimator runs the pipeline's real stages (:meth:`Pipeline.process
<mlift.pipeline.runner.Pipeline.process>`) on this engine, so every request it
counts is the one the run would send — same prompts, renders, re-ask
conversations and ``max_tokens`` — and a change to the stages changes the
estimate with it. For each request:

1. **Cache.** A request whose text is fully known is looked up in the real
   response cache under the engine's own :func:`~mlift.engine.cache.cache_key`.
   A hit is exact: it costs $0 and its real text flows on to the next stage.
2. **Book.** Otherwise the request goes into the :class:`~mlift.estimate.ledger.Ledger`:
   one request, its input tokens counted with the model's tokenizer, its answer's
   tokens predicted from the priors (:mod:`mlift.estimate.priors`), each term
   tagged with the factors it scales with.
3. **Stand in.** It answers with a *stand-in*: a short marker word the stages'
   validators accept — an English word for a translation into English or an
   instruction (with ``<<CONTEXT>>`` where the prompt asks for it), a verdict
   with the top score (so the back translation is reached; its costs are then
   gated by the pass rate), a word in the item's script for the back
   translation. Later requests of the item that carry a stand-in count its
   *predicted* length, with its factors, instead of the marker's.

Judge re-asks come out of the stage itself: a judge call that is not cached
first gets an unparseable stand-in, the stage builds its re-ask exactly as in
a run, and that re-ask is booked under the re-ask rate and answered with a
verdict. A predicted answer longer than the request's ``max_tokens`` comes back
cut (``finish_reason="length"``), so the stage rejects the item as the run
would. Nothing here opens a connection: the engine has no provider.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from mlift.engine.cache import ResponseCache, cache_key
from mlift.estimate.ledger import Ledger
from mlift.estimate.priors import (
    STAGE_FACTOR,
    density,
    english_chars_per_token,
    expected_output,
)
from mlift.langs import Language, get_language, script_of
from mlift.pipeline.runner import context_text
from mlift.pipeline.sources import Record
from mlift.pipeline.stages import MAX_REASKS
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER
from mlift.pipeline.verdict import SCORE_MAX
from mlift.prices import Price, PriceTable
from mlift.prompts import PromptLibrary, PromptTemplate
from mlift.providers.base import Endpoint
from mlift.tokens import count_chat_tokens, count_tokens, warm_up
from mlift.types import Completion, Message, Request, Usage

Resolver = Callable[[str], Endpoint]
# (factor, predicted, actual): what a cached answer says about a prior (see pilot.py).
Observer = Callable[[str, float, float], None]
TRANSLATIONS_TO_EN = ("to_en", "to_en_context")
_ASCII = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class StandIn:
    """A marker handed out for an answer, and the answer's predicted length."""

    marker: str
    chars: float                 # predicted characters of the real answer
    factors: tuple[str, ...]     # what that length scales with
    english: bool = True         # else in the item's own language


@dataclass(slots=True)
class _Item:
    record: Record
    lang: Language
    stand_ins: list[StandIn] = field(default_factory=list)
    instruction: str | StandIn | None = None  # the latest instruct answer
    gates: tuple[str, ...] = ()               # factors every later request scales with
    unparsed: set[str] = field(default_factory=set)  # markers of unparseable verdicts


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


class DryRunEngine:
    """``endpoint`` and ``complete`` as :class:`~mlift.engine.core.Engine` has them; sends nothing.

    Register each item with :meth:`item` while its stages run; ``ledger`` holds
    what was booked. ``observe`` (for ``--pilot``) is told, for every cached
    answer, what its prior predicted and what the answer was.
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
        self._serial = itertools.count()

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
        item = self._items.get(request.item_id or "")
        if item is None:
            raise RuntimeError(f"dry run: request for item {request.item_id!r} outside "
                               f"DryRunEngine.item()")
        present = [s for s in item.stand_ins
                   if any(s.marker in m.content for m in request.messages)]
        if not present and self.cache is not None:
            hit = await self.cache.get(cache_key(request, ep))
            if hit is not None:
                self.ledger.hit(request.stage, ep.spec)
                self._observe(request, item, ep, hit)
                if request.stage == "instruct":
                    item.instruction = hit.text.strip()
                return hit
        return self._book(request, item, ep, present)

    # -- items -----------------------------------------------------------------

    @contextmanager
    def item(self, record: Record) -> Iterator[None]:
        """While ``record``'s stages run: its requests are booked as one item."""
        self._items[record.id] = _Item(record, get_language(record.lang or ""))
        self.ledger.open(record.id)
        try:
            yield
        finally:
            self.ledger.close(record.id)
            del self._items[record.id]

    # -- booking ---------------------------------------------------------------

    def _book(self, request: Request, item: _Item, ep: Endpoint,
              present: list[StandIn]) -> Completion:
        stage, model, led, rid = request.stage, ep.model, self.ledger, item.record.id
        reask = request.stage == "judge" and any(
            m.role == "assistant" and m.content in item.unparsed for m in request.messages)
        gates = (*item.gates, "reask") if reask else item.gates
        # Input: the request as sent, with every stand-in counted at its predicted length.
        stripped = []
        for m in request.messages:
            content = m.content
            for s in present:
                n = content.count(s.marker)
                if n:
                    content = content.replace(s.marker, "")
                    led.add(rid, stage, ep.spec, "input", n * self._tokens(s, item, model),
                            (*s.factors, *gates))
            stripped.append(Message(m.role, content))
        led.add(rid, stage, ep.spec, "requests", 1.0, gates)
        led.add(rid, stage, ep.spec, "input", count_chat_tokens(stripped, model), gates)
        # Output: the prior's prediction, cut at max_tokens as the model would be.
        chars, tokens, factors = self._predict(request, item, model)
        cut = tokens > request.max_tokens
        if cut:
            tokens, factors = float(request.max_tokens), ()
        led.add(rid, stage, ep.spec, "output", tokens, (*factors, *gates))
        text = self._stand_in(request, item, chars, factors)
        return Completion(text=text, finish_reason="length" if cut else "stop",
                          usage=Usage(0, 0), model=model)

    def _stand_in(self, request: Request, item: _Item, chars: float,
                  factors: tuple[str, ...]) -> str:
        stage = request.stage
        placeholders = sum(m.content.count(CONTEXT_PLACEHOLDER)
                           for m in request.messages if m.role != "system")
        if stage == "back":
            s = self._new(chars, factors, english=False, script=item.lang.scripts[0])
            return s.marker + f" {CONTEXT_PLACEHOLDER}" * placeholders
        s = self._new(chars, factors)
        item.stand_ins.append(s)
        if stage == "judge":
            first = not any(m.role == "assistant" for m in request.messages)
            if first and MAX_REASKS > 0:
                # Unreadable, so the stage builds its real re-ask (booked under the re-ask rate).
                item.unparsed.add(s.marker)
                self.ledger.units["reask"] += 1
                return s.marker
            if "pass" not in item.gates:
                item.gates = (*item.gates, "pass")
                self.ledger.units["pass"] += 1
            return json.dumps({"reason": s.marker, "score": SCORE_MAX})
        if stage == "instruct":
            template = self._template(request)
            item.instruction = s
            if template is not None and template.has_context:
                return f"{s.marker}\n\n{CONTEXT_PLACEHOLDER}"
            return s.marker
        return s.marker + f" {CONTEXT_PLACEHOLDER}" * placeholders

    def _new(self, chars: float, factors: tuple[str, ...], *, english: bool = True,
             script: str = "Latin") -> StandIn:
        n = next(self._serial)
        alphabet = _ASCII if english else script_letters(script)
        digits = "".join(alphabet[(n // len(alphabet) ** i) % len(alphabet)] for i in range(6))
        marker = f"zqx{digits}xqz" if english else alphabet[0] * 2 + digits
        return StandIn(marker, chars, factors, english)

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
                chars_en, factors = len((text or "").replace(CONTEXT_PLACEHOLDER, "")), (
                    "back_out",)
            chars = chars_en * density(lang)
            marks = sum(m.content.count(CONTEXT_PLACEHOLDER)
                        for m in request.messages if m.role != "system")
            tokens = chars * self._per_char(item, model) + marks * count_tokens(
                CONTEXT_PLACEHOLDER, model)
            return chars, tokens, factors
        template = self._template(request)
        params = template.params if template is not None else {}
        tokens = float(expected_output(stage, params))
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
        text = item.record.text
        return count_tokens(text, model) / max(1, len(text))

    def _template(self, request: Request) -> PromptTemplate | None:
        return self._templates.get(request.prompt or "")

    def _observe(self, request: Request, item: _Item, ep: Endpoint, done: Completion) -> None:
        """Tell the observer what the prior would have said of a cached answer."""
        if self.observe is None:
            return
        if request.stage == "judge":
            reask = any(m.role == "assistant" for m in request.messages)
            self.observe("reask", 0.0 if reask else 1.0, 1.0 if reask else 0.0)
        factor = STAGE_FACTOR.get(request.stage)
        if factor is None or done.finish_reason == "length":
            return  # a cut answer says nothing about the length it wanted
        _, predicted, _ = self._predict(request, item, ep.model)
        self.observe(factor, predicted, float(done.usage.output_tokens))
