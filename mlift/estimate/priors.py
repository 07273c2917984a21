"""What the estimator assumes before anything is sent, each with a 95 % range.

Input tokens are not assumed: every prompt is rendered and counted with the
model's tokenizer (:mod:`mlift.estimate.plan`). What cannot be known before a
run is how long the model's answers are and how the judge scores; those are
the *factors* below. Each is a multiplier on a per-request prediction (1.0 =
the prediction is right) or a rate, given as a central value and a 95 %
interval. The low/high of an estimate come from propagating these intervals
(:mod:`mlift.estimate.model`), and ``--pilot`` replaces them by what N real
items measured (:mod:`mlift.estimate.pilot`).

Per-request predictions (central values):

* **Translation into English** (``to_en``): English characters = source
  characters / the language's density (:mod:`mlift.langs`: characters needed
  per unit of meaning, English = 1.0; e.g. Japanese 0.35, so a 200-character
  Japanese paragraph becomes ~570 English characters), then English tokens =
  English characters / the English characters-per-token of the model's own
  tokenizer, measured on the English prose of the bundled prompt files
  (~4.5 for o200k_base). Factor ``en`` covers both ratios: parallel texts vary
  by ±15 % in length per language pair, and model output (names, numbers,
  markup) tokenizes worse than prose: 95 % in [0.75, 1.45].
* **Instruction** (``instruct``): a prompt's ``params.expected_output_tokens``
  if it declares one, else 40 tokens (the prompts ask for "one to three
  sentences"; a query-style request is ~8 tokens, a chat request with a
  length hint ~70). Factor ``ins``: [0.4, 2.5].
* **Judge verdict**: ``params.expected_output_tokens``, else 60 tokens (a
  JSON object with a one-or-two-sentence reason). Factor ``judge_out``:
  [0.4, 2.5].
* **Back translation**: the instruction's English characters converted to
  the target language by its density, then to tokens with the target
  language's tokens-per-character for this model, measured on the item's own
  source text. Factor ``back_out``: [0.7, 1.5].
* **Judge re-asks**: a parse failure costs one more judge call with the
  conversation so far; rate 3 % per judged pair, [0, 10 %].
* **Pass rate at λ** (share of judged pairs scoring ≥ λ, which decides how
  many back translations are paid): a judge-score prior of
  1: 5 %, 2: 8 %, 3: 17 %, 4: 35 %, 5: 35 % — LLM judges scoring
  LLM-written instructions for natural text put most pairs at 4–5, a fifth
  at 3 and a small tail lower — with a wide interval (±0.25 around the
  central pass rate, clipped to [0, 1]).
* **Latency** (wall time without rate limits): 1.5 s per request plus
  output tokens at 80 tokens/s, with the endpoint's concurrency in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlift.langs import BASE_BAND, Language

DEFAULT_EXPECTED_OUTPUT = {"instruct": 40, "judge": 60}
JUDGE_SCORE_PRIOR = {1: 0.05, 2: 0.08, 3: 0.17, 4: 0.35, 5: 0.35}
PASS_RATE_HALF_WIDTH = 0.25
BASE_LATENCY_S = 1.5
OUTPUT_TOKENS_PER_S = 80.0
DEFAULT_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class Factor:
    """A central value and a 95 % interval; ``source`` says where they came from."""

    value: float
    low: float
    high: float
    source: str = "prior"
    # Relative factors (lengths) are sampled log-normally, rates normally.
    log_scale: bool = True

    def to_json(self) -> dict[str, float | str]:
        return {"value": round(self.value, 4), "low": round(self.low, 4),
                "high": round(self.high, 4), "source": self.source}


FACTORS = ("en", "ins", "judge_out", "back_out", "reask", "pass")


def pass_rate_prior(min_score: int) -> Factor:
    """The prior share of judged pairs that score at least ``min_score``."""
    p = sum(v for k, v in JUDGE_SCORE_PRIOR.items() if k >= min_score)
    return Factor(p, max(0.0, p - PASS_RATE_HALF_WIDTH), min(1.0, p + PASS_RATE_HALF_WIDTH),
                  source=f"prior judge-score distribution at min score {min_score}",
                  log_scale=False)


def prior_factors(min_score: int) -> dict[str, Factor]:
    """Every factor at its prior (no pilot)."""
    return {
        "en": Factor(1.0, 0.75, 1.45),
        "ins": Factor(1.0, 0.4, 2.5),
        "judge_out": Factor(1.0, 0.4, 2.5),
        "back_out": Factor(1.0, 0.7, 1.5),
        "reask": Factor(0.03, 0.0, 0.10, log_scale=False),
        "pass": pass_rate_prior(min_score),
    }


def density(lang: Language) -> float:
    """Characters ``lang`` needs per English character (from its length band)."""
    return lang.band[1] / BASE_BAND[1]


def expected_output(stage: str, params: Mapping[str, object]) -> int:
    """A prompt's declared expected answer length, else the stage default above."""
    declared = params.get("expected_output_tokens")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    return DEFAULT_EXPECTED_OUTPUT[stage]
