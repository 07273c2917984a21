"""Prompt caching as the two providers do it, so usage reports cached tokens.

OpenAI caches by itself: a prompt of at least 1,024 tokens has its prefixes
cached at 1,024 tokens and every 128 tokens beyond, and a later prompt that
shares such a prefix reports the longest one as
``usage.prompt_tokens_details.cached_tokens`` (always 0 or 1,024 + 128·k).
Writing is free and invisible.

Anthropic caches on request: each content block carrying ``cache_control``
(at most 4 per request; a top-level ``cache_control`` marks the last block)
marks a breakpoint, and the prefix up to and
including it is cached if it is at least the model's minimum (1,024 tokens
for most models, 2,048 for the Haiku 3.x models and Sonnet 4.6, 4,096 for
Haiku 4.5 and Opus 4.5/4.6); shorter prefixes are silently not cached. The
longest breakpoint already cached is read (``cache_read_input_tokens``), the
marked prefix beyond it is written (``cache_creation_input_tokens``, split by
TTL in ``cache_creation``), and ``input_tokens`` counts only the rest.

Entries live per API key (the providers keep them per organisation) for 5
minutes, refreshed on every hit (1 hour for ``"ttl": "1h"`` blocks), on the
simulator's injected clock. ``visible_before`` makes a lookup see only entries
written before that moment: the requests of one batch are processed side by
side and none sees another's write (measured on Anthropic's API: cold batches
of up to 48 requests sharing a 11k-token prefix read nothing), while the next
batch, or an online request, does.

Token positions follow :func:`mlift.tokens.count_chat_tokens`: each message
is 4 tokens of framing plus its content, so cached counts never exceed the
prompt tokens the simulator reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mlift.sim.wire import WireError
from mlift.tokens import count_chat_tokens, count_tokens, truncate_tokens

OPENAI_MIN_TOKENS = 1024
OPENAI_STEP_TOKENS = 128
TTL_S = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
_FRAMING = 4  # tokens per message besides its content (3 + the role), as count_chat_tokens
_PRUNE_EVERY = 4096

# Minimum cacheable prefix per Anthropic model family (first match wins).
_ANTHROPIC_MIN: tuple[tuple[str, int], ...] = (
    ("claude-haiku-4-5", 4096), ("claude-opus-4-5", 4096), ("claude-opus-4-6", 4096),
    ("claude-3-5-haiku", 2048), ("claude-3-haiku", 2048), ("claude-sonnet-4-6", 2048),
)


def anthropic_min_tokens(model: str) -> int:
    """The shortest prefix ``model`` caches (1,024 for models not listed)."""
    for prefix, tokens in _ANTHROPIC_MIN:
        if model.startswith(prefix):
            return tokens
    return 1024


@dataclass(frozen=True, slots=True)
class CacheUse:
    """Prompt tokens read from and written to the cache by one request."""

    read: int = 0
    write: int = 0
    write_1h: int = 0  # the part of ``write`` that went to 1-hour entries


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A cacheable prefix: its length in tokens, content digest and TTL."""

    tokens: int
    digest: str
    ttl: str


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


@lru_cache(maxsize=4096)
def openai_prefixes(model: str, messages: tuple[tuple[str, str], ...]) -> tuple[Breakpoint, ...]:
    """The cacheable prefixes of a chat prompt: 1,024 tokens, then every 128."""
    starts, pos = [], 0
    for _, content in messages:
        starts.append(pos)
        pos += _FRAMING + count_tokens(content, model)
    out: list[Breakpoint] = []
    boundary = OPENAI_MIN_TOKENS
    for i, (role, content) in enumerate(messages):
        end = starts[i + 1] if i + 1 < len(messages) else pos
        head = [part for msg in messages[:i] for part in msg]
        while boundary <= end:
            inside = boundary - starts[i] - _FRAMING
            text = truncate_tokens(content, inside, model)[0] if inside > 0 else ""
            out.append(Breakpoint(boundary, _digest(model, *head, role, text), "5m"))
            boundary += OPENAI_STEP_TOKENS
    return tuple(out)


def _block_text(block: Any, where: str) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, dict) and block.get("type", "text") == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(block, dict):
        return ""  # images, documents, tool blocks: not simulated
    raise WireError(400, f"{where}: expected an object")


