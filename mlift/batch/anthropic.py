"""Anthropic's Message Batches: ``{"requests": [{"custom_id", "params"}]}`` and its results.

``params`` is exactly what the online providers send
(:func:`mlift.providers.anthropic_wire.body`, ``cache_control`` marks and a
forced tool for structured output included), and each succeeded message is
read by the same module's parser. The create body is sent as the very bytes
the splitter measured, so the 256 MB limit is checked on what goes over the
wire. Errored lines are
classified by the HTTP status their error type comes with online.

Message batches carry no metadata, so ``find`` recognises a batch created
just before a crash by its size and creation time, among batches the
journal does not know; the stage driver checks the custom_ids once the
results are in and disowns a batch that turns out not to be ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from mlift.batch.base import (
    ANTHROPIC_ERROR_STATUS,
    Framing,
    Limits,
    LineResult,
    OnStep,
    Outcome,
    Status,
)
from mlift.errors import MalformedResponse, ProviderError, TransientError
from mlift.providers import anthropic_wire
from mlift.providers.anthropic import DEFAULT_BASE_URL, map_error
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint
from mlift.providers.errormap import from_status, missing_key
from mlift.providers.usage import LocalUsage
from mlift.types import Request

LIMITS = Limits(max_requests=100_000, max_bytes=256 * 1024 * 1024)
_HEAD, _TAIL = b'{"requests":[', b"]}"
_SDK_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError, ValueError)
_FIND_SLACK_S = 600.0


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class AnthropicBatchClient:
    """Message batches for one Anthropic endpoint and model."""

    exact_find = False
    framing = Framing(overhead=len(_HEAD) + len(_TAIL), separator=1)

    def __init__(self, endpoint: Endpoint, *, limits: Limits = LIMITS,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint, self.limits = endpoint, limits
        # The online providers' wire module builds the params and parses the answers.
        self._structured = anthropic_wire.structured(endpoint)
        self._local = LocalUsage(endpoint)
        self._client = anthropic.AsyncAnthropic(
            api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
            max_retries=0, timeout=timeout)

    def _error(self, exc: BaseException) -> ProviderError:
        return map_error(exc, self.endpoint)

    def encode(self, custom_id: str, request: Request) -> bytes:
        params = anthropic_wire.body(request, self.endpoint, enforce_schema=self._structured)
        return _dumps({"custom_id": custom_id, "params": params})

    async def submit(self, units: Sequence[bytes], tag: str, on_step: OnStep) -> str:
        payload = _HEAD + b",".join(units) + _TAIL
        try:
            batch = await self._client.post(
                "/v1/messages/batches", cast_to=MessageBatch, content=payload,
                options={"headers": {"Content-Type": "application/json"}})
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        return batch.id

    async def find(self, tag: str, count: int, since: float, known: set[str]) -> str | None:
        found: str | None = None
        try:
            async for batch in self._client.messages.batches.list(limit=100):
                if batch.created_at.timestamp() < since - _FIND_SLACK_S:
                    break  # newest first: everything further is older
                counts = batch.request_counts
                total = (counts.processing + counts.succeeded + counts.errored
                         + counts.canceled + counts.expired)
                if total == count and batch.id not in known:
                    found = batch.id  # keep going: the oldest match is the closest after since
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        return found

    @staticmethod
    def _status(batch: MessageBatch) -> Status:
        counts = batch.request_counts
        total = (counts.processing + counts.succeeded + counts.errored + counts.canceled
                 + counts.expired)
        refs = {"results_url": batch.results_url} if batch.results_url else {}
        return Status(batch_id=batch.id, state=batch.processing_status,
                      ended=batch.processing_status == "ended", total=total,
                      done=counts.succeeded,
                      failed=counts.errored + counts.canceled + counts.expired, refs=refs)

    async def status(self, batch_id: str) -> Status:
        try:
            return self._status(await self._client.messages.batches.retrieve(batch_id))
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc

    async def cancel(self, batch_id: str) -> Status:
        try:
            return self._status(await self._client.messages.batches.cancel(batch_id))
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc

    async def results(self, status: Status, requests: Mapping[str, Request]
                      ) -> list[LineResult]:
        out: list[LineResult] = []
        try:
            async with self._client.messages.batches.with_streaming_response.results(
                    status.batch_id) as resp:
                async for text in resp.iter_lines():
                    if text.strip():
                        result = self._line(text, requests, status.batch_id)
                        if result is not None:
                            out.append(result)
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        return out

    def _line(self, text: str, requests: Mapping[str, Request],
              batch_id: str) -> LineResult | None:
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
        if not isinstance(custom_id, str) or custom_id not in requests:
            return None
        result = obj.get("result")
        kind = result.get("type") if isinstance(result, dict) else None
        context: dict[str, Any] = {"provider": self.endpoint.name, "model": self.endpoint.model}
        if kind == "succeeded" and isinstance(result, dict) and \
                isinstance(result.get("message"), dict):
            message = result["message"]
            try:
                request = requests[custom_id]
                completion = anthropic_wire.parse(
                    message, request, self.endpoint,
                    message.get("id") if isinstance(message.get("id"), str) else None, None,
                    self._local,
                    structured_sent=anthropic_wire.sends_schema(request, self._structured))
            except ProviderError as exc:
                return LineResult(custom_id, "failed", error=exc, batch_id=batch_id)
            return LineResult(custom_id, "succeeded", completion=completion, batch_id=batch_id)
        if kind == "errored" and isinstance(result, dict):
            body = result.get("error")
            inner = body.get("error") if isinstance(body, dict) else None
            error_type = inner.get("type") if isinstance(inner, dict) else None
            status = ANTHROPIC_ERROR_STATUS.get(error_type if isinstance(error_type, str)
                                                else "", 500)
            request_id = body.get("request_id") if isinstance(body, dict) else None
            failure = from_status(self.endpoint, status, body, {},
                                  request_id if isinstance(request_id, str) else None)
            return LineResult(custom_id, "failed", error=failure, batch_id=batch_id)
        if kind in ("canceled", "expired"):
            return LineResult(custom_id, kind, batch_id=batch_id, error=TransientError(
                f"batch {batch_id}: this request was {kind} before it ran", **context))
        return LineResult(custom_id, "failed", batch_id=batch_id, error=MalformedResponse(
            f"a batch result line of unknown type {kind!r}", **context))

    def absent(self, status: Status) -> tuple[Outcome, ProviderError]:
        return "failed", MalformedResponse(
            f"batch {status.batch_id} ended without a result for this request",
            provider=self.endpoint.name, model=self.endpoint.model)

    async def aclose(self) -> None:
        await self._client.close()
