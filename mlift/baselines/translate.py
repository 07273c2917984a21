"""The translation baseline: an English IFT dataset machine-translated into L.

Each record's instruction (with its input appended, as Alpaca's template
shows it to a model) is translated with ``translate/back`` (the prompt that
translates a request's own words), and its response with ``translate/ift``.
Both answers are checked like the pipeline's back-translations (empty,
truncated, still English, wrong script); a failed check or a failed call is a
reject, never a silent drop. Rows share ``mlift run``'s core schema with
``task: "translated"`` and no score, so the two datasets can be compared and
exported the same way.

The run folder, resume and accounting are ``mlift run``'s: records stream
through a bounded :class:`~mlift.engine.scheduler.Scheduler`, rows are
appended by :class:`~mlift.pipeline.outputs.RunFiles` as they finish, and a
re-run skips ids already in ``dataset.jsonl`` or ``rejects.jsonl`` (the
cache makes half-finished items free).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.baselines.common import (
    BaselineReport,
    config_paths,
    finish_run,
    input_reject,
    record_reject,
)
from mlift.engine.core import Engine
from mlift.engine.scheduler import NOT_DONE, Scheduler
from mlift.errors import BudgetExceeded, ConfigError, InputError
from mlift.langs import Language, get_language
from mlift.pipeline import validate
from mlift.pipeline.outputs import DATASET, REJECTS, RunFiles
from mlift.pipeline.sources import Record, read_records
from mlift.pipeline.stages import (
    BACK_BUDGET,
    StageReject,
    Trace,
    call_model,
    translation_budget,
)
from mlift.prompts import PromptLibrary, PromptTemplate, render

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
                 library: PromptLibrary) -> None:
        self.o = options
        self.lang = target_language(options.lang)
        self.engine = engine
        self.instruction_prompt = library.get(INSTRUCTION_PROMPT)
        self.response_prompt = library.get(RESPONSE_PROMPT)
        self._identify = _identifier(self.lang) if options.lang_id else None
        self.files = RunFiles(options.out_dir, (DATASET, REJECTS))
        self.report = BaselineReport()
        self.scheduler: Scheduler[_Item | dict[str, Any], dict[str, Any]] = Scheduler(
            self._work, self._emit, workers=options.workers)

    # -- input ------------------------------------------------------------

    def _items(self) -> Iterator[_Item | dict[str, Any]]:
        f = self.o.fields
        done = self.files.finished
        for path in self.o.inputs:
            for item in read_records(path, fmt=self.o.fmt, text_field=f.response, id_field=f.id,
                                     lang_field=f.lang, context_fields=(f.instruction,),
                                     default_lang="en"):
                self.report.inputs += 1
                out = input_reject(item) if isinstance(item, InputError) else self._item(item)
                item_id = out["id"] if isinstance(out, dict) else out.record.id
                if item_id in done.kept or item_id in done.rejected:
                    self.report.skipped_done += 1
                    continue
                yield out

    def _item(self, record: Record) -> _Item | dict[str, Any]:
        """The record ready to translate, or the reject row saying why it is not."""
        f = self.o.fields
        if record.lang != "en":
            return record_reject(record, self.lang.code, "input", "not_english",
                                 f"{record.source.file}:{record.source.line}: field "
                                 f"{f.lang!r}: the record says {record.lang!r}; the translation "
                                 "baseline translates English records")
        extra = dict(record.fields)
        input_text = extra.pop(f.input, None)
        if input_text is not None and not isinstance(input_text, str):
            return record_reject(record, self.lang.code, "input", "bad_type",
                                 f"{record.source.file}:{record.source.line}: field "
                                 f"{f.input!r}: expected a string, got "
                                 f"{type(input_text).__name__}")
        instruction = (record.context or {})[f.instruction]
        return _Item(record, join_instruction(instruction, input_text), extra)

    # -- one item ---------------------------------------------------------

    async def _work(self, item: _Item | dict[str, Any]) -> Any:
        if isinstance(item, dict):
            return {"reject": item}
        try:
            return await self._translate(item)
        except BudgetExceeded as exc:
            self.report.stopped = str(exc)
            self.scheduler.stop()
            return NOT_DONE

    async def _translate(self, item: _Item) -> dict[str, Any]:
        record, trace = item.record, Trace()
        response_en = record.text.strip()
        try:
            instruction = await self._call("translate_instruction", self.instruction_prompt,
                                           item.instruction_en, record.id, trace)
            response = await self._call("translate_response", self.response_prompt,
                                        response_en, record.id, trace)
        except StageReject as r:
            return {"reject": record_reject(
                record, self.lang.code, r.stage, r.code, r.detail,
                instruction_en=item.instruction_en, response_en=response_en,
                prompts=dict(trace.prompts), usage=trace.usage)}
        return {"kept": {
            "id": record.id, "lang": self.lang.code, "instruction": instruction,
            "response": response, "instruction_en": item.instruction_en,
            "response_en": response_en, "task": TASK, "prompts": dict(trace.prompts),
            "models": {"translator": self.o.translator}, "source": record.source.as_dict(),
            "fields": item.fields, "usage": trace.usage}}

    async def _call(self, stage: str, template: PromptTemplate, text: str, item_id: str,
                    trace: Trace) -> str:
        lang, target = self.lang, self.o.translator
        model = self.engine.endpoint(target).model
        messages = render(template, {"text": text, "target_lang": lang.code,
                                     "target_name": lang.name})
        done = await call_model(self.engine, stage, target, template, messages, item_id, trace,
                                max_tokens=translation_budget(template, text, model,
                                                              BACK_BUDGET))
        out = done.text.strip()
        problem = (validate.check_output(done.text, done.finish_reason)
                   or _unchanged(out, text)
                   or validate.check_back_translation(out, lang, has_context=False,
                                                      identify=self._identify))
        if problem:
            raise StageReject(stage, *problem)
        return out

    def _emit(self, _index: int, _item: object, outcome: dict[str, Any]) -> None:
        if "kept" in outcome:
            self.files.kept(outcome["kept"])
        else:
            self.files.reject(outcome["reject"])

    # -- the whole run ----------------------------------------------------

    async def run(self) -> BaselineReport:
        started = time.time()
        try:
            await self.scheduler.run(self._items())
        finally:
            self.files.close()
            finish_run(self.files, self.report, baseline="translate", started=started,
                       config=self._config(),
                       extra={"prompts": {p.name: p.ref for p in (self.instruction_prompt,
                                                                  self.response_prompt)},
                              "accounting": self.engine.accounting.snapshot(),
                              "budget": self.engine.budget.to_json()})
        return self.report

    def _config(self) -> dict[str, Any]:
        f = self.o.fields
        return {**config_paths(tuple(self.o.inputs), self.o.out_dir), "lang": self.lang.code,
                "models": {"translator": self.o.translator}, "lang_id": self.o.lang_id,
                "fields": {"instruction": f.instruction, "input": f.input,
                           "response": f.response, "id": f.id, "lang": f.lang}}


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
