"""What the simulator's two batch APIs share: the clock, the schedule, lines, counters.

A batch's life is a pure function of the server's injected clock, worked out
lazily whenever anyone looks (a poll, a list, ``GET /stats``): lines are
answered when their time comes, so a test advances a virtual clock and polls,
and nothing runs in the background. A line meets the prompt cache at its own
scheduled time, even when it is worked out later. The ``n`` lines of a batch are spread
evenly over ``batch_delay_s``: line ``i`` is done ``(i + 1) / n`` of the way
through. Every line is answered by the server's own answer path (the one
online requests take), so the same request and seed give the same text and
usage online and in a batch, and each counts in ``GET /stats`` under
``"batch"`` — once, when it is processed. Batch lines carry no headers, so
the route the online ``X-Mlift-Prompt`` header gives is read from the line's
``mlift_route`` field (``mlift.types.ROUTE_FIELD``), which mlift's batch
client adds for the ``sim`` provider kind only; a line without it gets the
generic answer an online request without the header gets.

The OpenAI dialect lives in :mod:`mlift.sim.batches_openai` (with the Files
API in :mod:`mlift.sim.files`), Anthropic's in
:mod:`mlift.sim.batches_anthropic`; ``Batches`` builds both and registers
their routes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from mlift.sim.answers import digest
from mlift.sim.config import SimConfig
from mlift.types import ROUTE_FIELD

Dialect = Literal["openai", "anthropic"]
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class LineReply:
    """One batch line answered: HTTP status, response body, tokens in and out."""

    status: int
    body: dict[str, Any]
    request_id: str
    tokens_in: int = 0
    tokens_out: int = 0


# (dialect, request body, API key, batch start, the line's time on the clock, its route)
# -> the answer
AnswerLine = Callable[[Dialect, Any, str, float, float, "str | None"], LineReply]
CheckKey = Callable[[web.Request, Dialect], "web.Response | None"]
KeyOf = Callable[[web.Request], "str | None"]


def new_id(prefix: str, size: int = 12) -> str:
    return f"{prefix}{os.urandom(size).hex()}"


def line_route(obj: dict[str, Any]) -> str | None:
    """A batch line's ``ROUTE_FIELD`` (mlift's sim-kind client sets it; others never do)."""
    route = obj.get(ROUTE_FIELD)
    return route if isinstance(route, str) else None


def read_limit(request: web.Request) -> int | None:
    """``limit`` from the query, or None if absent or not a number."""
    raw = request.query.get("limit")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class BatchStats:
    """Counters for batch traffic, shown under ``"batch"`` in ``GET /stats``.

    ``lines_submitted`` counts lines accepted into batches; ``resubmitted``
    those whose custom_id an earlier batch of the same key already carried
    (what a crash-safe client must never cause).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.files_uploaded = 0
        self.batches: Counter[str] = Counter()
        self.lines_submitted = 0
        self.resubmitted = 0
        self.results: Counter[str] = Counter()
        self.tokens_in = 0
        self.tokens_out = 0
        self._seen: set[tuple[str, str, str]] = set()

    def submitted(self, dialect: Dialect, key: str, custom_ids: list[str]) -> None:
        self.batches[dialect] += 1
        self.lines_submitted += len(custom_ids)
        for cid in custom_ids:
            mark = (dialect, key, cid)
            if mark in self._seen:
                self.resubmitted += 1
            self._seen.add(mark)

    def answered(self, outcome: str, reply: LineReply | None = None) -> None:
        self.results[outcome] += 1
        if reply is not None:
            self.tokens_in += reply.tokens_in
            self.tokens_out += reply.tokens_out

    def snapshot(self) -> dict[str, Any]:
        return {"files_uploaded": self.files_uploaded,
                "batches": dict(sorted(self.batches.items())),
                "lines_submitted": self.lines_submitted, "resubmitted": self.resubmitted,
                "lines_processed": sum(self.results.values()),
                "results": dict(sorted(self.results.items())),
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out}


