"""``mlift requests``: one OpenAI Chat Completions body per line in, one result per line out.

The generic front door of the engine, for users with their own prompts and
for the benchmarks. Each input line is a Chat Completions request body
(``messages``, ``max_tokens``/``max_completion_tokens``, ``temperature`` and
other generation parameters, an optional ``model`` that overrides the
``--provider`` spec's model, and ``metadata`` that is kept but never sent).
Each output line is ``{"line": N, "metadata": ..., "response": {...}}`` or
``{"line": N, "metadata": ..., "error": {...}}``, in input order.

Lines are read ahead in chunks whose cache lookups the engine makes together
(``Engine.prefetch``): a re-run answered from the cache pays one hop to the
cache's thread per chunk, not one wait per line.

Output is written in order and flushed as it goes, so after an interruption
it is a prefix of the input: a re-run skips that prefix (answers finished but
not yet written are in the cache and cost nothing). The run's manifest and
ledger live beside the output, in ``OUT.run/``.

With ``batch`` (``--batch``) the requests go out as batch jobs: a first pass
collects every line not answered yet (writing only the prefix before the
first of them), the batches run, and the next pass writes the rest in order;
the journal of the batches is ``OUT.run/batches.jsonl``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.errors import ConfigError, EndpointUnusable, InputError, ProviderError
from mlift.pipeline.batchrun import BatchRun
from mlift.pipeline.stages import StageEngine, StageReject
from mlift.records import RecordBase, RequestResult, iter_json_lines, loads, repair_torn_tail
from mlift.runfolder import Run, RunFolder, endpoint_identity, fingerprints
from mlift.types import Message, Request

# Body keys that are not generation parameters.
_RESERVED = {"messages", "model", "metadata", "max_tokens", "max_completion_tokens",
             "temperature", "stream", "n"}
# Lines read ahead and looked up in the cache together; well inside the
# scheduler's window (1,000 items), so reading ahead never waits on it.
PREFETCH_LINES = 256


@dataclass(frozen=True, slots=True)
class Line:
    number: int                    # 1-based line number in the input file
    request: Request | None
    metadata: Any = None
    error: InputError | None = None


@dataclass(slots=True)
class BulkSummary:
    total_lines: int = 0
    skipped_done: int = 0
    written: int = 0
    ok: int = 0
    errors: int = 0
    stopped_reason: str | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)


def _bad(number: int, path: str, message: str, fld: str | None = None,
         metadata: Any = None) -> Line:
    return Line(number, None, metadata, InputError(message, file=path, line=number, field=fld))


def parse_line(raw: bytes, number: int, path: str, target: str) -> Line:
    """Turn one input line into a Request, or an InputError naming file, line and field."""
    try:
        body = loads(raw)
    except UnicodeDecodeError:
        return _bad(number, path, "not valid UTF-8")
    except json.JSONDecodeError as exc:
        return _bad(number, path, f"not valid JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:  # NaN or Infinity: not JSON, and no output line could hold it
        return _bad(number, path, f"not valid JSON ({exc})")
    if not isinstance(body, dict):
        return _bad(number, path, "expected a JSON object (a Chat Completions request body)")
    metadata = body.get("metadata")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad(number, path, "missing or empty 'messages' list", "messages", metadata)
    parsed: list[Message] = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts: keep the text ones
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
            content = "".join(texts) if all(isinstance(t, str) for t in texts) else None
        if role not in ("system", "user", "assistant", "developer") or not isinstance(content, str):
            return _bad(number, path, "each message needs a role (system/user/assistant) and "
                        "text content", f"messages[{i}]", metadata)
        if not _is_unicode(content):
            return _bad(number, path, "the content holds a lone surrogate escape (such as "
                        "\\ud800): not text any provider accepts; fix the text that produced it",
                        f"messages[{i}].content", metadata)
        parsed.append(Message("system" if role == "developer" else role, content))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 512))
    temperature = body.get("temperature", 1.0)
    if type(max_tokens) is not int or max_tokens < 1:  # not isinstance: true is no count
        return _bad(number, path, "must be a positive integer", "max_tokens", metadata)
    if type(temperature) not in (int, float) or not math.isfinite(temperature):
        return _bad(number, path, "must be a finite number", "temperature", metadata)
    model = body.get("model")
    if isinstance(model, str) and model:
        target = f"{target.partition(':')[0]}:{model}"
    params = tuple(sorted([(k, v) for k, v in body.items() if k not in _RESERVED]))
    for key, value in params:
        if not _is_json(value):
            return _bad(number, path, "must be plain JSON: finite numbers, text without lone "
                        "surrogate escapes", key, metadata)
    # Positional (target, messages, max_tokens, temperature, params, prompt, stage,
    # item_id): this runs once per input line.
    request = Request(target, tuple(parsed), max_tokens, float(temperature), params,
                      None, "requests", str(number))
    return Line(number, request, metadata)


def _is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (only the standard library's reader lets one
    through, from an escape such as ``\\ud800``): no provider accepts it, nor does the cache key."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_json(value: object) -> bool:
    """Whether a generation parameter can be sent and keyed (no 1e999, no lone surrogate)."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return False
    return True


def read_lines(path: Path, target: str, skip: int) -> Iterator[Line]:
    name = str(path)
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number <= skip:
                continue
            if not raw.strip():
                yield Line(number, None, None, InputError("empty line", file=name, line=number))
                continue
            yield parse_line(raw, number, name, target)


