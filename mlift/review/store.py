"""What review, judge and agree read from and add to a run folder: the one file seam.

Three record types join the run folder's own (dataset rows, scored pairs,
rejects), each a frozen dataclass with one ``to_json`` and one ``from_json``:

* :class:`Label` (``labels.jsonl``) — a person's score, flags and note for
  one pair; several labellers may label the same pair, and a labeller's
  later label of a pair supersedes their earlier one (the file is only
  ever appended to, so the history stays);
* :class:`Preference` (``preferences.jsonl``) — one blind side-by-side
  choice between pairs of two run folders;
* :class:`JudgeScore` (``judge_scores.jsonl``) — a second judge's verdict on
  one pair, or why it gave none.

Appends are crash-safe: a torn last line (the mark of a writer killed
mid-line) is cut off before the first append, and every record is one
``write`` of a whole line, flushed and fsynced before the call returns, so a
label the page reported saved survives a crash of the server or the machine.
Reading skips a torn last line and names the file and line of any other bad
one. All of it blocks: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from mlift.errors import InputError
from mlift.pipeline.outputs import DATASET, REJECTS, SCORED
from mlift.report.load import iter_jsonl

__all__ = ["DATASET", "FLAGS", "REJECTS", "SCORED", "JudgeScore", "Label", "Preference",
           "append", "now", "read", "read_raw"]

# Flag code -> what the page shows.
FLAGS = {
    "not_self_contained": "not self-contained",
    "gives_away": "gives away the answer",
    "unnatural": "unnatural wording",
    "wrong_language": "wrong language",
    "mismatch": "doesn't fit the response",
}
MAX_NOTE = 4000
MAX_NAME = 64


def now() -> str:
    """The current time as ISO 8601 UTC, to the millisecond."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def check_name(name: object, what: str = "labeller") -> str:
    """A labeller (or judge) name: 1–64 printable characters, trimmed."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"{what} name must be at most {MAX_NAME} printable characters")
    return name


class _Record:
    FILE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Label(_Record):
    """One labeller's judgement of pair ``id``: a score 1–5 (or none), flags and a note."""

    FILE: ClassVar[str] = "labels.jsonl"

    id: str
    labeller: str
    at: str
    score: int | None = None
    flags: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("a label needs the pair's id")
        check_name(self.labeller)
        if self.score is not None and (isinstance(self.score, bool) or self.score not in
                                       range(1, 6)):
            raise ValueError(f"score must be a whole number from 1 to 5, got {self.score!r}")
        unknown = [f for f in self.flags if f not in FLAGS]
        if unknown:
            raise ValueError(f"unknown flag(s) {', '.join(map(repr, unknown))}; known: "
                             + ", ".join(FLAGS))
        if not isinstance(self.note, str) or len(self.note) > MAX_NOTE:
            raise ValueError(f"note must be text of at most {MAX_NOTE} characters")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "labeller": self.labeller, "at": self.at, "score": self.score,
                "flags": list(self.flags), "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Label:
        return cls(id=data["id"], labeller=data["labeller"], at=data["at"],
                   score=data.get("score"), flags=tuple(data.get("flags") or ()),
                   note=data.get("note") or "")


@dataclass(frozen=True, slots=True)
class Preference(_Record):
    """A blind choice: ``shown`` left to right as ``(run, pair id)``; ``winner`` None is a tie.

    ``item`` is the comparison's key in the deck (stable across restarts),
    so a labeller's finished comparisons are skipped when the page reloads.
    """

    FILE: ClassVar[str] = "preferences.jsonl"

    item: str
    lang: str
    labeller: str
    at: str
    shown: tuple[tuple[str, str], ...]
    winner: str | None

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "lang": self.lang, "labeller": self.labeller, "at": self.at,
                "shown": [{"run": r, "id": i} for r, i in self.shown], "winner": self.winner}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preference:
        return cls(item=data["item"], lang=data["lang"], labeller=data["labeller"],
                   at=data["at"], shown=tuple((s["run"], s["id"]) for s in data["shown"]),
                   winner=data.get("winner"))


@dataclass(frozen=True, slots=True)
class JudgeScore(_Record):
    """Judge ``judge`` (``NAME:MODEL``) on pair ``id``: a score, or ``code`` saying why none."""

    FILE: ClassVar[str] = "judge_scores.jsonl"

    id: str
    judge: str
    prompt: str
    at: str
    score: int | None
    reason: str = ""
    code: str | None = None
    lang: str | None = None
    task: str | None = None
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "judge": self.judge, "prompt": self.prompt, "at": self.at,
                "score": self.score, "reason": self.reason, "code": self.code,
                "lang": self.lang, "task": self.task, "usage": self.usage}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JudgeScore:
        return cls(id=data["id"], judge=data["judge"], prompt=data.get("prompt", ""),
                   at=data.get("at", ""), score=data.get("score"),
                   reason=data.get("reason") or "", code=data.get("code"),
                   lang=data.get("lang"), task=data.get("task"), usage=data.get("usage") or {})


def read_raw(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a run-folder file (dataset, scored, rejects); nothing if absent."""
    for _line, record in iter_jsonl(path):
        yield record


R = TypeVar("R", bound=_Record)


def read(folder: Path, cls: type[R]) -> list[R]:
    """Every ``cls`` record of ``folder``; a bad line is an error naming file, line and field."""
    path = folder / cls.FILE
    out = []
    for line, data in iter_jsonl(path):
        try:
            out.append(cls.from_json(data))
        except KeyError as exc:
            raise InputError(f"missing field in a {cls.__name__} line", file=str(path),
                             line=line, field=str(exc.args[0])) from None
        except (ValueError, TypeError) as exc:
            raise InputError(f"not a valid {cls.__name__} ({exc})", file=str(path),
                             line=line) from None
    return out


_append_lock = threading.Lock()


def cut_torn_tail(path: Path) -> int:
    """Cut a last line without its newline off ``path``; the bytes removed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    with path.open("r+b") as fh:
        end = size
        keep = 0
        while end > 0:  # backwards in blocks: only the tail is read
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        if keep < size:
            fh.truncate(keep)
    return size - keep


def append(folder: Path, record: _Record) -> None:
    """Add ``record`` to its file in ``folder`` as one whole, fsynced line.

    A write that fails part-way (a full disk) is cut back off, so the file
    never holds half a record in the middle.
    """
    path = folder / record.FILE
    line = (json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False) + "\n").encode()
    with _append_lock:
        cut_torn_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
