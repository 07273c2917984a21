"""What an eval will cost before it is sent, as ``mlift estimate`` reckons it.

Every pending request is rendered exactly as it will be sent and its input
counted with the model's own tokenizer (:func:`mlift.tokens.count_chat_tokens`,
the count the engine reserves with); answers already in the response cache
cost $0 (looked up with the engine's own key). Output length is the prompt's
``expected_output_tokens`` (a summary ~80 tokens, a sentence ~60, a letter
~2), with a range of 0.5–2.5× that, capped at ``max_tokens`` — the same
answer-length spread ``mlift estimate`` assumes for free text. Dollars come
from the price table through the engine (:meth:`Engine.price`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlift.engine.cachekey import cache_key
from mlift.engine.core import Engine
from mlift.eval.base import EvalItem
from mlift.eval.runner import ModelRef
from mlift.prices import PER_TOKENS
from mlift.prompts import PromptTemplate
from mlift.tokens import count_chat_tokens, tokenizer_name
from mlift.types import Request

LOW, HIGH = 0.5, 2.5


@dataclass(slots=True)
class ModelCost:
    spec: str
    tokenizer: str
    requests: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: dict[str, float] = field(
        default_factory=lambda: {"expected": 0.0, "low": 0.0, "high": 0.0})
    cost_usd: dict[str, float] = field(
        default_factory=lambda: {"expected": 0.0, "low": 0.0, "high": 0.0})

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "tokenizer": self.tokenizer, "requests": self.requests,
                "cached": self.cached, "input_tokens": self.input_tokens,
                "output_tokens": {k: round(v) for k, v in self.output_tokens.items()},
                "cost_usd": {k: round(v, 6) for k, v in self.cost_usd.items()}}


async def estimate(engine: Engine, requests: Iterable[tuple[ModelRef, EvalItem, Request]],
                   template: Callable[[ModelRef, EvalItem], PromptTemplate]) -> dict[str, Any]:
    """Per model and in total: requests, cached, tokens and dollars (expected, low, high)."""
    per: dict[str, ModelCost] = {}
    for model, item, request in requests:
        endpoint = engine.endpoint(model.spec)
        cell = per.setdefault(model.label, ModelCost(model.spec, tokenizer_name(endpoint.model)))
        cell.requests += 1
        if engine.cache is not None and await engine.cache.get(cache_key(request, endpoint)):
            cell.cached += 1
            continue
        price = engine.price(model.spec)
        tokens = count_chat_tokens(request.messages, endpoint.model)
        cell.input_tokens += tokens
        expected = template(model, item).params.get("expected_output_tokens",
                                                    request.max_tokens // 4)
        for name, factor in (("expected", 1.0), ("low", LOW), ("high", HIGH)):
            out = min(float(request.max_tokens), float(expected) * factor)
            cell.output_tokens[name] += out
            cell.cost_usd[name] += (tokens * price.input + out * price.output) / PER_TOKENS
    total = {k: round(sum(c.cost_usd[k] for c in per.values()), 6)
             for k in ("expected", "low", "high")}
    return {"models": {label: c.to_json() for label, c in per.items()},
            "requests": sum(c.requests for c in per.values()),
            "cached": sum(c.cached for c in per.values()), "cost_usd": total}


def format_estimate(est: dict[str, Any], *, skipped_done: int = 0) -> str:
    """Two or three lines for the terminal."""
    c = est["cost_usd"]
    lines = [f"mlift eval: {est['requests']:,} requests to make ({est['cached']:,} cached, "
             f"{skipped_done:,} already answered in this folder): expected ${c['expected']:.4f} "
             f"[{c['low']:.4f}–{c['high']:.4f}]"]
    for label, m in est["models"].items():
        lines.append(f"  {label} ({m['spec']}): {m['requests']:,} requests, {m['cached']:,} "
                     f"cached, {m['input_tokens']:,} input tokens ({m['tokenizer']}), "
                     f"~{m['output_tokens']['expected']:,} output, "
                     f"${m['cost_usd']['expected']:.4f}")
    return "\n".join(lines)
