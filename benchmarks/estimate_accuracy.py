"""How close ``mlift estimate`` comes to what ``mlift run`` then costs, on the simulator.

    python -m benchmarks.estimate_accuracy [--worlds 0 1 2 ...] [--pilot 12] [--keep DIR]

Inputs: the bundled samples (``samples/{hi,te,ja,es}.jsonl``) plus the edge
cases of ``tests/fixtures/estimate/`` (very short and very long texts, one
whose translation ``max_tokens`` cuts, other languages and scripts in the same
file, English records, records selection and the reader reject, and
context-bearing NLP records), in two invocations: plain records (with
``--max-chars 30000`` so the extremely long one is selected) and context
records (``--context-field article``).

Each *world* is a ``mlift sim serve`` process with its own seed (and, for two
of them, a judge that often writes no score, or answers twice as long), and
``--seed`` (the prompt draw) set to the same number. For each input and
mode (priors only; ``--pilot N``), against a fresh simulator and cache: two
earlier runs leave answers in the cache (some items fully answered, some up to
the instruction with another judge prompt), then ``mlift estimate --json``,
then ``mlift run`` with the same flags, and the estimate's total is set
against the run's cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import MLIFT, Sim

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = [ROOT / "samples" / f"{lang}.jsonl" for lang in ("hi", "te", "ja", "es")]
FIXTURES = ROOT / "tests" / "fixtures" / "estimate"
INPUTS = {"samples + edge": ([*SAMPLES, FIXTURES / "edge.jsonl"], ["--max-chars", "30000"]),
          "edge context": ([FIXTURES / "edge_context.jsonl"], ["--context-field", "article"])}
# Pilot size per input, as a share of its items (8 context records: a pilot of 2).
PILOT_SHARE = 0.1
# world → (sim flags, profile settings for mlift, what it is)
WORLDS: dict[int, tuple[list[str], str, str]] = {
    0: ([], "", "sim seed 0"), 1: ([], "", "sim seed 1"), 2: ([], "", "sim seed 2"),
    # Without an enforced schema the judge's free text may not parse: re-asks.
    3: (["--bad-verdict-rate", "0.15"], "structured_outputs = false",
        "sim seed 3, no schema, 15 % verdicts unreadable"),
    4: (["--verbosity", "2"], "", "sim seed 4, answers 2x as long"),
}
# Earlier runs whose answers are in the cache: (ids, extra flags). The second used
# another judge prompt, so its translations and instructions are cached, not its verdicts.
Warm = tuple[tuple[str, ...], list[str]]
WARM: tuple[Warm, ...] = (
    (("hi-001", "hi-002", "te-003", "ja-004", "es-005", "edge-fr", "edge-hi-long",
      "edge-en-1", "edge-ctx-hi-sum-001"), []),
    (("es-010", "es-011", "ja-012", "edge-zh", "edge-ctx-es-title-002"),
     ["--judge-prompt", "judge/fit_line"]))


@dataclass(slots=True)
class Result:
    world: str
    inputs: str
    mode: str
    estimate: dict[str, float]
    cached: int
    actual: float
    stages: dict[str, tuple[float, float]]  # stage → (estimated, actual)
    prompt_cached: int  # input tokens the provider's prompt cache served in the run

    @property
    def error(self) -> float:
        return (self.estimate["expected"] - self.actual) / self.actual if self.actual else 0.0

    @property
    def in_range(self) -> bool:
        return self.estimate["low"] <= self.actual <= self.estimate["high"]


def _mlift(*args: str | Path) -> str:
    done = subprocess.run([*MLIFT, *map(str, args)], capture_output=True, text=True,
                          check=False)
    if done.returncode not in (0, 4):
        raise RuntimeError(f"mlift {args[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _subset(ids: tuple[str, ...], out: Path) -> dict[str, Path]:
    """Files holding just ``ids``, one per input group (context records need their flags)."""
    files: dict[str, Path] = {}
    for k, (name, (paths, _)) in enumerate(INPUTS.items()):
        lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()
                 if any(f'"id": "{i}"' in line for i in ids)]
        if lines:
            files[name] = out / f"warm-{ids[0]}-{k}.jsonl"
            files[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def world(n: int, pilot: int, tmp: Path) -> list[Result]:
    """Every input and mode of world ``n``, each against a fresh simulator (its prompt
    cache, like a provider's, would otherwise carry over from one mode's run to the next)."""
    flags, profile, label = WORLDS[n]
    results: list[Result] = []
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "mlift.toml"
    config.write_text(f"[providers.sim]\n{profile}\n", encoding="utf-8")
    for name, (paths, extra) in INPUTS.items():
        items = sum(1 for p in paths for _ in p.open(encoding="utf-8"))
        for mode in ("priors", f"pilot {max(2, min(pilot, round(PILOT_SHARE * items)))}"):
            work = tmp / f"{name.replace(' ', '-')}-{mode.replace(' ', '')}"
            work.mkdir()
            with Sim("--seed", str(n), *flags) as sim:
                common: list[str | Path] = ["--base-url", sim.url, "--seed", str(n),
                                            "--config", config, "-q"]
                cache = work / "cache"
                for ids, warm_flags in WARM:  # earlier runs that left answers in the cache
                    for group, path in _subset(ids, work).items():
                        _mlift("run", path, *INPUTS[group][1], *warm_flags, *common,
                               "--cache-dir", cache, "--out", work / f"warm-{path.stem}")
                args = [*paths, *extra, *common, "--cache-dir", cache]
                pilot_args = ["--pilot", mode.split()[1]] if mode != "priors" else []
                est = json.loads(_mlift("estimate", *args, *pilot_args, "--json"))
                _mlift("run", *args, "--out", work / "run")
            acc = json.loads((work / "run" / "run.json").read_text(encoding="utf-8"))[
                "accounting"]
            stages = {s: (v["cost_usd"]["expected"],
                          acc["stages"].get(s, {}).get("cost_usd", 0.0))
                      for s, v in est["stages"].items()}
            results.append(Result(label, name, mode, est["total"]["cost_usd"],
                                  est["total"]["cached_requests"], acc["totals"]["cost_usd"],
                                  stages, acc["totals"].get("cached_input_tokens", 0)))
    return results


def table(results: list[Result]) -> str:
    head = ("| world | input | mode | estimate: expected [low–high] | actual | error | "
            "in range | per stage (estimate/actual − 1) | prompt-cached input |")
    lines = [head, "| --- | --- | --- | --- | ---: | ---: | --- | --- | ---: |"]
    for r in results:
        e = r.estimate
        per = ", ".join(f"{s} {est / act - 1:+.0%}" if act else f"{s} —"
                        for s, (est, act) in r.stages.items())
        lines.append(f"| {r.world} | {r.inputs} | {r.mode} | ${e['expected']:.5f} "
                     f"[{e['low']:.5f}–{e['high']:.5f}] | ${r.actual:.5f} | {r.error:+.1%} | "
                     f"{'yes' if r.in_range else '**no**'} | {per} | {r.prompt_cached:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worlds", type=int, nargs="+", default=sorted(WORLDS))
    p.add_argument("--pilot", type=int, default=15, help="largest pilot (else 10 %% of items)")
    p.add_argument("--keep", type=Path, help="keep the work folders here")
    a = p.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mlift-est-") as t:
        base = a.keep or Path(t)
        for n in a.worlds:
            results += world(n, a.pilot, base / f"world{n}")
            print(table(results[-4:]), file=sys.stderr, flush=True)
    print(table(results))
    summary: dict[str, Any] = {}
    for mode in {r.mode for r in results}:
        rs = [r for r in results if r.mode == mode]
        summary[mode] = {"within_10pct": sum(abs(r.error) <= 0.10 for r in rs),
                         "in_range": sum(r.in_range for r in rs), "of": len(rs),
                         "worst_error": max((r.error for r in rs), key=abs)}
    print("\n" + json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