def _ttl(block: Any, where: str) -> str | None:
    control = block.get("cache_control") if isinstance(block, dict) else None
    if control is None:
        return None
    at = f"{where}.cache_control" if where else "cache_control"
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise WireError(400, f"{at}.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in TTL_S:
        raise WireError(400, f"{at}.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def anthropic_breakpoints(obj: dict[str, Any], model: str) -> tuple[Breakpoint, ...]:
    """The prefixes a Messages request marks with ``cache_control``, in order.

    Raises ``WireError`` (400) for more than 4 marks or a malformed mark,
    as the API does.
    """
    # (role, block texts so far) per message, system first, as parse_anthropic reads them.
    turns: list[tuple[str, list[str]]] = []
    marks: list[tuple[int, int, str]] = []  # (turn index, blocks in that turn, ttl)

    def walk(role: str, content: Any, where: str) -> None:
        texts: list[str] = []
        turns.append((role, texts))
        blocks = [content] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            return
        for j, block in enumerate(blocks):
            texts.append(_block_text(block, f"{where}.{j}"))
            ttl = _ttl(block, f"{where}.{j}")
            if ttl is not None:
                marks.append((len(turns) - 1, j + 1, ttl))

    system = obj.get("system")
    if system is not None:
        walk("system", system, "system")
    for i, msg in enumerate(obj.get("messages") or []):
        if isinstance(msg, dict):
            walk(str(msg.get("role")), msg.get("content"), f"messages.{i}.content")
    # A top-level cache_control marks the last block of the request.
    auto = _ttl(obj, "")
    if auto is not None and turns and turns[-1][1]:
        marks.append((len(turns) - 1, len(turns[-1][1]), auto))
    if len(marks) > MAX_BREAKPOINTS:
        raise WireError(400, f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may "
                             f"be provided. Found {len(marks)}.")
    out: list[Breakpoint] = []
    for turn, blocks, ttl in marks:
        prefix = [(role, "\n".join(texts)) for role, texts in turns[:turn]]
        prefix.append((turns[turn][0], "\n".join(turns[turn][1][:blocks])))
        # count_chat_tokens adds 3 tokens that prime the reply: not part of a prefix.
        tokens = count_chat_tokens(prefix, model) - 3
        parts = [part for pair in prefix for part in pair]
        out.append(Breakpoint(tokens, _digest(model, *parts), ttl))
    return tuple(out)


class PromptCache:
    """Cache entries per API key: digest -> (written at, expires at)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}
        self._ops = 0

    def _visible(self, key: str, digest: str, now: float, before: float | None) -> bool:
        entry = self._entries.get((key, digest))
        if entry is None or entry[1] <= now:
            return False
        return before is None or entry[0] < before

    def _put(self, key: str, digest: str, now: float, ttl: str) -> None:
        entry = self._entries.get((key, digest))
        written = entry[0] if entry is not None and entry[1] > now else now
        self._entries[(key, digest)] = (written, now + TTL_S[ttl])

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops % _PRUNE_EVERY == 0:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}

    def openai(self, key: str, model: str, messages: tuple[tuple[str, str], ...], now: float,
               *, before: float | None = None) -> CacheUse:
        """The cached tokens of an OpenAI chat prompt; caches its prefixes for later."""
        self._tick(now)
        points = openai_prefixes(model, messages)
        read = 0
        for point in reversed(points):
            if self._visible(key, point.digest, now, before):
                read = point.tokens
                break
        for point in points:
            self._put(key, point.digest, now, "5m")
        return CacheUse(read=read)

    def anthropic(self, key: str, model: str, points: Sequence[Breakpoint], now: float,
                  *, before: float | None = None) -> CacheUse:
        """Tokens read and written for a request's breakpoints (see the module docstring)."""
        self._tick(now)
        eligible = [p for p in points if p.tokens >= anthropic_min_tokens(model)]
        hit = -1
        for i in range(len(eligible) - 1, -1, -1):
            if self._visible(key, eligible[i].digest, now, before):
                hit = i
                break
        read = eligible[hit].tokens if hit >= 0 else 0
        write = write_1h = 0
        done = read
        for point in eligible[hit + 1:]:
            segment = max(0, point.tokens - done)
            write += segment
            write_1h += segment if point.ttl == "1h" else 0
            done = max(done, point.tokens)
        for point in eligible:
            self._put(key, point.digest, now, point.ttl)
        return CacheUse(read=read, write=write, write_1h=write_1h)
