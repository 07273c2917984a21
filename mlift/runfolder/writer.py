"""One writer thread per run: output lines leave the event loop at once and hit disk in order.

The event loop only enqueues a record (no syscall); a thread appends each
queued line to its file and flushes once the queue is drained, so a burst of
finished items costs one flush, not one per line. ``close`` drains, fsyncs
and joins. A write that fails (disk full, a file removed) is raised on the
next ``put`` or on ``close`` — never lost silently.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from pathlib import Path
from typing import Any

from mlift.records import JsonlWriter, RecordBase

_STOP = object()


class ThreadedWriter:
    """Appends records to JSONL files from a background thread."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._paths = dict(files)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="mlift-writer", daemon=True)
        self._closed = False
        self._thread.start()

    def put(self, name: str, record: RecordBase | dict[str, Any]) -> None:
        """Queue ``record`` for the file registered as ``name`` (returns at once)."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("writer already closed")
        if name not in self._paths:
            raise KeyError(name)
        # Serialise now, on the caller's side: the record is frozen, but what it
        # holds (dicts) could still change after put() returns.
        data = record.to_json() if isinstance(record, RecordBase) else dict(record)
        self._queue.put((name, data))

    def flush(self) -> None:
        """Block until everything queued so far is written and flushed (call off the loop)."""
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(0.2):
            if not self._thread.is_alive():
                break
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        writers: dict[str, JsonlWriter] = {}
        dirty: set[str] = set()
        try:
            while True:
                item = self._next() if dirty else self._queue.get()
                if item is None:  # the queue is drained: one flush for the burst
                    for name in dirty:
                        writers[name].flush()
                    dirty.clear()
                elif item is _STOP:
                    for writer in writers.values():
                        writer.close()
                    return
                elif isinstance(item, threading.Event):
                    for name in dirty:
                        writers[name].flush()
                    dirty.clear()
                    item.set()
                else:
                    name, data = item
                    if name not in writers:
                        writers[name] = JsonlWriter(self._paths[name])
                    writers[name].write(data)
                    dirty.add(name)
        except BaseException as exc:  # reported to the loop on the next put, flush or close
            self._error = exc
            for open_writer in writers.values():
                with contextlib.suppress(OSError):
                    open_writer.close()

    def _next(self) -> Any:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        """Write everything queued, fsync, stop the thread (blocking: call off the loop)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error
