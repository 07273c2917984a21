"""What every scenario shares: the result row and the run context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.workload import write_requests


@dataclass(slots=True)
class Row:
    scenario: str
    client: str
    result: str
    target: str = ""
    ok: bool | None = None      # None: informative, no target


@dataclass(slots=True)
class Ctx:
    tmp: Path
    quick: bool
    notes: dict[str, Any] = field(default_factory=dict)  # figures shared between scenarios

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def workload(self, name: str, n: int, **kw: Any) -> Path:
        path = self.tmp / f"{name}-{n}.jsonl"
        if not path.exists():
            write_requests(path, n, **kw)
        return path
