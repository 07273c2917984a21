"""A selection worker process: ``python -m mlift.pipeline.selectworker``.

Started by :mod:`mlift.pipeline.parallel` with pipes for stdin and stdout. It
reads one frame holding the :class:`~mlift.pipeline.select.SelectConfig`, then
answers each frame of records (``(lang, text, context)`` triples) with one
frame of packed analyses, in order, until its stdin closes. A frame is a
4-byte big-endian length and a pickle; both ends are mlift processes.

A module run by ``-m`` rather than a ``multiprocessing`` child, so nothing
of the parent's main script is imported again here (a user script without an
``if __name__ == "__main__"`` guard would otherwise run twice).
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import IO, Any

_HEADER = struct.Struct(">I")


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's object, or None at the end of the stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("a frame was cut short")
    return pickle.loads(body)


def write_frame(stream: IO[bytes], value: Any) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def main() -> int:
    from mlift.pipeline.select import Analyser, pack
    from mlift.pipeline.sources import Record

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = read_frame(stdin)
    if config is None:
        return 0
    analyser = Analyser(config)
    while (chunk := read_frame(stdin)) is not None:
        write_frame(stdout, [pack(analyser.analyse(Record("", lang, text, context)))
                             for lang, text, context in chunk])
    return 0


if __name__ == "__main__":
    sys.exit(main())
