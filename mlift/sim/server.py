"""The simulator's HTTP server (aiohttp): routes, auth, limits, faults, answers."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from mlift.sim import ratewire, wire
from mlift.sim.answers import answer
from mlift.sim.batches import Batches, LineReply
from mlift.sim.config import SimConfig
from mlift.sim.limiter import Charges, Decision, KeyLimits
from mlift.sim.prompt_cache import Breakpoint, PromptCache, anthropic_breakpoints
from mlift.sim.stats import Stats
from mlift.tokens import count_chat_tokens, count_tokens, truncate_tokens, warm_up
from mlift.types import ROUTE_HEADER

Dialect = Literal["openai", "anthropic"]
_JSON_TYPE = "application/json"
_SSE_TYPE = "text/event-stream; charset=utf-8"


@lru_cache(maxsize=8192)
def _cached_answer(model: str, messages: tuple[tuple[str, str], ...],
                   max_tokens: int | None, seed: int, bad_verdict_rate: float,
                   verbosity: float = 1.0, route: str | None = None,
                   schema: str | None = None) -> tuple[str, str, int]:
    """(text, finish_reason, completion tokens); answers are pure, so repeats are free.

    ``route`` is the request's ``X-Mlift-Prompt`` header (what to answer) and
    ``schema`` the JSON Schema it asked the answer to match.
    """
    text = answer(messages, seed, bad_verdict_rate, verbosity, route=route, schema=schema,
                  model=model)
    cut = False
    if max_tokens is not None:
        text, cut = truncate_tokens(text, max_tokens, model)
    return text, "length" if cut else "stop", count_tokens(text, model)


@lru_cache(maxsize=8192)
def _prompt_tokens(model: str, system: str, messages: tuple[tuple[str, str], ...],
                   dialect: Dialect) -> int:
    if dialect == "anthropic" and system:
        return count_chat_tokens((("system", system), *messages), model)
    return count_chat_tokens(messages, model)


def _mask(key: str) -> str:
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}" if len(key) >= 12 else "*" * len(key)


class SimServer:
    """The simulator on a loopback port; see :mod:`mlift.sim` for what it does.

    ``clock`` (monotonic seconds) drives all rate-limit arithmetic and the
    window statistics, so tests can use virtual time.
    """

    def __init__(self, config: SimConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SimConfig()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self._stats = Stats()
        self._limits: dict[str, KeyLimits] = {}
        self._prompt_cache = PromptCache()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._app = web.Application(client_max_size=32 * 1024 * 1024)
        self._app.router.add_post("/v1/chat/completions", self._openai)
        self._app.router.add_post("/v1/messages", self._anthropic)
        self._app.router.add_get("/v1/models", self._models)
        # Files and both batch APIs (mlift.sim.batches); lines answered by _batch_line.
        self._batches = Batches(self.config, clock, answer=self._batch_line,
                                check_key=self._check_key, key_of=self._key)
        self._batches.register(self._app.router)
        self._app.router.add_get("/stats", self._get_stats)
        self._app.router.add_post("/stats/reset", self._reset_stats)
        # Last, so it only gets what no route above took: a wrong base URL's requests.
        self._app.router.add_route("*", "/{path:.*}", self._unknown_url)

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 = a free port); loads the tokenizers off the loop first."""
        if self._runner is not None:
            raise RuntimeError("SimServer already started")
        await asyncio.to_thread(lambda: [warm_up(m) for m in ("gpt-4o", "gpt-4")])
        # handler_cancellation: a client that goes away cancels its handler, so a
        # hanging "timeout" fault ends with the connection.
        runner = web.AppRunner(self._app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self._url = f"http://{shown}:{bound[1]}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (OpenAI SDKs want ``base_url + "/v1"``, Anthropic's this)."""
        if self._url is None:
            raise RuntimeError("SimServer not started")
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        """The counters ``GET /stats`` serves (batch traffic under ``"batch"``)."""
        return {**self._stats.snapshot(), "batch": self._batches.snapshot()}

    def admitted_between(self, start: float, end: float) -> dict[str, float]:
        """Answered requests admitted in ``[start, end)`` (server clock) and their charges."""
        return self._stats.admitted_between(start, end)

    def refused_between(self, start: float, end: float) -> int:
        """429s for rate limits in ``[start, end)`` on the server's clock."""
        return self._stats.refused_between(start, end)

    # ---- small routes ---------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, _dialect_of(request))
        return denied or web.Response(body=wire.models_list(), content_type=_JSON_TYPE)

    async def _get_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats())

    async def _reset_stats(self, request: web.Request) -> web.StreamResponse:
        self._stats.reset()
        self._batches.reset()
        return web.json_response({"reset": True})

    async def _unknown_url(self, request: web.Request) -> web.StreamResponse:
        """A path nothing serves: a 404 in the providers' shape, counted like any request."""
        self._stats.arrived()
        self._stats.finished(404)
        if _dialect_of(request) == "anthropic":
            err = wire.WireError(404, "Not Found", kind="not_found_error")
            return self._error("anthropic", os.urandom(12).hex(), 404, err)
        err = wire.WireError(404, f"Invalid URL ({request.method} {request.path})")
        return self._error("openai", os.urandom(12).hex(), 404, err)  # OpenAI's words for it

    # ---- completions ----------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "openai")

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "anthropic")

    @staticmethod
    def _key(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return request.headers.get("x-api-key")

    def _check_key(self, request: web.Request, dialect: Dialect) -> web.Response | None:
        want = self.config.require_key
        if want is None:
            return None
        key = self._key(request)
        if key == want:
            return None
        rid = os.urandom(12).hex()
        if dialect == "anthropic":
            msg = "invalid x-api-key" if key else "x-api-key header is required"
            body = wire.anthropic_error("authentication_error", msg, f"req_{rid}")
            headers = {"request-id": f"req_{rid}"}
        else:
            msg = (f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys." if key else
                   "You didn't provide an API key. You need to provide your API key in an "
                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            body = wire.openai_error(401, msg, "invalid_request_error",
                                     code="invalid_api_key" if key else None)
            headers = {"x-request-id": f"req_{rid}"}
        return web.Response(status=401, body=body, content_type=_JSON_TYPE, headers=headers)

    def _error(self, dialect: Dialect, rid: str, status: int, err: wire.WireError,
               headers: dict[str, str] | None = None) -> web.Response:
        if dialect == "anthropic":
            body = wire.anthropic_error(err.kind, err.message, f"req_{rid}")
            hdrs = {"request-id": f"req_{rid}"}
        else:
            body = wire.openai_error(status, err.message, err.kind, err.param, err.code)
            hdrs = {"x-request-id": f"req_{rid}"}
        hdrs.update(headers or {})
        return web.Response(status=status, body=body, content_type=_JSON_TYPE, headers=hdrs)

    async def _complete(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        self._stats.arrived()
        status: int | str = 500
        try:
            response = await self._handle(request, dialect)
            # Only a dropped answer is already sent (prepared) when it gets here.
            status = "dropped" if response.prepared else response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it)
            raise
        finally:
            self._stats.finished(status)

    async def _handle(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        denied = self._check_key(request, dialect)
        if denied is not None:
            return denied
        rid = os.urandom(12).hex()
        try:
            obj = wire.load_json(await request.read())
            req = wire.parse_openai(obj) if dialect == "openai" else wire.parse_anthropic(obj)
            points = anthropic_breakpoints(obj, req.model) if dialect == "anthropic" else ()
        except wire.WireError as err:
            return self._error(dialect, rid, err.status, err)
        cfg = self.config
        prompt = _prompt_tokens(req.model, req.system, req.messages, dialect)
        charges = self._charges(req, prompt)
        key = self._key(request) or ""
        admitted_at = self._clock()
        limits = self._limits.get(key)
        if limits is None:
            limits = self._limits[key] = KeyLimits(cfg.rpm, cfg.tpm, cfg.burst_s, admitted_at,
                                                   itpm=cfg.itpm, otpm=cfg.otpm)
        decision = limits.offer(charges, admitted_at, count_refused=cfg.count_refused)
        limit_headers: dict[str, str] = {}
        if cfg.limit_headers:
            limit_headers = (ratewire.openai_limit_headers(decision) if dialect == "openai"
                             else ratewire.anthropic_limit_headers(decision))
        if not decision.admitted:
            self._stats.refused(admitted_at)
            return self._rate_limited(dialect, rid, req, decision, charges, limit_headers)

        fault = self._draw_fault()
        delay = cfg.latency_ms + (self._rng.uniform(-cfg.jitter_ms, cfg.jitter_ms)
                                  if cfg.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if fault == "timeout":
            await asyncio.sleep(cfg.hang_s)  # cancelled if the client disconnects
        if fault == "error":
            limits.settle_output(decision, 0, self._clock())
            return self._server_error(dialect, rid)

        text, finish, usage = self._answer(dialect, req, prompt, key, points,
                                           route=request.headers.get(ROUTE_HEADER))
        # Anthropic charges max_tokens against output tokens at admission and
        # adjusts the charge to what was written once the answer is done.
        limits.settle_output(decision, usage.completion, self._clock())
        if req.stream:
            build = wire.openai_stream if dialect == "openai" else wire.anthropic_stream
            body, ctype = build(rid, req, text, finish, usage), _SSE_TYPE
        else:
            build = wire.openai_completion if dialect == "openai" else wire.anthropic_message
            body, ctype = build(rid, req, text, finish, usage), _JSON_TYPE
        headers = {"x-request-id" if dialect == "openai" else "request-id": f"req_{rid}",
                   **limit_headers}
        if fault == "drop":
            return await self._drop(request, body, ctype, headers)
        if fault == "malformed":
            body = (b"data: {\"choices\": [{\"delta\": \n\n" if req.stream
                    else body[: len(body) // 2] + b"<!-- upstream error -->")
        else:
            self._stats.answered(admitted_at, charges.tokens, prompt, usage.completion,
                                 input_charge=charges.input_tokens)
        return web.Response(body=body, headers={"Content-Type": ctype, **headers})

    def _answer(self, dialect: Dialect, req: wire.ChatRequest, prompt: int, key: str,
                points: tuple[Breakpoint, ...], *, batch_start: float | None = None,
                now: float | None = None, route: str | None = None
                ) -> tuple[str, str, wire.Tokens]:
        """(text, finish_reason, tokens) for a parsed request: the one answer path that
        online requests and batch lines share. ``batch_start`` hides cache entries
        written since (a batch's lines don't see each other's writes); ``now`` is the
        clock time the request meets the prompt cache at (default: the clock's);
        ``route`` is what the ``X-Mlift-Prompt`` header said (None: a generic answer)."""
        cfg = self.config
        text, finish, completion = _cached_answer(req.model, req.messages, req.max_tokens,
                                                  cfg.seed, cfg.bad_verdict_rate,
                                                  cfg.verbosity, route, req.schema)
        batch = batch_start is not None
        if not cfg.prompt_cache:
            return text, finish, wire.Tokens(prompt, completion, batch=batch)
        now, cache = self._clock() if now is None else now, self._prompt_cache
        if dialect == "openai":
            use = cache.openai(key, req.model, req.messages, now, before=batch_start)
        else:
            use = cache.anthropic(key, req.model, points, now, before=batch_start)
        # Prefixes are counted as the prompt is, so they fit in it; clamp all the same.
        read = min(use.read, prompt)
        write = min(use.write, prompt - read)
        return text, finish, wire.Tokens(prompt, completion, read, write,
                                         min(use.write_1h, write), batch=batch)

    def _batch_line(self, dialect: Dialect, obj: Any, key: str, start: float,
                    at: float, route: str | None = None) -> LineReply:
        """One batch line answered as the online route would answer its body (``route``:
        the line's ``mlift_route`` field, standing in for the online header)."""
        rid = os.urandom(12).hex()
        try:
            if not isinstance(obj, dict):
                raise wire.WireError(400, "The request body must be a JSON object.")
            req = wire.parse_openai(obj) if dialect == "openai" else wire.parse_anthropic(obj)
            points = anthropic_breakpoints(obj, req.model) if dialect == "anthropic" else ()
            if req.stream:
                raise wire.WireError(400, "stream: streaming is not supported in a batch",
                                     param="stream")
        except wire.WireError as err:
            if dialect == "openai":
                body = wire.openai_error_obj(err.message, err.kind, err.param, err.code)
            else:
                body = wire.anthropic_error_obj(err.kind, err.message, f"req_{rid}")
            return LineReply(err.status, body, f"req_{rid}")
        prompt = _prompt_tokens(req.model, req.system, req.messages, dialect)
        text, finish, usage = self._answer(dialect, req, prompt, key, points,
                                           batch_start=start, now=at, route=route)
        build = wire.openai_completion_obj if dialect == "openai" else wire.anthropic_message_obj
        return LineReply(200, build(rid, req, text, finish, usage), f"req_{rid}",
                         usage.prompt, usage.completion)

    def _draw_fault(self) -> str | None:
        cfg = self.config
        if not (cfg.error_rate or cfg.timeout_rate or cfg.drop_rate or cfg.malformed_rate):
            return None
        u = self._rng.random()
        for kind, rate in (("error", cfg.error_rate), ("timeout", cfg.timeout_rate),
                           ("drop", cfg.drop_rate), ("malformed", cfg.malformed_rate)):
            if u < rate:
                self._stats.fault(kind)
                return kind
            u -= rate
        return None

    def _server_error(self, dialect: Dialect, rid: str) -> web.Response:
        if dialect == "anthropic":
            status = self._rng.choice((500, 503, 529))
            kind, msg = {500: ("api_error", "Internal server error"),
                         503: ("api_error", "Service unavailable"),
                         529: ("overloaded_error", "Overloaded")}[status]
            return self._error(dialect, rid, status, wire.WireError(status, msg, kind=kind))
        status = self._rng.choice((500, 503))
        msg = ("The server had an error while processing your request. Sorry about that!"
               if status == 500 else "The engine is currently overloaded, please try again later.")
        return self._error(dialect, rid, status, wire.WireError(status, msg, kind="server_error"))

    def _charges(self, req: wire.ChatRequest, prompt: int) -> Charges:
        """What this request costs each limit, counted the way the configured server counts."""
        cfg = self.config
        max_out = req.max_tokens or wire.DEFAULT_MAX_TOKENS
        if cfg.token_charge == "chars":
            chars = len(req.system) if req.system else 0
            chars += sum(len(text) for role, text in req.messages if role != "system")
            estimate = math.ceil(chars / 4)
        else:
            estimate = prompt
        return Charges(tokens=math.ceil(cfg.charge_factor * (estimate + max_out)),
                       input_tokens=prompt, output_tokens=max_out)

    def _rate_limited(self, dialect: Dialect, rid: str, req: wire.ChatRequest,
                      decision: Decision, charges: Charges,
                      headers: dict[str, str]) -> web.Response:
        by = decision.refused_by or "requests"
        limit = int(decision.states[by].limit) if by in decision.states else 0
        asked = 1 if by == "requests" else round(getattr(charges, by))
        hdrs = dict(headers)
        if math.isinf(decision.wait_s):
            hdrs["x-should-retry"] = "false"  # no wait would ever let it through
        else:
            hdrs.update(ratewire.retry_headers(decision.wait_s))
        if not self.config.limit_headers:
            # A server (or proxy) that says nothing about its limits.
            quiet = "Too many requests: slow down and retry later. (mlift simulator)"
            err = wire.WireError(429, quiet, kind="rate_limit_error" if dialect == "anthropic"
                                 else "requests", code="rate_limit_exceeded")
        elif dialect == "anthropic":
            err = wire.WireError(429, ratewire.anthropic_rate_message(by, limit),
                                 kind="rate_limit_error")
        else:
            msg = ratewire.openai_rate_message(req.model, by, limit, decision.used, asked,
                                           decision.wait_s)
            err = wire.WireError(429, msg, kind="requests" if by == "requests" else "tokens",
                                 code="rate_limit_exceeded")
        return self._error(dialect, rid, 429, err, hdrs)

    async def _drop(self, request: web.Request, body: bytes, ctype: str,
                    headers: dict[str, str]) -> web.StreamResponse:
        """Send the status line, headers and half the body, then cut the connection."""
        response = web.StreamResponse(status=200, headers={"Content-Type": ctype, **headers})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then closes: a truncated body
        return response


def _dialect_of(request: web.Request) -> Dialect:
    """Which provider a request off the chat routes speaks, by its headers."""
    anthropic = "x-api-key" in request.headers or "anthropic-version" in request.headers
    return "anthropic" if anthropic else "openai"
