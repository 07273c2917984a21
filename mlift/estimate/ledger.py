"""What the dry run booked: sums of requests and tokens, each tagged with its factors.

Every booked quantity is ``amount × Π factors``: the input tokens the dry run
counted exactly carry no factor, a predicted answer length carries its length
factor, and whatever only happens if the judge passes the pair (or re-asks)
carries the pass (or re-ask) rate. Terms with the same (stage, target,
quantity, factors) are summed, so the totals under any factor values are a
cheap sum (:mod:`mlift.estimate.model`).

Each term also keeps the sum of its per-item amounts squared: with per-request
variation ``s`` around a factor's mean, a sum of amounts ``a_i`` varies by
``s · sqrt(Σ a_i²) / Σ a_i`` — fewer (or more uneven) items, a wider range.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

# (stage, target spec, "requests" | "input" | "output", factors)
Key = tuple[str, str, str, tuple[str, ...]]


@dataclass(slots=True)
class Term:
    amount: float = 0.0
    squares: float = 0.0  # Σ over items of (the item's amount)²


@dataclass(slots=True)
class Ledger:
    """Booked terms, requests answered from the cache, and the trials of each rate."""

    terms: dict[Key, Term] = field(default_factory=dict)
    cached: Counter[str] = field(default_factory=Counter)       # stage → cache hits
    targets: dict[str, str] = field(default_factory=dict)       # stage → target spec
    units: Counter[str] = field(default_factory=Counter)        # rate → trials booked
    items: int = 0
    notes: set[str] = field(default_factory=set)
    _open: dict[str, defaultdict[Key, float]] = field(default_factory=dict)

    def open(self, item_id: str) -> None:
        self._open[item_id] = defaultdict(float)
        self.items += 1

    def add(self, item_id: str, stage: str, target: str, what: str, amount: float,
            factors: tuple[str, ...] = ()) -> None:
        """Book ``amount`` of ``what`` for one request of ``item_id``."""
        self.targets.setdefault(stage, target)
        if amount:
            self._open[item_id][(stage, target, what, tuple(sorted(set(factors))))] += amount

    def hit(self, stage: str, target: str) -> None:
        self.targets.setdefault(stage, target)
        self.cached[stage] += 1

    def close(self, item_id: str) -> None:
        """Fold the item's bookings into the terms (one independent unit per item)."""
        for key, amount in self._open.pop(item_id).items():
            term = self.terms.setdefault(key, Term())
            term.amount += amount
            term.squares += amount * amount
