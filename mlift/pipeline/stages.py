"""The model stages of the method (DESIGN.md §2), each one call (or a few) on the engine.

``to_english`` (step 1), ``instruct`` (step 2), ``judge`` (step 3) and
``back`` (step 5) render a versioned prompt, send it through the engine and
check what came back. A check that fails raises ``StageReject`` with a reason
code, which the runner turns into a reject record; provider failures of one
item do the same. Authentication errors and the budget cap are not per-item
and propagate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mlift.errors import EndpointUnusable, ProviderError
from mlift.langs import Language
from mlift.pipeline import validate
from mlift.pipeline.verdict import Verdict, VerdictError, parse_verdict, reask_message
from mlift.prompts import Draw, PromptLibrary, PromptTemplate, render
from mlift.providers.base import Endpoint
from mlift.tokens import count_tokens
from mlift.types import Completion, Message, Request

MAX_REASKS = 2
# Context window assumed when a profile does not say (current OpenAI and
# Anthropic chat models take 128k-200k), and room kept for the prompt itself.
DEFAULT_CONTEXT_TOKENS = 128_000
PROMPT_ROOM = 2_000


# max_tokens of a translation, as a multiple of the source's tokens (plus slack):
# English from another language rarely needs more tokens than the source; an
# instruction translated into an Indic or CJK language may need several times more.
TO_EN_BUDGET, BACK_BUDGET, BUDGET_SLACK = 3.0, 6.0, 64


def translation_budget(template: PromptTemplate, text: str, model: str, factor: float) -> int:
    """max_tokens for a translation: room for the text, within the prompt's cap."""
    cap = int(template.params.get("max_tokens", 4096))
    return min(cap, int(factor * count_tokens(text, model)) + BUDGET_SLACK)


class StageEngine(Protocol):
    """What the stages use of an engine: :class:`mlift.engine.core.Engine`, the
    estimator's :class:`mlift.estimate.dryrun.DryRunEngine`, which books instead of sending,
    or batch mode's :class:`mlift.pipeline.deferring.DeferringEngine`, which answers from
    what batches brought back or puts the item off to a later pass."""

    def endpoint(self, target: str) -> Endpoint: ...

    async def complete(self, request: Request) -> Completion: ...


class StageReject(Exception):
    """This item leaves the pipeline at ``stage`` for reason ``code``.

    ``raw`` is the model's answer that was refused (kept, bounded, on the reject
    so a user can see what the model said); ``retry`` marks a failure of the
    provider rather than of the item, which the next run tries again.
    """

    def __init__(self, stage: str, code: str, detail: str, *, raw: str | None = None,
                 retry: bool = False) -> None:
        self.stage, self.code, self.detail = stage, code, detail
        self.raw, self.retry = raw, retry
        super().__init__(f"{stage}: {code}: {detail}")


@dataclass(frozen=True, slots=True)
class Models:
    """The ``NAME:MODEL`` spec behind each model stage."""

    translator: str
    generator: str
    judge: str


@dataclass(slots=True)
class Trace:
    """What an item's calls cost and which prompts and models made it."""

    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    # Whether the judge's verdict came through an enforced schema (None: not judged).
    structured: bool | None = None

    def add(self, stage: str, completion: Completion) -> None:
        u = self.usage.setdefault(stage, {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                          "cost_usd": 0.0, "cached": 0})
        u["requests"] += 1
        u["input_tokens"] += completion.usage.input_tokens
        u["output_tokens"] += completion.usage.output_tokens
        u["cost_usd"] = round(u["cost_usd"] + completion.cost_usd, 10)
        u["cached"] += int(completion.cached)


async def call_model(engine: StageEngine, stage: str, target: str, template: PromptTemplate,
                     messages: tuple[Message, ...], item_id: str, trace: Trace, *,
                     max_tokens: int | None = None) -> Completion:
    """One model call of a stage: a provider failure of this item becomes a StageReject.

    Authentication errors and the budget cap are not the item's fault and propagate.
    """
    params = template.params
    request = Request(
        target=target, messages=messages,
        max_tokens=max_tokens or int(params.get("max_tokens", 512)),
        temperature=float(params.get("temperature", 0.0)),
        prompt=template.ref, stage=stage, item_id=item_id, output_schema=template.output_schema)
    try:
        completion = await engine.complete(request)
    except EndpointUnusable:
        raise
    except ProviderError as exc:
        raise StageReject(stage, f"provider_{type(exc).__name__}", str(exc),
                          retry=True) from exc
    trace.add(stage, completion)
    trace.prompts[stage] = template.ref
    return completion


