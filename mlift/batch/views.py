"""How batches are shown: state, counts and the expected wait, for the progress line
and ``mlift batches``.

Both providers give a batch 24 hours (``completion_window: "24h"``; Anthropic:
"processing ends … 24 hours after creation") and do not promise sooner;
Anthropic says most batches finish within an hour. So the expected wait is
the rate so far extrapolated once lines are finishing (OpenAI counts them as
they go; Anthropic only at the end), and otherwise what is left of the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Shown:
    """One batch as displayed."""

    stage: str
    target: str
    kind: str
    batch_id: str | None
    state: str
    total: int
    done: int
    failed: int
    age_s: float
    ended: bool


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``: short and steady for a status line."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def wait_s(batch: Shown) -> tuple[float, bool]:
    """(seconds left, whether that is extrapolated from lines finished so far)."""
    left = max(0.0, WINDOW_S - batch.age_s)
    finished = batch.done + batch.failed
    if 0 < finished < batch.total and batch.age_s > 0:
        return min(left, batch.age_s * (batch.total - finished) / finished), True
    return left, False


def expected_wait(batch: Shown) -> str:
    """What to expect before ``batch`` ends (``-`` once it has)."""
    if batch.ended:
        return "-"
    seconds, rated = wait_s(batch)
    if rated:
        return f"~{duration(seconds)}"
    if batch.kind == "anthropic":
        return f"most within 1h, at most {duration(seconds)}"
    return f"at most {duration(seconds)}"


def summary(batches: Sequence[Shown]) -> str:
    """The batches of a run in one status-line part, per stage: how many in each state,
    lines done of all, and the expected wait of the one expected to end last."""
    by_stage: dict[str, list[Shown]] = {}
    for batch in batches:
        by_stage.setdefault(batch.stage, []).append(batch)
    parts = []
    for stage, group in by_stage.items():
        states = Counter(b.state for b in group)
        counted = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        total, done = sum(b.total for b in group), sum(b.done for b in group)
        running = [b for b in group if not b.ended]
        wait = (f", wait {expected_wait(max(running, key=lambda b: wait_s(b)[0]))}"
                if running else "")
        parts.append(f"{stage} {counted} ({done:,}/{total:,} done{wait})")
    return "batches: " + "; ".join(parts) if parts else ""
