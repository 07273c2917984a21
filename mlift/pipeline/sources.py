"""Reading input records: JSON lines, plain text, CSV/TSV and Parquet, streamed.

:func:`read_records` turns a file into a stream of :class:`Record` objects and
yields an :class:`~mlift.errors.InputError` in place of each bad record (never
raising for one), so the caller writes a reject naming the file, line and
field and goes on with the rest. Problems with the whole input (no such file,
unknown format, a Parquet file without the text column, plain text without a
language) are :class:`~mlift.errors.ConfigError` raised by the call itself,
before any record is read.

Files are read one line (or Parquet batch) at a time, so memory does not grow
with the input, except for the set of given ids kept to catch duplicates
(8 bytes of hash plus set overhead, ~70 B per record). Each line is decoded as
UTF-8 on its own, so a bad byte rejects only its own line. ``.gz`` files are
read through gzip; their byte offsets count decompressed bytes.

Ids: a record's own ``id`` field (a string or integer) is used as is. Without
one, the id is the first 16 hex digits of ``sha256("<dataset>:<position>")``,
where ``dataset`` defaults to the file's name (without folders) and the
position is the 1-based line of the record's first line (the row for
Parquet). Re-reading the same file therefore gives the same ids, also after
moving it to another folder, which is what resuming a run relies on; pass
``dataset=`` to keep two same-named files apart.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

from mlift.errors import ConfigError, InputError, UnknownNameError
from mlift.langs import get_language

__all__ = ["FORMATS", "Record", "Source", "read_records"]

Format = Literal["jsonl", "txt", "csv", "tsv", "parquet"]
FORMATS: dict[str, Format] = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".text": "txt",
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
}
"""File extensions :func:`read_records` recognises (``.gz`` may follow a text format's)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: ``line`` is 1-based (the row for Parquet), ``offset`` in bytes."""

    file: str
    line: int | None = None
    offset: int | None = None
    dataset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "offset": self.offset,
                "dataset": self.dataset}


@dataclass(frozen=True, slots=True)
class Record:
    """One input item: the response ``text`` in language ``lang``, plus optional context.

    ``context`` maps a field name to its text for records from NLP datasets
    (the article of a summary, the passage and question of an answer); it is
    ``None`` for plain corpus text. ``fields`` keeps the record's other fields
    (license, url, …) to carry into the output. Records hash by id, lang,
    text and source.
    """

    id: str
    lang: str | None
    text: str
    context: Mapping[str, str] | None = field(default=None, hash=False)
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source: Source = Source("<memory>")


def read_records(path: str | Path, *, fmt: str | None = None, text_field: str = "text",
                 id_field: str = "id", lang_field: str = "lang",
                 context_fields: Iterable[str] = (), default_lang: str | None = None,
                 txt_mode: str = "line", dataset: str | None = None,
                 ) -> Iterator[Record | InputError]:
    """Stream the records of one file; bad records come out as ``InputError`` items.

    ``fmt`` is one of ``jsonl``, ``txt``, ``csv``, ``tsv``, ``parquet``
    (default: by extension, see :data:`FORMATS`). ``text_field`` names the
    response; ``context_fields`` the fields that form its context (e.g.
    ``text_field="summary", context_fields=("article",)``). A record's
    ``lang_field`` wins over ``default_lang``; both are resolved through
    :func:`mlift.langs.get_language`. Plain text has one document per line
    (``txt_mode="line"``) or per blank-line-separated block (``"block"``, the
    line number is the block's first line) and takes ``default_lang``.

    Raises :class:`~mlift.errors.ConfigError` at once for problems with the
    whole input; see the module docstring for ids and memory.
    """
    p = Path(path)
    kind = _format_of(p, fmt)
    if txt_mode not in ("line", "block"):
        raise ConfigError(f"txt_mode must be 'line' or 'block', not {txt_mode!r}")
    if not p.is_file():
        raise ConfigError(f"input file not found: {p}")
    lang = get_language(default_lang).code if default_lang is not None else None
    ctx = tuple(context_fields)
    if kind == "txt" and lang is None:
        raise ConfigError(f"{p}: plain text has no language field; pass its language with --lang")
    if kind == "txt" and ctx:
        raise ConfigError(f"{p}: plain text has no fields, so no context fields")
    builder = _Builder(str(p), dataset or _base_name(p), text_field, id_field, lang_field,
                       ctx, lang)
    if kind == "parquet":
        return _parquet(builder, p)
    opener = _open(p)
    if kind == "jsonl":
        return _jsonl(builder, opener)
    if kind == "txt":
        return _txt(builder, opener, block=txt_mode == "block")
    return _csv(builder, opener, delimiter="\t" if kind == "tsv" else ",")


def _format_of(p: Path, fmt: str | None) -> Format:
    if fmt is not None:
        for known in FORMATS.values():
            if fmt.lower() == known:
                return known
        raise UnknownNameError("input format", fmt, sorted(set(FORMATS.values())))
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None or (kind == "parquet" and p.suffix.lower() == ".gz"):
        raise ConfigError(f"{p}: cannot tell the input format from the file name; pass a "
                          f"format ({', '.join(sorted(set(FORMATS.values())))})")
    return kind


