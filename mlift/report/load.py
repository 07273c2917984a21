"""Read a run folder (``mlift run`` or a baseline) for reporting and export.

A folder holds some of ``dataset.jsonl``, ``scored.jsonl``, ``rejects.jsonl``
and ``run.json`` (:mod:`mlift.pipeline.outputs`). A baseline folder has no
``scored.jsonl`` and its rows no score; a folder from an interrupted run may
lack ``run.json`` and end in a torn line. Reading tolerates all of that: what
is missing is empty, and a torn *last* line (no newline, the mark of a killed
writer) is skipped and counted. A malformed line anywhere else is an error
naming the file and line, because it means the file was damaged or hand-edited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.pipeline.outputs import DATASET, REJECTS, RUN, SCORED

__all__ = ["RunFolder", "iter_jsonl", "load_folder"]


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each JSON-object line of ``path``; nothing if it is absent.

    A last line without its newline is skipped (a writer was killed mid-line);
    any other line that is not a JSON object raises :class:`InputError`.
    """
    if not path.is_file():
        return
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return  # torn last line of an interrupted run
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"not valid JSON ({exc})", file=str(path), line=lineno) from None
            if not isinstance(record, dict):
                raise InputError(f"expected a JSON object, got {type(record).__name__}",
                                 file=str(path), line=lineno)
            yield lineno, record


@dataclass(slots=True)
class RunFolder:
    """Everything read from one run folder; missing files leave their part empty.

    ``row_lines[i]`` is the line of ``dataset.jsonl`` that ``rows[i]`` came from,
    so a later check can name it.
    """

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_lines: list[int] = field(default_factory=list)
    scored: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short label: the folder's name."""
        return self.path.resolve().name or str(self.path)

    @property
    def kind(self) -> str:
        """``"mlift"`` for ``mlift run``, else the baseline: ``"translate"`` or ``"template"``.

        ``run.json`` says so (its ``baseline`` key); without it, the rows do
        (task ``translated`` or a ``template`` field).
        """
        baseline = self.run.get("baseline")
        if isinstance(baseline, str) and baseline:
            return baseline
        if self.rows and all(r.get("task") == "translated" for r in self.rows):
            return "translate"
        if self.rows and all(r.get("template") for r in self.rows):
            return "template"
        return "mlift"

    @property
    def min_score(self) -> int | None:
        """The judge threshold the folder was built with (None for baselines and unknown)."""
        value = self.run.get("config", {}).get("min_score")
        return value if isinstance(value, int) else None


def load_folder(path: str | Path) -> RunFolder:
    """Read one run folder. Raises :class:`ConfigError` if it holds none of the run files."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder (expected an mlift run folder)")
    if not any((folder / name).is_file() for name in (DATASET, SCORED, REJECTS, RUN)):
        raise ConfigError(f"{folder}: not an mlift run folder (none of {DATASET}, {SCORED}, "
                          f"{REJECTS}, {RUN})")
    run: dict[str, Any] = {}
    if (folder / RUN).is_file():
        try:
            loaded = json.loads((folder / RUN).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON ({exc})", file=str(folder / RUN),
                             line=None) from None
        if not isinstance(loaded, dict):
            raise InputError("expected a JSON object", file=str(folder / RUN), line=None)
        run = loaded
    numbered = list(iter_jsonl(folder / DATASET))
    return RunFolder(
        path=folder,
        rows=[r for _, r in numbered],
        row_lines=[n for n, _ in numbered],
        scored=[r for _, r in iter_jsonl(folder / SCORED)],
        rejects=[r for _, r in iter_jsonl(folder / REJECTS)],
        run=run,
    )