class Stages:
    def __init__(self, engine: StageEngine, library: PromptLibrary, models: Models, *,
                 judge_prompt: str = "judge/fit", identify: validate.Identify | None = None
                 ) -> None:
        self.engine, self.library, self.models = engine, library, models
        self.to_en_prompt = library.get("translate/to_en")
        self.back_prompt = library.get("translate/back")
        self.judge_prompt = library.get(judge_prompt)
        self._identify = identify
        self.judge_parse_failures = 0
        self.judge_reasks = 0
        # Verdicts, and how many of them came through an enforced schema.
        self.judge_verdicts = 0
        self.judge_structured = 0

    async def _call(self, stage: str, target: str, template: PromptTemplate,
                    messages: tuple[Message, ...], item_id: str, trace: Trace, *,
                    max_tokens: int | None = None) -> Completion:
        return await call_model(self.engine, stage, target, template, messages, item_id,
                                trace, max_tokens=max_tokens)

    def _budget(self, template: PromptTemplate, text: str, target: str, factor: float) -> int:
        return translation_budget(template, text, self.engine.endpoint(target).model, factor)

    async def to_english(self, item_id: str, text: str, lang: Language, trace: Trace,
                         *, stage: str = "to_en") -> str:
        if lang.code == "en":
            return text
        messages = render(self.to_en_prompt, {"text": text, "source_lang": lang.code,
                                              "source_name": lang.name})
        self._check_context(stage, text, self.models.translator)
        done = await self._call(stage, self.models.translator, self.to_en_prompt, messages,
                                item_id, trace,
                                max_tokens=self._budget(self.to_en_prompt, text,
                                                        self.models.translator, TO_EN_BUDGET))
        checked = validate.to_english(done.text, done.finish_reason, text)
        if checked.problem:
            raise StageReject(stage, *checked.problem, raw=done.text)
        return checked.text

    def _check_context(self, stage: str, text: str, target: str) -> None:
        """A text the model cannot take in whole is a reject, not a failed request."""
        endpoint = self.engine.endpoint(target)
        limit = endpoint.context_tokens or DEFAULT_CONTEXT_TOKENS
        tokens = count_tokens(text, endpoint.model)
        # The prompt around it and an answer about as long must fit too.
        if 2 * tokens + PROMPT_ROOM > limit:
            raise StageReject(stage, "too_long_for_model",
                              f"~{tokens} tokens; {endpoint.spec} takes {limit} in all "
                              f"(set context_tokens in its profile if that is wrong)")

    async def instruct(self, item_id: str, draw: Draw, response_en: str,
                       context_en: str | None, trace: Trace) -> str:
        template = draw.template
        messages = render(template, draw.variables(response_en, context_en))
        done = await self._call("instruct", self.models.generator, template, messages,
                                item_id, trace)
        trace.prompts["styles"] = draw.styles_ref
        checked = validate.instruction(done.text, done.finish_reason, response_en,
                                       has_context=context_en is not None,
                                       identify=self._identify)
        if checked.problem:
            raise StageReject("instruct", *checked.problem, raw=done.text)
        return checked.text

    async def judge(self, item_id: str, instruction_en: str, response_en: str,
                    trace: Trace) -> Verdict:
        template = self.judge_prompt
        messages = render(template, {"instruction": instruction_en, "response": response_en})
        error: VerdictError | None = None
        answers: list[str] = []
        for attempt in range(MAX_REASKS + 1):
            done = await self._call("judge", self.models.judge, template, messages, item_id,
                                    trace)
            answers.append(done.text)
            try:
                verdict = parse_verdict(done.text)
            except VerdictError as exc:
                error = exc
                self.judge_parse_failures += 1
                if attempt == MAX_REASKS:
                    break
                self.judge_reasks += 1
                messages = (*messages, Message("assistant", done.text),
                            Message("user", reask_message(exc, template.output)))
                continue
            self.judge_verdicts += 1
            self.judge_structured += done.structured
            trace.structured = done.structured
            return verdict
        cut = " (max_tokens cut the last answer)" if done.finish_reason == "length" else ""
        raise StageReject("judge", error.code if error else "judge_unparsed",
                          f"no valid verdict after {MAX_REASKS} re-asks: {error}{cut}",
                          raw="\n---\n".join(answers))

    async def back(self, item_id: str, instruction_en: str, lang: Language,
                   has_context: bool, trace: Trace) -> str:
        if lang.code == "en":
            return instruction_en
        messages = render(self.back_prompt, {"text": instruction_en, "target_lang": lang.code,
                                             "target_name": lang.name})
        done = await self._call("back", self.models.translator, self.back_prompt, messages,
                                item_id, trace,
                                max_tokens=self._budget(self.back_prompt, instruction_en,
                                                        self.models.translator, BACK_BUDGET))
        checked = validate.back_translation(done.text, done.finish_reason, lang,
                                            has_context=has_context, identify=self._identify)
        if checked.problem:
            raise StageReject("back", *checked.problem, raw=done.text)
        return checked.text
