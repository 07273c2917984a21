"""Bytes in, numbered lines out: compression, bounded line length, damage at the end.

Every text format (JSONL, plain text, CSV/TSV) reads its file through
:func:`lines`, which yields ``(line number, byte offset, raw line)`` and turns
the two things that can go wrong below the format into values instead of
exceptions:

- a line longer than the maximum record size is not read whole: its first
  ``limit + 1`` bytes are read, the rest is skipped in 1 MiB steps, and a
  :class:`Problem` takes its place, so memory stays bounded by ``limit``;
- a compressed file that is truncated or corrupt, or an I/O error, ends the
  stream with one final :class:`Problem` naming the line where reading
  stopped; the lines before it have been yielded as usual.

Line numbers are 1-based; offsets count bytes of the (decompressed) stream.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, cast

from mlift.errors import ConfigError

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""The longest record read (a JSONL or text line, a text block, a CSV row): 16 MiB."""

_SKIP_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Compression:
    name: str
    magic: bytes
    file: type[gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile]

    def open(self, p: Path) -> IO[bytes]:
        return cast(IO[bytes], self.file(p, "rb"))


COMPRESSIONS: dict[str, Compression] = {
    ".gz": Compression("gzip", b"\x1f\x8b", gzip.GzipFile),
    ".bz2": Compression("bzip2", b"BZh", bz2.BZ2File),
    ".xz": Compression("xz", b"\xfd7zXZ\x00", lzma.LZMAFile),
}
"""Compressed text inputs read as a stream (``.jsonl.gz``, ``.txt.xz``, …)."""

UNSUPPORTED = {".zst": "zstd -d", ".zstd": "zstd -d", ".lz4": "lz4 -d", ".zip": "unzip",
               ".7z": "7z x", ".br": "brotli -d"}
"""Compressed or archived inputs mlift does not read, with the command that unpacks them."""

# What a decompressor or the OS raises for a file it cannot go on reading. gzip's
# BadGzipFile and bz2's "Invalid data stream" are OSErrors; zlib's and lzma's are not.
_DAMAGE = (EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that could not be read (``final=False``) or the reason reading stopped."""

    message: str
    code: str
    final: bool


def compression_of(p: Path) -> Compression | None:
    return COMPRESSIONS.get(p.suffix.lower())


def opener(p: Path) -> Callable[[], IO[bytes]]:
    """A function opening ``p`` as a binary stream, decompressing by extension.

    A compressed file whose first bytes are not its format's signature is a
    :class:`ConfigError` now, before anything is read (a ``.gz`` that is not
    gzip is a wrong file, not a damaged one).
    """
    comp = compression_of(p)
    if comp is None:
        return lambda: p.open("rb")
    with p.open("rb") as f:
        head = f.read(len(comp.magic))
    # A file shorter than the signature is a truncated one; the reader says so.
    if len(head) == len(comp.magic) and head != comp.magic:
        raise ConfigError(f"{p}: not a {comp.name} file (it does not start with the {comp.name} "
                          f"signature {comp.magic!r}, but {head!r}); rename it or recompress it")
    if not head:
        return lambda: p.open("rb")  # empty: no records, whatever the extension
    return lambda: comp.open(p)


def lines(f: IO[bytes], limit: int) -> Iterator[tuple[int, int, bytes | Problem]]:
    """(line number, byte offset, raw line or :class:`Problem`) for every line of ``f``."""
    lineno = offset = 0
    read = f.readline
    try:
        for raw in iter(partial(read, limit + 1), b""):
            lineno += 1
            if len(raw) <= limit or raw.endswith(b"\n"):
                yield lineno, offset, raw
                offset += len(raw)
                continue
            size = len(raw)
            while not raw.endswith(b"\n"):
                raw = read(_SKIP_CHUNK)
                if not raw:
                    break
                size += len(raw)
            yield lineno, offset, Problem(
                f"line of {size:,} bytes is longer than the maximum record size "
                f"({limit:,} bytes); it was skipped", "record_too_large", final=False)
            offset += size
    except _DAMAGE as e:
        yield lineno + 1, offset, _damage(f, e, lineno, offset)


def _damage(f: IO[bytes], e: BaseException, lineno: int, offset: int) -> Problem:
    compressed = isinstance(f, gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile)
    after = (f"after line {lineno:,} ({offset:,} bytes)" if lineno
             else "before the first line")
    if isinstance(e, EOFError):
        return Problem(f"the compressed file is truncated: it ends inside compressed data "
                       f"{after}; the lines before were read", "truncated", final=True)
    if compressed:
        return Problem(f"the compressed data is corrupt {after} ({e}); the lines before were "
                       f"read, and a checksum error means they may be damaged too", "corrupt",
                       final=True)
    return Problem(f"reading the file failed {after}: {e}", "read_error", final=True)
