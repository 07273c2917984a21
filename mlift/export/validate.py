"""Check an OpenAI chat fine-tuning file line by line before uploading it.

The rules are those of OpenAI's supervised fine-tuning format for chat models
(the ``messages`` form; each line one JSON object): roles ``system``, ``user``
and ``assistant``; every message a ``role`` and a non-empty string
``content``, optionally ``name`` and, on assistant messages, ``weight`` 0 or
1; the example ends in the assistant message the model learns to write. For
the single-turn pairs mlift exports, stricter: at most one system message,
first; then user turns; exactly one assistant turn, last. Multi-turn files
are outside what mlift writes and are reported as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlift.tokens import count_chat_tokens

__all__ = ["ROLES", "validate_openai_chat", "validate_openai_example"]

ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "name", "weight"}


def validate_openai_example(example: Any, *, max_tokens: int | None = None,
                            token_model: str = "gpt-4o-mini") -> list[str]:
    """Problems of one decoded line (empty when it is valid)."""
    if not isinstance(example, dict):
        return [f"expected a JSON object, got {type(example).__name__}"]
    problems = [f"unexpected top-level key {k!r}" for k in example if k != "messages"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "'messages' must be a non-empty list"]
    roles: list[str] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            problems.append(f"{where}: expected an object, got {type(msg).__name__}")
            roles.append("?")
            continue
        role = msg.get("role")
        roles.append(role if isinstance(role, str) else "?")
        if role not in ROLES:
            problems.append(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        content = msg.get("content")
        if not isinstance(content, str):
            problems.append(f"{where}: content must be a string, got {type(content).__name__}")
        elif not content.strip():
            problems.append(f"{where}: content is empty")
        problems += [f"{where}: unexpected key {k!r}" for k in msg if k not in _MESSAGE_KEYS]
        if "weight" in msg and (role != "assistant" or msg["weight"] not in (0, 1)
                                or isinstance(msg["weight"], bool)):
            problems.append(f"{where}: weight must be 0 or 1, and only on assistant messages")
    if roles.count("assistant") != 1:
        problems.append(f"expected exactly one assistant message, found {roles.count('assistant')}")
    elif roles[-1] != "assistant":
        problems.append("the assistant message must be the last one")
    if "user" not in roles:
        problems.append("no user message")
    if "system" in roles[1:]:
        problems.append("a system message may only come first")
    if max_tokens is not None and not problems:
        pairs = [(m["role"], m["content"]) for m in messages]
        tokens = count_chat_tokens(pairs, token_model)
        if tokens > max_tokens:
            problems.append(f"{tokens} tokens ({token_model}), more than {max_tokens}")
    return problems


def validate_openai_chat(path: str | Path, *, max_tokens: int | None = None,
                         token_model: str = "gpt-4o-mini") -> list[str]:
    """Every problem of an OpenAI chat fine-tuning JSONL file, as ``"FILE:LINE: problem"``.

    An empty list means every line is a valid example. ``max_tokens``, if
    given, also flags examples longer than that (counted for ``token_model``).
    """
    file = Path(path)
    if not file.is_file():
        return [f"{file}: no such file"]
    problems: list[str] = []
    count = 0
    with file.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{file}:{lineno}"
            if not raw.strip():
                problems.append(f"{where}: blank line")
                continue
            count += 1
            try:
                example = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.append(f"{where}: not valid JSON ({exc})")
                continue
            problems += [f"{where}: {p}" for p in validate_openai_example(
                example, max_tokens=max_tokens, token_model=token_model)]
    if not count:
        problems.append(f"{file}: no examples")
    return problems
