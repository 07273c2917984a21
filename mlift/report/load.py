"""Read a run folder (``mlift run`` or a baseline) for reporting and export.

A folder holds some of ``dataset.jsonl``, ``scored.jsonl``, ``rejects.jsonl``
and ``run.json`` (:mod:`mlift.runfolder`). A baseline folder has no
``scored.jsonl`` and its rows no score; a folder from an interrupted run may
lack ``run.json`` and end in a torn line. Reading tolerates all of that: what
is missing is empty, and a torn *last* line (no newline, the mark of a killed
writer) is skipped and counted. A malformed line anywhere else is an error
naming the file and line, because it means the file was damaged or hand-edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.records import DatasetRow, Reject, ScoredPair, iter_json_lines
from mlift.runfolder import RunFolder

__all__ = ["FolderView", "load_folder"]

_KINDS = {"run": "mlift", "baseline translate": "translate", "baseline template": "template"}


@dataclass(slots=True)
class FolderView:
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
    command: str = "run"

    @property
    def name(self) -> str:
        """A short label: the folder's name."""
        return self.path.resolve().name or str(self.path)

    @property
    def kind(self) -> str:
        """``"mlift"`` for ``mlift run``, else the baseline: ``"translate"`` or ``"template"``."""
        return _KINDS.get(self.command, self.command)

    @property
    def min_score(self) -> int | None:
        """The judge threshold the folder was built with (None for baselines and unknown)."""
        value = self.run.get("config", {}).get("min_score")
        return value if isinstance(value, int) else None


def load_folder(path: str | Path) -> FolderView:
    """Read one run folder. Raises :class:`~mlift.errors.RunFolderError` if it is none."""
    folder = RunFolder.load(Path(path))
    numbered = list(iter_json_lines(folder.file(DatasetRow)))
    return FolderView(
        path=folder.path,
        rows=[r for _, r in numbered],
        row_lines=[n for n, _ in numbered],
        scored=[r for _, r in iter_json_lines(folder.file(ScoredPair))],
        rejects=[r for _, r in iter_json_lines(folder.file(Reject))],
        run=folder.summary(),
        command=folder.command,
    )
