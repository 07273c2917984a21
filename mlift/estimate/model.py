"""From a ledger and the factors to dollars, tokens and wall time, with a 95 % range.

Every ledger term is ``amount × Π factors``. The expected figures use each
factor's central value. The range is seeded Monte Carlo (4,000 draws; draw 0
is the central one); in each draw:

* every length factor's **mean** is drawn from its 95 % interval (a two-piece
  log-normal matching both ends), and on top of it the **per-request
  variation** of the draw's requests: a term whose per-item amounts are
  ``a_i`` varies by ``spread · sqrt(Σ a_i²) / Σ a_i`` (log-normal, one normal
  deviate per factor shared by every term, since the same answers feed several
  stages) — so 10 items give a wider range than 10,000;
* every rate's **probability** is drawn from its Beta distribution (prior or
  pilot posterior), then its **realised share** among the ledger's trials of
  it: Binomial(N, p) / N — of 12 judged pairs, a whole number pass.

low/high are the 2.5th and 97.5th percentiles of each figure.

Wall time, per endpoint (stages sharing a server and model share its
limits): the larger of requests/rpm, tokens/tpm and
requests × latency / concurrency; the run takes as long as its slowest
endpoint (stages are pipelined across items).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlift.estimate.ledger import Ledger
from mlift.estimate.priors import (
    BASE_LATENCY_S,
    DEFAULT_CONCURRENCY,
    LENGTHS,
    OUTPUT_TOKENS_PER_S,
    RATES,
    Factor,
)
from mlift.prices import PER_TOKENS, Price
from mlift.providers.base import Endpoint

DRAWS = 4000
Z95 = 1.959964
Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class Range:
    expected: float
    low: float
    high: float

    def to_json(self, digits: int = 6) -> dict[str, float]:
        return {"expected": round(self.expected, digits), "low": round(self.low, digits),
                "high": round(self.high, digits)}


@dataclass(slots=True)
class Draws:
    """Per draw: each factor's value (a rate: its realised share) and the variation deviates."""

    value: dict[str, Array]
    z: dict[str, Array]        # length factor → standard normal of its per-request variation
    spread: dict[str, float]

    @property
    def n(self) -> int:
        return len(next(iter(self.value.values())))


def sample(factors: Mapping[str, Factor], units: Mapping[str, int], draws: int = DRAWS,
           seed: int = 0) -> Draws:
    """Seeded draws of every factor; ``units`` are the trials of each rate in the ledger."""
    rng = np.random.default_rng(seed)
    value: dict[str, Array] = {}
    z: dict[str, Array] = {}
    for name in LENGTHS:
        f = factors[name]
        mean_z = rng.standard_normal(draws)
        mean_z[0] = 0.0
        up = math.log(f.high / f.value) / Z95
        down = math.log(f.value / f.low) / Z95
        value[name] = f.value * np.exp(np.where(mean_z > 0, mean_z * up, mean_z * down))
        z[name] = rng.standard_normal(draws)
        z[name][0] = 0.0
    for name in RATES:
        f = factors[name]
        a, b = f.beta or (f.value, 1.0 - f.value)
        p = rng.beta(a, b, draws)
        p[0] = f.value
        n = int(units.get(name, 0))
        share = rng.binomial(n, p) / n if n else p
        share[0] = f.value
        value[name] = share.astype(np.float64)
    # What only a failing verdict sends scales with the pairs that did not pass.
    value["fail"] = 1.0 - value["pass"]
    return Draws(value, z, {name: factors[name].spread for name in LENGTHS})


def totals(ledger: Ledger, draws: Draws) -> dict[tuple[str, str, str], Array]:
    """(stage, target, quantity) → value per draw."""
    out: dict[tuple[str, str, str], Array] = {}
    for (stage, target, what, names), term in ledger.terms.items():
        value = np.full(draws.n, term.amount)
        for name in names:
            value = value * draws.value[name]
            if name in draws.z and term.amount > 0:
                sigma = draws.spread[name] * math.sqrt(term.squares) / term.amount
                value = value * np.exp(sigma * draws.z[name])
        key = (stage, target, what)
        out[key] = out[key] + value if key in out else value
    return out


def _range(values: Array) -> Range:
    return Range(float(values[0]), float(np.percentile(values, 2.5)),
                 float(np.percentile(values, 97.5)))


@dataclass(slots=True)
class StageFigures:
    target: str
    requests: Range
    input_tokens: Range
    output_tokens: Range
    cost_usd: Range
    cached: int
    cached_input_tokens: Range  # of input_tokens, those read from the provider's prompt cache


@dataclass(slots=True)
class EndpointTime:
    spec: str
    requests: float
    tokens: float
    seconds: Range
    bound: str


