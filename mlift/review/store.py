"""What review, judge and agree read from and add to a run folder: the one file seam.

Three record types join the run folder's own (:mod:`mlift.records`: dataset
rows, scored pairs, rejects), on the same base — one ``to_json``, one
``from_json``, unknown keys kept in ``extra`` — and read and written by the
same JSONL reader and writer:

* :class:`Label` (``labels.jsonl``) — a person's score, flags and note for
  one pair; several labellers may label the same pair, and a labeller's
  later label of a pair supersedes their earlier one (the file is only
  ever appended to, so the history stays);
* :class:`Preference` (``preferences.jsonl``) — one blind side-by-side
  choice between pairs of two run folders;
* :class:`JudgeScore` (``judge_scores.jsonl``) — a second judge's verdict on
  one pair, or why it gave none.

Appends are crash-safe: a torn last line (the mark of a writer killed
mid-line) is cut off before each append, and every record is one whole line,
flushed and fsynced before the call returns, so a label the page reported
saved survives a crash of the server or the machine. Reading skips a torn
last line and names the file, line and field of any other bad one. All of it
blocks: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mlift.records import JsonlWriter, RecordBase, iter_records, repair_torn_tail

__all__ = ["FLAGS", "JudgeScore", "Label", "Preference", "append", "now", "read"]

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
R = TypeVar("R", bound=RecordBase)


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


def _check_score(score: object) -> None:
    if score is not None and (isinstance(score, bool) or score not in range(1, 6)):
        raise ValueError(f"score must be a whole number from 1 to 5, got {score!r}")


@dataclass(frozen=True, slots=True)
class Label(RecordBase):
    """One labeller's judgement of pair ``id``: a score 1–5 (or none), flags and a note."""

    FILE: ClassVar[str] = "labels.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "labeller", "at")

    id: str
    labeller: str
    at: str
    score: int | None = None
    flags: list[str] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("a label needs the pair's id")
        check_name(self.labeller)
        _check_score(self.score)
        if not isinstance(self.flags, list):
            raise ValueError("flags must be a list of flag names")
        unknown = [f for f in self.flags if f not in FLAGS]
        if unknown:
            raise ValueError(f"unknown flag(s) {', '.join(map(repr, unknown))}; known: "
                             + ", ".join(FLAGS))
        if not isinstance(self.note, str) or len(self.note) > MAX_NOTE:
            raise ValueError(f"note must be text of at most {MAX_NOTE} characters")


@dataclass(frozen=True, slots=True)
class Preference(RecordBase):
    """A blind choice: ``shown`` left to right as ``{run, id}``; ``winner`` None is a tie.

    ``item`` is the comparison's key in the deck (stable across restarts),
    so a labeller's finished comparisons are skipped when the page reloads.
    """

    FILE: ClassVar[str] = "preferences.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("item", "lang", "labeller", "shown")

    item: str
    lang: str
    labeller: str
    at: str
    shown: list[dict[str, str]]
    winner: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        runs = [s.get("run") for s in self.shown] if isinstance(self.shown, list) else []
        if len(runs) < 2 or not all(isinstance(r, str) for r in runs):
            raise ValueError("shown must list at least two {run, id} sides")
        if self.winner is not None and self.winner not in runs:
            raise ValueError(f"winner {self.winner!r} is not one of the runs shown")

    @property
    def runs(self) -> list[str]:
        return [s["run"] for s in self.shown]


@dataclass(frozen=True, slots=True)
class JudgeScore(RecordBase):
    """Judge ``judge`` (``NAME:MODEL``) on pair ``id``: a score, or ``code`` saying why none."""

    FILE: ClassVar[str] = "judge_scores.jsonl"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "judge", "score")

    id: str
    judge: str
    score: int | None
    prompt: str = ""
    at: str = ""
    reason: str = ""
    code: str | None = None
    lang: str | None = None
    task: str | None = None
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_score(self.score)


def read(folder: Path, cls: type[R]) -> list[R]:
    """Every ``cls`` record of ``folder``; a bad line is an error naming file, line and field."""
    return list(iter_records(folder / cls.FILE, cls))


_append_lock = threading.Lock()


def append(folder: Path, record: RecordBase) -> None:
    """Add ``record`` to its file in ``folder`` as one whole line, fsynced before returning."""
    path = folder / record.FILE
    with _append_lock:
        repair_torn_tail(path)
        writer = JsonlWriter(path)
        try:
            writer.write(record)
        finally:
            writer.close()  # flush and fsync
