"""Reading input records: JSON lines, plain text, CSV/TSV and Parquet, streamed.

:func:`read_records` turns a file into a stream of :class:`Record` objects and
yields an :class:`~mlift.errors.InputError` in place of each bad record, so
the caller writes a reject naming the file, line and field and goes on with
the rest. The contract, for any bytes in the file:

- **The call** raises :class:`~mlift.errors.ConfigError` for problems with
  the whole input, before any record is read: no such file or no permission,
  unknown format, a ``.gz``/``.bz2``/``.xz`` file without that format's
  signature, a Parquet file pyarrow cannot open, a CSV/TSV or Parquet file
  without the text or context columns (or without a readable header), plain
  text without a language.
- **Iterating** never raises: everything found while reading is a Record or
  an InputError with ``file``, ``line`` (1-based; the row for Parquet) and,
  where one field is at fault, ``field``. A readable record with a bad field
  carries its own id as ``record_id``. No two items of one file share a line.
- **Damage ends the stream cleanly**: a truncated or corrupt compressed file
  (or an I/O error) yields the records before the damage, then one InputError
  (code ``truncated``, ``corrupt`` or ``read_error``) at the line where
  reading stopped.
- **Bounded memory**: no record (a JSONL or text line, a text block, a CSV
  row) over ``max_record_bytes`` (:data:`MAX_RECORD_BYTES`, 16 MiB) is read
  whole; it is skipped as ``record_too_large``. Files are read one line (or
  Parquet batch) at a time; the set of given ids kept to catch duplicates
  costs ~70 B per record.
- **Records are safe to write**: every string in a Record (id, text, lang,
  context, carried fields, file name) encodes as UTF-8, and every value is
  one ``json.dumps(..., allow_nan=False)`` accepts. How surrogate escapes,
  NaN and JSON nested deeper than 64 levels are handled is in
  :mod:`.records` and :mod:`.jsonl`.

Encodings: every line is decoded as UTF-8 on its own, so a bad byte rejects
only its own line (its row, its block); a byte-order mark at the start of a
line is dropped; a file starting with a UTF-16/32 byte-order mark gives one
``not_utf8`` error saying how to convert it. Lines end at ``\\n``
(``\\r\\n`` is fine). Compressed files (``.gz``, ``.bz2``, ``.xz`` after a
text format's extension) are read as a stream; their offsets count
decompressed bytes. ``.zst``, ``.zip`` and the like are refused at the call
with the command that unpacks them.

Ids: a record's own ``id`` field (a string or integer) is used as is. Without
one, the id is the first 16 hex digits of ``sha256("<dataset>:<position>")``,
where ``dataset`` defaults to the file's name (without folders and without a
compression suffix) and the position is the 1-based line of the record's first
line (the row for Parquet). Re-reading the same file therefore gives the same
ids, also after moving it to another folder, which is what resuming a run
relies on; pass ``dataset=`` to keep two same-named files apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

from mlift.errors import ConfigError, InputError, UnknownNameError
from mlift.langs import get_language
from mlift.pipeline.sources.delimited import read_header, read_rows
from mlift.pipeline.sources.jsonl import MAX_DEPTH, read_jsonl
from mlift.pipeline.sources.parquet import check_parquet, read_parquet
from mlift.pipeline.sources.records import Builder, Record, Source
from mlift.pipeline.sources.stream import COMPRESSIONS, MAX_RECORD_BYTES, UNSUPPORTED, opener
from mlift.pipeline.sources.text import read_blocks, read_lines

__all__ = ["FORMATS", "MAX_DEPTH", "MAX_RECORD_BYTES", "Record", "Source", "read_records"]

Format = Literal["jsonl", "txt", "csv", "tsv", "parquet"]
FORMATS: dict[str, Format] = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".text": "txt",
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
}
"""File extensions :func:`read_records` recognises (``.gz``, ``.bz2``, ``.xz`` may follow a
text format's)."""


def read_records(path: str | Path, *, fmt: str | None = None, text_field: str = "text",
                 id_field: str = "id", lang_field: str = "lang",
                 context_fields: Iterable[str] = (), default_lang: str | None = None,
                 txt_mode: str = "line", dataset: str | None = None,
                 max_record_bytes: int = MAX_RECORD_BYTES,
                 seen_ids: set[int] | None = None,
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
    ``seen_ids``, shared between the calls for the files of one run, makes an
    id given in two files a ``duplicate_id`` too.

    Raises :class:`~mlift.errors.ConfigError` at once for problems with the
    whole input; see the module docstring for the rest of the contract.
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
    b = Builder(str(p), dataset or _base_name(p), text_field, id_field, lang_field, ctx, lang,
                seen_ids)
    limit = max_record_bytes
    if kind == "parquet":
        check_parquet(b, p)
        return read_parquet(b, p, limit)
    try:
        open_ = opener(p)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the file: {e.strerror or e}") from None
    if kind in ("csv", "tsv"):
        delimiter = "\t" if kind == "tsv" else ","
        header = read_header(b, open_, delimiter, limit)
        if header is None:
            return iter(())
        return _stream(b, open_, lambda f: read_rows(b, f, header, delimiter, limit))
    if kind == "jsonl":
        return _stream(b, open_, lambda f: read_jsonl(b, f, limit))
    reader = read_blocks if txt_mode == "block" else read_lines
    return _stream(b, open_, lambda f: reader(b, f, limit))


def _stream(b: Builder, open_: Callable[[], IO[bytes]],
            read: Callable[[IO[bytes]], Iterator[Record | InputError]],
            ) -> Iterator[Record | InputError]:
    """Open the file when iteration starts (so an unread stream holds no file) and close it."""
    try:
        f = open_()
    except OSError as e:  # it was readable at the call: it changed since
        yield b.error(f"cannot read the file: {e.strerror or e}", 1, None, "read_error")
        return
    with f:
        yield from read(f)


def _format_of(p: Path, fmt: str | None) -> Format:
    if fmt is not None:
        for known in FORMATS.values():
            if fmt.lower() == known:
                return known
        raise UnknownNameError("input format", fmt, sorted(set(FORMATS.values())))
    suffixes = [s.lower() for s in p.suffixes]
    unpack = UNSUPPORTED.get(suffixes[-1]) if suffixes else None
    if unpack is not None:
        raise ConfigError(f"{p}: {suffixes[-1]} files are not read directly; unpack it first "
                          f"({unpack} {p.name}) and pass the result")
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    if compressed:
        suffixes.pop()
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None or (kind == "parquet" and compressed):
        raise ConfigError(f"{p}: cannot tell the input format from the file name; pass a "
                          f"format ({', '.join(sorted(set(FORMATS.values())))})")
    return kind


def _base_name(p: Path) -> str:
    return p.stem if p.suffix.lower() in COMPRESSIONS else p.name
