"""What every item a reader yields must satisfy, checked the way a later stage would use it.

Shared by the source tests (not a test module itself).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.pipeline.sources import Record, read_records


def _strict(_: str) -> None:
    raise AssertionError("NaN or Infinity would be written")


def check_item(item: object) -> None:
    """A Record every writer can write, or an InputError naming file and line."""
    if isinstance(item, Record):
        row: dict[str, Any] = {"id": item.id, "lang": item.lang, "text": item.text,
                               "context": dict(item.context) if item.context else None,
                               "fields": dict(item.fields), "source": item.source.as_dict()}
        # What the run folder does: ensure_ascii=False, then UTF-8 on disk.
        encoded = json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8")
        assert json.loads(encoded, parse_constant=_strict) == row
        assert isinstance(item.text, str) and item.text.strip()
        assert isinstance(item.id, str) and item.id
        assert item.source.line is not None and item.source.line >= 1
        return
    assert isinstance(item, InputError), f"a reader yielded {type(item).__name__}"
    for text in (str(item), item.file, item.field or "", item.record_id or "", item.code):
        text.encode("utf-8")
    assert item.line is not None and item.line >= 1
    assert str(item).startswith(f"{item.file}:{item.line}:")


def drain(path: Path, **options: Any) -> list[Record | InputError] | None:
    """Every item of ``path``, each checked; ``None`` when the call refused the whole file."""
    try:
        stream = read_records(path, **options)
    except ConfigError as e:
        str(e).encode("utf-8")
        return None
    items = []
    for item in stream:
        check_item(item)
        items.append(item)
    return items


def line_of(item: Record | InputError) -> int:
    line = item.source.line if isinstance(item, Record) else item.line
    assert line is not None
    return line


def check_lines_unique(items: list[Record | InputError]) -> None:
    """No two items share a line, so ids made from file and line never collide."""
    lines = [line_of(i) for i in items]
    assert len(lines) == len(set(lines)), lines
