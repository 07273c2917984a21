"""Rendering (pure, strict variables) and the per-item seeded draw."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence

from mlift.errors import MissingVariablesError, PromptError
from mlift.prompts.model import (
    _MARKER_UNSAFE,
    _TOKEN,
    Draw,
    PromptLibrary,
    PromptTemplate,
    T,
)
from mlift.types import Message


def placeholders(text: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order; bad braces raise ValueError."""
    names = []
    for m in _TOKEN.finditer(text):
        if m.group(1):
            names.append(m.group(1))
        elif m.group(0) in "{}":
            raise ValueError(f"unescaped {m.group(0)!r} at offset {m.start()} "
                             "(write {{ or }} for a literal brace)")
    return names


@functools.lru_cache(maxsize=1024)
def _segments(text: str) -> tuple[tuple[str, str | None], ...]:
    """``text`` split once into (literal, placeholder-or-None) pairs, so render only joins."""
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            parts.append((literal, m.group(1)))
        else:
            parts.append((literal + m.group(0)[0], None))  # "{{" -> "{", "}}" -> "}"
        pos = m.end()
    parts.append((text[pos:], None))
    return tuple(parts)


def _substitute(text: str, values: Mapping[str, str], escape: bool = False) -> str:
    out = []
    for literal, name in _segments(text):
        out.append(literal)
        if name is not None:
            out.append(_MARKER_UNSAFE.sub("_", values[name]) if escape else values[name])
    return "".join(out)


def check_variables(template: PromptTemplate, names: Iterable[str]) -> None:
    """Raise ``MissingVariablesError`` listing every declared variable not in ``names``."""
    have = set(names)
    missing = [v for v in template.variables if v not in have]
    if missing:
        raise MissingVariablesError(template.name, missing)


def route(template: PromptTemplate, variables: Mapping[str, str]) -> str:
    """``id@vN`` and the ``sim`` hint with its variables filled in (header-safe ASCII).

    E.g. ``translate/to_en@v1 translate source=hi target=en``: what providers
    send as the ``X-Mlift-Prompt`` header, so the simulator can answer the
    prompt without anything in the messages (see ``mlift.types.Message``).
    """
    return f"{template.name} {_substitute(template.sim, variables, escape=True)}"


def render(template: PromptTemplate, variables: Mapping[str, str]) -> tuple[Message, ...]:
    """The messages to send: exactly the prompt file's text, variables filled in.

    Pure. Every declared variable is required (all missing ones are reported
    at once); extra variables are ignored. Values are inserted verbatim: braces
    inside a value are never interpreted. Nothing is added for tools: the
    system message carries ``route(template, variables)`` as metadata, which
    no model reads.
    """
    check_variables(template, variables)
    for name in template.variables:
        if not isinstance(variables[name], str):
            raise PromptError(f"prompt {template.name}: variable {name!r} must be a string, "
                              f"got {type(variables[name]).__name__}")
    hint = route(template, variables)
    # load() guarantees messages[0] is the system message: it carries the route.
    return tuple(Message(msg.role, _substitute(msg.content, variables),
                         hint if i == 0 else None)
                 for i, msg in enumerate(template.messages))


# ------------------------------------------------------------------ drawing

def _uniforms(seed: int, item_id: str) -> tuple[float, float, float]:
    """Three independent uniforms in [0, 1) fixed by (seed, item): for task, style, length.

    sha256, not hash() (salted per process) nor a shared RNG stream (order-
    dependent), so a resumed or reordered run draws the same for each item.
    """
    digest = hashlib.sha256(f"mlift-draw\x1f{seed}\x1f{item_id}".encode()).digest()
    u_task, u_style, u_length = (int.from_bytes(digest[i:i + 8], "big") / 2**64
                                 for i in (0, 8, 16))
    return u_task, u_style, u_length


def _weighted(items: Sequence[T], weights: Sequence[float], u: float) -> T:
    target, acc = u * sum(weights), 0.0
    for item, w in zip(items, weights, strict=True):
        acc += w
        if target < acc:
            return item
    return items[-1]  # only reachable through float rounding at u -> 1


def draw(seed: int, item_id: str, library: PromptLibrary, tasks: Iterable[str] | None = None,
         *, context: bool = False) -> Draw:
    """Pick the instruction prompt, style and length hint for one item.

    Deterministic per (seed, item_id), so a resumed or reordered run draws
    the same; tasks are equally likely, styles and length
    hints follow their weights. Items with a context draw from the context
    variants only, items without from the stand-alone prompts only.
    """
    tasks = None if tasks is None else tuple(tasks)
    candidates = [t for t in library.pool("instruct", tasks) if t.has_context == context]
    if not candidates:
        kind = "context variants" if context else "stand-alone prompts"
        chosen = ", ".join(tasks) if tasks is not None else "all tasks"
        raise PromptError(f"no instruct {kind} among {chosen}")
    data = library.style_data
    u_task, u_style, u_length = _uniforms(seed, item_id)
    template = candidates[int(u_task * len(candidates))]
    style = _weighted(data.styles, [c.weight for c in data.styles], u_style)
    length = _weighted(data.length_hints, [c.weight for c in data.length_hints], u_length)
    return Draw(template, style, length, data.ref)


