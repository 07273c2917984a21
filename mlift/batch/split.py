"""Split a stage's encoded requests into batches within a provider's limits.

The limits are checked on the bytes that will be sent — the JSONL lines of
an OpenAI input file, the ``{"requests": [...]}`` body of an Anthropic batch —
not on any in-memory estimate, so a batch the splitter accepts is one the
provider accepts. A unit too big to fit even alone is reported, not sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlift.batch.base import Framing, Limits


@dataclass(frozen=True, slots=True)
class Plan:
    """Batches as lists of indexes into the units, and the units that fit nowhere."""

    batches: list[list[int]]
    too_big: list[int]


def split(sizes: Sequence[int], limits: Limits, framing: Framing) -> Plan:
    """Greedy, in order: start a new batch when the next unit would pass a limit."""
    batches: list[list[int]] = []
    too_big: list[int] = []
    current: list[int] = []
    used = 0
    for i, size in enumerate(sizes):
        if framing.size(1, size) > limits.max_bytes:
            too_big.append(i)
            continue
        if current and (len(current) >= limits.max_requests
                        or used + framing.separator + size > limits.max_bytes):
            batches.append(current)
            current = []
        used = framing.size(1, size) if not current else used + framing.separator + size
        current.append(i)
    if current:
        batches.append(current)
    return Plan(batches, too_big)
