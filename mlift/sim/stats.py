"""The simulator's counters, served at ``GET /stats``.

Sliding-window maxima (``max_requests_60s`` …) are exact: every answered
(200) request is logged with its admission time and token charge, and the
maxima are computed from that log when asked, over windows ``(t - W, t]`` —
the same convention the limiter enforces.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from typing import Any


def max_in_window(times: array[float], weights: array[float], width: float) -> tuple[int, float]:
    """Most events and most weight inside any window of ``width`` seconds; ``times`` sorted."""
    best_n, best_w = 0, 0.0
    lo, running = 0, 0.0
    for hi, t in enumerate(times):
        running += weights[hi]
        while t - times[lo] >= width:
            running -= weights[lo]
            lo += 1
        best_n = max(best_n, hi - lo + 1)
        best_w = max(best_w, running)
    return best_n, best_w


class Stats:
    """Counters since start or the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.tokens_in = 0
        self.tokens_out = 0
        self.first_request_at: float | None = None
        self.last_request_at: float | None = None
        self._times: array[float] = array("d")
        self._charges: array[float] = array("d")
        self._unsorted = False

    def arrived(self) -> None:
        now = time.time()
        self.requests += 1
        if self.first_request_at is None:
            self.first_request_at = now
        self.last_request_at = now

    def finished(self, status: int | str) -> None:
        self.by_status[str(status)] += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def answered(self, admitted_at: float, charge: int, tokens_in: int, tokens_out: int) -> None:
        """A 200 with a complete answer: log it for the window maxima."""
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if self._times and admitted_at < self._times[-1]:
            self._unsorted = True  # answers can finish out of admission order
        self._times.append(admitted_at)
        self._charges.append(float(charge))

    def _sorted_log(self) -> tuple[array[float], array[float]]:
        if self._unsorted:
            pairs = sorted(zip(self._times, self._charges, strict=True))
            self._times = array("d", (t for t, _ in pairs))
            self._charges = array("d", (c for _, c in pairs))
            self._unsorted = False
        return self._times, self._charges

    def snapshot(self) -> dict[str, Any]:
        times, charges = self._sorted_log()
        r60, t60 = max_in_window(times, charges, 60.0)
        r1, t1 = max_in_window(times, charges, 1.0)
        return {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "max_requests_60s": r60,
            "max_tokens_60s": round(t60),
            "max_requests_1s": r1,
            "max_tokens_1s": round(t1),
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "faults": dict(sorted(self.faults.items())),
        }
