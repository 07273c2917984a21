"""One ``mlift eval`` invocation: every (model, item) request through the engine.

Requests go through :meth:`mlift.engine.core.Engine.complete` — rate limits,
retries, the response cache, ``--max-cost`` — from a bounded pool of workers
(:class:`~mlift.engine.scheduler.Scheduler`). Each answer is written to the
run folder as it arrives (:mod:`mlift.eval.store`) with its per-item scores,
so an interrupted run resumes where it stopped. A provider failure of one
item is written to ``failures.jsonl`` and retried next time; an unusable
endpoint (a bad key, a wrong URL) stops the run; the budget cap stops it
cleanly. The summary is then computed from everything the folder holds
(:mod:`mlift.eval.summary`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlift.engine.core import Engine
from mlift.engine.scheduler import NOT_DONE, Scheduler
from mlift.errors import BudgetExceeded, EndpointUnusable, ProviderError
from mlift.eval.base import EvalItem, Task
from mlift.eval.store import EvalFolder
from mlift.prompts import PromptLibrary, PromptTemplate, render
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


def build_request(template: PromptTemplate, item: EvalItem, model: ModelRef,
                  task: str) -> Request:
    params = template.params
    return Request(target=model.spec, messages=render(template, item.variables),
                   max_tokens=int(params.get("max_tokens", 512)),
                   temperature=float(params.get("temperature", 0.0)),
                   prompt=template.ref, stage=task, item_id=item.key)


class EvalRun:
    """The requests of one invocation, sent and written to the folder."""

    def __init__(self, task: Task, items: Sequence[EvalItem], models: Sequence[ModelRef],
                 engine: Engine, library: PromptLibrary, folder: EvalFolder, *,
                 workers: int = 64) -> None:
        self.task, self.items, self.models = task, list(items), list(models)
        self.engine, self.folder = engine, folder
        self.templates = {p: library.get(p) for p in sorted({i.prompt for i in self.items})}
        self.report = RunReport()
        done = folder.done()
        self.pending = [(m, i) for m in self.models for i in self.items
                        if (m.label, i.key) not in done]
        self.report.skipped_done = len(self.models) * len(self.items) - len(self.pending)
        self.report.pending = len(self.pending)
        self.scheduler: Scheduler[tuple[ModelRef, EvalItem], dict[str, Any]] = Scheduler(
            self._work, self._emit, workers=workers)

    def requests(self) -> Iterator[tuple[ModelRef, EvalItem, Request]]:
        for model, item in self.pending:
            yield model, item, build_request(self.templates[item.prompt], item, model,
                                             self.task.name)

    async def run(self) -> RunReport:
        try:
            await self.scheduler.run(self.pending)
        finally:
            self.folder.close()
        return self.report

    async def _work(self, job: tuple[ModelRef, EvalItem]) -> Any:
        model, item = job
        request = build_request(self.templates[item.prompt], item, model, self.task.name)
        started = time.time()
        try:
            done = await self.engine.complete(request)
        except BudgetExceeded as exc:
            self.report.stopped = str(exc)
            self.scheduler.stop()
            return NOT_DONE
        except EndpointUnusable:
            raise
        except ProviderError as exc:
            return {"failure": {**self._base(model, item, request), "error": type(exc).__name__,
                                "detail": str(exc), "at": round(started, 3)}}
        record = {**self._base(model, item, request), "output": done.text,
                  "finish_reason": done.finish_reason, "reference": item.reference,
                  "scores": self.task.score_item(item, done.text),
                  "usage": {"input_tokens": done.usage.input_tokens,
                            "output_tokens": done.usage.output_tokens,
                            "cost_usd": round(done.cost_usd, 10), "cached": done.cached,
                            "latency_s": round(done.latency_s, 4)},
                  "model_reported": done.model}
        if item.options:
            record["options"] = list(item.options)
        return {"item": record}

    def _base(self, model: ModelRef, item: EvalItem, request: Request) -> dict[str, Any]:
        return {"key": item.key, "id": item.id, "lang": item.lang,
                "direction": item.direction, "model": model.label, "spec": model.spec,
                "prompt": request.prompt, "source": dict(item.source)}

    def _emit(self, _index: int, _job: object, outcome: dict[str, Any]) -> None:
        if "item" in outcome:
            self.folder.add_item(outcome["item"])
            self.report.answered += 1
        else:
            failure = outcome["failure"]
            self.folder.add_failure(failure)
            self.report.failed += 1
            self.report.errors[failure["error"]] = self.report.errors.get(failure["error"], 0) + 1


def item_from_record(record: dict[str, Any]) -> EvalItem:
    """Enough of an item, rebuilt from its answer record, to score it again."""
    return EvalItem(lang=record["lang"], id=record["id"], variables={},
                    reference=record["reference"], direction=record.get("direction", ""),
                    options=tuple(record.get("options", ())))
