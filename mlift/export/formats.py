"""One dataset row → one example of each export format (pure functions).

* ``openai-chat``: ``{"messages": [system?, user, assistant]}`` — OpenAI's
  chat fine-tuning lines (also what most open trainers call "messages").
* ``alpaca``: ``{"instruction", "input", "output"}``; mlift's instruction is
  self-contained (a context, when there is one, is already embedded in it), so
  ``input`` is empty.
* ``sharegpt``: ``{"id", "conversations": [{"from": "system"?}, {"from":
  "human"}, {"from": "gpt"}]}``.
* ``hf``: a flat record with the pair, its provenance and a ``messages`` list,
  in a fixed schema (:data:`HF_COLUMNS`) so rows of every kind of folder fit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HF_COLUMNS", "to_alpaca", "to_hf", "to_openai_chat", "to_sharegpt"]

HF_COLUMNS: dict[str, str] = {
    "id": "string", "lang": "string", "instruction": "string", "response": "string",
    "instruction_en": "string", "response_en": "string", "task": "string", "style": "string",
    "length_hint": "string", "prompt": "string", "score": "int32", "reason": "string",
    "license": "string", "source_file": "string", "source_line": "int64",
    "source_dataset": "string", "translator": "string", "generator": "string",
    "judge": "string",
}
"""Scalar columns of the ``hf`` export and their Arrow types (plus ``messages``)."""


def _messages(row: Mapping[str, Any], system: str | None) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": row["response"]}]


def to_openai_chat(row: Mapping[str, Any], system: str | None = None) -> dict[str, Any]:
    return {"messages": _messages(row, system)}


def to_alpaca(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"instruction": row["instruction"], "input": "", "output": row["response"]}


def to_sharegpt(row: Mapping[str, Any], system: str | None = None) -> dict[str, Any]:
    head = [{"from": "system", "value": system}] if system else []
    return {"id": str(row.get("id", "")), "conversations": [
        *head, {"from": "human", "value": row["instruction"]},
        {"from": "gpt", "value": row["response"]}]}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_hf(row: Mapping[str, Any], system: str | None = None) -> dict[str, Any]:
    """The row in :data:`HF_COLUMNS` (missing fields are None) plus ``messages``."""
    source, fields = _dict(row.get("source")), _dict(row.get("fields"))
    models, prompts = _dict(row.get("models")), _dict(row.get("prompts"))
    prompt = row.get("template") or prompts.get("instruct")
    record: dict[str, Any] = {
        "id": str(row.get("id", "")), "lang": _str(row.get("lang")),
        "instruction": row["instruction"], "response": row["response"],
        "instruction_en": _str(row.get("instruction_en")),
        "response_en": _str(row.get("response_en")), "task": _str(row.get("task")),
        "style": _str(row.get("style")), "length_hint": _str(row.get("length_hint")),
        "prompt": _str(prompt), "score": _int(row.get("score")),
        "reason": _str(row.get("reason")), "license": _str(fields.get("license")),
        "source_file": _str(source.get("file")), "source_line": _int(source.get("line")),
        "source_dataset": _str(source.get("dataset")),
        "translator": _str(models.get("translator")), "generator": _str(models.get("generator")),
        "judge": _str(models.get("judge")),
        "messages": _messages(row, system),
    }
    return record
