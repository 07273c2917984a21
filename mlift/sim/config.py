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

    Prompt caching (``prompt_cache``, on by default) reports cached tokens
    as each provider does (see :mod:`mlift.sim.prompt_cache`).

    Batches (OpenAI Batch and Anthropic Message Batches) run on the server's
    clock: ``batch_validate_s`` of validation (OpenAI), ``batch_delay_s`` of
    processing spread evenly over the lines, ``batch_finalize_s`` of
    finalizing (OpenAI), ``batch_cancel_s`` from a cancel request to the end.
    A batch still unfinished ``batch_window_s`` after its creation expires
    (the providers' 24 hours); so ``batch_delay_s > batch_window_s`` expires
    batches with about ``1 - window/delay`` of their lines undone.
    ``batch_fail_rate`` is the share of lines answered with a server error.
    ``batch_max_requests``/``batch_max_bytes`` lower the providers' limits
    (OpenAI 50,000 requests and 200 MB per input file, Anthropic 100,000
    requests and 256 MB per batch) to test them cheaply; None keeps them.
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
    # prompt caching and batches (see the docstring)
    prompt_cache: bool = True
    batch_validate_s: float = 1.0
    batch_delay_s: float = 5.0
    batch_finalize_s: float = 1.0
    batch_cancel_s: float = 1.0
    batch_window_s: float = 86_400.0
    batch_fail_rate: float = 0.0
    batch_max_requests: int | None = None
    batch_max_bytes: int | None = None

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
        for name in ("batch_validate_s", "batch_delay_s", "batch_finalize_s",
                     "batch_cancel_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must not be negative, got {getattr(self, name)}")
        if self.batch_window_s <= 0:
            raise ConfigError(f"sim: batch_window_s must be positive, got {self.batch_window_s}")
        for name in ("batch_max_requests", "batch_max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"sim: {name} must be at least 1 (or unset for the "
                                  f"provider's limit), got {value}")
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