def _base_name(p: Path) -> str:
    return p.name[:-3] if p.name.lower().endswith(".gz") else p.name


Opener = Callable[[], IO[bytes]]


def _open(p: Path) -> Opener:
    """A function opening the file as binary lines, called when iteration starts."""
    if p.suffix.lower() == ".gz":
        return lambda: cast(IO[bytes], gzip.open(p, "rb"))
    return lambda: p.open("rb")


class _Builder:
    """Turns one raw record (a mapping or a text) into a Record or an InputError."""

    def __init__(self, file: str, dataset: str, text_field: str, id_field: str,
                 lang_field: str, context_fields: tuple[str, ...], default_lang: str | None):
        self.file, self.dataset = file, dataset
        self.text_field, self.id_field, self.lang_field = text_field, id_field, lang_field
        self.context_fields, self.default_lang = context_fields, default_lang
        self.known = {text_field, id_field, lang_field, *context_fields}
        self.seen_ids: set[int] = set()

    def error(self, message: str, line: int | None, field: str | None, code: str) -> InputError:
        return InputError(message, file=self.file, line=line, field=field, code=code)

    def source(self, line: int, offset: int | None) -> Source:
        return Source(self.file, line, offset, self.dataset)

    def generated_id(self, position: int) -> str:
        return hashlib.sha256(f"{self.dataset}:{position}".encode()).hexdigest()[:16]

    def _text(self, obj: Mapping[str, Any], name: str, line: int) -> str | InputError:
        value = obj.get(name)
        if value is None:
            return self.error("missing", line, name, "missing_field")
        if not isinstance(value, str):
            return self.error(f"expected a string, got {type(value).__name__}", line, name,
                              "bad_type")
        if not value.strip():
            return self.error("empty or whitespace-only text", line, name, "empty_text")
        if _SURROGATE.search(value):
            return self.error("contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), "
                              "which is not valid Unicode text", line, name, "bad_text")
        return value

    def _lang(self, obj: Mapping[str, Any], line: int) -> str | InputError:
        value = obj.get(self.lang_field)
        if value is None or value == "":
            if self.default_lang is None:
                return self.error("missing, and no default language was given", line,
                                  self.lang_field, "missing_lang")
            return self.default_lang
        if not isinstance(value, str):
            return self.error(f"expected a language code, got {type(value).__name__}", line,
                              self.lang_field, "bad_type")
        try:
            return get_language(value).code
        except UnknownNameError as e:
            return self.error(str(e).split(" Known:")[0], line, self.lang_field,
                              "unknown_language")

    def _id(self, obj: Mapping[str, Any], line: int) -> str | InputError:
        value = obj.get(self.id_field)
        if value is None or value == "":
            return self.generated_id(line)
        if isinstance(value, bool) or not isinstance(value, str | int):
            return self.error(f"expected a string or integer id, got {type(value).__name__}",
                              line, self.id_field, "bad_type")
        given = str(value)
        key = int.from_bytes(hashlib.blake2b(given.encode(), digest_size=8).digest())
        if key in self.seen_ids:
            return self.error(f"duplicate id {given!r} (seen earlier in this input)", line,
                              self.id_field, "duplicate_id")
        self.seen_ids.add(key)
        return given

    def from_mapping(self, obj: Mapping[str, Any], line: int,
                     offset: int | None) -> Record | InputError:
        text = self._text(obj, self.text_field, line)
        if isinstance(text, InputError):
            return text
        context: dict[str, str] | None = None
        if self.context_fields:
            context = {}
            for name in self.context_fields:
                value = self._text(obj, name, line)
                if isinstance(value, InputError):
                    return value
                context[name] = value
        lang = self._lang(obj, line)
        if isinstance(lang, InputError):
            return lang
        rid = self._id(obj, line)  # last, so a rejected record does not claim its id
        if isinstance(rid, InputError):
            return rid
        extra = {k: _plain(v) for k, v in obj.items() if k not in self.known}
        return Record(rid, lang, text, context, extra, self.source(line, offset))

    def from_text(self, text: str, line: int, offset: int) -> Record:
        return Record(self.generated_id(line), self.default_lang, text, None, {},
                      self.source(line, offset))


def _plain(value: Any) -> Any:
    """Values JSON can write as they are; others (Parquet dates, bytes) as strings."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _lines(f: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset, raw line) for every line of a binary file."""
    offset = 0
    for lineno, raw in enumerate(f, 1):
        yield lineno, offset, raw
        offset += len(raw)


