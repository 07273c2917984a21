"""``mlift run``: natural text in, a multilingual instruction dataset out.

Records stream from the inputs through selection (step 0, in input order, so
dedup decisions do not depend on timing) into a bounded pool of workers that
take each item through the model stages (steps 1–6). Every item ends in
exactly one of dataset / below threshold / rejects. The run folder
(:mod:`mlift.runfolder`) refuses to resume a run made with other settings,
skips finished items, retries items whose only fault was a failed provider
call, and keeps the ledger that ``--max-cost`` caps. With ``--batch`` the same
items and stages run in passes, the model calls going out as batch jobs
between them (:mod:`mlift.pipeline.batchrun`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.errors import InputError
from mlift.langs import get_language
from mlift.pipeline.batchrun import BatchRun
from mlift.pipeline.parallel import in_thread, select_stream
from mlift.pipeline.select import Reject as Selected
from mlift.pipeline.select import SelectConfig, Selector
from mlift.pipeline.sources import Record, read_records
from mlift.pipeline.stages import Models, StageEngine, StageReject, Stages, Trace
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER, contains_original
from mlift.prompts import PromptLibrary, draw
from mlift.records import DatasetRow, RecordBase, Reject, ScoredPair
from mlift.runfolder import Finished, Run, RunFolder, endpoint_identity, fingerprints
from mlift.runfolder.report import RunReport

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
    # Start a new generation if the folder holds a run made otherwise (else: refuse).
    new_generation: bool = False
    # Processes for selection (None: one per core; 1: none, all in this process).
    select_workers: int | None = None


def dataset_names(inputs: Sequence[Path]) -> list[str | None]:
    """Each input's dataset name for generated ids: its file name (the reader's default),
    or, where two inputs share a file name, the path as given, so their ids differ."""
    names = [p.name for p in inputs]
    return [None if names.count(p.name) == 1 else str(p) for p in inputs]


def bad_input_id(error: InputError) -> str:
    """The reject id of an input line: its own id if readable, else one made from file:line."""
    own = getattr(error, "record_id", None)
    if isinstance(own, str) and own and error.code != "duplicate_id":
        return own
    return "bad-" + hashlib.sha256(f"{error.file}:{error.line}".encode()).hexdigest()[:12]


def input_reject(error: InputError, lang: str | None = None) -> Reject:
    """The reject of an unreadable input line, filed under its id (see ``bad_input_id``)."""
    return Reject(id=bad_input_id(error), lang=lang, stage="input", code=error.code,
                  detail=str(error),
                  source={"file": error.file, "line": error.line, "field": error.field})


def stage_reject(r: StageReject, *, item_id: str, lang: str | None, response: str | None,
                 source: dict[str, Any] | None, trace: Trace | None = None,
                 **extra: Any) -> Reject:
    """The reject of an item a stage refused (a provider failure is marked for retry)."""
    return Reject(id=item_id, lang=lang, stage=r.stage, code=r.code, detail=r.detail,
                  source=source, response=response, raw=Reject.bounded(r.raw), retry=r.retry,
                  prompts=dict(trace.prompts) if trace else {},
                  usage=trace.usage if trace else {}, **extra)


def context_text(record: Record) -> str | None:
    """The record's context as the model sees it (its fields, blank-line separated)."""
    if not record.context:
        return None
    return "\n\n".join(v for v in record.context.values() if v)


