"""Anthropic's Message Batches API: ``/v1/messages/batches`` and its results.

Create takes ``{"requests": [{"custom_id", "params"}, …]}`` and checks it at
once, as the API does: 1 to 100,000 requests, the body at most 256 MB (else
413 ``request_too_large``), each ``custom_id`` matching
``^[a-zA-Z0-9_-]{1,64}$`` and unique. The ``params`` are checked only when
the request runs: a bad one becomes an ``errored`` result, not a refused
batch. ``processing_status`` goes ``in_progress`` → ``ended``, or
``canceling`` → ``ended`` after a cancel; ``request_counts`` keep every
request under ``processing`` until the batch ends, then split them into
``succeeded``, ``errored``, ``canceled`` (not run because of a cancel) and
``expired`` (not run 24 hours after creation). Once ended the batch has a
``results_url``; ``GET …/results`` streams one JSON line per request, in no
particular order, with its ``custom_id`` and a ``result`` of type
``succeeded`` (the message), ``errored`` (an error response), ``canceled``
or ``expired``. List is newest first (``before_id``/``after_id``/``limit``);
an ended batch can be deleted.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mlift.sim import wire
from mlift.sim.batches import (
    JSON_TYPE,
    AnswerLine,
    BatchBase,
    BatchStats,
    CheckKey,
    Clock,
    KeyOf,
    Line,
    Schedule,
    line_route,
    new_id,
    read_limit,
)
from mlift.sim.config import SimConfig

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CHUNK = 1 << 20


def error(status: int, kind: str, message: str) -> web.Response:
    rid = new_id("req_")
    return web.Response(status=status, body=wire.anthropic_error(kind, message, rid),
                        content_type=JSON_TYPE, headers={"request-id": rid})


@dataclass(slots=True)
class AnthropicBatch(BatchBase):
    status: str = "in_progress"
    at: dict[str, float] = field(default_factory=dict)
    ended: bool = False
    results: bytes = b""


class AnthropicBatches:
    """The message batches of one server."""

    def __init__(self, config: SimConfig, clock: Clock, stats: BatchStats, *,
                 answer: AnswerLine, check_key: CheckKey, key_of: KeyOf) -> None:
        self._config, self._clock, self._stats = config, clock, stats
        self._answer, self._check_key, self._key_of = answer, check_key, key_of
        self._seq = itertools.count(1)
        self._batches: dict[str, AnthropicBatch] = {}

    @property
    def max_requests(self) -> int:
        return self._config.batch_max_requests or MAX_REQUESTS

    @property
    def max_bytes(self) -> int:
        return self._config.batch_max_bytes or MAX_BYTES

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/messages/batches", self._create)
        router.add_get("/v1/messages/batches", self._list)
        router.add_get("/v1/messages/batches/{batch_id}", self._retrieve)
        router.add_delete("/v1/messages/batches/{batch_id}", self._delete)
        router.add_post("/v1/messages/batches/{batch_id}/cancel", self._cancel)
        router.add_get("/v1/messages/batches/{batch_id}/results", self._results)

    # ---- routes ---------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "anthropic")
        if denied is not None:
            return denied
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                return error(413, "request_too_large", "Request exceeds the maximum size")
            chunks.append(chunk)
        try:
            obj = json.loads(b"".join(chunks))
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            return error(400, "invalid_request_error", "The request body is not valid JSON.")
        problem = self._check_requests(obj.get("requests"))
        if problem:
            return error(400, "invalid_request_error", problem)
        now, cfg = self._clock.now(), self._config
        requests = obj["requests"]
        batch = AnthropicBatch(
            id=new_id("msgbatch_", 12), key=self._key_of(request) or "", seq=next(self._seq),
            schedule=Schedule(created=now, start=now, delay=cfg.batch_delay_s,
                              window_end=now + cfg.batch_window_s, n=len(requests)),
            lines=[Line(r["custom_id"], r["params"], route=line_route(r)) for r in requests],
            at={"in_progress": now})
        self._batches[batch.id] = batch
        self._stats.submitted("anthropic", batch.key, [r["custom_id"] for r in requests])
        return web.json_response(self._view(batch, request))

    def _check_requests(self, requests: Any) -> str | None:
        if requests is None:
            return "requests: Field required"
        if not isinstance(requests, list):
            return "requests: Input should be a valid list"
        if not requests:
            return "requests: List should have at least 1 item after validation, not 0"
        if len(requests) > self.max_requests:
            return (f"requests: List should have at most {self.max_requests} items after "
                    f"validation, not {len(requests)}")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                return f"requests.{i}: Input should be a valid dictionary"
            custom_id, params = item.get("custom_id"), item.get("params")
            if custom_id is None or params is None:
                return f"requests.{i}.{'custom_id' if custom_id is None else 'params'}: " \
                       "Field required"
            if not isinstance(custom_id, str):
                return f"requests.{i}.custom_id: Input should be a valid string"
            if len(custom_id) > 64:
                return f"requests.{i}.custom_id: String should have at most 64 characters"
            if not CUSTOM_ID.match(custom_id):
                return (f"requests.{i}.custom_id: String should match pattern "
                        f"'{CUSTOM_ID.pattern}'")
            if custom_id in seen:
                return (f"requests.{i}.custom_id: custom_id '{custom_id}' is used by more than "
                        "one request; each request in a batch needs its own")
            if not isinstance(params, dict):
                return f"requests.{i}.params: Input should be a valid dictionary"
            seen.add(custom_id)
        return None

    def _find(self, request: web.Request) -> AnthropicBatch | web.Response:
        denied = self._check_key(request, "anthropic")
        if denied is not None:
            return denied
        batch_id = request.match_info["batch_id"]
        batch = self._batches.get(batch_id)
        if batch is None:
            return error(404, "not_found_error", f"Message batch {batch_id} not found.")
        self.advance(batch)
        return batch

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        batch = self._find(request)
        if isinstance(batch, web.Response):
            return batch
        return web.json_response(self._view(batch, request))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        batch = self._find(request)
        if isinstance(batch, web.Response):
            return batch
        if batch.status == "ended":
            return error(400, "invalid_request_error",
                         f"Message batch {batch.id} has ended and can no longer be canceled.")
        if batch.schedule.cancel_at is None:
            batch.schedule.cancel_at = self._clock.now()
        self.advance(batch)
        return web.json_response(self._view(batch, request))

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        batch = self._find(request)
        if isinstance(batch, web.Response):
            return batch
        if not batch.ended:
            return error(400, "invalid_request_error",
                         f"Message batch {batch.id} is still processing; cancel it and wait "
                         "for it to end before deleting it.")
        del self._batches[batch.id]
        return web.json_response({"id": batch.id, "type": "message_batch_deleted"})

    async def _results(self, request: web.Request) -> web.StreamResponse:
        batch = self._find(request)
        if isinstance(batch, web.Response):
            return batch
        if not batch.ended:
            return error(400, "invalid_request_error",
                         f"Message batch {batch.id} has not ended yet; its results are "
                         "available once processing_status is 'ended'.")
        return web.Response(body=batch.results, content_type="application/x-jsonl")

    async def _list(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "anthropic")
        if denied is not None:
            return denied
        limit = read_limit(request)
        limit = 20 if limit is None else limit
        if not 1 <= limit <= 1000:
            return error(400, "invalid_request_error",
                         "limit: Input should be greater than or equal to 1 and less than or "
                         "equal to 1000")
        key = self._key_of(request) or ""
        batches = [b for b in reversed(self._batches.values()) if b.key == key]
        ids = [b.id for b in batches]
        after, before = request.query.get("after_id"), request.query.get("before_id")
        if after is not None:
            batches = batches[ids.index(after) + 1:] if after in ids else []
            page = batches[:limit]
            more = len(batches) > len(page)
        elif before is not None:
            batches = batches[: ids.index(before)] if before in ids else []
            page = batches[-limit:]
            more = len(batches) > len(page)
        else:
            page, more = batches[:limit], len(batches) > limit
        for batch in page:
            self.advance(batch)
        return web.json_response({"data": [self._view(b, request) for b in page],
                                  "has_more": more,
                                  "first_id": page[0].id if page else None,
                                  "last_id": page[-1].id if page else None})

    # ---- the life of a batch ----------------------------------------------------------------

    def advance_all(self) -> None:
        for batch in self._batches.values():
            self.advance(batch)

    def advance(self, batch: AnthropicBatch) -> None:
        if batch.ended:
            return
        now, sched, cfg = self._clock.now(), batch.schedule, self._config
        batch.process(now, self._answer, "anthropic", cfg, self._stats)
        cancel = sched.cancel_at
        if cancel is not None and batch.status == "in_progress" and \
                cancel < min(sched.processing_end, sched.window_end):
            batch.status, batch.at["canceling"] = "canceling", cancel
        if batch.status == "canceling" and cancel is not None:
            if now >= cancel + cfg.batch_cancel_s:
                self._end(batch, cancel + cfg.batch_cancel_s, "canceled")
        elif sched.processing_end <= sched.window_end:
            if now >= sched.processing_end:  # every line has run
                self._end(batch, sched.processing_end, "expired")
        elif now >= sched.window_end:
            self._end(batch, sched.window_end, "expired")

    def _end(self, batch: AnthropicBatch, at: float, unrun: str) -> None:
        batch.status, batch.ended, batch.at["ended"] = "ended", True, at
        records = []
        for line in batch.lines:
            if line.reply is None:
                line.outcome = unrun
                self._stats.answered(unrun)
                result: dict[str, Any] = {"type": unrun}
            elif line.reply.status == 200:
                result = {"type": "succeeded", "message": line.reply.body}
            else:
                result = {"type": "errored", "error": line.reply.body}
            records.append({"custom_id": line.custom_id, "result": result})
            line.body = None
        random.Random(f"{self._config.seed}:{batch.id}").shuffle(records)
        batch.results = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n"
                                 for r in records)

    def _view(self, batch: AnthropicBatch, request: web.Request) -> dict[str, Any]:
        rfc = self._clock.rfc3339
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended:
            for line in batch.lines:
                counts[line.outcome or "errored"] += 1
        else:
            counts["processing"] = len(batch.lines)
        origin = str(request.url.origin())
        return {
            "id": batch.id, "type": "message_batch", "processing_status": batch.status,
            "request_counts": counts,
            "ended_at": rfc(batch.at["ended"]) if "ended" in batch.at else None,
            "created_at": rfc(batch.schedule.created),
            "expires_at": rfc(batch.schedule.window_end),
            "archived_at": None,
            "cancel_initiated_at": rfc(batch.at["canceling"]) if "canceling" in batch.at
            else None,
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results"
            if batch.ended else None,
        }
