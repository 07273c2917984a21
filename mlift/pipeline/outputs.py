"""The run folder: what was written, and what that says is already done.

``dataset.jsonl`` (kept pairs), ``scored.jsonl`` (every judged pair, kept or
not), ``rejects.jsonl`` (every item that left the pipeline, with stage,
reason code and detail) and ``run.json`` (config, funnel, cost, timings).
Lines are appended and flushed as items finish, so a killed run loses at
most a torn last line, which the next run cuts off before resuming.

Each item ends in exactly one of: the dataset, below the threshold (in
``scored.jsonl`` with a score under ``--min-score``), or the rejects. That is
also how a re-run knows what is finished.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

DATASET, SCORED, REJECTS, RUN = "dataset.jsonl", "scored.jsonl", "rejects.jsonl", "run.json"


def read_jsonl(path: Path, *, repair: bool = False) -> Iterator[dict[str, Any]]:
    """The complete lines of a JSONL output; with ``repair``, cut a torn last line off."""
    if not path.exists():
        return
    good = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            good += len(raw)
            yield record
    if repair and good < path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(good)


@dataclass(slots=True)
class Finished:
    """Ids already in each output file (scores kept for the scored ones)."""

    kept: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    scores: dict[str, int] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)

    def done(self, item_id: str, min_score: int) -> bool:
        if item_id in self.kept or item_id in self.rejected:
            return True
        score = self.scores.get(item_id)
        return score is not None and score < min_score

    def below(self, min_score: int) -> set[str]:
        return {i for i, s in self.scores.items()
                if s < min_score and i not in self.kept and i not in self.rejected}


def scan(out_dir: Path, *, repair: bool = False) -> Finished:
    finished = Finished()
    for record in read_jsonl(out_dir / DATASET, repair=repair):
        finished.kept.add(record["id"])
    for record in read_jsonl(out_dir / REJECTS, repair=repair):
        if record["id"] not in finished.rejected:
            finished.rejected.add(record["id"])
            finished.reasons[f"{record['stage']}:{record['code']}"] += 1
    for record in read_jsonl(out_dir / SCORED, repair=repair):
        finished.scores[record["id"]] = record["score"]
    return finished


class RunFiles:
    """Appends records to the run folder's JSONL files, one flushed line at a time."""

    def __init__(self, out_dir: Path,
                 names: tuple[str, ...] = (DATASET, SCORED, REJECTS)) -> None:
        self.dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.finished = scan(out_dir, repair=True)
        self._files: dict[str, IO[str]] = {
            name: (out_dir / name).open("a", encoding="utf-8") for name in names}

    def _write(self, name: str, record: dict[str, Any]) -> None:
        fh = self._files[name]
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()

    def scored(self, record: dict[str, Any]) -> None:
        if record["id"] not in self.finished.scores:  # a resumed item: already there
            self._write(SCORED, record)
            self.finished.scores[record["id"]] = record["score"]

    def kept(self, record: dict[str, Any]) -> None:
        self._write(DATASET, record)
        self.finished.kept.add(record["id"])

    def reject(self, record: dict[str, Any]) -> None:
        self._write(REJECTS, record)
        self.finished.rejected.add(record["id"])
        self.finished.reasons[f"{record['stage']}:{record['code']}"] += 1

    def write_run_json(self, data: dict[str, Any]) -> None:
        tmp = self.dir / (RUN + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / RUN)

    def close(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
