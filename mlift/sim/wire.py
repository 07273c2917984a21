"""The two wire dialects: request parsing, answer bodies, errors, SSE (limits: ratewire).

Bodies and header names follow what OpenAI and Anthropic document and send,
closely enough that their official SDKs parse them, raise their own error
classes and honour ``retry-after``. Everything here is pure (bytes in, bytes
and dicts out); the server decides what to send.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

# Token charge when a request names no max_tokens (OpenAI then reserves the
# model's output limit; a fixed, documented figure keeps the charge predictable).
DEFAULT_MAX_TOKENS = 1024
OPENAI_MODELS = ("default", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo")
ANTHROPIC_MODELS = ("claude-3-5-haiku-latest", "claude-sonnet-4-5")
_JSON = {"separators": (",", ":"), "ensure_ascii": False}
# What both APIs accept as a schema or tool name.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, **_JSON).encode()  # type: ignore[arg-type]


class WireError(Exception):
    """A request the simulator refuses with a 4xx (the body is built per dialect)."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status, message, param, code, kind)


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a ``usage`` object reports: prompt tokens (all of them, cached or
    not), completion tokens, and the prompt tokens read from / written to the
    prompt cache (``cache_write_1h`` of the writes went to 1-hour entries).
    ``batch`` marks an answer produced inside a batch (Anthropic's
    ``service_tier``)."""

    prompt: int
    completion: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    batch: bool = False


def _tokens(usage: Tokens | tuple[int, int]) -> Tokens:
    return usage if isinstance(usage, Tokens) else Tokens(usage[0], usage[1])


def openai_usage(usage: Tokens | tuple[int, int]) -> dict[str, Any]:
    """OpenAI's chat ``usage``: prompt tokens include the cached ones."""
    t = _tokens(usage)
    return {"prompt_tokens": t.prompt, "completion_tokens": t.completion,
            "total_tokens": t.prompt + t.completion,
            "prompt_tokens_details": {"cached_tokens": t.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def anthropic_usage(usage: Tokens | tuple[int, int], *, output: int | None = None,
                    ) -> dict[str, Any]:
    """Anthropic's ``usage``: ``input_tokens`` excludes cache reads and writes."""
    t = _tokens(usage)
    return {"input_tokens": t.prompt - t.cache_read - t.cache_write,
            "cache_creation_input_tokens": t.cache_write,
            "cache_read_input_tokens": t.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": t.cache_write - t.cache_write_1h,
                               "ephemeral_1h_input_tokens": t.cache_write_1h},
            "output_tokens": t.completion if output is None else output,
            "service_tier": "batch" if t.batch else "standard"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What either dialect's request boils down to.

    ``schema`` is the JSON Schema the answer must match, as canonical JSON
    text (OpenAI ``response_format`` json_schema or json_object, or the input
    schema of a tool Anthropic's ``tool_choice`` forces); ``tool`` is that
    forced tool's name, whose ``tool_use`` block is then the answer.
    """

    model: str
    system: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    schema: str | None = None
    tool: str | None = None


def _text(content: Any, where: str) -> str:
    """Message content as text: a string, or a list of text blocks/parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, block in enumerate(content):
            if not isinstance(block, dict):
                raise WireError(400, f"{where}.{i}: expected an object")
            if block.get("type", "text") == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise WireError(400, f"{where}.{i}.text: Field required")
                parts.append(text)
        return "\n".join(parts)
    if content is None:
        return ""
    raise WireError(400, f"{where}: expected a string or a list of content blocks")


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WireError(400, f"Invalid '{name}': expected an integer of at least 1, "
                             f"got {value!r}.", param=name, code="invalid_value")
    return value


def load_json(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise WireError(400, "We could not parse the JSON body of your request. The API "
                             "expects a JSON payload, but what was sent was not valid JSON.",
                        ) from None
    if not isinstance(obj, dict):
        raise WireError(400, "The request body must be a JSON object.")
    return obj


def parse_openai(obj: dict[str, Any]) -> ChatRequest:
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "you must provide a model parameter", param="model")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "Missing required parameter: 'messages'.", param="messages",
                        code="missing_required_parameter")
    system: list[str] = []
    chat: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise WireError(400, f"Missing required parameter: 'messages[{i}].role'.",
                            param=f"messages[{i}].role", code="missing_required_parameter")
        text = _text(msg.get("content"), f"messages[{i}].content")
        role = "system" if msg["role"] in ("system", "developer") else msg["role"]
        if role == "system":
            system.append(text)
        chat.append((role, text))
    max_tokens = _positive_int(obj.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _positive_int(obj.get("max_tokens"), "max_tokens")
    options = obj.get("stream_options") or {}
    return ChatRequest(model, "\n\n".join(system), tuple(chat), max_tokens,
                       bool(obj.get("stream")),
                       bool(isinstance(options, dict) and options.get("include_usage")),
                       schema=_response_format(obj.get("response_format")))


def _response_format(spec: Any) -> str | None:
    """The schema an OpenAI ``response_format`` asks for (None: free text)."""
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise WireError(400, f"Invalid value: {kind!r}. Supported values are: 'text', "
                             "'json_object' and 'json_schema'.", param="response_format.type",
                        code="invalid_value")
    if kind == "text":
        return None
    if kind == "json_object":
        return _canonical({"type": "object"})
    inner = spec.get("json_schema")
    if not isinstance(inner, dict):
        raise WireError(400, "Missing required parameter: 'response_format.json_schema'.",
                        param="response_format.json_schema", code="missing_required_parameter")
    name = inner.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WireError(400, "Invalid 'response_format.json_schema.name': must match "
                             "'^[a-zA-Z0-9_-]{1,64}$'.", param="response_format.json_schema.name",
                        code="invalid_value")
    schema = inner.get("schema")
    if not isinstance(schema, dict):
        raise WireError(400, "Invalid 'response_format.json_schema.schema': expected an object.",
                        param="response_format.json_schema.schema", code="invalid_type")
    return _canonical(schema)


def _canonical(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_anthropic(obj: dict[str, Any]) -> ChatRequest:
    for name in ("model", "messages", "max_tokens"):
        if obj.get(name) is None:
            raise WireError(400, f"{name}: Field required")
    model, messages = obj["model"], obj["messages"]
    if not isinstance(model, str) or not model:
        raise WireError(400, "model: Input should be a valid string")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "messages: at least one message is required")
    max_tokens = _positive_int(obj["max_tokens"], "max_tokens")
    system = _text(obj.get("system"), "system")
    chat: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        chat.append((msg["role"], _text(msg.get("content"), f"messages.{i}.content")))
    tool, schema = _forced_tool(obj.get("tools"), obj.get("tool_choice"))
    return ChatRequest(model, system, tuple(chat), max_tokens, bool(obj.get("stream")), True,
                       schema=schema, tool=tool)


def _forced_tool(tools: Any, choice: Any) -> tuple[str | None, str | None]:
    """(name, input schema) of the tool ``tool_choice`` forces, or (None, None)."""
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise WireError(400, "tools: Input should be a valid list")
    schemas: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise WireError(400, f"tools.{i}.name: Field required")
        if not _NAME.fullmatch(tool["name"]):
            raise WireError(400, f"tools.{i}.name: String should match pattern "
                                 "'^[a-zA-Z0-9_-]{1,64}$'")
        if not isinstance(tool.get("input_schema"), dict):
            raise WireError(400, f"tools.{i}.input_schema: Field required")
        schemas[tool["name"]] = tool["input_schema"]
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise WireError(400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind in ("auto", "none"):
        return None, None  # the model may answer in text: the simulator does
    if not schemas:
        raise WireError(400, "tool_choice: a tool must be forced from a non-empty 'tools' list")
    name = choice.get("name") if kind == "tool" else next(iter(schemas))
    if name not in schemas:
        raise WireError(400, f"tool_choice.name: tool {name!r} is not in 'tools'")
    return name, _canonical(schemas[name])


# ---- bodies -------------------------------------------------------------------------------

def openai_error_obj(message: str, kind: str, param: str | None = None,
                     code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_error(status: int, message: str, kind: str, param: str | None = None,
                 code: str | None = None) -> bytes:
    return dumps(openai_error_obj(message, kind, param, code))


def anthropic_error_obj(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": request_id}


def anthropic_error(kind: str, message: str, request_id: str) -> bytes:
    return dumps(anthropic_error_obj(kind, message, request_id))


def openai_completion_obj(rid: str, req: ChatRequest, text: str, finish: str,
                          usage: Tokens | tuple[int, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(time.time()),
        "model": req.model, "system_fingerprint": "fp_mlift_sim",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                             "refusal": None},
                     "logprobs": None, "finish_reason": finish}],
        "usage": openai_usage(usage)}


def openai_completion(rid: str, req: ChatRequest, text: str, finish: str,
                      usage: Tokens | tuple[int, int]) -> bytes:
    return dumps(openai_completion_obj(rid, req, text, finish, usage))


def _tool_input(text: str) -> dict[str, Any]:
    """A forced tool's input: the answer's JSON, or {} when max_tokens cut it."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stop_reason(req: ChatRequest, finish: str) -> str:
    if finish == "length":
        return "max_tokens"
    return "tool_use" if req.tool else "end_turn"


def anthropic_message_obj(rid: str, req: ChatRequest, text: str, finish: str,
                          usage: Tokens | tuple[int, int]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if req.tool:
        content = [{"type": "tool_use", "id": f"toolu_{rid}", "name": req.tool,
                    "input": _tool_input(text)}]
    return {
        "id": f"msg_{rid}", "type": "message", "role": "assistant", "model": req.model,
        "content": content, "stop_reason": _stop_reason(req, finish),
        "stop_sequence": None,
        "usage": anthropic_usage(usage)}


def anthropic_message(rid: str, req: ChatRequest, text: str, finish: str,
                      usage: Tokens | tuple[int, int]) -> bytes:
    return dumps(anthropic_message_obj(rid, req, text, finish, usage))


def _pieces(text: str, size: int = 24) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def openai_stream(rid: str, req: ChatRequest, text: str, finish: str,
                  usage: Tokens | tuple[int, int]) -> bytes:
    """The whole SSE body of a streamed chat completion."""
    base = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": req.model,
            "system_fingerprint": "fp_mlift_sim"}
    extra = {"usage": None} if req.include_usage else {}

    def chunk(delta: dict[str, Any], reason: str | None) -> bytes:
        body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": reason}], **extra}
        return b"data: " + dumps(body) + b"\n\n"

    out = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    out.extend(chunk({"content": piece}, None) for piece in _pieces(text))
    out.append(chunk({}, finish))
    if req.include_usage:
        out.append(b"data: " + dumps({**base, "choices": [], "usage": openai_usage(usage)})
                   + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def anthropic_stream(rid: str, req: ChatRequest, text: str, finish: str,
                     usage: Tokens | tuple[int, int]) -> bytes:
    """The whole SSE body of a streamed message, in Anthropic's event order."""
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"

    if req.tool:  # a forced tool streams its input as partial JSON
        block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_{rid}", "name": req.tool,
                                 "input": {}}
        pieces = [{"type": "input_json_delta", "partial_json": p}
                  for p in _pieces(dumps(_tool_input(text)).decode())]
    else:
        block = {"type": "text", "text": ""}
        pieces = [{"type": "text_delta", "text": p} for p in _pieces(text)]
    out = [event("message_start", {"type": "message_start", "message": {
        "id": f"msg_{rid}", "type": "message", "role": "assistant", "model": req.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": anthropic_usage(usage, output=1)}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": block}),
        event("ping", {"type": "ping"})]
    out.extend(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": delta})
               for delta in pieces)
    out += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": _stop_reason(req, finish),
                "stop_sequence": None}, "usage": {"output_tokens": _tokens(usage).completion}}),
            event("message_stop", {"type": "message_stop"})]
    return b"".join(out)


def models_list() -> bytes:
    """One list both SDKs parse (OpenAI's fields plus Anthropic's)."""
    created = 1_700_000_000
    data = [{"id": m, "object": "model", "created": created, "owned_by": "mlift-sim",
             "type": "model", "display_name": f"{m} (simulated)",
             "created_at": "2023-11-14T22:13:20Z"} for m in OPENAI_MODELS + ANTHROPIC_MODELS]
    return dumps({"object": "list", "data": data, "has_more": False,
                  "first_id": data[0]["id"], "last_id": data[-1]["id"]})
