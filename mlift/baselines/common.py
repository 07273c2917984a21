"""What both baselines share: the report, input rejects and the run.json funnel."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift import __version__
from mlift.errors import InputError
from mlift.pipeline.outputs import RunFiles, scan
from mlift.pipeline.runner import bad_input_id
from mlift.pipeline.sources import Record


@dataclass(slots=True)
class BaselineReport:
    """Counts of one baseline run; ``inputs`` counts every input line, finished or not."""

    inputs: int = 0
    kept: int = 0
    rejected: int = 0
    skipped_done: int = 0
    stopped: str | None = None
    funnel: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.inputs == self.kept + self.rejected


def input_reject(error: InputError) -> dict[str, Any]:
    """The reject row for an unreadable input line, keyed like ``mlift run``'s."""
    return {"id": bad_input_id(error), "lang": None, "stage": "input", "code": error.code,
            "detail": str(error),
            "source": {"file": error.file, "line": error.line, "field": error.field}}


def record_reject(record: Record, lang: str, stage: str, code: str, detail: str,
                  **extra: Any) -> dict[str, Any]:
    """The reject row for a readable record that left the baseline."""
    return {"id": record.id, "lang": lang, "stage": stage, "code": code, "detail": detail,
            "source": record.source.as_dict(), **extra}


def finish_run(files: RunFiles, report: BaselineReport, *, baseline: str, started: float,
               config: dict[str, Any], extra_funnel: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> None:
    """Count the run folder (not just this run) and write ``run.json``."""
    finished = scan(files.dir)
    report.kept, report.rejected = len(finished.kept), len(finished.rejected)
    report.funnel = {"input": report.inputs, "kept": report.kept,
                     "rejected": report.rejected, "balanced": report.balanced,
                     "already_done": report.skipped_done,
                     "rejects_by_stage_and_reason": dict(sorted(finished.reasons.items())),
                     **(extra_funnel or {})}
    files.write_run_json({
        "mlift_version": __version__,
        "baseline": baseline,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(time.time() - started, 3),
        "stopped_early": report.stopped,
        "config": config,
        "funnel": report.funnel,
        **(extra or {}),
    })


def config_paths(inputs: tuple[Path, ...], out_dir: Path) -> dict[str, Any]:
    return {"inputs": [str(p) for p in inputs], "out": str(out_dir)}