async def prefetched(engine: Engine, lines: Iterator[Line],
                     chunk: int = PREFETCH_LINES) -> AsyncIterator[Line]:
    """``lines`` as they come, each ``chunk`` looked up in the cache before it is yielded.

    The next chunk's lookup runs while this one is worked on, so the workers
    never wait for the cache's thread.
    """
    def lookup(batch: list[Line]) -> asyncio.Task[None]:
        return asyncio.ensure_future(engine.prefetch(
            [line.request for line in batch if line.request is not None]))

    batch = list(itertools.islice(lines, chunk))
    task = lookup(batch)
    try:
        while batch:
            await task
            following = list(itertools.islice(lines, chunk))
            task = lookup(following)
            for line in batch:
                yield line
            batch = following
    finally:
        task.cancel()  # the run stopped early: nobody needs that lookup any more


def state_dir(out: Path) -> Path:
    """Where ``mlift requests`` keeps the run folder of output ``out`` (manifest, ledger)."""
    return out.with_name(out.name + ".run")


def finished_prefix(out: Path) -> int:
    """How many result lines a previous run wrote; cuts a torn last line (kill -9)."""
    repair_torn_tail(out)
    count = 0
    for lineno, record in iter_json_lines(out):
        if record.get("line") != count + 1:
            raise ConfigError(
                f"{out}: line {lineno} is not result {count + 1} of this input; "
                f"is it the output of another file? Move it away or pick another --out")
        count += 1
    return count


def result_record(line: Line, outcome: Any) -> RequestResult:
    if isinstance(outcome, BaseException):
        error: dict[str, Any] = {"type": type(outcome).__name__, "message": str(outcome)}
        for attr in ("status", "request_id", "field"):
            value = getattr(outcome, attr, None)
            if value is not None:
                error[attr] = value
        return RequestResult(line=line.number, metadata=line.metadata, error=error)
    return RequestResult(
        line=line.number, metadata=line.metadata,
        response={"content": outcome.text, "finish_reason": outcome.finish_reason,
                  "model": outcome.model, "request_id": outcome.request_id,
                  "usage": {"input_tokens": outcome.usage.input_tokens,
                            "output_tokens": outcome.usage.output_tokens}},
        cached=outcome.cached, cost_usd=round(outcome.cost_usd, 8), attempts=outcome.attempts)


def _identity(engine: Engine, in_path: Path, target: str,
              known: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"inputs": fingerprints([in_path], known), "models": {"requests": target},
            "endpoints": {"requests": endpoint_identity(engine.endpoint(target))}}


async def run_requests(engine: Engine, in_path: Path, out_path: Path, target: str, *,
                       workers: int = 64, new_generation: bool = False,
                       batch: BatchRun | None = None) -> BulkSummary:
    """Run every request of ``in_path`` through ``engine``; results go to ``out_path``.

    The run folder (manifest, ledger, ``run.json``) sits beside the output in
    ``OUT.run/``: resuming with another provider or input is refused, and
    ``--max-cost`` caps what every invocation on this output spent together.
    """
    summary = BulkSummary()
    engine.endpoint(target)  # bad spec, unknown provider or price: fail before sending
    state = state_dir(out_path)

    def open_folder() -> RunFolder:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        folder = RunFolder.open(state, command="requests",
                                identity=_identity(engine, in_path, target,
                                                   RunFolder.known_inputs(state)),
                                new_generation=new_generation)
        if folder.generation > 1 and out_path.exists() and new_generation:
            # The old results belong to the old generation.
            out_path.replace(state / "generations" / str(folder.generation - 1) /
                             out_path.name)
        summary.skipped_done = finished_prefix(out_path)
        return folder

    folder = await asyncio.to_thread(open_folder)
    sender: StageEngine = batch.engine if batch is not None else engine

    async def work(line: Line) -> tuple[RequestResult, ...]:
        if line.error is not None or line.request is None:
            return (result_record(line, line.error),)
        try:
            outcome: object = await sender.complete(line.request)
        except EndpointUnusable:
            raise  # stops the run: every other line would fail the same way
        except ProviderError as exc:
            outcome = exc
        except StageReject as exc:  # batch mode: the line failed in its batch for good
            return (RequestResult(line=line.number, metadata=line.metadata,
                                  error={"type": exc.code, "message": exc.detail}),)
        return (result_record(line, outcome),)

    def answered(line: Line) -> tuple[RequestResult, ...] | None:
        """The result of a line that needs no wait: bad input, or a prefetched cache hit."""
        if line.error is not None or line.request is None:
            return (result_record(line, line.error),)
        hit = engine.prefetched_hit(line.request)
        return None if hit is None else (result_record(line, hit),)

    def written(record: RecordBase) -> None:
        assert isinstance(record, RequestResult)
        summary.written += 1
        if record.error is not None:
            summary.errors += 1
            kind = str(record.error["type"])
            summary.error_kinds[kind] = summary.error_kinds.get(kind, 0) + 1
        else:
            summary.ok += 1

    async with Run(folder, engine, files=(RequestResult,),
                   paths={RequestResult: out_path}) as run:
        try:
            if batch is None:
                await run.each(prefetched(engine, read_lines(in_path, target,
                                                             summary.skipped_done)), work,
                               workers=workers, ordered=True, on_emit=written,
                               ready=answered)
            else:  # each pass starts after the prefix written so far
                await batch.run(run, lambda: read_lines(
                    in_path, target, summary.skipped_done + summary.written), work,
                    workers=workers, ordered=True, on_emit=written)
        finally:
            summary.stopped_reason = run.stopped
            summary.total_lines = summary.skipped_done + summary.written
            await run.summary(output=str(out_path), lines={
                "total": summary.total_lines, "already_done": summary.skipped_done,
                "written": summary.written, "ok": summary.ok, "errors": summary.errors,
                "errors_by_kind": summary.error_kinds})
    return summary


__all__ = ["BulkSummary", "Line", "parse_line", "run_requests"]
