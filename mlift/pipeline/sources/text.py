"""Plain text: one document per line, or per blank-line-separated block.

A line that is not UTF-8 rejects its line, or in block mode its whole block
(named by the block's first line); so does a line or block longer than the
maximum record size, whose text is then not kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from mlift.errors import InputError
from mlift.pipeline.sources.records import Builder, Record
from mlift.pipeline.sources.stream import Problem, lines


def read_lines(b: Builder, f: IO[bytes], limit: int) -> Iterator[Record | InputError]:
    for lineno, offset, raw in lines(f, limit):
        if isinstance(raw, Problem):
            yield b.problem(raw, lineno)
            continue
        line = b.decode(raw, lineno)
        if isinstance(line, InputError):
            yield line
            if line.code == "not_utf8":
                return
        elif line and not line.isspace():
            yield b.from_text(line.rstrip("\r\n"), lineno, offset)


def read_blocks(b: Builder, f: IO[bytes], limit: int) -> Iterator[Record | InputError]:
    parts: list[str] = []
    start = (0, 0)  # line and byte offset of the current block's first line
    size = 0  # bytes in the current block so far
    bad: InputError | None = None  # a bad line inside the current block rejects the block
    for lineno, offset, raw in lines(f, limit):
        if isinstance(raw, Problem) and raw.final:
            if parts or bad:  # the block cut short is not a whole document
                yield bad or b.error("the block is cut off by the damage below", start[0],
                                     None, raw.code)
            yield b.problem(raw, lineno)
            return
        line = b.problem(raw, lineno) if isinstance(raw, Problem) else b.decode(raw, lineno)
        if isinstance(line, InputError) and line.code == "not_utf8":
            yield line
            return
        if isinstance(line, str) and (not line or line.isspace()):
            if parts or bad:
                yield bad or b.from_text("\n".join(parts), *start)
            parts, bad, size = [], None, 0
            continue
        if not parts and bad is None:
            start = (lineno, offset)
        size += len(raw) if isinstance(raw, bytes) else limit + 1
        if isinstance(line, InputError):
            bad = bad or line
        elif size > limit:
            bad = bad or b.error(f"block longer than the maximum record size ({limit:,} bytes)",
                                 start[0], None, "record_too_large")
        elif bad is None:
            parts.append(line.rstrip("\r\n"))
        if bad is not None:
            parts.clear()  # the block is rejected: its text need not be kept
    if parts or bad:
        yield bad or b.from_text("\n".join(parts), *start)
