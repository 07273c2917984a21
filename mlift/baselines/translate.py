"""The translation baseline: an English IFT dataset machine-translated into L.

Each record's instruction (with its input appended, as Alpaca's template
shows it to a model) is translated with ``translate/back`` (the prompt that
translates a request's own words), and its response with ``translate/ift``.
Both answers are checked like the pipeline's back-translations (empty,
truncated, still English, wrong script); a failed check or a failed call is a
reject, never a silent drop. Rows share ``mlift run``'s core schema with
``task: "translated"`` and no score, so the two datasets can be compared and
exported the same way.

The run folder, resume and accounting are ``mlift run``'s
(:mod:`mlift.runfolder`): a re-run skips ids already in ``dataset.jsonl`` or
``rejects.jsonl`` and retries items whose calls failed at the provider (the
cache makes half-finished items free). With ``batch``, the calls go out as
batch jobs between passes over the input (:mod:`mlift.pipeline.batchrun`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.errors import ConfigError, InputError
from mlift.langs import Language, get_language
from mlift.pipeline import validate
from mlift.pipeline.batchrun import BatchRun
from mlift.pipeline.parallel import in_thread
from mlift.pipeline.runner import input_reject, stage_reject
from mlift.pipeline.sources import Record, read_records
from mlift.pipeline.stages import (
    BACK_BUDGET,
    StageEngine,
    StageReject,
    Trace,
    call_model,
    translation_budget,
)
from mlift.prompts import PromptLibrary, PromptTemplate, render
from mlift.records import DatasetRow, RecordBase, Reject
from mlift.runfolder import Finished, Run, RunFolder, endpoint_identity, fingerprints
from mlift.runfolder.report import RunReport

TASK = "translated"
INSTRUCTION_PROMPT = "translate/back"
RESPONSE_PROMPT = "translate/ift"
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class IftFields:
    """Field names of an English IFT record; ``input`` is optional per record."""

    instruction: str = "instruction"
    input: str = "input"
    response: str = "output"
    id: str = "id"
    lang: str = "lang"


PRESETS = {"alpaca": IftFields(), "dolly": IftFields(input="context", response="response")}
"""Field names of the two common layouts: Alpaca (``instruction, input, output``) and
Dolly (``instruction, context, response``)."""


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    inputs: Sequence[Path]
    out_dir: Path
    lang: str
    translator: str
    fields: IftFields = field(default_factory=IftFields)
    fmt: str | None = None
    lang_id: bool = True
    workers: int = 64
    new_generation: bool = False


def join_instruction(instruction: str, input_text: str | None) -> str:
    """The English instruction as a model would see it: the input on its own paragraph."""
    if not input_text or not input_text.strip():
        return instruction.strip()
    return f"{instruction.strip()}\n\n{input_text.strip()}"


@dataclass(frozen=True, slots=True)
class _Item:
    record: Record
    instruction_en: str
    fields: dict[str, Any]


class TranslateBaseline:
    """One translation-baseline run over ``options.inputs`` into ``options.out_dir``."""

    def __init__(self, options: TranslateOptions, engine: Engine,
                 library: PromptLibrary, *, batch: BatchRun | None = None) -> None:
        self.o = options
        self.lang = target_language(options.lang)
        self.engine = engine
        self.batch = batch
        self._stage_engine: StageEngine = batch.engine if batch is not None else engine
        self._finished_here: set[str] = set()  # by this invocation's passes (batch mode)
        self.instruction_prompt = library.get(INSTRUCTION_PROMPT)
        self.response_prompt = library.get(RESPONSE_PROMPT)
        self._identify: validate.Identify | None = None  # loaded by run(), in a thread
        self.report = RunReport()
        self.run_state: Run | None = None

    @property
    def emitted(self) -> int:
        return self.run_state.emitted if self.run_state is not None else 0

    def identity(self, known: list[dict[str, Any]] | None,
                 endpoint: dict[str, Any]) -> dict[str, Any]:
        o, f = self.o, self.o.fields
        return {"inputs": fingerprints(o.inputs, known),
                "models": {"translator": o.translator},
                "endpoints": {"translator": endpoint},
                "prompts": {"instruction": self.instruction_prompt.ref,
                            "response": self.response_prompt.ref},
                "params": {"lang": self.lang.code, "format": o.fmt, "lang_id": o.lang_id,
                           "fields": {"instruction": f.instruction, "input": f.input,
                                      "response": f.response, "id": f.id, "lang": f.lang}}}

    # -- input ------------------------------------------------------------

    def _items(self, done: Finished) -> Iterator[_Item | Reject]:
        """What to translate, in input order, minus what is ``done`` (blocking: it reads
        the inputs, so it runs in a thread)."""
        f = self.o.fields
        self.report.inputs = self.report.skipped_done = 0  # counted afresh by every pass
        for path in self.o.inputs:
            for item in read_records(path, fmt=self.o.fmt, text_field=f.response, id_field=f.id,
                                     lang_field=f.lang, context_fields=(f.instruction,),
                                     default_lang="en"):
                self.report.inputs += 1
                out = (input_reject(item, self.lang.code) if isinstance(item, InputError)
                       else self._item(item))
                item_id = out.id if isinstance(out, Reject) else out.record.id
                if done.done(item_id):
                    self.report.skipped_done += item_id not in self._finished_here
                    continue
                yield out

    def _item(self, record: Record) -> _Item | Reject:
        """The record ready to translate, or the reject saying why it is not."""
        f = self.o.fields
        if record.lang != "en":
            return _record_reject(record, self.lang.code, "not_english",
                                  f"{record.source.file}:{record.source.line}: field "
                                  f"{f.lang!r}: the record says {record.lang!r}; the "
                                  "translation baseline translates English records")
        extra = dict(record.fields)
        input_text = extra.pop(f.input, None)
        if input_text is not None and not isinstance(input_text, str):
            return _record_reject(record, self.lang.code, "bad_type",
                                  f"{record.source.file}:{record.source.line}: field "
                                  f"{f.input!r}: expected a string, got "
                                  f"{type(input_text).__name__}")
        instruction = (record.context or {})[f.instruction]
        return _Item(record, join_instruction(instruction, input_text), extra)

    # -- one item ---------------------------------------------------------

    async def _work(self, item: _Item | Reject) -> tuple[RecordBase, ...]:
        if isinstance(item, Reject):
            return (item,)
        return (await self._translate(item),)

    async def _translate(self, item: _Item) -> RecordBase:
        record, trace = item.record, Trace()
        response_en = record.text.strip()
        try:
            instruction = await self._call("translate_instruction", self.instruction_prompt,
                                           item.instruction_en, record.id, trace)
            response = await self._call("translate_response", self.response_prompt,
                                        response_en, record.id, trace)
        except StageReject as r:
            return stage_reject(r, item_id=record.id, lang=self.lang.code, response=None,
                                source=record.source.as_dict(), trace=trace,
                                instruction_en=item.instruction_en, response_en=response_en)
        return DatasetRow(
            id=record.id, lang=self.lang.code, instruction=instruction, response=response,
            instruction_en=item.instruction_en, response_en=response_en, task=TASK,
            prompts=dict(trace.prompts), models={"translator": self.o.translator},
            source=record.source.as_dict(), fields=item.fields, usage=trace.usage)

    async def _call(self, stage: str, template: PromptTemplate, text: str, item_id: str,
                    trace: Trace) -> str:
        lang, target = self.lang, self.o.translator
        model = self.engine.endpoint(target).model
        messages = render(template, {"text": text, "target_lang": lang.code,
                                     "target_name": lang.name})
        done = await call_model(self._stage_engine, stage, target, template, messages,
                                item_id, trace,
                                max_tokens=translation_budget(template, text, model,
                                                              BACK_BUDGET))
        out = done.text.strip()
        problem = (validate.check_output(done.text, done.finish_reason)
                   or _unchanged(out, text)
                   or validate.check_back_translation(out, lang, has_context=False,
                                                      identify=self._identify))
        if problem:
            raise StageReject(stage, *problem, raw=done.text)
        return out

    # -- the whole run ----------------------------------------------------

    async def run(self) -> RunReport:
        out = self.o.out_dir
        endpoint = endpoint_identity(self.engine.endpoint(self.o.translator))

        def open_folder() -> tuple[RunFolder, int, Finished]:
            folder = RunFolder.open(out, command="baseline translate",
                                    identity=self.identity(RunFolder.known_inputs(out),
                                                           endpoint),
                                    new_generation=self.o.new_generation)
            retried = folder.retry_failed()
            return folder, retried, folder.scan(repair=True)

        folder, retried, finished = await asyncio.to_thread(open_folder)
        if self.o.lang_id:
            self._identify = await asyncio.to_thread(_identifier, self.lang)
        r = self.report
        r.retried = retried
        async with Run(folder, self.engine, files=(DatasetRow, Reject),
                       finished=finished) as run:
            self.run_state = run
            try:
                if self.batch is None:
                    await run.each(in_thread(lambda: self._items(run.finished)), self._work,
                                   workers=self.o.workers)
                else:
                    await self.batch.run(run, lambda: in_thread(lambda: self._items(run.finished)),
                                         self._work, workers=self.o.workers,
                                         on_emit=self._finished_by_me)
            finally:
                r.stopped = run.stopped
                r.cost_usd, r.run_cost_usd = run.cost()
                r.count(run.finished)
                await run.summary(config=self._config(), funnel=r.funnel, baseline="translate",
                                  prompts={p.name: p.ref for p in (self.instruction_prompt,
                                                                   self.response_prompt)})
        return r

    def _finished_by_me(self, record: RecordBase) -> None:
        if isinstance(record, DatasetRow | Reject):
            self._finished_here.add(record.id)

    def _config(self) -> dict[str, Any]:
        f = self.o.fields
        return {"inputs": [str(p) for p in self.o.inputs], "out": str(self.o.out_dir),
                "lang": self.lang.code,
                "models": {"translator": self.o.translator}, "lang_id": self.o.lang_id,
                "fields": {"instruction": f.instruction, "input": f.input,
                           "response": f.response, "id": f.id, "lang": f.lang}}


def _record_reject(record: Record, lang: str, code: str, detail: str) -> Reject:
    return Reject(id=record.id, lang=lang, stage="input", code=code, detail=detail,
                  source=record.source.as_dict())


def target_language(code: str) -> Language:
    """The target language, which must not be English (the source)."""
    lang = get_language(code)
    if lang.code == "en":
        raise ConfigError("--lang en: the translation baseline translates English records "
                          "into another language; pick a target such as hi, te, ja or es")
    return lang


def _unchanged(output: str, source: str) -> validate.Problem:
    """The model handed the English text back instead of translating it."""
    words = _WORD.findall(output.casefold())
    if len(words) >= 4 and words == _WORD.findall(source.casefold()):
        return ("still_english", "the translation is the English text unchanged")
    return None


def _identifier(lang: Language) -> validate.Identify | None:
    """Language ID for Latin-script targets, where the script check cannot see English."""
    if "Latin" not in lang.scripts:
        return None
    from mlift.pipeline.select import default_identifier  # loads a model: only when needed

    return default_identifier().rank
