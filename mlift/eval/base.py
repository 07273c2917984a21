"""What every eval task shares: the item, the task protocol, field checks, the registry.

A task turns benchmark rows into :class:`EvalItem`\\ s (one prompt each, with
its reference), and scores what a model answered: per item for reading, and
per group (language, direction) as corpus statistics the bootstrap resamples
(:mod:`mlift.eval.bootstrap`). Items are keyed ``lang/direction/id`` so a
re-run skips what a model has already answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlift.errors import ConfigError, InputError, UnknownNameError
from mlift.eval.bootstrap import Array, ScoreFn
from mlift.eval.data import Rows


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One prompt of a benchmark with what a correct answer looks like."""

    lang: str
    id: str
    variables: Mapping[str, str]
    reference: str
    direction: str = ""  # translation only: "en-hi" or "hi-en"
    options: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""  # the prompt id this item is rendered with
    # A translation's source text: its answer's max_tokens is sized from it
    # (a looping model stops near the length a translation can have, not at
    # the prompt's cap).
    budget_source: str = ""

    @property
    def key(self) -> str:
        return f"{self.lang}/{self.direction}/{self.id}"

    @property
    def group(self) -> str:
        """Items scored together: a language, or a language pair's direction."""
        return self.direction or self.lang


@dataclass(frozen=True, slots=True)
class Metric:
    """A corpus metric of one group: per-item rows and the score of their sum."""

    name: str
    stats: Array
    score: ScoreFn


@dataclass(slots=True)
class Loaded:
    """A task's items, the rows it could not use, and where the rows came from."""

    items: list[EvalItem] = field(default_factory=list)
    invalid: list[InputError] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Task(Protocol):
    """One benchmark: its data schema, prompts and metrics."""

    name: str
    metric_names: tuple[str, ...]
    hub_dataset: str
    hub_split: str

    def hub_configs(self, langs: Sequence[str]) -> list[tuple[str | None, str | None]]:
        """(config, language of its rows or None) to load from ``hub_dataset``."""
        ...

    def load(self, sources: Sequence[Rows], langs: Sequence[str]) -> Loaded: ...

    def score_item(self, item: EvalItem, output: str) -> dict[str, Any]: ...

    def group_metrics(self, items: Sequence[EvalItem], outputs: Sequence[str]
                      ) -> list[Metric]: ...

    def signatures(self) -> dict[str, str]: ...


def text_field(row: Mapping[str, Any], name: str, where: str, line: int,
               *, required: bool = True) -> str | InputError | None:
    """``row[name]`` as a non-empty string, or the InputError saying what is wrong."""
    if name not in row or row[name] is None:
        if not required:
            return None
        return InputError("missing", file=where, line=line, field=name, code="missing_field")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return InputError(f"expected a string, got {type(value).__name__}", file=where,
                          line=line, field=name, code="bad_type")
    text = str(value).strip()
    if not text:
        return InputError("empty", file=where, line=line, field=name, code="empty_field")
    return text


def row_lang(rows: Rows, row: Mapping[str, Any], line: int, lang_field: str = "lang"
             ) -> str | InputError:
    """The row's language: its ``lang`` field, else the source's (``--data hi=FILE``)."""
    from mlift.langs import get_language

    value = row.get(lang_field)
    if value is None:
        if rows.lang is None:
            return InputError(f"no language: add a {lang_field!r} field or give the file as "
                              "--data LANG=FILE", file=rows.where, line=line, field=lang_field,
                              code="missing_field")
        return rows.lang
    if not isinstance(value, str):
        return InputError("expected a language code", file=rows.where, line=line,
                          field=lang_field, code="bad_type")
    try:
        return get_language(value).code
    except UnknownNameError as exc:
        return InputError(str(exc), file=rows.where, line=line, field=lang_field,
                          code="unknown_lang")


def check_found(task: str, loaded: Loaded, langs: Sequence[str]) -> None:
    """Fail before any request when a wanted language has no valid item at all."""
    have = {i.lang for i in loaded.items}
    missing = [lang for lang in langs if lang not in have]
    if missing:
        first = f"; first invalid row: {loaded.invalid[0]}" if loaded.invalid else ""
        where = ", ".join(str(s.get("path") or s.get("dataset")) for s in loaded.sources)
        raise ConfigError(f"{task}: no valid items for {', '.join(missing)} in {where}{first}")


_TASKS = ("xlsum", "flores", "mmlu")


def get_task(name: str, **options: Any) -> Task:
    """The task called ``name``, built with its options (``spm_model`` for flores, …)."""
    if name == "xlsum":
        from mlift.eval.xlsum import XlsumTask
        return XlsumTask()
    if name == "flores":
        from mlift.eval.flores import FloresTask
        return FloresTask(**options)
    if name == "mmlu":
        from mlift.eval.mmlu import MmluTask
        return MmluTask(**options)
    raise UnknownNameError("eval task", name, list(_TASKS))


TASKS = _TASKS
