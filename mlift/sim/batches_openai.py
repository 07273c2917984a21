"""OpenAI's Batch API: ``/v1/batches`` create, retrieve, list and cancel.

A batch reads a JSONL file uploaded with purpose ``batch`` (one
``{"custom_id", "method": "POST", "url", "body"}`` per line) and goes
``validating`` → ``in_progress`` → ``finalizing`` → ``completed``, or ends
``failed`` (the input broke a rule; ``errors.data`` lists each broken line
with OpenAI's codes ``empty_file``, ``invalid_json_line``,
``duplicate_custom_id``, ``url_mismatch``, ``model_mismatch``,
``too_many_tasks``, and ``file_too_large`` for a file over 200 MB — the
message is the one OpenAI sends, the code our name for it), ``expired`` (the
24-hour window passed: finished lines are in the output file, the others in
the error file with ``batch_expired``), or ``cancelling`` → ``cancelled``
(lines finished before the cancel are kept; the rest never run and appear in
no file). Output and error files hold one line per request, in no
particular order, each with its ``custom_id`` and a ``response``
(``status_code``, ``request_id``, ``body``) or an ``error``; a request the
chat route would refuse (400) is in the error file with that response.
``request_counts`` (total, completed, failed) grow as lines finish.

Limits: 50,000 requests and 200 MB per input file (lowered by
``SimConfig.batch_max_requests``/``batch_max_bytes`` for tests), one model
and one endpoint per batch. Only ``/v1/chat/completions`` is answered.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mlift.sim.batches import (
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
from mlift.sim.files import FileStore, error

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024  # OpenAI: "larger than the 209715200 maximum"
ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
             "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos")
ANSWERED = "/v1/chat/completions"
WINDOWS = ("24h",)
_MAX_ERRORS = 1000
_EXPIRED = {"code": "batch_expired",
            "message": "This request could not be executed before the completion window "
                       "expired."}


@dataclass(slots=True)
class OpenAIBatch(BatchBase):
    input_file_id: str = ""
    endpoint: str = ANSWERED
    window: str = "24h"
    metadata: dict[str, str] | None = None
    data: bytes = b""
    status: str = "validating"
    model: str | None = None
    errors: list[dict[str, Any]] | None = None
    at: dict[str, float] = field(default_factory=dict)  # status -> when it was entered
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended: bool = False


def _line_error(code: str, message: str, line: int | None = None,
                param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


class OpenAIBatches:
    """The batches of one server."""

    def __init__(self, config: SimConfig, clock: Clock, files: FileStore, stats: BatchStats,
                 *, answer: AnswerLine, check_key: CheckKey, key_of: KeyOf) -> None:
        self._config, self._clock, self._files, self._stats = config, clock, files, stats
        self._answer, self._check_key, self._key_of = answer, check_key, key_of
        self._seq = itertools.count(1)
        self._batches: dict[str, OpenAIBatch] = {}

    @property
    def max_requests(self) -> int:
        return self._config.batch_max_requests or MAX_REQUESTS

    @property
    def max_bytes(self) -> int:
        return self._config.batch_max_bytes or MAX_BYTES

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/batches", self._create)
        router.add_get("/v1/batches", self._list)
        router.add_get("/v1/batches/{batch_id}", self._retrieve)
        router.add_post("/v1/batches/{batch_id}/cancel", self._cancel)

    # ---- routes ---------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        try:
            obj = json.loads(await request.read())
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            return error(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(obj.get(name), str):
                return error(400, f"Missing required parameter: '{name}'.", param=name,
                             code="missing_required_parameter")
        endpoint, window = obj["endpoint"], obj["completion_window"]
        if endpoint not in ENDPOINTS:
            listed = ", ".join(f"'{e}'" for e in ENDPOINTS)
            return error(400, f"Invalid value: '{endpoint}'. Supported values are: {listed}.",
                         param="endpoint", code="invalid_value")
        if endpoint != ANSWERED:
            return error(400, f"The mlift simulator answers only {ANSWERED} batches.",
                         param="endpoint", code="invalid_value")
        if window not in WINDOWS:
            return error(400, f"Invalid value: '{window}'. Supported values are: '24h'.",
                         param="completion_window", code="invalid_value")
        metadata = obj.get("metadata")
        problem = _check_metadata(metadata)
        if problem:
            return error(400, f"Invalid 'metadata': {problem}", param="metadata")
        stored = self._files.get(obj["input_file_id"])
        if stored is None:
            return error(404, f"No such File object: {obj['input_file_id']}",
                         param="input_file_id")
        if stored.purpose != "batch":
            return error(400, f"Invalid 'input_file_id': {stored.id} was uploaded with purpose "
                              f"'{stored.purpose}'; a batch needs purpose 'batch'.",
                         param="input_file_id")
        now = self._clock.now()
        cfg = self._config
        start = now + cfg.batch_validate_s
        batch = OpenAIBatch(
            id=new_id("batch_", 16), key=self._key_of(request) or "", seq=next(self._seq),
            schedule=Schedule(created=now, start=start, delay=cfg.batch_delay_s,
                              window_end=now + cfg.batch_window_s),
            input_file_id=stored.id, endpoint=endpoint, window=window, metadata=metadata,
            data=stored.data, at={"validating": now})
        self._batches[batch.id] = batch
        return web.json_response(self._view(batch))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        batch = self._batches.get(request.match_info["batch_id"])
        if batch is None:
            return error(404, f"No batch found with id '{request.match_info['batch_id']}'.")
        self.advance(batch)
        return web.json_response(self._view(batch))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        limit = read_limit(request)
        if limit is None:
            limit = 20
        if not 1 <= limit <= 100:
            return error(400, f"Invalid 'limit': integer below minimum value. Expected a value "
                              f">= 1 and <= 100, but got {limit} instead.", param="limit")
        key = self._key_of(request) or ""
        batches = [b for b in reversed(self._batches.values()) if b.key == key]
        after = request.query.get("after")
        if after is not None:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1:] if after in ids else []
        page = batches[:limit]
        for batch in page:
            self.advance(batch)
        return web.json_response({"object": "list", "data": [self._view(b) for b in page],
                                  "first_id": page[0].id if page else None,
                                  "last_id": page[-1].id if page else None,
                                  "has_more": len(batches) > len(page)})

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        batch = self._batches.get(request.match_info["batch_id"])
        if batch is None:
            return error(404, f"No batch found with id '{request.match_info['batch_id']}'.")
        self.advance(batch)
        if batch.status not in ("validating", "in_progress", "finalizing"):
            return error(409, f"Cannot cancel a batch with status '{batch.status}'.")
        batch.schedule.cancel_at = self._clock.now()
        self.advance(batch)
        return web.json_response(self._view(batch))

    # ---- the life of a batch ----------------------------------------------------------------

    def advance_all(self) -> None:
        for batch in self._batches.values():
            self.advance(batch)

    def advance(self, batch: OpenAIBatch) -> None:
        """Bring ``batch`` up to the clock (see the module docstring for the states)."""
        if batch.ended:
            return
        now, sched, cfg = self._clock.now(), batch.schedule, self._config
        cancel = sched.cancel_at
        if batch.status == "validating":
            if cancel is not None and cancel < sched.start:
                self._enter(batch, "cancelling", cancel)
            elif now >= sched.start:
                self._validate(batch)
        if batch.status in ("in_progress", "finalizing", "cancelling") and batch.lines:
            batch.process(now, self._answer, "openai", cfg, self._stats)
        if batch.status in ("in_progress", "finalizing") and cancel is not None:
            self._enter(batch, "cancelling", cancel)
        if batch.status == "cancelling" and cancel is not None:
            if now >= cancel + cfg.batch_cancel_s:
                self._finish(batch, "cancelled", cancel + cfg.batch_cancel_s)
            return
        if batch.status == "in_progress":
            if sched.processing_end <= sched.window_end:
                if now >= sched.processing_end:
                    self._enter(batch, "finalizing", sched.processing_end)
            elif now >= sched.window_end:
                self._finish(batch, "expired", sched.window_end)
                return
        if batch.status == "finalizing" and now >= sched.processing_end + cfg.batch_finalize_s:
            self._finish(batch, "completed", sched.processing_end + cfg.batch_finalize_s)

    def _enter(self, batch: OpenAIBatch, status: str, at: float) -> None:
        if batch.status != status:
            batch.status = status
            batch.at[status] = at

    def _validate(self, batch: OpenAIBatch) -> None:
        errors, lines, model = self._check_lines(batch)
        if errors:
            batch.errors = errors
            self._enter(batch, "failed", batch.schedule.start)
            batch.ended = True
            self._stats.batches["openai_failed"] += 1
            return
        batch.lines, batch.model = lines, model
        batch.schedule.n = len(lines)
        self._enter(batch, "in_progress", batch.schedule.start)
        self._stats.submitted("openai", batch.key, [line.custom_id for line in lines])

    def _check_lines(self, batch: OpenAIBatch
                     ) -> tuple[list[dict[str, Any]], list[Line], str | None]:
        data = batch.data
        raw = data.split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()
        if not raw:
            return [_line_error("empty_file", "The batch input file is empty.")], [], None
        errors: list[dict[str, Any]] = []
        lines: list[Line] = []
        model: str | None = None
        seen: set[str] = set()
        for number, text in enumerate(raw, 1):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                errors.append(_line_error("invalid_json_line",
                                          "This line is not parseable as valid JSON.", number))
                continue
            problem = _check_line(obj, batch.endpoint, number)
            if problem is None:
                line_model = obj["body"].get("model")
                if model is None:
                    model = line_model
                elif line_model != model:
                    problem = _line_error(
                        "model_mismatch", f"The model '{line_model}' does not match the model "
                        f"'{model}' of the other requests: all requests in a batch must use "
                        "the same model.", number, "body.model")
            if problem is None and obj["custom_id"] in seen:
                problem = _line_error(
                    "duplicate_custom_id", "The custom_id for this request is a duplicate of "
                    "another request. The custom_id parameter must be unique for each request "
                    "in a batch.", number, "custom_id")
            if problem is not None:
                errors.append(problem)
                continue
            seen.add(obj["custom_id"])
            lines.append(Line(obj["custom_id"], obj["body"], route=line_route(obj)))
        if len(data) > self.max_bytes:
            errors.insert(0, _line_error(
                "file_too_large", f"The batch input file is larger than the {self.max_bytes} "
                f"maximum for the {model} model. Please try again with a smaller batch."))
        if len(raw) > self.max_requests:
            errors.insert(0, _line_error(
                "too_many_tasks", f"The batch input file has {len(raw):,} requests, more than "
                f"the maximum of {self.max_requests:,} per batch."))
        return errors[:_MAX_ERRORS], lines, model

    def _finish(self, batch: OpenAIBatch, status: str, at: float) -> None:
        self._enter(batch, status, at)
        batch.ended = True
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for line in batch.lines:
            if line.reply is not None:
                record = {"id": new_id("batch_req_", 16), "custom_id": line.custom_id,
                          "response": {"status_code": line.reply.status,
                                       "request_id": line.reply.request_id,
                                       "body": line.reply.body},
                          "error": None}
                (out if line.reply.status == 200 else err).append(record)
            elif status == "expired":
                line.outcome = "expired"
                self._stats.answered("expired")
                err.append({"id": new_id("batch_req_", 16), "custom_id": line.custom_id,
                            "response": None, "error": _EXPIRED})
            else:
                line.outcome = "canceled"
                self._stats.answered("canceled")
        rng = random.Random(f"{self._config.seed}:{batch.id}")
        for records, attr in ((out, "output_file_id"), (err, "error_file_id")):
            if records:
                rng.shuffle(records)  # lines come back in any order
                data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n"
                                for r in records)
                stored = self._files.add(f"{batch.id}_{attr[:-8]}.jsonl", "batch_output", data)
                setattr(batch, attr, stored.id)
        for line in batch.lines:
            line.body = None  # answered: keep the outcome, drop the request

    def _view(self, batch: OpenAIBatch) -> dict[str, Any]:
        unix = self._clock.unix
        done = batch.lines[: batch.done]
        ok = [line for line in done if line.outcome == "succeeded"]
        failed = len(done) - len(ok) + sum(line.outcome == "expired" for line in batch.lines)
        tokens_in = sum(line.reply.tokens_in for line in ok if line.reply)
        tokens_out = sum(line.reply.tokens_out for line in ok if line.reply)
        cached = sum(_cached(line.reply.body) for line in ok if line.reply)
        when = {name: unix(t) for name, t in batch.at.items()}
        return {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": None if batch.errors is None else {"object": "list",
                                                         "data": batch.errors},
            "input_file_id": batch.input_file_id, "completion_window": batch.window,
            "status": batch.status, "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": unix(batch.schedule.created),
            "in_progress_at": when.get("in_progress"),
            "expires_at": unix(batch.schedule.window_end),
            "finalizing_at": when.get("finalizing"), "completed_at": when.get("completed"),
            "failed_at": when.get("failed"), "expired_at": when.get("expired"),
            "cancelling_at": when.get("cancelling"), "cancelled_at": when.get("cancelled"),
            "request_counts": {"total": len(batch.lines), "completed": len(ok),
                               "failed": failed},
            "metadata": batch.metadata,
            "usage": {"input_tokens": tokens_in,
                      "input_tokens_details": {"cached_tokens": cached},
                      "output_tokens": tokens_out,
                      "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": tokens_in + tokens_out},
        }


def _cached(body: dict[str, Any]) -> int:
    details = (body.get("usage") or {}).get("prompt_tokens_details") or {}
    value = details.get("cached_tokens", 0)
    return value if isinstance(value, int) else 0


def _check_line(obj: dict[str, Any], endpoint: str, number: int) -> dict[str, Any] | None:
    for name in ("custom_id", "method", "url", "body"):
        if name not in obj:
            return _line_error("invalid_request", f"Missing required parameter: '{name}'.",
                               number, name)
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str) or not custom_id:
        return _line_error("invalid_request", "Invalid 'custom_id': expected a non-empty "
                           "string.", number, "custom_id")
    if obj["method"] != "POST":
        return _line_error("invalid_request", f"Invalid value: '{obj['method']}'. Supported "
                           "values are: 'POST'.", number, "method")
    if obj["url"] != endpoint:
        return _line_error("url_mismatch", f"The provided URL '{obj['url']}' does not match "
                           f"the batch endpoint '{endpoint}'.", number, "url")
    if not isinstance(obj["body"], dict) or not isinstance(obj["body"].get("model"), str):
        return _line_error("invalid_request", "Missing required parameter: 'body.model'.",
                           number, "body.model")
    return None


def _check_metadata(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "expected an object of string keys and values."
    if len(metadata) > 16:
        return f"at most 16 keys are allowed, got {len(metadata)}."
    for key, value in metadata.items():
        if not isinstance(value, str):
            return f"the value of '{key}' must be a string."
        if len(key) > 64:
            return f"key '{key[:20]}…' is longer than 64 characters."
        if len(value) > 512:
            return f"the value of '{key}' is longer than 512 characters."
    return None
