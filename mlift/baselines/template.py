"""The template baseline: instruction templates in L filled with NLP-dataset fields.

No model calls. For each record of an NLP dataset (an article and its
summary, a passage + question and its answer, an article and its title) one
template written in the target language is drawn, deterministically from
(seed, id), and filled with the record's context fields; the record's own
response (summary, answer, title) is the response.

Templates are data, shipped under ``mlift/data/templates`` (not in the prompt
folder: they are not model prompts, and the prompt loader accepts only
``<stage>/<task>/vN.toml`` prompt files there). One file per task, language
and version at ``<task>/<lang>/v<N>.toml``::

    task = "summarization"
    lang = "hi"
    version = 1
    description = "..."

    [[templates]]
    name = "one_or_two_sentences"
    text = '''
    नीचे दिए गए लेख का एक-दो वाक्यों में सारांश लिखिए।

    {article}
    '''

The latest version of a (task, language) file is used. Each template's
``ref`` (``summarization/hi/one_or_two_sentences@v1#<12 hex>``, the hash
being that of the template's own content) goes onto every row it made, so
editing one template changes exactly its rows' refs. ``--templates DIR``
adds folders with the same layout.
"""

from __future__ import annotations

import asyncio
import hashlib
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError, PromptError, UnknownNameError
from mlift.langs import get_language
from mlift.pipeline.runner import input_reject
from mlift.pipeline.sources import Record, read_records
from mlift.prompts import canonical_hash, placeholders
from mlift.records import DatasetRow, Reject
from mlift.runfolder import Run, RunFolder, fingerprints
from mlift.runfolder.report import RunReport


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task kind: the variable naming its response and those its templates fill."""

    response: str
    context: tuple[str, ...]


TASKS: Mapping[str, TaskSpec] = {
    "summarization": TaskSpec("summary", ("article",)),
    "qa": TaskSpec("answer", ("context", "question")),
    "title": TaskSpec("title", ("article",)),
}
"""The task kinds and their variables; a variable's default input field has its name."""

_FILE_FIELDS = {"task", "lang", "version", "description", "templates"}


def bundled_templates_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "templates"


