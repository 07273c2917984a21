"""Parquet: rows streamed in batches of 1,024, numbered from 1.

:func:`check_parquet` opens the file when :func:`~mlift.pipeline.sources.read_records`
is called, so a file that is not Parquet, or lacks the text column, fails
before any record is read. Data that turns out damaged while reading (a
corrupt page, a string column that is not UTF-8) ends the stream with one
InputError naming the row where reading stopped. A row whose text and
context together pass the maximum record size (counted in characters) is
rejected; pyarrow decodes a batch at a time, so memory is bounded by the
file's batches, not by that limit.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.pipeline.sources.records import Builder, Record


def _pyarrow(p: Path) -> Any:
    try:
        # pyarrow is optional and untyped; import_module keeps mypy from needing it.
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(f"{p}: reading Parquet needs pyarrow: pip install pyarrow") from None


def check_parquet(b: Builder, p: Path) -> None:
    pq = _pyarrow(p)
    try:
        pf = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a broken file
        raise ConfigError(f"{p}: not a readable Parquet file: {e}") from e
    try:
        columns = set(pf.schema_arrow.names)
    finally:
        pf.close()
    missing = [c for c in (b.text_field, *b.context_fields) if c not in columns]
    if missing:
        raise ConfigError(f"{p}: no column {', '.join(map(repr, missing))}; "
                          f"columns are {', '.join(sorted(columns))}")


def read_parquet(b: Builder, p: Path, limit: int) -> Iterator[Record | InputError]:
    pq = _pyarrow(p)
    arrow_error = importlib.import_module("pyarrow").lib.ArrowException
    damage = (arrow_error, OSError, ValueError, TypeError, NotImplementedError)
    wanted = (b.text_field, *b.context_fields)
    row = 0
    try:
        pf = pq.ParquetFile(p)
    except damage as e:  # it was readable when checked: it changed since
        yield b.error(f"not a readable Parquet file: {e}", 1, None, "corrupt")
        return
    try:
        batches = pf.iter_batches(batch_size=1024)
        while True:
            try:
                batch = next(batches, None)
                rows = batch.to_pylist() if batch is not None else None
            except damage as e:
                yield b.error(f"the Parquet data is corrupt after row {row:,}: {e}", row + 1,
                              None, "corrupt")
                return
            if rows is None:
                return
            for obj in rows:
                row += 1
                size = sum(len(v) for k in wanted if isinstance(v := obj.get(k), str))
                if size > limit:
                    yield b.error(f"text and context of {size:,} characters are longer than "
                                  f"the maximum record size ({limit:,})", row, b.text_field,
                                  "record_too_large")
                else:
                    yield b.from_mapping(obj, row, None)
    finally:
        pf.close()
