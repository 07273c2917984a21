"""The records a run folder holds, and the one reader and writer of their JSONL files.

Every line mlift writes into a run folder is one of these frozen dataclasses,
turned into JSON by one ``to_json`` and read back by one ``from_json``:

* :class:`DatasetRow` — a kept pair (``dataset.jsonl``), for ``mlift run`` and
  both baselines;
* :class:`ScoredPair` — every judged pair, kept or not (``scored.jsonl``);
* :class:`Reject` — an item that left the pipeline (``rejects.jsonl``);
* :class:`RequestResult` — one answered line of ``mlift requests``.

Unknown keys in a line (written by a newer mlift, or added by a user's
script) are kept in ``extra`` and written back, so rewriting a file never
drops them.

Reading (:func:`iter_records`) and writing (:class:`JsonlWriter`) go through
``jsonlines``. A last line without its newline is the mark of a writer killed
mid-line: readers skip it, and :func:`repair_torn_tail` cuts it off before a
writer appends again. Any other unreadable line means the file was damaged or
edited by hand; it is a :class:`~mlift.errors.RunFolderError` naming the file,
line and field rather than a silent stop that would hide every line after it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Final, Self, TypeVar

import jsonlines
import orjson

from mlift.errors import RunFolderError

Json = dict[str, Any]
R = TypeVar("R", bound="RecordBase")

# Model output kept on a reject, so a user can see what the model said.
RAW_LIMIT = 2_000


class RecordBase:
    """Shared JSON mapping: fields by name, ``extra`` for keys this version doesn't know."""

    FILE: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ("id",)

    def to_json(self) -> Json:
        data: Json = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name != "extra":
                data[f.name] = getattr(self, f.name)
        data.update(getattr(self, "extra", {}))
        return data

    @classmethod
    def from_json(cls, data: Json) -> Self:
        """The record of one parsed line; ``KeyError(field)`` if a required field is missing."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = {f.name for f in fields}
        for name in cls.REQUIRED:
            if name not in data:
                raise KeyError(name)
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        for f in fields:  # an optional field without a default (lang) may be absent: None
            if f.name not in known and f.name != "extra" and \
                    f.default is dataclasses.MISSING and \
                    f.default_factory is dataclasses.MISSING:
                known[f.name] = None
        extra = {k: v for k, v in data.items() if k not in names}
        if "extra" in names:
            known["extra"] = extra
        return cls(**known)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class DatasetRow(RecordBase):
    """A kept pair: the instruction in the target language and the original response.

    Baseline rows leave out what their method lacks: the translation baseline
    has no score, the template baseline no English side and no models.
    """

    FILE: ClassVar[str] = "dataset.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "instruction", "response")

    id: str
    lang: str | None
    instruction: str
    response: str
    instruction_en: str | None = None
    response_en: str | None = None
    task: str | None = None
    style: str | None = None
    length_hint: str | None = None
    score: int | None = None
    reason: str | None = None
    template: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # What only some methods have: left out of the line rather than written as null.
    _METHOD_FIELDS: ClassVar[tuple[str, ...]] = ("style", "length_hint", "score", "reason",
                                                 "template")

    def to_json(self) -> Json:
        data = RecordBase.to_json(self)
        for key in self._METHOD_FIELDS:
            if data.get(key) is None:
                data.pop(key, None)
        return data


@dataclass(frozen=True, slots=True)
class ScoredPair(RecordBase):
    """A judged pair, kept or not; ``mlift filter`` re-derives the dataset from these."""

    FILE: ClassVar[str] = "scored.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "score", "instruction_en", "response")

    id: str
    lang: str | None
    score: int
    instruction_en: str
    response: str
    reason: str = ""
    kept: bool = False
    response_en: str | None = None
    context: dict[str, str] | None = None
    task: str | None = None
    style: str | None = None
    length_hint: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    structured: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def context_text(self) -> str | None:
        """The context fields joined as the stages saw them (None without context)."""
        if not self.context:
            return None
        return "\n\n".join(v for v in self.context.values() if v)


@dataclass(frozen=True, slots=True)
class Reject(RecordBase):
    """An item that left the pipeline at ``stage`` for reason ``code``.

    ``retry`` marks a reject caused by the provider or the transport (a
    failed call, not the item): the next run of the folder tries it again.
    ``raw`` keeps what the model said (bounded) when its answer was refused.
    """

    FILE: ClassVar[str] = "rejects.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "stage", "code")

    id: str
    lang: str | None
    stage: str
    code: str
    detail: str = ""
    source: dict[str, Any] | None = None
    response: str | None = None
    instruction_en: str | None = None
    response_en: str | None = None
    raw: str | None = None
    retry: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def bounded(raw: str | None) -> str | None:
        """``raw`` cut to :data:`RAW_LIMIT` characters, marked when cut."""
        if raw is None or len(raw) <= RAW_LIMIT:
            return raw
        return raw[:RAW_LIMIT] + f"… [{len(raw) - RAW_LIMIT} more characters]"


@dataclass(frozen=True, slots=True)
class RequestResult(RecordBase):
    """One line of ``mlift requests`` output: the answer or the error for input line ``line``."""

    FILE: ClassVar[str] = "results.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("line",)

    line: int
    metadata: Any = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cached: bool | None = None
    cost_usd: float | None = None
    attempts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Json:
        # The wire shape users script against: an answer has no "error" key and vice versa.
        # Spelled out (in field order) rather than walked with dataclasses.fields: this
        # runs once per line of a cached re-run, where it was a tenth of the time.
        data: Json = {"line": self.line, "metadata": self.metadata}
        for key, value in (("response", self.response), ("error", self.error),
                           ("cached", self.cached), ("cost_usd", self.cost_usd),
                           ("attempts", self.attempts)):
            if value is not None:
                data[key] = value
        data.update(self.extra)
        return data


# ------------------------------------------------------------------ reading

def _complete_lines(fh: IO[bytes], counter: list[int]) -> Iterator[bytes]:
    """Lines ending in a newline; counts their bytes in ``counter[0]`` (a torn tail is left)."""
    for raw in fh:
        if not raw.endswith(b"\n"):
            return
        counter[0] += len(raw)
        yield raw


# orjson reads an integer past 64 bits as a float; a float this large may have been one.
_BIG: Final = 2.0**63


def loads(raw: str | bytes) -> Any:
    """One JSON document, strictly: NaN and Infinity are refused (``ValueError``).

    orjson reads it, several times faster than the standard library, which a
    cached re-run (parse every line, decode every stored answer) is bound by.
    Where orjson refuses the text (a lone surrogate escape, UTF-16, NaN, ...)
    or may have rounded it (an integer past 64 bits becomes a float there),
    the standard library reads it again: its value, or its error and message.
    NaN is refused because mlift never writes it and cannot write it back: a
    line holding it was damaged or hand-edited.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, parse_constant=_reject_constant)
    if _has_big_float(value):
        return json.loads(raw, parse_constant=_reject_constant)
    return value


