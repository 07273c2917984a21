"""What the estimator assumes before anything is sent, each with its uncertainty.

Input tokens are not assumed: the dry run (:mod:`mlift.estimate.dryrun`)
counts every request the real stages build with the model's tokenizer. What
cannot be known before a run is how long the model's answers are and how the
judge scores; those are the *factors* below. A length factor multiplies a
per-request prediction (1.0 = the prediction is right); a rate is a share of
trials. The estimate's range propagates three kinds of uncertainty
(:mod:`mlift.estimate.model`):

* the factor's **mean** is unknown: a length factor's 95 % interval, or a
  rate's Beta distribution (a prior worth a few pairs, or the Beta posterior
  of what a pilot counted);
* **per-request variation** around that mean (``spread``, a coefficient of
  variation per request), which averages out over many requests: fewer items,
  a wider range;
* the **realised count** of a rate: of N judged pairs, Binomial(N, p) pass.

``--pilot`` replaces the priors by what N real items measured
(:mod:`mlift.estimate.pilot`).

Per-request predictions (central values), all in the answering model's tokens:

* **Translation into English** (``to_en``, ``to_en_context``): English
  characters = source characters / the language's density (:mod:`mlift.langs`:
  characters needed per unit of meaning, English = 1.0; Japanese 0.35, so a
  200-character Japanese paragraph becomes ~570 English characters), then
  tokens = characters / the English characters-per-token of the model's own
  tokenizer, measured on the English prose of the prompt files (~4.5 for
  o200k_base). Factor ``en`` covers both ratios: parallel texts vary by ±15 %
  in length per language pair, and model output (names, numbers, markup)
  tokenizes worse than prose: mean in [0.75, 1.45], spread 0.15 per text.
* **Instruction** (``instruct``): the prompt's ``params.expected_output_tokens``
  if it declares one, else 40 tokens — the styles drawn with the prompt
  (:file:`instruct/styles.toml`) weigh a formal one-to-three-sentence request
  (~35 tokens, 35 %), a chat message with a reason (~40, 30 %), a search query
  (~8, 15 %) and a detailed request with requirements (~70, 20 %). Factor
  ``ins``: mean in [0.4, 2.5], spread 0.6 per instruction (the styles differ
  several-fold).
* **Judge verdict**: ``params.expected_output_tokens``, else 60 tokens (a JSON
  object with a one-or-two-sentence reason). Factor ``judge_out``: mean in
  [0.4, 2.5], spread 0.35.
* **Back translation**: the instruction's English characters converted to the
  target language by its density, then to tokens with the target language's
  tokens per character for this model, measured on the item's own source text.
  Factor ``back_out``: mean in [0.7, 1.5], spread 0.25.
* **Other stages** (a stage the estimator has no prior for): the prompt's
  ``expected_output_tokens``, else 100 tokens, with no factor; the estimate
  says so in a note.
* **Judge re-asks**: a verdict that does not parse is asked again; rate 3 % of
  judged pairs, a Beta prior worth 8 verdicts (95 % up to ~20 %: a judge that
  ignores the format is not rare, and a small pilot should be able to say so).
  None where the endpoint enforces the judge prompt's schema.
* **Pass rate at λ** (share of judged pairs that reach the back translation):
  a judge-score prior of 1: 5 %, 2: 8 %, 3: 17 %, 4: 35 %, 5: 35 % — LLM
  judges scoring LLM-written instructions for natural text put most pairs at
  4–5, a fifth at 3 and a small tail lower — as a Beta prior worth 6 pairs
  (at λ = 4: 70 %, 95 % in about [33 %, 96 %]: judges differ widely).
* **Latency** (wall time without rate limits): 1.5 s per request plus
  output tokens at 80 tokens/s, with the endpoint's concurrency in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from mlift.langs import BASE_BAND, Language
from mlift.prompts import PromptLibrary
from mlift.tokens import count_tokens

DEFAULT_EXPECTED_OUTPUT = {"instruct": 40, "judge": 60}
OTHER_STAGE_OUTPUT = 100
JUDGE_SCORE_PRIOR = {1: 0.05, 2: 0.08, 3: 0.17, 4: 0.35, 5: 0.35}
PASS_PRIOR_STRENGTH = 6.0    # pairs the pass-rate prior is worth
REASK_PRIOR, REASK_PRIOR_STRENGTH = 0.03, 8.0
BASE_LATENCY_S = 1.5
OUTPUT_TOKENS_PER_S = 80.0
DEFAULT_CONCURRENCY = 64

LENGTHS = ("en", "ins", "judge_out", "back_out")
RATES = ("reask", "pass")
FACTORS = (*LENGTHS, *RATES)
# The length factor each stage's answer scales with.
STAGE_FACTOR = {"to_en": "en", "to_en_context": "en", "instruct": "ins",
                "judge": "judge_out", "back": "back_out"}


@dataclass(frozen=True, slots=True)
class Factor:
    """A factor's central value and 95 % interval; ``source`` says where they came from.

    A length factor also has ``spread``, the per-request coefficient of
    variation; a rate has ``beta``, the (a, b) of its Beta distribution, and
    its interval is that distribution's.
    """

    value: float
    low: float
    high: float
    source: str = "prior"
    spread: float = 0.0
    beta: tuple[float, float] | None = None

    @classmethod
    def rate(cls, a: float, b: float, source: str) -> Factor:
        low, high = beta_interval(a, b)
        return cls(a / (a + b), low, high, source=source, beta=(a, b))

    def to_json(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"value": round(self.value, 4), "low": round(self.low, 4),
                                       "high": round(self.high, 4), "source": self.source}
        if self.beta is None:
            out["spread"] = round(self.spread, 4)
        return out


def beta_interval(a: float, b: float) -> tuple[float, float]:
    """The central 95 % interval of Beta(a, b) (from seeded draws: numpy has no quantile)."""
    draws = np.random.default_rng(0).beta(a, b, 20_000)
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def pass_rate_prior(min_score: int) -> Factor:
    """The prior share of judged pairs that score at least ``min_score``."""
    p = min(0.99, max(0.01, sum(v for k, v in JUDGE_SCORE_PRIOR.items() if k >= min_score)))
    return Factor.rate(p * PASS_PRIOR_STRENGTH, (1 - p) * PASS_PRIOR_STRENGTH,
                       f"prior judge-score distribution at min score {min_score}")


def prior_factors(min_score: int) -> dict[str, Factor]:
    """Every factor at its prior (no pilot)."""
    return {
        "en": Factor(1.0, 0.75, 1.45, spread=0.15),
        "ins": Factor(1.0, 0.4, 2.5, spread=0.6),
        "judge_out": Factor(1.0, 0.4, 2.5, spread=0.35),
        "back_out": Factor(1.0, 0.7, 1.5, spread=0.25),
        "reask": Factor.rate(REASK_PRIOR * REASK_PRIOR_STRENGTH,
                             (1 - REASK_PRIOR) * REASK_PRIOR_STRENGTH, "prior"),
        "pass": pass_rate_prior(min_score),
    }


def with_source(factor: Factor, source: str) -> Factor:
    return replace(factor, source=source)


def density(lang: Language) -> float:
    """Characters ``lang`` needs per English character (from its length band)."""
    return lang.band[1] / BASE_BAND[1]


def expected_output(stage: str, params: Mapping[str, object]) -> int:
    """A prompt's declared expected answer length, else the stage default above."""
    declared = params.get("expected_output_tokens")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    return DEFAULT_EXPECTED_OUTPUT.get(stage, OTHER_STAGE_OUTPUT)


@lru_cache(maxsize=16)
def english_chars_per_token(model: str, library: PromptLibrary) -> float:
    """English characters per token for ``model``, measured on the prompts' English prose."""
    prose = "\n".join(m.content for t in library for m in t.messages if m.role == "system")
    return len(prose) / max(1, count_tokens(prose, model))
