"""The last minute of an endpoint's admissions, in tenth-of-a-second bins.

A limit learned in the middle of a run (from a header, a 429 body, or a
guess) must start with the 60 s window the server already counts, or the
client meets a full window a minute later; and a guessed limit is the rate
that passed just before a refusal. Both need what was sent recently, but a
fast endpoint sends thousands of requests a minute, so they are kept as sums
per bin: memory stays bounded whatever the rate.
"""

from __future__ import annotations

from collections import deque

BIN_S = 0.1
SPAN_S = 61.0


class History:
    """Requests, prompt tokens and ``max_tokens`` admitted per bin (refusals taken out)."""

    def __init__(self) -> None:
        self._bins: dict[int, list[float]] = {}  # bin -> [requests, prompt, max_output]
        self._order: deque[int] = deque()

    def add(self, at: float, prompt: int, max_output: int, sign: int = 1) -> None:
        key = int(at / BIN_S)
        cell = self._bins.get(key)
        if cell is None:
            if sign < 0:
                return  # already expired
            cell = self._bins[key] = [0.0, 0.0, 0.0]
            self._order.append(key)
        cell[0] += sign
        cell[1] += sign * prompt
        cell[2] += sign * max_output
        oldest = int((at - SPAN_S) / BIN_S)
        while self._order and self._order[0] < oldest:
            self._bins.pop(self._order.popleft(), None)

    def remove(self, at: float, prompt: int, max_output: int) -> None:
        """An admission that was refused: it used none of the server's window."""
        self.add(at, prompt, max_output, sign=-1)

    def bins(self, since: float) -> list[tuple[float, float, float, float]]:
        """``(time, requests, prompt, max_output)`` per bin from ``since`` on, oldest first."""
        first = int(since / BIN_S)
        out = []
        for key in sorted(self._bins):
            cell = self._bins[key]
            if key >= first and cell[0] > 0:
                out.append((key * BIN_S, cell[0], cell[1], cell[2]))
        return out

    def requests_between(self, start: float, end: float) -> float:
        lo, hi = int(start / BIN_S), int(end / BIN_S)
        return sum(cell[0] for key, cell in self._bins.items() if lo <= key < hi)

    @property
    def first(self) -> float | None:
        return self._order[0] * BIN_S if self._order else None
