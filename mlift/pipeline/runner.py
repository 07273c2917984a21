"""``mlift run``: natural text in, a multilingual instruction dataset out.

Records stream from the inputs through selection (step 0, in input order, so
dedup decisions do not depend on timing) into a bounded pool of workers that
take each item through the model stages (steps 1–6). Every item ends in
exactly one of dataset / below threshold / rejects; finished items are
skipped on a re-run, and the cache makes half-finished ones free.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift import __version__
from mlift.engine.core import Engine
from mlift.engine.scheduler import NOT_DONE, Scheduler
from mlift.errors import BudgetExceeded, InputError
from mlift.langs import get_language
from mlift.pipeline.outputs import RunFiles, scan
from mlift.pipeline.select import Reject, SelectConfig, Selector
from mlift.pipeline.sources import Record, read_records
from mlift.pipeline.stages import Models, StageReject, Stages, Trace
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER, contains_original
from mlift.prompts import PromptLibrary, draw

# The instruct prompts that fit each kind of context-bearing record.
CONTEXT_TASKS = {"qa": ("question_context",), "summarization": ("summary_context",),
                 "title": ("summary_context",)}


@dataclass(frozen=True, slots=True)
class RunOptions:
    inputs: Sequence[Path]
    out_dir: Path
    models: Models
    lang: str | None = None
    fmt: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    lang_field: str = "lang"
    context_fields: tuple[str, ...] = ()
    txt_mode: str = "line"
    judge_prompt: str = "judge/fit"
    tasks: tuple[str, ...] | None = None
    min_score: int = 4
    seed: int = 0
    select: SelectConfig = field(default_factory=SelectConfig)
    workers: int = 64
    # Process only these selected records (a pilot run); None = all.
    only_ids: frozenset[str] | None = None


@dataclass(slots=True)
class RunReport:
    inputs: int = 0
    kept: int = 0
    below: int = 0
    rejected: int = 0
    skipped_done: int = 0
    stopped: str | None = None
    funnel: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.inputs == self.kept + self.below + self.rejected


@dataclass(frozen=True, slots=True)
class _Bad:
    """An input line that could not be read as a record."""

    id: str
    error: InputError


def bad_input_id(error: InputError) -> str:
    """Stable id for an unreadable input line (it has no usable id of its own)."""
    return "bad-" + hashlib.sha256(f"{error.file}:{error.line}".encode()).hexdigest()[:12]


def _source(record: Record) -> dict[str, Any]:
    return record.source.as_dict()


def _context_text(record: Record) -> str | None:
    if not record.context:
        return None
    return "\n\n".join(v for v in record.context.values() if v)


class Pipeline:
    def __init__(self, options: RunOptions, engine: Engine, library: PromptLibrary) -> None:
        self.o = options
        self.engine = engine
        self.library = library
        self.selector = Selector(options.select)
        identify = self.selector.identifier  # the same language ID the selection uses
        self.stages = Stages(engine, library, options.models, judge_prompt=options.judge_prompt,
                             identify=identify.rank if identify is not None else None)
        self.files = RunFiles(options.out_dir)
        self.report = RunReport()
        self.scheduler: Scheduler[Record | Reject | _Bad, dict[str, Any]] = Scheduler(
            self._work, self._emit, workers=options.workers)

    # -- input ------------------------------------------------------------

    def _items(self) -> Iterator[Record | Reject | _Bad]:
        o = self.o
        wanted = set(o.only_ids) if o.only_ids is not None else None
        for path in o.inputs:
            for item in read_records(path, fmt=o.fmt, text_field=o.text_field,
                                     id_field=o.id_field, lang_field=o.lang_field,
                                     context_fields=o.context_fields, default_lang=o.lang,
                                     txt_mode=o.txt_mode):
                self.report.inputs += 1
                # Selection sees every record, finished or not, so a resumed run
                # makes the same dedup decisions as an uninterrupted one.
                out: Record | Reject | _Bad
                if isinstance(item, InputError):
                    out = _Bad(bad_input_id(item), item)
                else:
                    out = self.selector.select(item)
                item_id = out.id if not isinstance(out, Reject) else out.record.id
                if wanted is not None:
                    if item_id not in wanted or not isinstance(out, Record):
                        continue
                    wanted.discard(item_id)
                if self.files.finished.done(item_id, o.min_score):
                    self.report.skipped_done += 1
                    continue
                yield out
                if wanted is not None and not wanted:
                    return  # every chosen record is on its way

    # -- one item -----------------------------------------------------------

    async def _work(self, item: Record | Reject | _Bad) -> Any:
        if isinstance(item, _Bad):
            e = item.error
            return {"reject": {"id": item.id, "lang": None, "stage": "input", "code": e.code,
                               "detail": str(e), "source": {"file": e.file, "line": e.line,
                                                            "field": e.field}}}
        if isinstance(item, Reject):
            r = item.record
            return {"reject": {"id": r.id, "lang": r.lang, "stage": item.stage,
                               "code": item.code, "detail": item.detail, "response": r.text,
                               "source": _source(r)}}
        try:
            return await self._process(item)
        except BudgetExceeded as exc:
            self.report.stopped = str(exc)
            self.scheduler.stop()
            return NOT_DONE

    async def _process(self, record: Record) -> dict[str, Any]:
        o, stages = self.o, self.stages
        lang = get_language(record.lang or "")
        trace = Trace()
        context = _context_text(record)
        scored: dict[str, Any] | None = None
        base = {"id": record.id, "lang": lang.code}
        try:
            response_en = await stages.to_english(record.id, record.text, lang, trace)
            context_en = None
            if context is not None:
                context_en = await stages.to_english(record.id, context, lang, trace,
                                                     stage="to_en_context")
            tasks = o.tasks
            if context is not None and tasks is None:
                tasks = CONTEXT_TASKS.get(str(record.fields.get("task", "")))
            drawn = draw(o.seed, record.id, self.library, tasks, context=context is not None)
            instruction_en = await stages.instruct(record.id, drawn, response_en, context_en,
                                                   trace)
            # The judge sees the instruction as the answerer would: with the document in it.
            judged = (instruction_en if context_en is None
                      else instruction_en.replace(CONTEXT_PLACEHOLDER, context_en))
            verdict = await stages.judge(record.id, judged, response_en, trace)
            kept = verdict.score >= o.min_score
            scored = {**base, "score": verdict.score, "reason": verdict.reason, "kept": kept,
                      "instruction_en": instruction_en, "response_en": response_en,
                      "response": record.text, "context": record.context,
                      "task": drawn.template.task, "style": drawn.style.name,
                      "length_hint": drawn.length.name, "prompts": dict(trace.prompts),
                      "models": self._models(), "source": _source(record),
                      "fields": dict(record.fields), "usage": trace.usage}
            if not kept:
                return {"scored": scored}
            instruction = await stages.back(record.id, instruction_en, lang,
                                             context is not None, trace)
            if context is not None:
                instruction = instruction.replace(CONTEXT_PLACEHOLDER, context)
            problem = contains_original(instruction, record.text)
            if problem:
                raise StageReject("emit", *problem, raw=instruction)
        except StageReject as r:
            reject = {**base, "stage": r.stage, "code": r.code, "detail": r.detail,
                      "raw": r.raw, "response": record.text, "source": _source(record),
                      "prompts": trace.prompts, "usage": trace.usage}
            return {"scored": scored, "reject": reject} if scored else {"reject": reject}
        row = {**base, "instruction": instruction, "response": record.text,
               "instruction_en": instruction_en, "response_en": response_en,
               "task": drawn.template.task, "style": drawn.style.name,
               "length_hint": drawn.length.name, "score": verdict.score,
               "reason": verdict.reason, "prompts": dict(trace.prompts),
               "models": self._models(), "source": _source(record),
               "fields": dict(record.fields), "usage": trace.usage}
        return {"scored": scored, "kept": row}

    def _models(self) -> dict[str, str]:
        m = self.o.models
        return {"translator": m.translator, "generator": m.generator, "judge": m.judge}

    def _emit(self, _index: int, _item: object, outcome: dict[str, Any]) -> None:
        if outcome.get("scored"):
            self.files.scored(outcome["scored"])
        if outcome.get("kept"):
            self.files.kept(outcome["kept"])
        if outcome.get("reject"):
            self.files.reject(outcome["reject"])

    # -- the whole run ------------------------------------------------------

    async def run(self) -> RunReport:
        started = time.time()
        try:
            await self.scheduler.run(self._items())
        finally:
            self.files.close()
            self._finish(started)
        return self.report

    def _finish(self, started: float) -> None:
        finished = scan(self.o.out_dir)
        r = self.report
        r.kept, r.rejected = len(finished.kept), len(finished.rejected)
        r.below = len(finished.below(self.o.min_score))
        scores = [finished.scores[i] for i in finished.scores]
        r.funnel = {
            "input": r.inputs, "kept": r.kept, "below_threshold": r.below,
            "rejected": r.rejected, "balanced": r.balanced,
            "selection": self.selector.counts(),
            "rejects_by_stage_and_reason": dict(sorted(finished.reasons.items())),
            "scored": len(scores),
            "score_histogram": {str(s): scores.count(s) for s in range(1, 6)},
            "judge_parse_failures": self.stages.judge_parse_failures,
            "judge_reasks": self.stages.judge_reasks,
        }
        data: dict[str, Any] = {
            "mlift_version": __version__,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_s": round(time.time() - started, 3),
            "stopped_early": r.stopped,
            "config": self._config(),
            "prompts": {t.name: t.ref for t in self.library},
            "funnel": r.funnel,
            "accounting": self.engine.accounting.snapshot(),
            "budget": self.engine.budget.to_json(),
        }
        estimate = self.o.out_dir / "estimate.json"
        if estimate.exists():  # written by `mlift estimate --out DIR`
            from mlift.estimate import estimate_vs_actual

            data["estimate_vs_actual"] = estimate_vs_actual(
                json.loads(estimate.read_text(encoding="utf-8")), data["accounting"])
        self.files.write_run_json(data)

    def _config(self) -> dict[str, Any]:
        o = self.o
        return {"inputs": [str(p) for p in o.inputs], "out": str(o.out_dir), "lang": o.lang,
                "models": self._models(), "judge_prompt": o.judge_prompt,
                "tasks": list(o.tasks) if o.tasks else None, "min_score": o.min_score,
                "seed": o.seed, "text_field": o.text_field, "context_fields":
                list(o.context_fields), "select": {k: getattr(o.select, k) for k in (
                    "min_chars", "max_chars", "dedup", "near_dup", "lang_id")}}