def _has_big_float(value: Any) -> bool:
    # A loop, not any() over a generator: this looks at every value of every line read.
    kind = type(value)
    if kind is float:
        return not -_BIG < value < _BIG
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:
        kind = type(item)
        if kind is not str and kind is not int and _has_big_float(item):
            return True
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def iter_json_lines(path: Path) -> Iterator[tuple[int, Json]]:
    """``(line number, object)`` per complete line of ``path``; nothing if it is absent.

    Blank lines are skipped; a torn last line is skipped; anything else that
    is not a JSON object raises :class:`RunFolderError` naming file and line.
    """
    if not path.is_file():
        return
    counter = [0]
    with path.open("rb") as fh:
        reader = jsonlines.Reader(_complete_lines(fh, counter), loads=loads)
        lineno = 0
        while True:
            lineno += 1
            try:
                value = reader.read(allow_none=True)
            except EOFError:
                return
            except jsonlines.InvalidLineError as exc:
                if not exc.line.strip():
                    continue
                raise RunFolderError(f"{path}:{lineno}: not a valid JSON line ({exc}); "
                                     "the file was damaged or edited by hand — fix or "
                                     "remove that line") from None
            if not isinstance(value, dict):
                raise RunFolderError(f"{path}:{lineno}: expected a JSON object, got "
                                     f"{type(value).__name__}; fix or remove that line")
            yield lineno, value


def iter_records(path: Path, cls: type[R]) -> Iterator[R]:
    """Every record of type ``cls`` in ``path`` (see :func:`iter_json_lines`)."""
    for lineno, data in iter_json_lines(path):
        try:
            yield cls.from_json(data)
        except KeyError as exc:
            raise RunFolderError(f"{path}:{lineno}: field {exc.args[0]!r}: missing; "
                                 f"not a {cls.__name__} line") from None
        except (TypeError, ValueError) as exc:
            raise RunFolderError(f"{path}:{lineno}: not a valid {cls.__name__} line ({exc}); "
                                 "fix or remove that line") from None


def repair_torn_tail(path: Path) -> int:
    """Cut a torn last line (no newline) off ``path``; returns the bytes removed."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb") as fh:
        # Find the last newline by reading backwards in blocks (files can be large).
        end = size
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
    if keep < size:
        with path.open("r+b") as fh:
            fh.truncate(keep)
    return size - keep


# ------------------------------------------------------------------ writing

# The standard library's encoder, for what orjson refuses (one encoder, not one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def dumps(value: Any) -> bytes:
    """One line's JSON as UTF-8 (compact, key order kept, no newline).

    orjson writes it about ten times faster than the standard library (a
    cached re-run writes every line and does little else). What orjson
    refuses, an integer past 64 bits or a lone surrogate that slipped past the
    readers, goes through the standard library; the surrogate is written as
    its JSON escape (``backslashreplace``), valid JSON that reads back the same.
    orjson writes a NaN as null, where the standard library would have stopped
    the run.
    """
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return _ENCODE(value).encode("utf-8", "backslashreplace")


class JsonlWriter:
    """Appends records (or JSON objects) to one JSONL file, one line each.

    Lines are written whole (``jsonlines`` with our ``dumps``); ``flush`` pushes
    them to the OS and ``close`` also fsyncs. Blocking: callers on the event
    loop go through the run folder's writer thread.
    """

    def __init__(self, path: Path, *, mode: str = "a") -> None:
        self.path = path
        self._fh: IO[bytes] = path.open(mode + "b")
        self._writer = jsonlines.Writer(self._fh, dumps=dumps)

    def write(self, record: RecordBase | Json) -> None:
        self._writer.write(record.to_json() if isinstance(record, RecordBase) else record)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._writer.close()
        self._fh.close()


def rewrite(path: Path, records: list[RecordBase] | list[Json]) -> None:
    """Replace ``path`` by ``records`` atomically (write a sibling, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    writer = JsonlWriter(tmp, mode="w")
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()
    os.replace(tmp, path)


def write_json(path: Path, data: Json) -> None:
    """Write one JSON document atomically (``run.json``, the manifest)."""
    tmp = path.with_name(path.name + ".tmp")
    buf = io.StringIO()
    json.dump(data, buf, indent=2, ensure_ascii=False, allow_nan=False)
    buf.write("\n")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