def stage_figures(ledger: Ledger, draws: Draws,
                  prices: Mapping[str, Price]) -> tuple[dict[str, StageFigures], Range]:
    """Per-stage figures and the total cost (``prices`` by target spec)."""
    t = totals(ledger, draws)
    zero = np.zeros(draws.n)
    total = np.zeros(draws.n)
    sums: dict[str, dict[str, Array]] = {}
    for (stage, target, what), values in t.items():
        cell = sums.setdefault(stage, {"requests": zero, "input": zero, "output": zero,
                                       "cached_input": zero, "cost": zero})
        # Input tokens read from or written to the provider's prompt cache are input
        # tokens all the same; only their price differs.
        if what in ("input", "cached_input", "cache_write"):
            cell["input"] = cell["input"] + values
        if what in ("requests", "output", "cached_input"):
            cell[what] = cell[what] + values
        cell["cost"] = cell["cost"] + values * _rate(prices[target], what) / PER_TOKENS
    out: dict[str, StageFigures] = {}
    for stage, target in ledger.targets.items():
        cell = sums.get(stage, {"requests": zero, "input": zero, "output": zero,
                                "cached_input": zero, "cost": zero})
        total = total + cell["cost"]
        out[stage] = StageFigures(target, _range(cell["requests"]), _range(cell["input"]),
                                  _range(cell["output"]), _range(cell["cost"]),
                                  ledger.cached[stage],
                                  _range(cell.get("cached_input", zero)))
    return out, _range(total)


def _rate(price: Price, what: str, *, batch: bool = False, kind: str = "") -> float:
    """USD per 1M of ``what``: fresh, cached or cache-write input, or output tokens.

    Requests cost nothing by themselves. In an Anthropic batch the lines do not
    read each other's cache writes, so what online would be a cache read is
    priced as a write there.
    """
    fresh, read, write, out = price.rates(batch=batch)
    if what == "cached_input" and batch and kind == "anthropic":
        return write
    return {"input": fresh, "cached_input": read, "cache_write": write,
            "output": out}.get(what, 0.0)


def batch_costs(ledger: Ledger, draws: Draws, prices: Mapping[str, Price],
                batched: Collection[str], kinds: Mapping[str, str] | None = None
                ) -> tuple[dict[str, Range], Range]:
    """Per-stage and total cost with the ``batched`` stages at batch prices (the others
    online), on the same draws as :func:`stage_figures`, so the two compare draw by draw.

    ``kinds``: each target's provider kind (an Anthropic batch reads no cache).
    """
    t = totals(ledger, draws)
    per_stage = {stage: np.zeros(draws.n) for stage in ledger.targets}
    for (stage, target, what), values in t.items():
        rate = _rate(prices[target], what, batch=stage in batched,
                     kind=(kinds or {}).get(target, ""))
        per_stage[stage] = per_stage[stage] + values * rate / PER_TOKENS
    total = sum(per_stage.values(), np.zeros(draws.n))
    return {stage: _range(v) for stage, v in per_stage.items()}, _range(total)


def wall_time(ledger: Ledger, draws: Draws, endpoints: Mapping[str, Endpoint],
              latency_s: Mapping[str, float] | None = None) -> tuple[Range, list[EndpointTime]]:
    """Seconds for the run at each endpoint's limits; the slowest endpoint sets the pace.

    ``endpoints`` by target spec.
    """
    t = totals(ledger, draws)
    zero = np.zeros(draws.n)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for spec, ep in endpoints.items():
        groups.setdefault(ep.limit_key, []).append(spec)
    overall = np.zeros(draws.n)
    rows: list[EndpointTime] = []
    for specs in groups.values():
        ep = endpoints[specs[0]]

        def of(what: str, specs: list[str] = specs) -> Array:
            return sum((v for (_, target, w), v in t.items() if w == what and target in specs),
                       zero)

        req, out_tok = of("requests"), of("output")
        tok = of("input") + out_tok
        per_req = (latency_s or {}).get(ep.spec)
        per_req_arr = (BASE_LATENCY_S + out_tok / np.maximum(req, 1.0) / OUTPUT_TOKENS_PER_S
                       if per_req is None else np.full(draws.n, per_req))
        bounds = {"latency": req * per_req_arr / (ep.concurrency or DEFAULT_CONCURRENCY)}
        if ep.rpm:
            bounds["rpm"] = req / ep.rpm * 60.0
        if ep.tpm:
            bounds["tpm"] = tok / ep.tpm * 60.0
        seconds = np.max(np.stack(list(bounds.values())), axis=0)
        bound = max(bounds, key=lambda k: float(bounds[k][0]))
        rows.append(EndpointTime(ep.spec, float(req[0]), float(tok[0]), _range(seconds), bound))
        overall = np.maximum(overall, seconds)
    return _range(overall), rows