def run_identity(options: RunOptions, endpoints: dict[str, dict[str, Any]],
                 library: PromptLibrary,
                 known_inputs: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What changes this run's outputs (see :mod:`mlift.runfolder.identity`).

    ``endpoints``: :func:`~mlift.runfolder.endpoint_identity` of each role's endpoint.
    """
    o, m = options, options.models
    specs = {"translator": m.translator, "generator": m.generator, "judge": m.judge}
    pool = library.pool("instruct", o.tasks) if o.tasks else [
        t for t in library if t.stage == "instruct"]
    return {
        "inputs": fingerprints(o.inputs, known_inputs),
        "models": specs,
        "endpoints": endpoints,
        "prompts": {"to_en": library.get("translate/to_en").ref,
                    "back": library.get("translate/back").ref,
                    "judge": library.get(o.judge_prompt).ref,
                    "instruct": sorted(t.ref for t in pool)},
        "params": {"seed": o.seed, "tasks": list(o.tasks) if o.tasks else None,
                   "judge_prompt": o.judge_prompt, "lang": o.lang, "format": o.fmt,
                   "text_field": o.text_field, "id_field": o.id_field,
                   "lang_field": o.lang_field, "context_fields": list(o.context_fields),
                   "txt_mode": o.txt_mode,
                   "select": {k: getattr(o.select, k) for k in (
                       "min_chars", "max_chars", "dedup", "near_dup", "lang_id")}},
    }


class Pipeline:
    """Selection, then the model stages per item, into a run folder.

    :meth:`run` needs the real :class:`Engine` (budget, accounting); :meth:`items`
    and :meth:`process` need only what the stages use, so the estimator drives them
    on its dry run (:mod:`mlift.estimate.dryrun`) and cannot drift from the run.
    With ``batch``, :meth:`run` goes over the items in passes whose stages talk to
    the batch run's deferring engine (:mod:`mlift.pipeline.batchrun`).
    """

    def __init__(self, options: RunOptions, engine: StageEngine, library: PromptLibrary, *,
                 batch: BatchRun | None = None) -> None:
        self.o = options
        self.engine = engine
        self.library = library
        self.batch = batch
        # Made on first use (in prepare()'s or items()'s thread): it loads the
        # language-ID model from disk, which must not happen on the event loop.
        self._selector: Selector | None = None
        # The same language ID the selection uses.
        self._identify = self._rank if options.select.lang_id else None
        self.stages = self._new_stages()
        self.report = RunReport()
        self.run_state: Run | None = None
        self._passes = 0
        self._finished_here: set[str] = set()  # ids finished by this invocation (batch mode)
        self._opened: tuple[RunFolder, int, Finished] | None = None

    @property
    def selector(self) -> Selector:
        """Step 0's selector (blocking on first use: it loads the language-ID model)."""
        if self._selector is None:
            self._selector = Selector(self.o.select)
        return self._selector

    def _rank(self, text: str) -> Sequence[tuple[str, float]]:
        identify = self.selector.identifier
        assert identify is not None, "the language check is off"
        return identify.rank(text)

    def _new_stages(self) -> Stages:
        engine = self.batch.engine if self.batch is not None else self.engine
        return Stages(engine, self.library, self.o.models, judge_prompt=self.o.judge_prompt,
                      identify=self._identify)

    @property
    def emitted(self) -> int:
        """Items finished by this invocation so far (for the progress line)."""
        return self.run_state.emitted if self.run_state is not None else 0

    # -- input ------------------------------------------------------------

    def _records(self) -> Iterator[Record | InputError]:
        o = self.o
        seen: set[int] = set()  # ids given in any of the inputs
        for path, dataset in zip(o.inputs, dataset_names(o.inputs), strict=True):
            yield from read_records(path, fmt=o.fmt, text_field=o.text_field,
                                    id_field=o.id_field, lang_field=o.lang_field,
                                    context_fields=o.context_fields, default_lang=o.lang,
                                    txt_mode=o.txt_mode, dataset=dataset, seen_ids=seen)

    def items(self, finished: Finished) -> Iterator[Record | Selected | InputError]:
        """What to process, in input order, minus what is ``finished`` (blocking: it reads
        and selects, so run it in a thread).

        Each batch-mode pass reads and selects afresh (a new selector, the same
        decisions) and counts the inputs again."""
        o = self.o
        if self._passes:
            self._selector = Selector(o.select)
            self.report.inputs = self.report.skipped_done = 0
        self._passes += 1
        wanted = set(o.only_ids) if o.only_ids is not None else None
        # Selection sees every record, finished or not, so a resumed run makes the
        # same dedup decisions as an uninterrupted one.
        for out in select_stream(self._records(), self.selector, workers=o.select_workers):
            self.report.inputs += 1
            item_id = (bad_input_id(out) if isinstance(out, InputError) else
                       out.record.id if isinstance(out, Selected) else out.id)
            if wanted is not None:
                if item_id not in wanted or not isinstance(out, Record):
                    self.report.inputs -= 1
                    continue
                wanted.discard(item_id)
            if finished.done(item_id, o.min_score):
                self.report.skipped_done += item_id not in self._finished_here
                continue
            yield out
            if wanted is not None and not wanted:
                return  # every chosen record is on its way

    # -- one item -----------------------------------------------------------

    async def _work(self, item: Record | Selected | InputError) -> Sequence[RecordBase]:
        if isinstance(item, InputError):
            return (input_reject(item, self.o.lang),)
        if isinstance(item, Selected):
            r = item.record
            return (Reject(id=r.id, lang=r.lang, stage=item.stage, code=item.code,
                           detail=item.detail, response=r.text, source=r.source.as_dict()),)
        if self.batch is None:
            records = await self.process(item)
        else:
            # Passes replay an item until it finishes: count its verdicts once, then.
            stages = self._new_stages()
            records = await self.process(item, stages)
            self._count_judge(stages)
        finished = self.run_state.finished if self.run_state else None
        # A resumed item (scored before, now above a lower threshold) is scored once.
        return tuple(r for r in records if not (
            isinstance(r, ScoredPair) and finished is not None and r.id in finished.scores))

    def _count_judge(self, item: Stages) -> None:
        s = self.stages
        s.judge_parse_failures += item.judge_parse_failures
        s.judge_reasks += item.judge_reasks
        s.judge_verdicts += item.judge_verdicts
        s.judge_structured += item.judge_structured

    async def process(self, record: Record, stages: Stages | None = None
                      ) -> tuple[RecordBase, ...]:
        """Take one selected record through the model stages (steps 1-6), on ``stages``
        (default: the pipeline's)."""
        o, stages = self.o, stages or self.stages
        lang = get_language(record.lang or "")
        trace = Trace()
        context = context_text(record)
        source = record.source.as_dict()
        scored: ScoredPair | None = None
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
            scored = ScoredPair(
                id=record.id, lang=lang.code, score=verdict.score, reason=verdict.reason,
                kept=kept, instruction_en=instruction_en, response_en=response_en,
                response=record.text, context=dict(record.context) if record.context else None,
                task=drawn.template.task,
                style=drawn.style.name, length_hint=drawn.length.name,
                prompts=dict(trace.prompts), models=self._models(), source=source,
                fields=dict(record.fields), usage=_copy(trace.usage),
                structured=trace.structured)
            if not kept:
                return (scored,)
            instruction = await stages.back(record.id, instruction_en, lang,
                                            context is not None, trace)
            if context is not None:
                instruction = instruction.replace(CONTEXT_PLACEHOLDER, context)
            problem = contains_original(instruction, record.text)
            if problem:
                raise StageReject("emit", *problem, raw=instruction)
        except StageReject as r:
            reject = stage_reject(r, item_id=record.id, lang=lang.code, response=record.text,
                                  source=source, trace=trace)
            return (scored, reject) if scored else (reject,)
        row = DatasetRow(
            id=record.id, lang=lang.code, instruction=instruction, response=record.text,
            instruction_en=instruction_en, response_en=response_en, task=drawn.template.task,
            style=drawn.style.name, length_hint=drawn.length.name, score=verdict.score,
            reason=verdict.reason, prompts=dict(trace.prompts), models=self._models(),
            source=source, fields=dict(record.fields), usage=trace.usage)
        return (scored, row)

    def _models(self) -> dict[str, str]:
        m = self.o.models
        return {"translator": m.translator, "generator": m.generator, "judge": m.judge}

    # -- the whole run ------------------------------------------------------

    def open_folder(self, endpoints: dict[str, dict[str, Any]]) -> tuple[RunFolder, int, Finished]:
        """Open (or resume) the run folder — refusing one made with other settings —,
        put provider-failure rejects back in line, and read what is finished."""
        known = RunFolder.known_inputs(self.o.out_dir)
        folder = RunFolder.open(self.o.out_dir, command="run",
                                identity=run_identity(self.o, endpoints, self.library, known),
                                new_generation=self.o.new_generation)
        retried = folder.retry_failed() if self.o.only_ids is None else 0
        return folder, retried, folder.scan(repair=True)

    async def prepare(self) -> None:
        """Open the run folder now (a refusal comes before anything else is shown)."""
        if self._opened is None:
            m = self.o.models
            endpoints = {role: endpoint_identity(self.engine.endpoint(spec)) for role, spec in
                         (("translator", m.translator), ("generator", m.generator),
                          ("judge", m.judge))}
            self._opened = await asyncio.to_thread(self.open_folder, endpoints)
            await asyncio.to_thread(lambda: self.selector)

    async def run(self) -> RunReport:
        if not isinstance(self.engine, Engine):
            raise TypeError("Pipeline.run sends requests: it needs an Engine, not a dry run")
        await self.prepare()
        assert self._opened is not None
        folder, retried, finished = self._opened
        r = self.report
        r.retried = retried
        async with Run(folder, self.engine, files=(DatasetRow, ScoredPair, Reject),
                       finished=finished) as run:
            self.run_state = run
            try:
                if self.batch is None:
                    await run.each(in_thread(lambda: self.items(run.finished)), self._work,
                                   workers=self.o.workers)
                else:
                    await self.batch.run(run, lambda: in_thread(lambda: self.items(run.finished)),
                                         self._work, workers=self.o.workers,
                                         on_emit=self._finished_by_this_run)
            finally:
                r.stopped = run.stopped
                self._finish(run)
                await run.checkpoint()  # the ledger's totals, for estimate_vs_actual, are final
                await run.summary(config=self._config(), funnel=r.funnel,
                                  prompts={t.name: t.ref for t in self.library},
                                  **await asyncio.to_thread(self._estimate_vs_actual, run))
        return r

    def _finished_by_this_run(self, record: RecordBase) -> None:
        if isinstance(record, DatasetRow | ScoredPair | Reject):
            self._finished_here.add(record.id)

    def _finish(self, run: Run) -> None:
        finished, r = run.finished, self.report
        r.cost_usd, r.run_cost_usd = run.cost()
        scores = list(finished.scores.values())
        r.count(finished, min_score=self.o.min_score,
                selection=self.selector.counts(), scored=len(scores),
                score_histogram={str(s): scores.count(s) for s in range(1, 6)},
                judge_parse_failures=self.stages.judge_parse_failures,
                judge_reasks=self.stages.judge_reasks,
                judge_structured_output={
                    "verdicts": self.stages.judge_verdicts,
                    "through_an_enforced_schema": self.stages.judge_structured,
                    "by_strict_text_parse":
                        self.stages.judge_verdicts - self.stages.judge_structured})

    def _estimate_vs_actual(self, run: Run) -> dict[str, Any]:
        """The estimate's error, if `mlift estimate --out` left one (blocking: reads it)."""
        estimate = self.o.out_dir / "estimate.json"
        if not estimate.exists():  # written by `mlift estimate --out DIR`
            return {}
        from mlift.estimate import estimate_vs_actual  # not needed on most runs

        return {"estimate_vs_actual": estimate_vs_actual(
            json.loads(estimate.read_text(encoding="utf-8")), run.ledger.totals())}

    def _config(self) -> dict[str, Any]:
        o = self.o
        return {"inputs": [str(p) for p in o.inputs], "out": str(o.out_dir), "lang": o.lang,
                "models": self._models(), "judge_prompt": o.judge_prompt,
                "tasks": list(o.tasks) if o.tasks else None, "min_score": o.min_score,
                "seed": o.seed, "text_field": o.text_field, "context_fields":
                list(o.context_fields), "select": {k: getattr(o.select, k) for k in (
                    "min_chars", "max_chars", "dedup", "near_dup", "lang_id")}}


def _copy(usage: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A snapshot of an item's usage so far (the trace keeps growing)."""
    return {stage: dict(cell) for stage, cell in usage.items()}
