"""The eval run folder: a :class:`~mlift.runfolder.RunFolder` of command ``eval``.

The run-folder component owns the manifest (identity: task, prompt refs,
options that change answers, the data's fingerprints), the refusal to resume
with another identity (``--new-generation`` archives the old run), the
ledger of every invocation and ``run.json``; records are written and read
through :mod:`mlift.records`' one JSONL reader and writer. What an eval adds:

    items.jsonl     EvalAnswer: one per (model, item) answered, with output, reference, scores
    failures.jsonl  EvalFailure: a provider failure; that item is retried on the next run
    invalid.jsonl   input rows that could not be used, with file, line and field
    summary.json    scores with bootstrap intervals per group and model, and the deltas

Resuming is by (model label, item key): answered items are skipped, so a
re-run sends only what is missing, and the response cache makes a re-run in a
fresh folder free. Models are not part of the identity — adding a label is
how a second model joins a comparison — but a label already answered for may
not point at another model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlift.errors import InputError, RunFolderError
from mlift.records import RecordBase, iter_records, repair_torn_tail, rewrite, write_json
from mlift.runfolder import MANIFEST, RunFolder

COMMAND = "eval"
INVALID, SUMMARY = "invalid.jsonl", "summary.json"


@dataclass(frozen=True, slots=True)
class EvalAnswer(RecordBase):
    """A model's answer to one benchmark item, with its reference and per-item scores."""

    FILE: ClassVar[str] = "items.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("key", "model", "output", "reference")

    key: str
    id: str
    lang: str
    direction: str
    model: str
    spec: str
    output: str
    reference: str
    finish_reason: str = "stop"
    scores: dict[str, Any] = field(default_factory=dict)
    options: list[str] | None = None
    prompt: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    model_reported: str | None = None
    structured: bool | None = None
    source: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float:
        return float(self.usage.get("cost_usd", 0.0))


@dataclass(frozen=True, slots=True)
class EvalFailure(RecordBase):
    """A call for one item that failed at the provider; the item is sent again next run."""

    FILE: ClassVar[str] = "failures.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("key", "model", "error")

    key: str
    id: str
    lang: str
    direction: str
    model: str
    spec: str
    error: str
    detail: str = ""
    prompt: str | None = None
    source: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def open_folder(path: Path, identity: dict[str, Any], models: dict[str, str], *,
                new_generation: bool = False) -> RunFolder:
    """Create or resume ``path`` for this eval; refuse another identity or a relabelled model."""
    folder = RunFolder.open(path, command=COMMAND, identity=identity,
                            new_generation=new_generation)
    for cls in (EvalAnswer, EvalFailure):
        repair_torn_tail(folder.file(cls))
    clash = sorted({f"{r.model}: was {r.spec}, now {models[r.model]}" for r in answers(folder)
                    if r.model in models and models[r.model] != r.spec})
    if clash:
        raise RunFolderError(f"{path}: model label{'s' if len(clash) > 1 else ''} already used "
                             f"for another model ({'; '.join(clash)}); give the new model "
                             "another label (--model LABEL=NAME:MODEL)")
    return folder


def load_folder(path: Path) -> RunFolder:
    return RunFolder.load(path, expect=COMMAND)


def is_eval_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder written by ``mlift eval``."""
    if not (path / MANIFEST).is_file():
        return False
    try:
        return RunFolder.load(path).command == COMMAND
    except RunFolderError:
        return False


def answers(folder: RunFolder) -> list[EvalAnswer]:
    return list(iter_records(folder.file(EvalAnswer), EvalAnswer))


def open_failures(folder: RunFolder, done: set[tuple[str, str]]) -> list[EvalFailure]:
    """Failures whose item has not been answered since."""
    return [f for f in iter_records(folder.file(EvalFailure), EvalFailure)
            if (f.model, f.key) not in done]


def done_keys(records: list[EvalAnswer]) -> set[tuple[str, str]]:
    """(model label, item key) of every answered item."""
    return {(r.model, r.key) for r in records}


def labels(folder: RunFolder, records: list[EvalAnswer], current: dict[str, str]
           ) -> dict[str, str]:
    """Every model label in the folder, the baseline first.

    The order the folder's last summary had (its first model stays the baseline
    when another joins), then this invocation's new labels in flag order.
    """
    previous = folder.summary().get("models")
    out = dict(previous) if isinstance(previous, dict) else {}
    for label, spec in current.items():
        out.setdefault(label, spec)
    for r in records:
        out.setdefault(r.model, r.spec)
    return out


def write_invalid(folder: RunFolder, errors: list[InputError]) -> None:
    """This invocation's unusable input rows (replacing the previous list)."""
    rewrite(folder.path / INVALID, [{"file": e.file, "line": e.line, "field": e.field,
                                     "code": e.code, "detail": str(e)} for e in errors])


def write_summary(folder: RunFolder, summary: dict[str, Any]) -> None:
    write_json(folder.path / SUMMARY, summary)


def read_summary(path: Path) -> dict[str, Any]:
    file = path / SUMMARY
    if not file.is_file():
        raise RunFolderError(f"{path}: an eval folder without {SUMMARY} (interrupted before "
                             "its first summary?); re-run the same mlift eval command")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{file}: not valid JSON ({exc}); re-run mlift eval to rewrite "
                             "it") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{file}: expected a JSON object")
    return data
