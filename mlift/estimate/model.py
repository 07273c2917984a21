"""From a ledger and factor values to dollars, tokens and wall time, with a 95 % range.

Every ledger term is ``amount × Π factors``, so the totals under any factor
values are a sum. The expected figures use each factor's central value. The
range propagates the factors' uncertainty by Monte Carlo: 4,000 seeded draws,
each factor independent — length factors two-piece log-normal, rates
two-piece normal, each matching its 95 % interval — and low/high are the 2.5th
and 97.5th percentiles of each figure. So the range is what the factors'
intervals imply, not a fixed ±x %.

Wall time, per endpoint (stages sharing a server and model share its
limits): the larger of requests/rpm, tokens/tpm and
requests × latency / concurrency; the run takes as long as its slowest
endpoint (stages are pipelined across items).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlift.estimate.plan import STAGE_ROLE, STAGES, Ledger
from mlift.estimate.priors import (
    BASE_LATENCY_S,
    DEFAULT_CONCURRENCY,
    FACTORS,
    OUTPUT_TOKENS_PER_S,
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


def sample(factors: dict[str, Factor], draws: int = DRAWS, seed: int = 0) -> dict[str, Array]:
    """Seeded draws of every factor; index 0 is the central value of each."""
    rng = np.random.default_rng(seed)
    out: dict[str, Array] = {}
    for name in FACTORS:
        f = factors[name]
        z = rng.standard_normal(draws)
        z[0] = 0.0
        if f.log_scale:
            up = math.log(f.high / f.value) / Z95
            down = math.log(f.value / f.low) / Z95
            out[name] = f.value * np.exp(np.where(z > 0, z * up, z * down))
        else:
            out[name] = np.clip(f.value + np.where(z > 0, z * (f.high - f.value),
                                                   z * (f.value - f.low)) / Z95, 0.0,
                                1.0 if name == "pass" else math.inf)
    return out


def totals(ledger: Ledger, draws: dict[str, Array]) -> dict[tuple[str, str], Array]:
    """(stage, quantity) → value per draw."""
    n = len(next(iter(draws.values())))
    out: dict[tuple[str, str], Array] = {}
    for (stage, what, names), amount in ledger.terms.items():
        value = np.full(n, amount)
        for name in names:
            value = value * draws[name]
        key = (stage, what)
        out[key] = out[key] + value if key in out else value
    return out


def _range(values: Array) -> Range:
    return Range(float(values[0]), float(np.percentile(values, 2.5)),
                 float(np.percentile(values, 97.5)))


@dataclass(slots=True)
class StageFigures:
    requests: Range
    input_tokens: Range
    output_tokens: Range
    cost_usd: Range
    cached: int


@dataclass(slots=True)
class EndpointTime:
    spec: str
    requests: float
    tokens: float
    seconds: Range
    bound: str


def stage_figures(ledger: Ledger, draws: dict[str, Array],
                  prices: dict[str, Price]) -> tuple[dict[str, StageFigures], Range]:
    """Per-stage figures and the total cost (``prices`` by role)."""
    t = totals(ledger, draws)
    n = len(draws["en"])
    zero = np.zeros(n)
    total = np.zeros(n)
    out: dict[str, StageFigures] = {}
    for stage in STAGES:
        req, inp, outp = (t.get((stage, w), zero) for w in ("requests", "input", "output"))
        if not (req.any() or ledger.cached[stage]):
            continue
        price = prices[STAGE_ROLE[stage]]
        cost = (inp * price.input + outp * price.output) / PER_TOKENS
        total = total + cost
        out[stage] = StageFigures(_range(req), _range(inp), _range(outp), _range(cost),
                                  ledger.cached[stage])
    return out, _range(total)


def wall_time(ledger: Ledger, draws: dict[str, Array], endpoints: dict[str, Endpoint],
              latency_s: dict[str, float] | None = None) -> tuple[Range, list[EndpointTime]]:
    """Seconds for the run at each endpoint's limits; the slowest endpoint sets the pace."""
    t = totals(ledger, draws)
    n = len(draws["en"])
    groups: dict[tuple[str, str, str], list[str]] = {}
    for stage, role in STAGE_ROLE.items():
        groups.setdefault(endpoints[role].limit_key, []).append(stage)
    overall = np.zeros(n)
    rows: list[EndpointTime] = []
    zero = np.zeros(n)
    for key, stages in groups.items():
        ep = next(endpoints[r] for r in STAGE_ROLE.values() if endpoints[r].limit_key == key)
        req = sum((t.get((s, "requests"), zero) for s in stages), zero)
        out_tok = sum((t.get((s, "output"), zero) for s in stages), zero)
        tok = sum((t.get((s, "input"), zero) for s in stages), out_tok)
        per_req = (latency_s or {}).get(ep.spec)
        if per_req is None:
            per_req_arr = BASE_LATENCY_S + out_tok / np.maximum(req, 1.0) / OUTPUT_TOKENS_PER_S
        else:
            per_req_arr = np.full(n, per_req)
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
