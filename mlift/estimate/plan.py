"""Walk every selected item through the pipeline's requests without sending one.

For each item the requests are built exactly as :mod:`mlift.pipeline.stages`
builds them (the same prompt, ``render``, ``draw``, ``max_tokens`` rule and
request fields), so their input tokens are exact and their cache keys are
the run's. A request found in the response cache costs $0 and its answer is
used to build the next request exactly; the first request that is not cached
is counted, and from there on the unknown texts (the English translation, the
instruction) are predicted (:mod:`mlift.estimate.priors`).

The result is a :class:`Ledger`: per stage, sums of tokens and requests, each
tagged with the factors (answer-length multipliers, pass rate, re-ask rate)
it scales with, so the cost under any factor values is a cheap sum
(:mod:`mlift.estimate.model`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from mlift.engine.cache import ResponseCache, cache_key
from mlift.estimate.priors import density, expected_output
from mlift.langs import Language, get_language
from mlift.pipeline.runner import CONTEXT_TASKS, RunOptions
from mlift.pipeline.select import Reject, Selector
from mlift.pipeline.sources import Record, read_records
from mlift.pipeline.stages import BACK_BUDGET, MAX_REASKS, TO_EN_BUDGET, translation_budget
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER
from mlift.pipeline.verdict import VerdictError, parse_verdict, reask_message
from mlift.prompts import PromptLibrary, PromptTemplate, draw, render
from mlift.providers.base import Endpoint
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import Completion, Message, Request

# The stage each model serves, as the accounting names them.
STAGE_ROLE = {"to_en": "translator", "to_en_context": "translator", "instruct": "generator",
              "judge": "judge", "back": "translator"}
STAGES = ("to_en", "to_en_context", "instruct", "judge", "back")
# Stages.to_english / Stages.back: max_tokens = min(cap, factor * source tokens + 64).

Key = tuple[str, str, tuple[str, ...]]  # (stage, "requests"|"input"|"output", factors)
Observer = Callable[[str, float, float], None]  # (what, predicted, actual)


@dataclass(slots=True)
class Ledger:
    """Sums per (stage, quantity, factors), plus what the cache already holds."""

    terms: defaultdict[Key, float] = field(default_factory=lambda: defaultdict(float))
    cached: Counter[str] = field(default_factory=Counter)
    items: int = 0

    def add(self, stage: str, what: str, amount: float, *factors: str) -> None:
        if amount:
            self.terms[(stage, what, tuple(sorted(f for f in factors if f)))] += amount


@dataclass(frozen=True, slots=True)
class Text:
    """A text the walk knows (``text``) or predicts (``chars`` scaled by ``factor``)."""

    text: str | None
    chars: float
    factor: str = ""

    def tokens(self, model: str, en_cpt: float) -> float:
        return count_tokens(self.text, model) if self.text is not None else self.chars / en_cpt


@lru_cache(maxsize=16)
def english_chars_per_token(model: str, library: PromptLibrary) -> float:
    """English characters per token for ``model``, measured on the prompts' English prose."""
    prose = "\n".join(m.content for t in library for m in t.messages if m.role == "system")
    return len(prose) / max(1, count_tokens(prose, model))


def selected_records(options: RunOptions, selector: Selector,
                     skip: Callable[[str], bool] = lambda _id: False) -> Iterator[Record]:
    """The records step 0 keeps, in input order, minus those ``skip`` says are done."""
    for path in options.inputs:
        for item in read_records(path, fmt=options.fmt, text_field=options.text_field,
                                 id_field=options.id_field, lang_field=options.lang_field,
                                 context_fields=options.context_fields,
                                 default_lang=options.lang, txt_mode=options.txt_mode):
            if isinstance(item, Exception):
                continue
            out = selector.select(item)
            if not isinstance(out, Reject) and not skip(out.id):
                yield out


