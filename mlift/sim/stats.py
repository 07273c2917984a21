"""The simulator's counters, served at ``GET /stats``.

Sliding-window maxima (``max_requests_60s`` …) are exact: every answered
(200) request is logged with its admission time, its token charge (the
``tpm`` limit's), its input-token charge and the output tokens it wrote (the
``itpm``/``otpm`` limits'), and the maxima are computed from that log when
asked, over windows ``(t - W, t]`` — the same convention the limiter enforces.
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
        self._inputs: array[float] = array("d")
        self._outputs: array[float] = array("d")
        self._refused: array[float] = array("d")
        self._unsorted = False

    def arrived(self) -> None:
        now = time.time()
        self.requests += 1
        if self.first_request_at is None:
            self.first_request_at = now
        self.last_request_at = now

    def finished(self, status: int | str) -> None:
        self.by_status[str(status)] += 1

    def refused(self, at: float) -> None:
        """A 429 for a rate limit, at this time on the limiter's clock."""
        self._refused.append(at)

    def refused_between(self, start: float, end: float) -> int:
        return sum(1 for t in self._refused if start <= t < end)

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def answered(self, admitted_at: float, charge: float, tokens_in: int, tokens_out: int, *,
                 input_charge: float | None = None) -> None:
        """A 200 with a complete answer: log it for the window maxima."""
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if self._times and admitted_at < self._times[-1]:
            self._unsorted = True  # answers can finish out of admission order
        self._times.append(admitted_at)
        self._charges.append(float(charge))
        self._inputs.append(float(tokens_in if input_charge is None else input_charge))
        self._outputs.append(float(tokens_out))

    def _sorted_log(self) -> tuple[array[float], array[float], array[float], array[float]]:
        if self._unsorted:
            rows = sorted(zip(self._times, self._charges, self._inputs, self._outputs,
                              strict=True))
            self._times, self._charges, self._inputs, self._outputs = (
                array("d", (row[i] for row in rows)) for i in range(4))
            self._unsorted = False
        return self._times, self._charges, self._inputs, self._outputs

    def admitted_between(self, start: float, end: float) -> dict[str, float]:
        """Answered requests admitted in ``[start, end)`` (server clock) and their charges."""
        times, charges, inputs, outputs = self._sorted_log()
        picked = [i for i, t in enumerate(times) if start <= t < end]
        return {"requests": len(picked), "tokens": sum(charges[i] for i in picked),
                "input_tokens": sum(inputs[i] for i in picked),
                "output_tokens": sum(outputs[i] for i in picked)}

    def snapshot(self) -> dict[str, Any]:
        times, charges, inputs, outputs = self._sorted_log()
        r60, t60 = max_in_window(times, charges, 60.0)
        r1, t1 = max_in_window(times, charges, 1.0)
        in60 = max_in_window(times, inputs, 60.0)[1]
        out60 = max_in_window(times, outputs, 60.0)[1]
        return {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "max_requests_60s": r60,
            "max_tokens_60s": round(t60),
            "max_requests_1s": r1,
            "max_tokens_1s": round(t1),
            "tokens_charged": round(sum(charges)),
            "max_input_tokens_60s": round(in60),
            "max_output_tokens_60s": round(out60),
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "faults": dict(sorted(self.faults.items())),
        }
