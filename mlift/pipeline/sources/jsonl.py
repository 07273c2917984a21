"""JSON lines: one object per line; every line that is not a good record is an InputError.

Beyond malformed JSON, a line is rejected when it nests arrays and objects
deeper than :data:`MAX_DEPTH` (Python's parser would otherwise hit its
recursion limit, and so would every later stage that walks the record) or
holds an integer of more than 4,300 digits (Python's limit for converting
one). NaN, Infinity and unpaired surrogate escapes are read and then cleaned
or rejected as :mod:`.records` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from mlift.errors import InputError
from mlift.pipeline.sources.records import (
    Builder,
    Record,
    has_surrogate,
    shown_bytes,
    utf8_problem,
)
from mlift.pipeline.sources.stream import Problem, lines

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects read in a record (the record itself is level 1)."""


def read_jsonl(b: Builder, f: IO[bytes], limit: int) -> Iterator[Record | InputError]:
    for lineno, offset, raw in lines(f, limit):
        if isinstance(raw, Problem):
            yield b.problem(raw, lineno)
            continue
        line = b.decode(raw, lineno)
        if isinstance(line, InputError):
            if line.code == "not_utf8":
                yield line
                return
            yield _located(b, line, raw, lineno)
            continue
        if not line or line.isspace():
            continue
        obj = _parse(b, line, lineno)
        if isinstance(obj, InputError):
            yield obj
            if obj.code == "not_jsonl":
                return
            continue
        # Surrogates can only come from \ud800-style escapes: a line without one needs no check.
        yield b.from_mapping(obj, lineno, offset, escapes="\\ud" in line or "\\uD" in line)


def _parse(b: Builder, line: str, lineno: int) -> dict[str, Any] | InputError:
    try:
        obj = json.loads(line)
    except RecursionError:
        return _too_deep(b, lineno)
    except json.JSONDecodeError as e:
        if lineno == 1 and line.lstrip().startswith("["):
            return b.error("this is a JSON array, not JSON lines (one object per line); "
                           "convert it with: jq -c '.[]' IN > OUT.jsonl", 1, None, "not_jsonl")
        return b.error(f"malformed JSON: {e.msg} (column {e.colno})", lineno, None, "bad_json")
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        return b.error("malformed JSON: a number too long to read (Python reads integers of "
                       "at most 4,300 digits)", lineno, None, "bad_json")
    if not isinstance(obj, dict):
        return b.error(f"expected a JSON object, got {_json_type(obj)}", lineno, None,
                       "not_object")
    # Counting brackets is cheap and bounds the depth from above; only a line with
    # more of them than the limit needs the walk.
    if line.count("[") + line.count("{") > MAX_DEPTH and depth_over(obj, MAX_DEPTH):
        return _too_deep(b, lineno, obj)
    return obj


def _too_deep(b: Builder, lineno: int, obj: dict[str, Any] | None = None) -> InputError:
    rid = b.claim_id(obj, lineno) if obj is not None else None
    return b.error(f"arrays and objects nested deeper than {MAX_DEPTH} levels; flatten the "
                   "record", lineno, None, "too_deep", rid if isinstance(rid, str) else None)


def depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts deeper than ``limit`` (walked, not recursed)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return False


def _located(b: Builder, error: InputError, raw: bytes, lineno: int) -> InputError:
    """The same UTF-8 error, naming the top-level field that holds the bad bytes.

    The line is parsed with each undecodable byte as a lone surrogate
    (surrogateescape); when that works, the error names the first field whose
    key or value holds one, and carries the record's id if that is clean.
    """
    try:
        raw.decode("utf-8")
        return error
    except UnicodeDecodeError as e:
        message = utf8_problem(raw, e)
    try:
        obj = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return error
    if not isinstance(obj, dict) or depth_over(obj, MAX_DEPTH):
        return error
    field = next((k for k, v in obj.items() if has_surrogate(k) or _holds_surrogate(v)), None)
    if field is not None:
        field = shown_bytes(field)
    rid = b.claim_id(obj, lineno)
    return b.error(message, lineno, field, "bad_utf8", rid if isinstance(rid, str) else None)


def _holds_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number",
             bool: "true/false", type(None): "null"}
    return names.get(type(value), type(value).__name__)
