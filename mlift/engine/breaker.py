"""The circuit breaker: an endpoint that fails every request the same way stops the run.

A wrong ``--base-url`` answers 404 to everything; an unknown model or a
parameter the server refuses gives the same 400 to every request. Retrying
cannot help and turning each item into a reject burns the whole input, so
after a few identical permanent failures with no success in between the
breaker *trips*: every call to the endpoint then raises
:class:`~mlift.errors.EndpointMisconfigured` (an ``EndpointUnusable``, which
stages and ``mlift requests`` let through), naming the URL and model and what
to check.

A few genuinely bad items among good ones must not trip it, so:

* failures only count in a row of the same *signature* (status + message with
  its numbers blanked), and any success resets the row;
* before the endpoint's first success a failure is *held*: its caller waits
  for the verdict — a success (then it is the item's own failure) or a trip
  (then it is the breaker's) — so items that fail while the breaker makes up
  its mind are not burned either. Cold, it trips once ``cold_trip`` identical
  failures are in and no answer is still out that could be a success (bad
  requests fail fast, good ones take the model's time); or, when nothing
  else is trying at all, on two.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from mlift.errors import EndpointMisconfigured, PermanentError
from mlift.providers.base import Endpoint

_NUMBERS = re.compile(r"\d+")


def signature(exc: PermanentError) -> tuple[int | None, str]:
    """What makes two failures 'the same': the status and the message without its numbers."""
    text = exc.args[0] if exc.args else ""
    return exc.status, _NUMBERS.sub("#", str(text).lower())[:120]


class Breaker:
    """Watches one endpoint's permanent failures; trips on a row of identical ones."""

    def __init__(self, endpoint: Endpoint, *, attempting: Callable[[], int],
                 pending: Callable[[], int], cold_trip: int = 4, warm_trip: int = 25) -> None:
        self.endpoint = endpoint
        self.cold_trip, self.warm_trip = cold_trip, warm_trip
        self.successes = 0
        self.tripped: EndpointMisconfigured | None = None
        self._attempting = attempting  # calls still trying, that could bring a verdict
        self._pending = pending        # requests sent whose answer has not come back
        self._row = 0
        self._signature: tuple[int | None, str] | None = None
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A call stopped trying: held failures look again."""
        self._changed.set()

    def success(self) -> None:
        self.successes += 1
        self._row, self._signature = 0, None
        self._changed.set()

    async def failure(self, exc: PermanentError) -> PermanentError | EndpointMisconfigured:
        """Record one permanent failure; returns the error its caller should raise."""
        if self.tripped is not None:
            return self.tripped
        sig = signature(exc)
        self._row = self._row + 1 if sig == self._signature else 1
        self._signature = sig
        if self.successes:
            return self._trip(exc) if self._row >= self.warm_trip else exc
        # No success yet: hold this failure until the endpoint's verdict.
        while True:
            if self.tripped is not None:
                return self.tripped
            if self.successes:
                return exc
            if self._row >= self.cold_trip and self._pending() == 0:
                return self._trip(exc)
            if self._attempting() == 0:  # nothing left that could change the verdict
                return self._trip(exc) if self._row >= 2 and sig == self._signature else exc
            self._changed.clear()
            await self._changed.wait()

    def _trip(self, exc: PermanentError) -> EndpointMisconfigured:
        ep = self.endpoint
        url = ep.base_url or f"the {ep.kind} kind's default URL"
        if exc.status == 404:
            fix = ("Nothing answers that path there: check --base-url (OpenAI-compatible "
                   "servers usually end in /v1, the simulator and Anthropic's API do not) "
                   "and the model name")
        else:
            fix = ("The server refuses every request: check the model name, the base URL "
                   "and the request parameters")
        said = str(exc.args[0] if exc.args else exc).rstrip(". ")  # the server's own words
        self.tripped = EndpointMisconfigured(
            f"every request to {url} for model {ep.model!r} failed the same way "
            f"({self._row} in a row, none succeeded since): {said}. "
            f"{fix}. Items not yet done were left for the next run: fix the "
            f"endpoint and re-run the same command",
            provider=ep.name, model=ep.model, status=exc.status,
            request_id=exc.request_id)
        self._changed.set()
        return self.tripped
