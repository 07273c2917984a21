"""What the limiter keeps per request and per limit.

A :class:`Demand` is what one request asks for in mlift's own count; a
:class:`Ticket` is one admitted attempt and what it took from each limit; a
:class:`Dimension` is one limit (requests, tokens, input or output tokens):
its bucket, where its value came from, and its two feedback loops — the
learned charge per estimated unit and the AIMD share of the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlift.engine.bucket import Bucket, Entry
from mlift.engine.control import Aimd, ChargeModel, Telescope
from mlift.engine.signals import INPUT, OUTPUT, REQUESTS, TOKENS


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request asks for, in mlift's own count."""

    prompt: int
    max_output: int = 0

    def estimate(self, dimension: str) -> float:
        return {REQUESTS: 1.0, TOKENS: float(self.prompt + self.max_output),
                INPUT: float(self.prompt), OUTPUT: float(self.max_output)}[dimension]


@dataclass(slots=True)
class Ticket:
    """One admitted attempt: what it took from each limit, and when."""

    at: float
    demand: Demand
    entries: dict[str, Entry] = field(default_factory=dict)
    reserved_after: dict[str, float] = field(default_factory=dict)   # ledgers after it
    estimated_after: dict[str, float] = field(default_factory=dict)
    done: bool = False


@dataclass(slots=True)
class LimiterStats:
    waits: int = 0
    waited_s: float = 0.0
    cooldowns: int = 0
    tightened: int = 0
    synced: int = 0
    refusals: int = 0
    decreases: int = 0


class Dimension:
    """One dimension: its bucket, where its limit came from, and its feedback state."""

    def __init__(self, name: str, per_minute: float, source: str, burst_s: float, now: float,
                 *, level: float | None = None, granularity: float = 0.0) -> None:
        self.name, self.source = name, source
        self.bucket = Bucket(per_minute, burst_s, now, level=level)
        # A guessed limit may be far off: it may grow to four times the guess,
        # probing faster than a limit the server announced.
        self.aimd = (Aimd(ceiling_max=4.0, climb_per_s=0.05, probe_per_s=0.05)
                     if source == "estimated" else Aimd())
        self.model = ChargeModel()
        self.telescope = Telescope(self.sample) if name == TOKENS else None
        self.granularity = granularity  # the server rounds its remaining to this
        self.reserved = 0.0   # cumulative charge taken here (the ledger the sync reads)
        self.estimated = 0.0  # the same in mlift's own, unmultiplied count

    def sample(self, charged: float, estimated: float) -> None:
        """The server charged ``charged`` for ``estimated`` of mlift's count: learn from it."""
        before = self.model.multiplier
        self.model.sample(charged, estimated)
        if self.model.multiplier != before:
            # What the log holds was counted with the old multiplier.
            self.bucket.rescale(self.model.multiplier / before)

    def amount(self, demand: Demand) -> float:
        if self.name in (TOKENS, INPUT):
            return self.model.multiplier * demand.estimate(self.name)
        return demand.estimate(self.name)