def _utf8_problem(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
    return "invalid UTF-8"


def _decode(b: _Builder, raw: bytes, lineno: int) -> str | InputError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return b.error(_utf8_problem(raw), lineno, None, "bad_utf8")
    return text.removeprefix("\ufeff") if lineno == 1 else text


def _jsonl(b: _Builder, opener: Opener) -> Iterator[Record | InputError]:
    with opener() as f:
        for lineno, offset, raw in _lines(f):
            line = _decode(b, raw, lineno)
            if isinstance(line, InputError):
                yield _located(b, line, raw, lineno)
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if lineno == 1 and line.lstrip().startswith("["):
                    yield b.error("this is a JSON array, not JSON lines (one object per line); "
                                  "convert it with: jq -c '.[]' IN > OUT.jsonl", 1, None,
                                  "not_jsonl")
                    return
                yield b.error(f"malformed JSON: {e.msg} at column {e.colno}", lineno, None,
                              "bad_json")
                continue
            if not isinstance(obj, dict):
                yield b.error(f"expected a JSON object, got {_json_type(obj)}", lineno, None,
                              "not_object")
                continue
            yield b.from_mapping(obj, lineno, offset)


def _located(b: _Builder, error: InputError, raw: bytes, lineno: int) -> InputError:
    """The same UTF-8 error, naming the top-level field whose value holds the bad bytes."""
    try:
        # surrogateescape turns each undecodable byte into a lone surrogate U+DC80..U+DCFF.
        obj = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return error
    if isinstance(obj, dict):
        for key, value in obj.items():
            if _SURROGATE.search(key + json.dumps(value, ensure_ascii=False)):
                return b.error(_utf8_problem(raw), lineno, key, "bad_utf8")
    return error


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number",
             bool: "true/false", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _txt(b: _Builder, opener: Opener, *, block: bool) -> Iterator[Record | InputError]:
    parts: list[str] = []
    start = (0, 0)  # line and byte offset of the current block's first line
    bad: InputError | None = None  # a bad line inside the current block rejects the block
    with opener() as f:
        for lineno, offset, raw in _lines(f):
            line = _decode(b, raw, lineno)
            blank = isinstance(line, str) and not line.strip()
            if not block:
                if not blank:
                    yield line if isinstance(line, InputError) else b.from_text(
                        line.rstrip("\r\n"), lineno, offset)
                continue
            if blank:
                if parts or bad:
                    yield bad or b.from_text("\n".join(parts), *start)
                parts, bad = [], None
                continue
            if not parts and bad is None:
                start = (lineno, offset)
            if isinstance(line, InputError):
                bad = bad or line
            else:
                parts.append(line.rstrip("\r\n"))
        if block and (parts or bad):
            yield bad or b.from_text("\n".join(parts), *start)


def _csv(b: _Builder, opener: Opener, *, delimiter: str) -> Iterator[Record | InputError]:
    bad_lines: dict[int, InputError] = {}

    def decoded(f: IO[bytes]) -> Iterator[str]:
        # csv needs text; a line that is not UTF-8 is replaced so the parser stays in step,
        # and remembered so the row spanning it becomes an InputError.
        for lineno, _offset, raw in _lines(f):
            line = _decode(b, raw, lineno)
            if isinstance(line, InputError):
                bad_lines[lineno] = line
                line = raw.decode("utf-8", "replace")
            yield line

    # The csv module caps a field at 128 KiB by default, less than a long article; the
    # limit is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with opener() as f:
        reader = csv.reader(decoded(f), delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield b.error(f"unreadable CSV header: {e}", 1, None, "bad_csv")
            return
        if bad_lines:
            yield next(iter(bad_lines.values()))
            return
        missing = [c for c in (b.text_field, *b.context_fields) if c not in header]
        if missing:
            raise ConfigError(f"{b.file}: no column {', '.join(map(repr, missing))}; "
                              f"the header has {', '.join(map(repr, header))}")
        done = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield b.error(f"malformed CSV: {e}", done + 1, None, "bad_csv")
                done = reader.line_num
                continue
            first, done = done + 1, reader.line_num
            spanned = [bad_lines.pop(n) for n in range(first, done + 1) if n in bad_lines]
            if spanned:
                yield spanned[0]
            elif not row:
                continue  # csv gives [] for a blank line
            elif len(row) > len(header):
                yield b.error(f"{len(row)} columns but the header has {len(header)}", first,
                              None, "bad_csv")
            else:
                yield b.from_mapping(dict(zip(header, row, strict=False)), first, None)


def _parquet(b: _Builder, p: Path) -> Iterator[Record | InputError]:
    try:
        # pyarrow is optional and untyped; import_module keeps mypy from needing it.
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(f"{p}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a broken file
        raise ConfigError(f"{p}: not a readable Parquet file: {e}") from e
    columns = set(pf.schema_arrow.names)
    wanted = [b.text_field, *b.context_fields]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ConfigError(f"{p}: no column {', '.join(map(repr, missing))}; "
                          f"columns are {', '.join(sorted(columns))}")
    return _parquet_rows(b, pf)


def _parquet_rows(b: _Builder, pf: Any) -> Iterator[Record | InputError]:
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for obj in batch.to_pylist():
                row += 1
                yield b.from_mapping(obj, row, None)
    finally:
        pf.close()
