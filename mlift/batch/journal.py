"""The batch journal: every batch a run sends, written down before it is waited for.

One append-only JSONL file in a directory the caller gives (the run folder),
one event per line, each flushed and fsynced before the step it records is
taken further — so after a crash at any moment the journal knows every batch
that may exist at the provider, and a resumed run polls those instead of
paying for them twice. Events, per ``chunk`` (one planned batch)::

    submitting  stage, target, kind, custom_ids, bytes, at   (before any network call)
    uploaded    file_id                                       (OpenAI: input file stored)
    created     batch_id, at, adopted                         (the provider accepted it;
                                                              adopted: found after a crash)
    state       state, done, failed, total, at                (a change seen while polling)
    ended       state, done, failed, total, at, detail
    collected   succeeded, retry (ids worth resending), final (ids that failed for good), at
    abandoned   reason        (a crash hit before the batch was created: nothing to poll)
    rejected    error         (the provider refused the batch outright)
    cancel      at            (a cancel was requested)

A line torn by a crash mid-write is the last one of its session and stands
for a step that was never taken; it is skipped when reading, and the next
append starts on a fresh line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JOURNAL_NAME = "batches.jsonl"
SCHEMA = 1


@dataclass(slots=True)
class ChunkRecord:
    """What the journal knows about one planned batch."""

    chunk: str
    stage: str
    target: str
    kind: str
    custom_ids: list[str]
    bytes: int = 0
    submitted_at: float = 0.0
    file_id: str | None = None
    batch_id: str | None = None
    adopted: bool = False  # found at the provider after a crash, not acknowledged
    state: str = "submitting"
    done: int = 0
    failed: int = 0
    total: int = 0
    ended: bool = False
    ended_at: float | None = None
    detail: str | None = None
    collected: bool = False
    succeeded: int = 0
    retry: set[str] = field(default_factory=set)     # sent back to be sent again
    final: set[str] = field(default_factory=set)     # failed for good
    members: frozenset[str] = field(init=False, repr=False)
    abandoned: bool = False
    rejected: str | None = None
    cancel_requested: bool = False

    def __post_init__(self) -> None:
        self.members = frozenset(self.custom_ids)  # membership tests on 50,000-id batches

    @property
    def in_doubt(self) -> bool:
        """Sent for creation, fate unknown: the provider may or may not have it."""
        return self.batch_id is None and not (self.abandoned or self.rejected)

    @property
    def open(self) -> bool:
        """Created and not yet ended: worth polling."""
        return self.batch_id is not None and not self.ended

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "uploaded":
            self.file_id = event["file_id"]
        elif kind == "created":
            self.batch_id = event["batch_id"]
            self.adopted = bool(event.get("adopted"))
            self.state = "created"
        elif kind == "state":
            self.state, self.done = event["state"], event.get("done", 0)
            self.failed, self.total = event.get("failed", 0), event.get("total", 0)
        elif kind == "ended":
            self.state, self.ended = event["state"], True
            self.ended_at, self.detail = event.get("at"), event.get("detail")
            self.done, self.failed = event.get("done", self.done), event.get("failed", self.failed)
            self.total = event.get("total", self.total)
        elif kind == "collected":
            self.collected = True
            self.succeeded = event.get("succeeded", 0)
            self.retry, self.final = set(event.get("retry", [])), set(event.get("final", []))
        elif kind == "abandoned":
            self.abandoned, self.state = True, "abandoned"
        elif kind == "rejected":
            self.rejected, self.state = event.get("error", "rejected"), "rejected"
        elif kind == "cancel":
            self.cancel_requested = True


class BatchJournal:
    """The journal file ``<directory>/batches.jsonl``; safe to share by every stage of a run."""

    def __init__(self, directory: Path | str, *, name: str = JOURNAL_NAME) -> None:
        self.path = Path(directory) / name
        self._lock = asyncio.Lock()

    async def append(self, event: dict[str, Any]) -> None:
        """Write one event durably (flushed and fsynced) before returning."""
        line = json.dumps({"v": SCHEMA, **event}, ensure_ascii=False, separators=(",", ":"))
        async with self._lock:
            await asyncio.to_thread(self._append, line.encode("utf-8") + b"\n")

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        data = b"\n" + data  # a torn line ends a crashed session
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def load(self) -> list[ChunkRecord]:
        """Every chunk the journal knows, in the order they were planned."""
        return await asyncio.to_thread(self.load_sync)

    def load_sync(self) -> list[ChunkRecord]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        chunks: dict[str, ChunkRecord] = {}
        for number, text in enumerate(raw.splitlines(), 1):
            if not text.strip():
                continue
            try:
                event = json.loads(text)
                if not isinstance(event, dict) or "event" not in event or "chunk" not in event:
                    raise ValueError("not a journal event")
            except ValueError:
                log.warning("%s:%d: skipped an unreadable line (a write cut by a crash)",
                            self.path, number)
                continue
            if event["event"] == "submitting":
                chunks[event["chunk"]] = ChunkRecord(
                    chunk=event["chunk"], stage=event["stage"], target=event["target"],
                    kind=event["kind"], custom_ids=list(event["custom_ids"]),
                    bytes=event.get("bytes", 0), submitted_at=event.get("at", 0.0))
            elif event["chunk"] in chunks:
                chunks[event["chunk"]].apply(event)
        return list(chunks.values())
