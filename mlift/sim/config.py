"""The simulator's settings: limits, latency, fault rates, seed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from mlift.errors import ConfigError

TokenCharge = Literal["tokenizer", "chars"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What the simulator enforces and injects.

    ``rpm``/``tpm`` are per-API-key limits (None = unlimited); ``burst_s`` is
    the bucket capacity in seconds of the limit (1.0: up to rpm/60 requests at
    once). Fault rates are probabilities per accepted request, drawn in this
    order from one seeded RNG: error (5xx/529), timeout (hang for ``hang_s``),
    drop (connection cut mid-body), malformed (200 with a body that is not
    JSON). ``bad_verdict_rate`` is the share of judge answers that carry no
    score. ``verbosity`` makes free-text answers that many times as long (a
    wordier provider, to check that estimates hold beyond this simulator).
    ``require_key`` makes every route demand that API key.

    How the limits count, so the simulator can disagree with mlift the way
    real servers do:

    * ``tpm`` charges at admission the prompt as the server estimates it plus
      ``max_tokens``, never refunded (OpenAI). ``token_charge="tokenizer"``
      counts the prompt with the tokenizer; ``"chars"`` estimates it as
      characters / 4, as OpenAI's limiter is reported to. ``charge_factor``
      scales the whole charge (a server whose estimator counts more, or less,
      than the client's).
    * ``itpm``/``otpm`` are Anthropic's separate input- and output-token
      limits: input is charged as counted, output is charged ``max_tokens`` at
      admission and adjusted to the tokens really written when the answer is
      done. Their headers are ``anthropic-ratelimit-input-tokens-*`` and
      ``-output-tokens-*``.
    * ``count_refused``: a refused request is charged too (OpenAI: "unsuccessful
      requests contribute to your per-minute limit"), so a client that retries
      at once digs itself deeper.
    * ``limit_headers=False``: the server says nothing about its limits — no
      rate-limit headers, and 429 bodies that name no limit or numbers, only
      Retry-After (a rate-limiting proxy in front of an OpenAI-compatible server).
    """

    rpm: float | None = None
    tpm: float | None = None
    itpm: float | None = None
    otpm: float | None = None
    token_charge: TokenCharge = "tokenizer"
    charge_factor: float = 1.0
    count_refused: bool = False
    limit_headers: bool = True
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    hang_s: float = 90.0
    burst_s: float = 1.0
    seed: int = 0
    require_key: str | None = None
    bad_verdict_rate: float = 0.02
    verbosity: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"sim: {f.name} must be between 0 and 1, got {value}")
        for name in ("rpm", "tpm", "itpm", "otpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"sim: {name} must be positive (or unset for no limit), "
                                  f"got {value}")
        for name in ("latency_ms", "jitter_ms", "hang_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must not be negative, got {getattr(self, name)}")
        if self.verbosity <= 0:
            raise ConfigError(f"sim: verbosity must be positive, got {self.verbosity}")
        if self.token_charge not in ("tokenizer", "chars"):
            raise ConfigError(f"sim: token_charge must be 'tokenizer' or 'chars', "
                              f"got {self.token_charge!r}")
        if self.charge_factor <= 0:
            raise ConfigError(f"sim: charge_factor must be positive, got {self.charge_factor}")
        if self.burst_s <= 0:
            raise ConfigError(f"sim: burst_s must be positive, got {self.burst_s}")
        total = self.error_rate + self.timeout_rate + self.drop_rate + self.malformed_rate
        if total > 1.0:
            raise ConfigError(f"sim: the fault rates add up to {total:.3f}, more than 1")
