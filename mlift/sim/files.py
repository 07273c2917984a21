"""The OpenAI Files API, as much of it as the Batch API needs.

``POST /v1/files`` (multipart: ``file`` and ``purpose``), ``GET /v1/files``,
``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` and
``DELETE /v1/files/{id}``, with OpenAI's object shapes and errors: a file
over 512 MB is refused with "File is too large.", an unknown purpose or id
with a 400/404 in OpenAI's error body. Batch output and error files are
stored here too (purpose ``batch_output``). Files live in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from mlift.sim import wire
from mlift.sim.batches import JSON_TYPE, BatchStats, CheckKey, Clock, new_id, read_limit

MAX_FILE_BYTES = 512 * 1024 * 1024  # the Files API's per-file limit
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_CHUNK = 1 << 20


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed",
                "expires_at": self.expires_at, "status_details": None}


def error(status: int, message: str, *, param: str | None = None,
          code: str | None = None) -> web.Response:
    body = wire.openai_error(status, message, "invalid_request_error", param, code)
    return web.Response(status=status, body=body, content_type=JSON_TYPE,
                        headers={"x-request-id": new_id("req_")})


def not_found(file_id: str) -> web.Response:
    return error(404, f"No such File object: {file_id}", param="id")


class FileStore:
    """Uploaded and generated files by id."""

    def __init__(self, clock: Clock, stats: BatchStats, *, check_key: CheckKey,
                 max_bytes: int = MAX_FILE_BYTES) -> None:
        self._clock, self._stats, self._check_key = clock, stats, check_key
        self.max_bytes = max_bytes
        self._files: dict[str, StoredFile] = {}

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/files", self._upload)
        router.add_get("/v1/files", self._list)
        router.add_get("/v1/files/{file_id}", self._retrieve)
        router.add_get("/v1/files/{file_id}/content", self._content)
        router.add_delete("/v1/files/{file_id}", self._delete)

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        now = self._clock.now()
        expires = self._clock.unix(now + 30 * 86_400) if purpose.startswith("batch") else None
        stored = StoredFile(new_id("file-", 12), filename, purpose, data,
                            self._clock.unix(now), expires)
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return error(400, "The request must be multipart/form-data with a 'file' and a "
                              "'purpose'.")
        fields: dict[str, str] = {}
        data: bytes | None = None
        filename = "upload"
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart: not something the SDKs send
            if part.name == "file":
                filename = part.filename or filename
                chunks, size = [], 0
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        return error(400, "File is too large.")
                    chunks.append(chunk)
                data = b"".join(chunks)
            elif part.name:
                fields[part.name] = (await part.read()).decode("utf-8", "replace")
        if data is None:
            return error(400, "Missing required parameter: 'file'.", param="file",
                         code="missing_required_parameter")
        purpose = fields.get("purpose")
        if purpose is None:
            return error(400, "Missing required parameter: 'purpose'.", param="purpose",
                         code="missing_required_parameter")
        if purpose not in PURPOSES:
            return error(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'",
                         param="purpose")
        stored = self.add(filename, purpose, data)
        self._stats.files_uploaded += 1
        return web.json_response(stored.to_json())

    async def _list(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        purpose = request.query.get("purpose")
        files = [f for f in reversed(self._files.values())
                 if purpose is None or f.purpose == purpose]
        limit = read_limit(request) or 10_000
        after = request.query.get("after")
        if after is not None:
            ids = [f.id for f in files]
            files = files[ids.index(after) + 1:] if after in ids else []
        page = files[:limit]
        return web.json_response({"object": "list", "data": [f.to_json() for f in page],
                                  "first_id": page[0].id if page else None,
                                  "last_id": page[-1].id if page else None,
                                  "has_more": len(files) > len(page)})

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        stored = self.get(request.match_info["file_id"])
        if stored is None:
            return not_found(request.match_info["file_id"])
        return web.json_response(stored.to_json())

    async def _content(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        stored = self.get(request.match_info["file_id"])
        if stored is None:
            return not_found(request.match_info["file_id"])
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_key(request, "openai")
        if denied is not None:
            return denied
        file_id = request.match_info["file_id"]
        if self._files.pop(file_id, None) is None:
            return not_found(file_id)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})
