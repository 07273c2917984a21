"""OpenAI's Batch API: a JSONL input file, ``/v1/batches``, output and error files.

Each request becomes the line ``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`` whose body is exactly what the online
provider sends (``OpenAIHTTPProvider._body``: the same model, messages,
max_tokens, temperature and extra params), and each answer is read by the
online provider's own parser, so a batch answer and an online one become the
same ``Completion``. Per-line errors are classified by their HTTP status
through the same ``errormap`` as online errors.

For the simulator (``route_lines``, set by ``batch_client`` for the ``sim``
kind only) each line also carries the request's route in ``mlift_route``
(``mlift.types.ROUTE_FIELD``), which the simulator reads where an online
request has its ``X-Mlift-Prompt`` header; a line for a real endpoint never
gets it.

Every batch carries ``metadata.mlift_tag`` (the journal's chunk id), which is
how ``find`` recognises a batch created just before a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx2
import openai

from mlift.batch.base import Framing, Limits, LineResult, OnStep, Outcome, Status
from mlift.errors import MalformedResponse, PermanentError, ProviderError, TransientError
from mlift.providers import openai_wire
from mlift.providers.base import DEFAULT_TIMEOUT_S, Endpoint
from mlift.providers.errormap import from_status, missing_key
from mlift.providers.openai import DEFAULT_BASE_URL, map_error
from mlift.providers.usage import LocalUsage
from mlift.types import ROUTE_FIELD, Request

URL: Final = "/v1/chat/completions"
LIMITS = Limits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_SDK_ERRORS = (openai.OpenAIError, httpx2.HTTPError, ValueError)
_FIND_SLACK_S = 600.0  # clock skew allowed between the journal and the provider


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OpenAIBatchClient:
    """Batches for one OpenAI (or OpenAI-compatible) endpoint and model."""

    exact_find = True
    framing = Framing(overhead=0, separator=0)  # JSONL: each line carries its newline

    def __init__(self, endpoint: Endpoint, *, limits: Limits = LIMITS,
                 timeout: float = DEFAULT_TIMEOUT_S, route_lines: bool = False) -> None:
        if not endpoint.api_key:
            raise missing_key(endpoint)
        self.endpoint, self.limits = endpoint, limits
        self._route_lines = route_lines
        # The online providers' wire module builds the bodies and parses the answers.
        self._structured = openai_wire.structured(endpoint)
        self._local = LocalUsage(endpoint)
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key, base_url=endpoint.base_url or DEFAULT_BASE_URL,
            max_retries=0, timeout=timeout)

    def _error(self, exc: BaseException) -> ProviderError:
        return map_error(exc, self.endpoint)

    def encode(self, custom_id: str, request: Request) -> bytes:
        body = openai_wire.body(request, self.endpoint, enforce_schema=self._structured)
        line: dict[str, Any] = {"custom_id": custom_id, "method": "POST", "url": URL,
                                "body": body}
        if self._route_lines and request.route:
            line[ROUTE_FIELD] = request.route
        return _dumps(line) + b"\n"

    async def submit(self, units: Sequence[bytes], tag: str, on_step: OnStep) -> str:
        data = b"".join(units)
        try:
            upload = await self._client.files.create(
                file=(f"mlift-{tag}.jsonl", data, "application/jsonl"), purpose="batch")
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        await on_step("uploaded", {"file_id": upload.id})
        try:
            batch = await self._client.batches.create(
                input_file_id=upload.id, endpoint=URL, completion_window="24h",
                metadata={"mlift_tag": tag})
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        return batch.id

    async def find(self, tag: str, count: int, since: float, known: set[str]) -> str | None:
        try:
            async for batch in self._client.batches.list(limit=100):
                if batch.created_at < since - _FIND_SLACK_S:
                    return None  # newest first: everything further is older
                if (batch.metadata or {}).get("mlift_tag") == tag and batch.id not in known:
                    return batch.id
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc
        return None

    def _status(self, batch: Any) -> Status:
        counts = batch.request_counts
        detail = None
        if batch.errors is not None and batch.errors.data:
            detail = "; ".join(f"{'line ' + str(e.line) + ': ' if e.line else ''}"
                               f"{e.code}: {e.message}" for e in batch.errors.data[:5])
        refs = {name: value for name in ("output_file_id", "error_file_id")
                if (value := getattr(batch, name, None))}
        return Status(batch_id=batch.id, state=batch.status, ended=batch.status in ENDED,
                      total=counts.total if counts else 0,
                      done=counts.completed if counts else 0,
                      failed=counts.failed if counts else 0, detail=detail, refs=refs)

    async def status(self, batch_id: str) -> Status:
        try:
            return self._status(await self._client.batches.retrieve(batch_id))
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc

    async def cancel(self, batch_id: str) -> Status:
        try:
            return self._status(await self._client.batches.cancel(batch_id))
        except _SDK_ERRORS as exc:
            raise self._error(exc) from exc

    async def results(self, status: Status, requests: Mapping[str, Request]
                      ) -> list[LineResult]:
        out: list[LineResult] = []
        for name in ("output_file_id", "error_file_id"):
            file_id = status.refs.get(name)
            if file_id is None:
                continue
            try:
                async with self._client.files.with_streaming_response.content(file_id) as resp:
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
            return None  # a line without a readable custom_id belongs to no request
        custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
        if not isinstance(custom_id, str) or custom_id not in requests:
            return None
        response, error = obj.get("response"), obj.get("error")
        context: dict[str, Any] = {"provider": self.endpoint.name, "model": self.endpoint.model}
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status, body = response["status_code"], response.get("body")
            request_id = response.get("request_id")
            request_id = request_id if isinstance(request_id, str) else None
            if status == 200 and isinstance(body, dict):
                try:
                    request = requests[custom_id]
                    completion = openai_wire.parse(
                        body, request, self.endpoint, request_id, None, self._local,
                        structured_sent=openai_wire.sends_schema(request, self._structured))
                except ProviderError as exc:
                    return LineResult(custom_id, "failed", error=exc, batch_id=batch_id)
                return LineResult(custom_id, "succeeded", completion=completion,
                                  batch_id=batch_id)
            failure = from_status(self.endpoint, status, body, {}, request_id)
            return LineResult(custom_id, "failed", error=failure, batch_id=batch_id)
        if isinstance(error, dict):
            message = f"{error.get('code')}: {error.get('message')}"
            if error.get("code") == "batch_expired":
                return LineResult(custom_id, "expired", batch_id=batch_id,
                                  error=TransientError(message, **context))
            return LineResult(custom_id, "failed", error=TransientError(message, **context),
                              batch_id=batch_id)
        return LineResult(custom_id, "failed", batch_id=batch_id, error=MalformedResponse(
            "a batch output line with neither a response nor an error", **context))

    def absent(self, status: Status) -> tuple[Outcome, ProviderError]:
        """What became of a line no result file mentions, judged by the batch's end."""
        context: dict[str, Any] = {"provider": self.endpoint.name, "model": self.endpoint.model}
        if status.state == "cancelled":
            return "canceled", TransientError(f"batch {status.batch_id} was cancelled before "
                                              "this request ran", **context)
        if status.state == "expired":
            return "expired", TransientError(f"batch {status.batch_id} expired before this "
                                             "request ran", **context)
        if status.state == "failed":
            return "failed", PermanentError(f"batch {status.batch_id} failed validation: "
                                            f"{status.detail}", **context)
        return "failed", MalformedResponse(f"batch {status.batch_id} ended "
                                           f"{status.state!r} without a result for this "
                                           "request", **context)

    async def aclose(self) -> None:
        await self._client.close()
