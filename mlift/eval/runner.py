"""One ``mlift eval`` invocation: every (model, item) request through the engine.

Requests go through :meth:`mlift.engine.core.Engine.complete` — rate limits,
retries, the response cache, ``--max-cost`` (which caps the folder's total,
every invocation counted) — from the run-folder component's bounded run
skeleton (:class:`mlift.runfolder.Run`: scheduler, writer thread, ledger).
Each answer is written as it arrives, with its per-item scores, so an
interrupted run resumes where it stopped. A provider failure of one item is
an :class:`~mlift.eval.store.EvalFailure`, retried next time; an unusable
endpoint (a bad key, a wrong URL) stops the run; the budget cap stops it
cleanly. The summary is computed afterwards from everything the folder holds
(:mod:`mlift.eval.summary`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlift.engine.core import Engine
from mlift.errors import EndpointUnusable, ProviderError
from mlift.eval.base import EvalItem, Task
from mlift.eval.store import EvalAnswer, EvalFailure
from mlift.pipeline.stages import BACK_BUDGET, translation_budget
from mlift.prompts import PromptLibrary, PromptTemplate, render
from mlift.records import RecordBase
from mlift.runfolder import Run
from mlift.types import Request


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model under evaluation: the label it is shown under and its ``NAME:MODEL`` spec."""

    label: str
    spec: str


@dataclass(slots=True)
class RunReport:
    pending: int = 0
    answered: int = 0
    failed: int = 0
    skipped_done: int = 0
    stopped: str | None = None
    errors: dict[str, int] = field(default_factory=dict)


def limit_items(items: Sequence[EvalItem], limit: int | None) -> list[EvalItem]:
    """The first ``limit`` items of each group (language or direction), in input order."""
    if limit is None:
        return list(items)
    seen: dict[str, int] = {}
    out = []
    for item in items:
        if seen.get(item.group, 0) < limit:
            seen[item.group] = seen.get(item.group, 0) + 1
            out.append(item)
    return out


STRUCTURED_SUFFIX = "_json"
"""``eval/mmlu_json`` is ``eval/mmlu`` for endpoints that enforce its JSON Schema."""


def prompt_names(library: PromptLibrary, items: Sequence[EvalItem]) -> list[str]:
    """Every prompt the items may be sent with: each one and its schema variant, if any."""
    names = {i.prompt for i in items}
    names |= {n + STRUCTURED_SUFFIX for n in names
              if any(t.id == n + STRUCTURED_SUFFIX for t in library)}
    return sorted(names)


def build_request(template: PromptTemplate, item: EvalItem, model: ModelRef, task: str,
                  tokenizer_model: str = "") -> Request:
    """The request for ``item``; ``tokenizer_model`` sizes a translation's ``max_tokens``."""
    params = template.params
    max_tokens = int(params.get("max_tokens", 512))
    if item.budget_source:
        max_tokens = translation_budget(template, item.budget_source, tokenizer_model,
                                        BACK_BUDGET)
    return Request(target=model.spec, messages=render(template, item.variables),
                   max_tokens=max_tokens,
                   temperature=float(params.get("temperature", 0.0)),
                   prompt=template.ref, stage=task, item_id=item.key,
                   output_schema=template.output_schema)


class EvalRun:
    """The requests of one invocation, sent and written to the folder."""

    def __init__(self, task: Task, items: Sequence[EvalItem], models: Sequence[ModelRef],
                 engine: Engine, library: PromptLibrary, done: set[tuple[str, str]], *,
                 workers: int = 64) -> None:
        """``done``: (model label, item key) already answered in the folder, skipped."""
        self.task, self.items, self.models = task, list(items), list(models)
        self.engine, self.workers = engine, workers
        self.templates = {p: library.get(p) for p in prompt_names(library, self.items)}
        # Per model: send the schema variant of a prompt where the endpoint enforces it.
        self._structured = {m.label: engine.structured_outputs(m.spec) for m in self.models}
        self.report = RunReport()
        self.pending = [(m, i) for m in self.models for i in self.items
                        if (m.label, i.key) not in done]
        self.report.skipped_done = len(self.models) * len(self.items) - len(self.pending)
        self.report.pending = len(self.pending)
        self.run: Run | None = None

    @property
    def emitted(self) -> int:
        return self.run.emitted if self.run is not None else 0

    def template(self, model: ModelRef, item: EvalItem) -> PromptTemplate:
        """The prompt ``item`` goes to ``model`` with."""
        variant = item.prompt + STRUCTURED_SUFFIX
        if self._structured[model.label] and variant in self.templates:
            return self.templates[variant]
        return self.templates[item.prompt]

    def requests(self) -> Iterator[tuple[ModelRef, EvalItem, Request]]:
        for model, item in self.pending:
            yield model, item, self._request(model, item)

    def _request(self, model: ModelRef, item: EvalItem) -> Request:
        return build_request(self.template(model, item), item, model, self.task.name,
                             self.engine.endpoint(model.spec).model)

    async def execute(self, run: Run) -> RunReport:
        """Send every pending request inside ``run`` (an entered :class:`Run`)."""
        self.run = run
        await run.each(self.pending, self._work, workers=self.workers, on_emit=self._count)
        self.report.stopped = run.stopped
        return self.report

    async def _work(self, job: tuple[ModelRef, EvalItem]) -> Sequence[RecordBase]:
        model, item = job
        request = self._request(model, item)
        where: dict[str, Any] = {"key": item.key, "id": item.id, "lang": item.lang,
                 "direction": item.direction, "model": model.label, "spec": model.spec,
                 "prompt": request.prompt, "source": dict(item.source)}
        try:
            done = await self.engine.complete(request)
        except EndpointUnusable:
            raise
        except ProviderError as exc:
            return [EvalFailure(error=type(exc).__name__, detail=str(exc), **where)]
        return [EvalAnswer(
            output=done.text, reference=item.reference, finish_reason=done.finish_reason,
            scores=self.task.score_item(item, done.text),
            options=list(item.options) if item.options else None,
            usage={"input_tokens": done.usage.input_tokens,
                   "output_tokens": done.usage.output_tokens,
                   "cost_usd": round(done.cost_usd, 10), "cached": done.cached,
                   "latency_s": round(done.latency_s, 4)},
            model_reported=done.model, structured=done.structured, **where)]

    def _count(self, record: RecordBase) -> None:
        if isinstance(record, EvalAnswer):
            self.report.answered += 1
        elif isinstance(record, EvalFailure):
            self.report.failed += 1
            self.report.errors[record.error] = self.report.errors.get(record.error, 0) + 1


def item_from_record(record: EvalAnswer) -> EvalItem:
    """Enough of an item, rebuilt from its answer record, to score it again."""
    return EvalItem(lang=record.lang, id=record.id, variables={}, reference=record.reference,
                    direction=record.direction, options=tuple(record.options or ()))
