"""The funnel of a dataset-building run: every input record in exactly one outcome.

``RunReport`` is what ``mlift run`` and both baselines return and print:
inputs, kept, below threshold (``None`` where there is no judge), rejected,
and — after a stop — the records not processed yet. ``funnel`` is its
``run.json`` form, counted from the folder (not just this invocation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlift.runfolder.folder import Finished


@dataclass(slots=True)
class RunReport:
    inputs: int = 0
    kept: int = 0
    below: int | None = None
    rejected: int = 0
    skipped_done: int = 0
    retried: int = 0
    provider_failures: int = 0
    stopped: str | None = None
    cost_usd: float = 0.0
    run_cost_usd: float = 0.0
    funnel: dict[str, Any] = field(default_factory=dict)

    @property
    def unfinished(self) -> int:
        """Input records in none of the outputs (after a stop; otherwise a bug)."""
        return self.inputs - self.kept - (self.below or 0) - self.rejected

    @property
    def balanced(self) -> bool:
        return self.unfinished == 0

    @property
    def exit_code(self) -> int:
        """0 done; 4 stopped early or items left to retry (partial); 1 counts that don't add up."""
        if self.stopped or self.provider_failures:
            return 4
        return 0 if self.balanced else 1

    def count(self, finished: Finished, *, min_score: int | None = None,
              **extra: Any) -> dict[str, Any]:
        """Fill the counts from ``finished`` and return the funnel (``extra`` added to it)."""
        self.kept, self.rejected = len(finished.kept), len(finished.rejected)
        self.below = len(finished.below(min_score)) if min_score is not None else None
        self.provider_failures = len(finished.provider_failures)
        funnel: dict[str, Any] = {"input": self.inputs, "kept": self.kept}
        if self.below is not None:
            funnel["below_threshold"] = self.below
        funnel.update({
            "rejected": self.rejected, "unfinished": self.unfinished,
            "balanced": self.balanced, "already_done": self.skipped_done,
            "retried_provider_failures": self.retried,
            "provider_failures": self.provider_failures,
            "rejects_by_stage_and_reason": dict(sorted(finished.reasons.items())),
            **extra})
        self.funnel = funnel
        return funnel
