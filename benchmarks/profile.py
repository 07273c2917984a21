"""Where a process's CPU goes: py-spy's raw (collapsed) samples, grouped by library.

Each sample is attributed to the innermost frame that belongs to a known
group (JSON inside the SDK counts as JSON, the SDK's own code as SDK), and
to "startup (imports)" when the stack is inside an import.

    python -m benchmarks.profile /tmp/x.txt      # from `py-spy record --format raw`
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# (group, substrings of a frame "func (path:line)"), matched innermost first.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("JSON encode/decode", ("(json/", "orjson")),
    ("token counting (tiktoken)", ("tiktoken", "mlift/tokens.py")),
    ("cache (diskcache/sqlite)", ("diskcache", "sqlite3", "mlift/engine/cache.py")),
    ("SDK models (pydantic)", ("pydantic",)),
    ("SDK (openai)", ("openai/", "(openai.py")),
    ("HTTP (httpx/httpcore/anyio)", ("httpx", "httpcore", "h11", "anyio", "ssl.py",
                                     "socket.py", "selectors.py")),
    ("engine: limiter", ("mlift/engine/limiter.py",)),
    ("engine: retries (tenacity)", ("tenacity", "mlift/engine/retry.py")),
    ("engine: accounting", ("mlift/engine/accounting.py",)),
    ("engine: core", ("mlift/engine/core.py",)),
    ("scheduler + bulk I/O", ("mlift/engine/scheduler.py", "mlift/bulk.py")),
    ("mlift providers", ("mlift/providers",)),
    ("mlift other", ("mlift/",)),
    ("asyncio event loop", ("asyncio/",)),
]


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any("_find_and_load" in f for f in frames):
        return "startup (imports)"
    for frame in reversed(frames):
        for group, needles in GROUPS:
            if any(n in frame for n in needles):
                return group
    return "other"


def breakdown(raw: Path) -> list[tuple[str, float]]:
    """(group, share of samples) from a py-spy raw file, largest first."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[classify(stack)] += int(n)
    total = sum(counts.values()) or 1
    return [(g, n / total) for g, n in counts.most_common()]


def format_breakdown(shares: list[tuple[str, float]]) -> str:
    return ", ".join(f"{g} {s:.0%}" for g, s in shares if s >= 0.01)


if __name__ == "__main__":
    for group, share in breakdown(Path(sys.argv[1])):
        print(f"{share:6.1%}  {group}")