@dataclass(slots=True)
class Schedule:
    """When a batch's lines run, on the server clock, and how it can end early."""

    created: float
    start: float            # processing begins (after validation, for OpenAI)
    delay: float            # processing time for all lines
    window_end: float       # created + completion window: unfinished lines expire then
    n: int = 0
    cancel_at: float | None = None

    def line_done_at(self, i: int) -> float:
        return self.start + self.delay * (i + 1) / max(1, self.n)

    @property
    def processing_end(self) -> float:
        return self.start + self.delay

    def stop_at(self) -> float:
        """When processing stops: all done, cancelled, or expired — whichever is first."""
        end = min(self.processing_end, self.window_end)
        return end if self.cancel_at is None else min(end, self.cancel_at)


@dataclass(slots=True)
class Line:
    """One request of a batch and, once processed, its outcome."""

    custom_id: str
    body: Any
    route: str | None = None  # the line's ROUTE_FIELD: what the online header would say
    reply: LineReply | None = None
    outcome: str | None = None  # succeeded / errored / expired / canceled


@dataclass(slots=True)
class BatchBase:
    """State both dialects keep for one batch."""

    id: str
    key: str
    schedule: Schedule
    seq: int = 0  # the batch's number on the server: with the seed and a line's place in
    # the batch, fixes which lines fail (never the line's custom_id: a client's ids may
    # hold anything, e.g. a hash of the server's random port, and the draw must not)
    lines: list[Line] = field(default_factory=list)
    done: int = 0  # lines [0, done) are processed

    def process(self, now: float, answer: AnswerLine, dialect: Dialect, config: SimConfig,
                stats: BatchStats) -> None:
        """Answer every line whose time has come (before any stop)."""
        sched = self.schedule
        until = min(now, sched.stop_at())
        while self.done < len(self.lines) and sched.line_done_at(self.done) <= until:
            line = self.lines[self.done]
            if config.batch_fail_rate and digest(config.seed, self.seq, self.done,
                                                 "fail") < config.batch_fail_rate:
                line.reply = server_error(dialect)
            else:
                line.reply = answer(dialect, line.body, self.key, sched.start,
                                    sched.line_done_at(self.done), line.route)
            line.outcome = "succeeded" if line.reply.status == 200 else "errored"
            stats.answered(line.outcome, line.reply)
            self.done += 1


def server_error(dialect: Dialect) -> LineReply:
    """The answer of a line the simulator fails on purpose (``batch_fail_rate``)."""
    rid = new_id("req_")
    body: dict[str, Any]
    if dialect == "openai":
        body = {"error": {"message": "The server had an error while processing your request. "
                                     "Sorry about that!", "type": "server_error",
                          "param": None, "code": None}}
    else:
        body = {"type": "error", "error": {"type": "api_error",
                                           "message": "Internal server error"},
                "request_id": rid}
    return LineReply(500, body, rid)


class Clock:
    """The server's monotonic clock, and Unix times that move with it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.now = clock
        self._origin, self._wall = clock(), time.time()

    def unix(self, t: float) -> int:
        return int(self._wall + (t - self._origin))

    def rfc3339(self, t: float) -> str:
        at = datetime.fromtimestamp(self._wall + (t - self._origin), tz=UTC)
        return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Batches:
    """The Files API and both batch APIs on one server, sharing clock and counters."""

    def __init__(self, config: SimConfig, clock: Callable[[], float], *, answer: AnswerLine,
                 check_key: CheckKey, key_of: KeyOf) -> None:
        from mlift.sim.batches_anthropic import AnthropicBatches
        from mlift.sim.batches_openai import OpenAIBatches
        from mlift.sim.files import FileStore

        self.stats = BatchStats()
        self.clock = Clock(clock)
        self.files = FileStore(self.clock, self.stats, check_key=check_key)
        self.openai = OpenAIBatches(config, self.clock, self.files, self.stats, answer=answer,
                                    check_key=check_key, key_of=key_of)
        self.anthropic = AnthropicBatches(config, self.clock, self.stats, answer=answer,
                                          check_key=check_key, key_of=key_of)

    def register(self, router: web.UrlDispatcher) -> None:
        self.files.register(router)
        self.openai.register(router)
        self.anthropic.register(router)

    def snapshot(self) -> dict[str, Any]:
        """The batch counters, after bringing every batch up to the clock."""
        self.openai.advance_all()
        self.anthropic.advance_all()
        return self.stats.snapshot()

    def reset(self) -> None:
        self.stats.reset()