@dataclass(frozen=True, slots=True)
class Template:
    """One instruction template; ``ref`` identifies its exact content."""

    task: str
    lang: str
    name: str
    version: int
    text: str
    content_hash: str

    @property
    def id(self) -> str:
        return f"{self.task}/{self.lang}/{self.name}"

    @property
    def ref(self) -> str:
        return f"{self.id}@v{self.version}#{self.content_hash[:12]}"

    def fill(self, values: Mapping[str, str]) -> str:
        """The template with every placeholder replaced; values are inserted verbatim."""
        # Loading checked that the text has only plain {name} placeholders of the task,
        # so format_map cannot reach attributes or indexes, and "{{" stays a literal "{".
        return self.text.format_map(values)


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The templates of one task in one language (one file, its latest version)."""

    task: str
    lang: str
    version: int
    path: Path
    templates: tuple[Template, ...]


def _fail(path: Path, fld: str, message: str) -> PromptError:
    return PromptError(f"{path}: field {fld!r}: {message}")


def parse_template_file(data: Mapping[str, Any], path: Path) -> TemplateSet:
    """Validate one parsed template file (see the module docstring for the layout)."""
    unknown = sorted(set(data) - _FILE_FIELDS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown field (known: {', '.join(sorted(_FILE_FIELDS))})")
    for name, kind in (("task", str), ("lang", str), ("version", int), ("description", str),
                       ("templates", list)):
        if not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
            raise _fail(path, name, f"missing or not a {kind.__name__}")
    task, version = data["task"], data["version"]
    if task not in TASKS:
        raise UnknownNameError("template task", task, list(TASKS))
    lang = get_language(data["lang"]).code
    if version < 1:
        raise _fail(path, "version", "must be >= 1")
    spec, out, seen = TASKS[task], [], set()
    for i, entry in enumerate(data["templates"]):
        where = f"templates[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "text"} or not all(
                isinstance(v, str) and v.strip() for v in entry.values()):
            raise _fail(path, where, "must have exactly a non-empty 'name' and 'text'")
        if entry["name"] in seen:
            raise _fail(path, f"{where}.name", f"duplicate name {entry['name']!r}")
        seen.add(entry["name"])
        text = entry["text"].strip("\n")
        try:
            used = set(placeholders(text))
        except ValueError as exc:
            raise _fail(path, f"{where}.text", str(exc)) from None
        if used != set(spec.context):
            raise _fail(path, f"{where}.text", f"a {task} template must use exactly "
                        f"{', '.join('{' + v + '}' for v in spec.context)}; it uses "
                        f"{', '.join('{' + v + '}' for v in sorted(used)) or 'none'}")
        digest = canonical_hash({"task": task, "lang": lang, "version": version, **entry})
        out.append(Template(task, lang, entry["name"], version, text, digest))
    if not out:
        raise _fail(path, "templates", "no templates")
    return TemplateSet(task, lang, version, path, tuple(out))


def _roots(dirs: Sequence[Path] | None) -> list[Path]:
    roots = [bundled_templates_dir(), *(Path(d) for d in dirs or ())]
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"{root}: template folder not found")
    return roots


def available_languages(task: str, dirs: Sequence[Path] | None = None) -> list[str]:
    """Language codes that have templates for ``task``."""
    return sorted({p.parent.name for root in _roots(dirs)
                   for p in (root / task).glob("*/v*.toml")})


def load_templates(task: str, lang: str, dirs: Sequence[Path] | None = None) -> TemplateSet:
    """The latest template set for ``task`` in ``lang`` (bundled, then ``dirs``).

    An unknown task or a language without templates is a
    :class:`~mlift.errors.ConfigError` listing what exists; a broken file is a
    :class:`~mlift.errors.PromptError` naming the file and field.
    """
    if task not in TASKS:
        raise UnknownNameError("template task", task, list(TASKS))
    language = get_language(lang)
    found: dict[int, TemplateSet] = {}
    for root in _roots(dirs):
        for path in sorted((root / task / language.code).glob("v*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise PromptError(f"{path}: invalid TOML: {exc}") from exc
            tset = parse_template_file(data, path)
            if (tset.task, tset.lang, path.name) != (task, language.code, f"v{tset.version}.toml"):
                raise _fail(path, "version", f"file must live at {tset.task}/{tset.lang}/"
                            f"v{tset.version}.toml inside its template folder")
            old = found.get(tset.version)
            if old is not None and old.templates != tset.templates:
                raise _fail(path, "version", f"v{tset.version} is already defined by "
                            f"{old.path} with different content; use a new version")
            found.setdefault(tset.version, tset)
    if not found:
        have = available_languages(task, dirs)
        raise ConfigError(f"no {task} templates in {language.name} ({language.code}); "
                          f"templates exist for: {', '.join(have) or 'none'} "
                          "(add your own folder with --templates DIR)")
    return found[max(found)]


def draw_template(seed: int, item_id: str, templates: Sequence[Template]) -> Template:
    """The template for one item, fixed by (seed, item_id).

    sha256 like :func:`mlift.prompts.draw` (not ``hash()``, salted per
    process, nor a shared RNG stream, order-dependent), so a resumed or
    reordered run draws the same template for each item.
    """
    digest = hashlib.sha256(f"mlift-template\x1f{seed}\x1f{item_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return templates[int(u * len(templates))]


@dataclass(frozen=True, slots=True)
class TemplateOptions:
    inputs: Sequence[Path]
    out_dir: Path
    lang: str
    task: str
    seed: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)
    """Template variable → input field, for the fields not named like the variable."""
    id_field: str = "id"
    lang_field: str = "lang"
    fmt: str | None = None
    template_dirs: Sequence[Path] = ()
    new_generation: bool = False

    def field_of(self, variable: str) -> str:
        return self.fields.get(variable, variable)


def check_fields(task: str, fields: Iterable[str]) -> None:
    """Every ``--field VAR=NAME`` names a variable of ``task``."""
    spec = TASKS[task]
    known = [spec.response, *spec.context]
    for var in fields:
        if var not in known:
            raise UnknownNameError(f"{task} variable", var, known)


def template_identity(o: TemplateOptions, tset: TemplateSet,
                      known: list[dict[str, Any]] | None) -> dict[str, Any]:
    spec = TASKS[o.task]
    return {"inputs": fingerprints(o.inputs, known),
            "templates": [t.ref for t in tset.templates],
            "params": {"lang": tset.lang, "task": o.task, "seed": o.seed, "format": o.fmt,
                       "fields": {v: o.field_of(v) for v in (spec.response, *spec.context)},
                       "id_field": o.id_field, "lang_field": o.lang_field}}


async def run_template_baseline(options: TemplateOptions) -> RunReport:
    """Fill templates for every record of ``options.inputs`` into ``options.out_dir``.

    Configuration problems (unknown task or language, no templates, a bad
    field mapping) raise before anything is written.
    """
    o = options
    tset, folder = await asyncio.to_thread(_open, o)
    spec = TASKS[o.task]
    report = RunReport()
    context_fields = tuple(o.field_of(v) for v in spec.context)

    def fill_all(run: Run) -> None:
        # No model calls: the whole job is reading and filling, done off the event loop.
        for path in o.inputs:
            for item in read_records(path, fmt=o.fmt, text_field=o.field_of(spec.response),
                                     id_field=o.id_field, lang_field=o.lang_field,
                                     context_fields=context_fields, default_lang=tset.lang):
                report.inputs += 1
                row = (input_reject(item, tset.lang) if isinstance(item, InputError)
                       else _row(item, tset, o))
                if run.finished.done(row.id):
                    report.skipped_done += 1
                else:
                    run.emit(row)

    finished = await asyncio.to_thread(folder.scan, repair=True)
    async with Run(folder, None, files=(DatasetRow, Reject), finished=finished) as run:
        try:
            await asyncio.to_thread(fill_all, run)
        finally:
            await run.flush()
            used = await asyncio.to_thread(
                lambda: Counter(r.template for r in folder.records(DatasetRow)))
            report.count(run.finished,
                         by_template={t.ref: used[t.ref] for t in tset.templates})
            await run.summary(config=_config(o, tset), funnel=report.funnel,
                              baseline="template", templates=[t.ref for t in tset.templates])
    return report


def _open(o: TemplateOptions) -> tuple[TemplateSet, RunFolder]:
    """Check the configuration, then open the run folder (nothing is written before the check)."""
    tset = load_templates(o.task, o.lang, o.template_dirs)
    check_fields(o.task, o.fields)
    for path in o.inputs:
        if not Path(path).is_file():
            raise ConfigError(f"input file not found: {path}")
    folder = RunFolder.open(o.out_dir, command="baseline template",
                            identity=template_identity(o, tset,
                                                       RunFolder.known_inputs(o.out_dir)),
                            new_generation=o.new_generation)
    return tset, folder


def _row(record: Record, tset: TemplateSet, o: TemplateOptions) -> DatasetRow | Reject:
    """The dataset row for one record, or its reject."""
    if record.lang != tset.lang:
        return Reject(id=record.id, lang=tset.lang, stage="input", code="wrong_lang",
                      detail=f"{record.source.file}:{record.source.line}: field "
                             f"{o.lang_field!r}: the record is {record.lang!r}, the templates "
                             f"are {tset.lang!r}", source=record.source.as_dict())
    template = draw_template(o.seed, record.id, tset.templates)
    ctx = record.context or {}
    values = {v: ctx[o.field_of(v)] for v in TASKS[tset.task].context}
    return DatasetRow(id=record.id, lang=tset.lang, instruction=template.fill(values),
                      response=record.text, task=tset.task, template=template.ref,
                      prompts={"template": template.ref}, source=record.source.as_dict(),
                      fields=dict(record.fields))


def _config(o: TemplateOptions, tset: TemplateSet) -> dict[str, Any]:
    spec = TASKS[o.task]
    return {"inputs": [str(p) for p in o.inputs], "out": str(o.out_dir), "lang": tset.lang,
            "task": o.task,
            "seed": o.seed, "templates_file": str(tset.path),
            "template_version": tset.version,
            "fields": {v: o.field_of(v) for v in (spec.response, *spec.context)},
            "id_field": o.id_field, "lang_field": o.lang_field}
