"""The two clients under test, run as measured subprocesses: mlift and the naive baseline.

Both write one result line per input line; ``check_output`` verifies that
promise (every line once, in order, none lost or duplicated) and counts the
lines that ended as errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import MLIFT, PYTHON, Measured, measure

MODEL_SPEC = "openai:gpt-4o-mini"
# tiktoken's encodings from the folder next to the checkout on offline machines.
_TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "tokenizers"
ENV = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-ant-bench",
       **({"TIKTOKEN_CACHE_DIR": str(_TOKENIZERS)} if _TOKENIZERS.is_dir() else {})}


@dataclass(frozen=True, slots=True)
class OutputCheck:
    lines: int
    in_order: bool     # line k holds the result of input line k, for every k
    errors: int        # result lines that carry an error instead of an answer

    def complete(self, n: int) -> bool:
        return self.lines == n and self.in_order


@dataclass(frozen=True, slots=True)
class ClientRun:
    client: str
    measured: Measured
    elapsed_s: float           # the client's own clock, after start-up (imports, cache open)
    check: OutputCheck
    stats: dict[str, Any]      # mlift's --stats-json (accounting), {} for the baseline

    @property
    def startup_s(self) -> float:
        return max(0.0, self.measured.wall_s - self.elapsed_s)


def check_output(path: Path) -> OutputCheck:
    lines = errors = 0
    in_order = True
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            for lines, raw in enumerate(fh, start=1):
                rec = json.loads(raw)
                meta = rec.get("metadata") or {}
                if rec.get("line") != lines or meta.get("i") != lines - 1:
                    in_order = False
                if "error" in rec:
                    errors += 1
    return OutputCheck(lines, in_order, errors)


def _finish(client: str, m: Measured, out: Path, stats_path: Path) -> ClientRun:
    stats: dict[str, Any] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    elapsed = float(stats.get("elapsed_s", m.wall_s))
    if m.returncode not in (0, 4):  # 4 = some lines failed: a result, not a crash
        raise RuntimeError(f"{client} exited {m.returncode}: {m.stderr[-2000:]}")
    return ClientRun(client, m, elapsed, check_output(out), stats)


def mlift_command(api: str, inp: Path, out: Path, *flags: str, provider: str = MODEL_SPEC,
                  cache_dir: Path | None = None) -> list[str]:
    cache = ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    return [*MLIFT, "requests", str(inp), "--out", str(out), "--provider", provider,
            "--base-url", api, *cache, "--stats-json", str(out.with_suffix(".stats.json")), "-q",
            *flags]


def run_mlift(api: str, inp: Path, out: Path, *flags: str, cache_dir: Path | None = None,
              label: str = "mlift", provider: str = MODEL_SPEC) -> ClientRun:
    """``mlift requests`` against ``api``; ``cache_dir=None`` means ``--no-cache``."""
    stats_path = out.with_suffix(".stats.json")
    out.unlink(missing_ok=True)  # a leftover output would be resumed, not re-run
    stats_path.unlink(missing_ok=True)
    cmd = mlift_command(api, inp, out, *flags, provider=provider, cache_dir=cache_dir)
    return _finish(label, measure(cmd, env=ENV), out, stats_path)


def run_naive(api: str, inp: Path, out: Path, concurrency: int = 64,
              label: str = "naive", anthropic: bool = False) -> ClientRun:
    stats_path = out.with_suffix(".stats.json")
    out.unlink(missing_ok=True)
    stats_path.unlink(missing_ok=True)
    cmd = [PYTHON, "-m", "benchmarks.naive", str(inp), str(out), "--base-url", api,
           "--concurrency", str(concurrency), "--stats-json", str(stats_path),
           *(["--anthropic"] if anthropic else [])]
    return _finish(label, measure(cmd, env=ENV), out, stats_path)


def run_curator(python: str, api: str, inp: Path, out: Path, *flags: str,
                label: str = "curator") -> ClientRun:
    """``benchmarks/curator_client.py`` under another virtualenv's Python (optional peer)."""
    out.unlink(missing_ok=True)
    script = Path(__file__).with_name("curator_client.py")
    cmd = [python, str(script), str(inp), str(out), "--base-url", api, *flags]
    m = measure(cmd, env=ENV)
    elapsed = m.wall_s
    for line in reversed(m.stderr.splitlines()):
        if line.startswith('{"elapsed_s"'):
            elapsed = float(json.loads(line)["elapsed_s"])
            break
    if m.returncode != 0:
        raise RuntimeError(f"{label} exited {m.returncode}: {m.stderr[-2000:]}")
    return ClientRun(label, m, elapsed, check_output(out), {})