class Walker:
    """Builds each item's requests as the stages do and books them into a ledger."""

    def __init__(self, options: RunOptions, library: PromptLibrary,
                 endpoints: dict[str, Endpoint], cache: ResponseCache | None,
                 ledger: Ledger, observe: Observer | None = None) -> None:
        self.o, self.library, self.cache, self.ledger = options, library, cache, ledger
        self.ep = endpoints  # role -> endpoint
        self.specs = {"translator": options.models.translator,
                      "generator": options.models.generator, "judge": options.models.judge}
        self.to_en = library.get("translate/to_en")
        self.back_prompt = library.get("translate/back")
        self.judge_prompt = library.get(options.judge_prompt)
        self.observe = observe

    def _model(self, role: str) -> str:
        return self.ep[role].model

    def _cpt(self, role: str) -> float:
        return english_chars_per_token(self._model(role), self.library)

    async def _lookup(self, stage: str, template: PromptTemplate,
                      messages: tuple[Message, ...], max_tokens: int | None,
                      item_id: str) -> tuple[int, Completion | None]:
        """(input tokens, cached answer or None) of the request the stage would send."""
        role = STAGE_ROLE[stage]
        params = template.params
        request = Request(target=self.specs[role], messages=messages,
                          max_tokens=max_tokens or int(params.get("max_tokens", 512)),
                          temperature=float(params.get("temperature", 0.0)),
                          prompt=template.ref, stage=stage, item_id=item_id,
                          output_schema=template.output_schema)  # as stages.call_model sends
        tokens = count_chat_tokens(messages, self._model(role))
        hit = None
        if self.cache is not None:
            hit = await self.cache.get(cache_key(request, self.ep[role]))
        if hit is not None:
            self.ledger.cached[stage] += 1
        return tokens, hit

    def _budget(self, template: PromptTemplate, text: str, factor: float) -> int:
        return translation_budget(template, text, self._model("translator"), factor)

    def _book(self, stage: str, tokens: float, extra: tuple[Text, ...], out: float,
              out_factors: tuple[str, ...], gate: tuple[str, ...] = ()) -> None:
        """One uncached request: fixed input, predicted input pieces, predicted output."""
        led, role = self.ledger, STAGE_ROLE[stage]
        led.add(stage, "requests", 1.0, *gate)
        led.add(stage, "input", tokens, *gate)
        for piece in extra:
            led.add(stage, "input", piece.chars / self._cpt(role), piece.factor, *gate)
        led.add(stage, "output", out, *out_factors, *gate)

    async def translate_en(self, item_id: str, text: str, lang: Language,
                           stage: str) -> Text:
        """Step 1 for ``text``: the English text if cached, else a prediction."""
        if lang.code == "en":
            return Text(text, len(text))
        messages = render(self.to_en, {"text": text, "source_lang": lang.code,
                                       "source_name": lang.name})
        budget = self._budget(self.to_en, text, TO_EN_BUDGET)
        tokens, hit = await self._lookup(stage, self.to_en, messages, budget, item_id)
        chars = len(text) / density(lang)
        predicted = min(chars / self._cpt("translator"), budget)
        if hit is not None:
            if self.observe:
                self.observe("en", predicted, hit.usage.output_tokens)
            return Text(hit.text.strip(), len(hit.text.strip()))
        self._book(stage, tokens, (), predicted, ("en",))
        return Text(None, chars, "en")

    async def walk(self, record: Record) -> None:
        """Book every request ``record`` would cost."""
        self.ledger.items += 1
        lang = get_language(record.lang or "")
        context = ("\n\n".join(v for v in record.context.values() if v)
                   if record.context else None)
        response_en = await self.translate_en(record.id, record.text, lang, "to_en")
        context_en = None
        if context is not None:
            context_en = await self.translate_en(record.id, context, lang, "to_en_context")
        tasks = self.o.tasks
        if context is not None and tasks is None:
            tasks = CONTEXT_TASKS.get(str(record.fields.get("task", "")))
        drawn = draw(self.o.seed, record.id, self.library, tasks, context=context is not None)
        template = drawn.template
        i0 = expected_output("instruct", template.params)
        known = [t for t in (response_en, context_en) if t is not None]
        instruction: Text
        if all(t.text is not None for t in known):
            messages = render(template, drawn.variables(
                str(response_en.text), context_en.text if context_en else None))
            tokens, hit = await self._lookup("instruct", template, messages, None, record.id)
            if hit is not None:
                if self.observe:
                    self.observe("ins", i0, hit.usage.output_tokens)
                instruction = Text(hit.text.strip(), len(hit.text.strip()))
            else:
                self._book("instruct", tokens, (), i0, ("ins",))
                instruction = Text(None, i0 * self._cpt("generator"), "ins")
        else:
            messages = render(template, drawn.variables("", "" if context_en else None))
            tokens = count_chat_tokens(messages, self._model("generator"))
            self._book("instruct", tokens, tuple(t for t in known if t.text is None), i0,
                       ("ins",))
            instruction = Text(None, i0 * self._cpt("generator"), "ins")
        judged = instruction
        if context_en is not None and instruction.text is not None:
            judged = Text(instruction.text.replace(CONTEXT_PLACEHOLDER, context_en.text or ""),
                          0.0) if context_en.text is not None else instruction
        score = await self._judge(record.id, judged, response_en, context_en)
        if score is not None and score < self.o.min_score:
            return
        per_char = count_tokens(record.text, self._model("translator")) / max(1, len(record.text))
        await self._back(record.id, instruction, lang, per_char,
                         gate=() if score is not None else ("pass",))

    async def _judge(self, item_id: str, instruction: Text, response_en: Text,
                     context_en: Text | None) -> int | None:
        """The score if the verdict is cached, else None after booking the judge call(s)."""
        template = self.judge_prompt
        j0 = expected_output("judge", template.params)
        if instruction.text is not None and response_en.text is not None:
            messages = render(template, {"instruction": instruction.text,
                                         "response": response_en.text})
            for attempt in range(MAX_REASKS + 1):
                tokens, hit = await self._lookup("judge", template, messages, None, item_id)
                if hit is None:
                    self._book_judge(tokens, (), j0)
                    return None
                if self.observe:
                    self.observe("judge_out", j0, hit.usage.output_tokens)
                try:
                    score = parse_verdict(hit.text).score
                except VerdictError as exc:
                    messages = (*messages, Message("assistant", hit.text),
                                Message("user", reask_message(exc, template.output)))
                    continue
                self._observe_verdict(attempt, score >= self.o.min_score)
                return score
            self._observe_verdict(MAX_REASKS, False)
            return 0  # unparsed after every re-ask: the item is rejected, nothing more paid
        messages = render(template, {"instruction": instruction.text or "",
                                     "response": response_en.text or ""})
        tokens = count_chat_tokens(messages, self._model("judge"))
        pieces = [t for t in (instruction, response_en) if t.text is None]
        if context_en is not None and context_en.text is None:
            pieces.append(context_en)
        self._book_judge(tokens, tuple(pieces), j0)
        return None

    def _observe_verdict(self, reasks: int, passed: bool) -> None:
        if self.observe:
            self.observe("reask", 1.0, float(reasks))
            self.observe("pass", 1.0, float(passed))

    def _book_judge(self, tokens: float, pieces: tuple[Text, ...], j0: int) -> None:
        self._book("judge", tokens, pieces, j0, ("judge_out",))
        # A re-ask resends the conversation plus the bad answer and the follow-up.
        reask = count_tokens(reask_message(VerdictError("unreadable"), "json"),
                             self._model("judge")) + 8
        self._book("judge", tokens + reask, pieces, j0, ("judge_out",), gate=("reask",))
        self.ledger.add("judge", "input", j0, "judge_out", "reask")

    async def _back(self, item_id: str, instruction: Text, lang: Language, per_char: float,
                    gate: tuple[str, ...]) -> None:
        """Step 5, paid for pairs at or above the threshold (``gate``: pass rate unknown).

        ``per_char`` is the translator's tokens per character of ``lang``, measured
        on the item's own source text.
        """
        if lang.code == "en":
            return
        variables = {"target_lang": lang.code, "target_name": lang.name}
        chars = (len(instruction.text) if instruction.text is not None else instruction.chars)
        predicted = chars * density(lang) * per_char
        if instruction.text is not None:
            messages = render(self.back_prompt, {"text": instruction.text, **variables})
            budget = self._budget(self.back_prompt, instruction.text, BACK_BUDGET)
            predicted = min(predicted, budget)
            if not gate:
                tokens, hit = await self._lookup("back", self.back_prompt, messages, budget,
                                                 item_id)
                if hit is not None:
                    if self.observe:
                        self.observe("back_out", predicted, hit.usage.output_tokens)
                    return
            else:
                tokens = count_chat_tokens(messages, self._model("translator"))
            self._book("back", tokens, (), predicted, ("back_out",), gate=gate)
            return
        messages = render(self.back_prompt, {"text": "", **variables})
        tokens = count_chat_tokens(messages, self._model("translator"))
        self._book("back", tokens, (instruction,), predicted, ("back_out", instruction.factor),
                   gate=gate)
