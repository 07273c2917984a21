"""The seam between the stage driver and a provider's batch API.

A ``BatchClient`` knows one provider's wire format and endpoints; it holds no
journal, retry, budget or scheduling logic (``mlift.batch.stage`` owns those),
so the two clients stay small and the driver is written once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mlift.errors import ProviderError
from mlift.providers.base import Endpoint
from mlift.types import Completion, Request

Outcome = Literal["succeeded", "failed", "expired", "canceled"]
# Called by a client between the steps of one submission (OpenAI: the upload's file id).
OnStep = Callable[[str, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one batch may hold, measured on the bytes actually sent."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Framing:
    """How units are joined into the payload: ``overhead`` bytes around them all and
    ``separator`` bytes between two (OpenAI's JSONL: 0 and 0, each line ends in its
    newline; Anthropic's ``{"requests":[…]}``: 15 and 1)."""

    overhead: int = 0
    separator: int = 0

    def size(self, count: int, unit_bytes: int) -> int:
        """Payload bytes of ``count`` units totalling ``unit_bytes``."""
        return self.overhead + unit_bytes + self.separator * max(0, count - 1)


@dataclass(frozen=True, slots=True)
class Status:
    """A provider's view of one batch, in terms both APIs share.

    ``state`` is the provider's own word (OpenAI's ``status``, Anthropic's
    ``processing_status``). ``ended`` means nothing will change any more.
    ``done``/``failed`` are lines finished so far (Anthropic reports them only
    at the end). ``detail`` explains a batch that failed as a whole.
    """

    batch_id: str
    state: str
    ended: bool
    total: int
    done: int = 0
    failed: int = 0
    detail: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)  # where the results are


@dataclass(frozen=True, slots=True)
class LineResult:
    """The end of one request sent in a batch.

    ``succeeded`` carries the completion (priced at batch rates by the
    driver); ``failed`` the error, mapped onto ``mlift.errors`` as the online
    path maps it (a ``TransientError`` is worth resubmitting, a
    ``PermanentError`` is not); ``expired`` and ``canceled`` lines never ran.
    """

    custom_id: str
    outcome: Outcome
    completion: Completion | None = None
    error: ProviderError | None = None
    batch_id: str | None = None

    @property
    def retryable(self) -> bool:
        """Worth sending again: expired, or failed with a transient error."""
        if self.outcome == "expired":
            return True
        return self.outcome == "failed" and self.error is not None and self.error.retryable


class BatchClient(Protocol):
    """One provider's batch API (see ``mlift.batch.openai`` and ``mlift.batch.anthropic``)."""

    endpoint: Endpoint
    limits: Limits
    framing: Framing
    # Whether ``find`` recognises a batch for certain (by a tag the provider stores)
    # or only by its size and time, to be confirmed by its results' custom_ids.
    exact_find: bool

    def encode(self, custom_id: str, request: Request) -> bytes:
        """One request as the bytes it takes in a batch (raises ``ProviderError`` if it
        cannot be sent: the online provider would refuse it too)."""
        ...

    async def submit(self, units: Sequence[bytes], tag: str, on_step: OnStep) -> str:
        """Send one batch; returns its id. ``tag`` names it for ``find``."""
        ...

    async def find(self, tag: str, count: int, since: float, known: set[str]) -> str | None:
        """The id of a batch ``submit`` may have created before a crash (or None)."""
        ...

    async def status(self, batch_id: str) -> Status: ...

    async def results(self, status: Status, requests: Mapping[str, Request]
                      ) -> list[LineResult]:
        """Every line's result of an ended batch (requests give the answers their context)."""
        ...

    def absent(self, status: Status) -> tuple[Outcome, ProviderError]:
        """What became of a line of an ended batch that no result mentions."""
        ...

    async def cancel(self, batch_id: str) -> Status: ...

    async def aclose(self) -> None: ...


# Anthropic's error types by the HTTP status they come with, so a per-line
# error is classified exactly as the same error online would be.
ANTHROPIC_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504,
    "overloaded_error": 529,
}
