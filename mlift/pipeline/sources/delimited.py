"""CSV and TSV: a header row names the columns; each later row is one record.

The header is read when :func:`read_header` is called, so a file without the
text column (or without a readable header) fails before any record is read.
Rows may span lines (quoted newlines) and are named by their first line. A
row that is not UTF-8, malformed (an unterminated quote, a stray quote, more
cells than the header) or longer than the maximum record size is an
InputError; a row with fewer cells than the header lacks the missing fields.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO

from mlift.errors import ConfigError, InputError
from mlift.pipeline.sources.records import Builder, Record
from mlift.pipeline.sources.stream import Problem, lines


class _RowTooLarge(Exception):
    pass


class _Feed:
    """Decoded lines for the csv module, which needs text.

    A line that is not UTF-8 (or too long) is replaced so the parser stays in
    step, and remembered so the row spanning it becomes an InputError. A row
    growing past ``limit`` bytes raises :class:`_RowTooLarge` out of the parser
    (this is a class, not a generator, so it can go on after that), and a
    damaged stream ends the feed, keeping the reason in ``final``.
    """

    def __init__(self, b: Builder, f: IO[bytes], limit: int) -> None:
        self.b, self.limit, self._lines = b, limit, lines(f, limit)
        self.lineno = 0
        self.row_bytes = 0
        self.quotes = 0  # quote characters in the current row: odd while a field is open
        self.bad: InputError | None = None  # the first bad line of the current row
        self.final: InputError | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.final is not None:
            raise StopIteration
        lineno, _offset, raw = next(self._lines)
        self.lineno = lineno
        if isinstance(raw, Problem):
            if raw.final:
                self.final = self.b.problem(raw, lineno)
                raise StopIteration
            self.bad = self.bad or self.b.problem(raw, lineno)
            self.row_bytes += self.limit + 1
            text = ""
        else:
            self.row_bytes += len(raw)
            self.quotes += raw.count(b'"')
            decoded = self.b.decode(raw, lineno)
            if isinstance(decoded, InputError):
                self.bad = self.bad or decoded
                decoded = raw.decode("utf-8", "replace")
            text = decoded
        if self.row_bytes > self.limit:
            raise _RowTooLarge
        return text

    def next_row(self) -> None:
        self.row_bytes, self.quotes, self.bad = 0, 0, None

    def skip_rest_of_row(self) -> None:
        """After a row too large: read on, keeping nothing, to the line that closes its quote.

        Counting quote characters is enough to find where a CSV row ends (a
        doubled quote inside a field counts two), so parsing resumes in step.
        """
        while self.quotes % 2 and self.final is None:
            try:
                lineno, _offset, raw = next(self._lines)
            except StopIteration:
                return
            self.lineno = lineno
            if isinstance(raw, Problem):
                if raw.final:
                    self.final = self.b.problem(raw, lineno)
            else:
                self.quotes += raw.count(b'"')


def _reader(feed: _Feed, delimiter: str) -> Iterator[list[str]]:
    # The csv module caps a field at 128 KiB by default, less than a long article; our
    # own row limit bounds memory. The cap is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), feed.limit))
    return csv.reader(feed, delimiter=delimiter, strict=True)


def read_header(b: Builder, open_: Callable[[], IO[bytes]], delimiter: str,
                limit: int) -> list[str] | None:
    """The header, checked for the wanted columns; ``None`` for a file without rows."""
    with open_() as f:
        feed = _Feed(b, f, limit)
        reader = _reader(feed, delimiter)
        header: list[str] = []
        try:
            while not header:  # blank lines before the header are skipped
                header = next(reader)
        except StopIteration:
            pass
        except csv.Error as e:
            raise ConfigError(f"{b.file}: unreadable CSV header: {e}") from None
        except _RowTooLarge:
            raise ConfigError(f"{b.file}: the header row is longer than the maximum record "
                              f"size ({limit:,} bytes)") from None
    problem = feed.bad or feed.final
    if problem is not None:
        raise ConfigError(f"cannot read the CSV header: {problem}")
    if not header:
        return None
    missing = [c for c in (b.text_field, *b.context_fields) if c not in header]
    if missing:
        raise ConfigError(f"{b.file}: no column {', '.join(map(repr, missing))}; "
                          f"the header has {', '.join(map(repr, header))}")
    return header


def read_rows(b: Builder, f: IO[bytes], header: list[str], delimiter: str,
              limit: int) -> Iterator[Record | InputError]:
    feed = _Feed(b, f, limit)
    reader = _reader(feed, delimiter)
    try:
        while not next(reader):
            pass  # the header, checked when the reader was made
    except (StopIteration, csv.Error, _RowTooLarge):
        return  # the file changed since: there is nothing to read as rows
    width = len(header)
    while True:
        first = feed.lineno + 1
        feed.next_row()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            yield feed.bad or b.error(f"malformed CSV: {e}", first, None, "bad_csv")
            continue
        except _RowTooLarge:
            yield b.error(f"row longer than the maximum record size ({limit:,} bytes)", first,
                          None, "record_too_large")
            feed.skip_rest_of_row()
            reader = _reader(feed, delimiter)
            continue
        if feed.bad is not None:
            yield feed.bad
        elif not row:
            continue  # csv gives [] for a blank line
        elif len(row) > width:
            yield b.error(f"{len(row)} columns but the header has {width}", first, None,
                          "bad_csv")
        else:
            yield b.from_mapping(dict(zip(header, row, strict=False)), first, None,
                                 escapes=False)
    if feed.final is not None:
        yield feed.final
